"""PaddleClas-style YAML configs, -o overrides and validated sections."""
from __future__ import annotations


import pytest

from corolla.config.load import apply_override, dump_config, load_config
from corolla.plugin.errors import ConfigError
from corolla.config.sections import read_global

SEED_001 = """
Global:
  epochs: 20
  output_dir: ./output/
  device: cpu
  image_shape: [3, 224, 224]
Arch:
  name: ResNet50_vd
  class_num: 102
DataLoader:
  Train:
    dataset:
      name: ImageNetDataset
      image_root: ./dataset/
      cls_label_path: ./dataset/train_list.txt
      transform_ops:
        - DecodeImage:
            to_rgb: True
        - RandCropImage:
            size: 224
        - RandomErasing:
            EPSILON: 0.5
Metric:
  Eval:
    - TopkAcc:
        topk: [1, 5]
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(SEED_001)
    return path


def test_list_index_override_from_the_seed_faq(config_file):
    config = load_config(config_file, ["DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=320"])
    assert config["DataLoader"]["Train"]["dataset"]["transform_ops"][1] == {"RandCropImage": {"size": 320}}


def test_override_values_are_yaml_scalars_and_repeatable(config_file):
    config = load_config(
        config_file,
        [
            "Global.epochs=3",
            "Metric.Eval.0.TopkAcc.topk=[1, 3]",
            "Arch.name=ResNet101_vd",
            "Global.device=cpu",
            "Global.epochs=4",
            "DataLoader.Train.dataset.transform_ops.2.RandomErasing.EPSILON=0.25",
        ],
    )
    assert config["Global"]["epochs"] == 4
    assert config["Metric"]["Eval"][0]["TopkAcc"]["topk"] == [1, 3]
    assert config["Arch"]["name"] == "ResNet101_vd"
    assert config["DataLoader"]["Train"]["dataset"]["transform_ops"][2]["RandomErasing"]["EPSILON"] == 0.25


def test_an_override_that_adds_a_key_is_recorded_for_the_plan_to_check(config_file):
    config = load_config(config_file, ["DataLoader.Trian.dataset.image_root=/data", "+Global.mine=1", "Global.epochs=3"])
    assert config.added == ["DataLoader.Trian.dataset.image_root"]
    assert config["DataLoader"]["Trian"] == {"dataset": {"image_root": "/data"}} and config["Global"]["mine"] == 1


def test_plus_prefix_adds_new_keys(config_file):
    config = load_config(config_file, ["+Arch.pretrained=true", "+Global.plugins.disable=[foo]"])
    assert config["Arch"]["pretrained"] is True
    assert config["Global"]["plugins"] == {"disable": ["foo"]}


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("Global.epochs", "expected KEY.PATH=VALUE"),
        ("Metric.Eval.5.TopkAcc.topk=1", "index 5 is out of range for Metric.Eval (length 1)"),
        ("Metric.Eval.first=1", "Metric.Eval is a list; expected an index, found 'first'"),
        ("Global.epochs.x=1", "Global.epochs is 20 (int), not a mapping or list"),
        ("Global.epochs=[1", "not valid YAML"),
    ],
)
def test_bad_overrides_say_what_is_wrong(override, fragment):
    config = {"Global": {"epochs": 20}, "Metric": {"Eval": [{"TopkAcc": {"topk": [1]}}]}}
    with pytest.raises(ConfigError, match=None) as info:
        apply_override(config, override)
    assert fragment in str(info.value)


def test_an_override_into_a_list_item_must_name_its_component(config_file):
    with pytest.raises(ConfigError, match=r"override 'DataLoader.Train.dataset.transform_ops.2.RandCropImage.size=40': item 2 "
                       r"of DataLoader.Train.dataset.transform_ops is RandomErasing, not RandCropImage \(RandCropImage is item 1\)$"):
        load_config(config_file, ["DataLoader.Train.dataset.transform_ops.2.RandCropImage.size=40"])
    with pytest.raises(ConfigError, match=r"item 0 of Metric.Eval is TopkAcc, not TopkAc \(no item of Metric.Eval is TopkAc\)$"):
        load_config(config_file, ["Metric.Eval.0.TopkAc.topk=[1]"])
    config = load_config(config_file, ["DataLoader.Train.dataset.transform_ops.1.RandCropImage.scale=[0.5, 1.0]"])
    assert config["DataLoader"]["Train"]["dataset"]["transform_ops"][1] == {"RandCropImage": {"size": 224, "scale": [0.5, 1.0]}}


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("Global:\n  epochs: 3\n  output_dir: [unclosed\nArch:\n  name: x\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        load_config(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("Global: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="evil.yaml:1"):
        load_config(path)


def test_an_alias_bomb_is_refused_before_it_grows(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]  # 10**8 values
    path = tmp_path / "bomb.yaml"
    path.write_text("Global:\n" + "".join(f"  {line}\n" for line in levels))
    with pytest.raises(ConfigError, match=r"bomb.yaml: the config expands to more than 1,000,000 values"):
        load_config(path)


def test_missing_file_and_misspelt_section(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "typo.yaml"
    path.write_text("Optimzer:\n  name: Momentum\n")
    with pytest.raises(ConfigError, match="unknown section 'Optimzer'. Did you mean 'Optimizer'"):
        load_config(path)


def test_global_is_validated_with_key_path_value_and_expectation(config_file):
    settings = read_global(load_config(config_file))
    assert (settings.epochs, settings.device, settings.image_shape) == (20, "cpu", [3, 224, 224])
    assert settings.print_batch_step == 10  # PaddleClas's default
    bad = [
        ("Global.epochs=ten", "Global.epochs: expected an integer >= 1, found 'ten' (str)"),
        ("Global.epochs=0", "Global.epochs: expected an integer >= 1, found 0 (int)"),
        ("Global.device=tpu", "Global.device: expected one of 'cpu', 'gpu', found 'tpu'"),
        ("Global.image_shape=[3, 224]", "Global.image_shape: expected a list of 3 items"),
        ("+Global.plugins.strict=maybe", "Global.plugins.strict: expected true or false, found 'maybe'"),
        ("+Global.plugins.disabel=[x]", "Global.plugins.disabel: unknown key. Did you mean 'disable'"),
    ]
    for override, message in bad:
        with pytest.raises(ConfigError) as info:
            read_global(load_config(config_file, [override]))
        assert message in str(info.value)


def test_paddleclas_only_global_keys_warn_instead_of_failing(tmp_path):
    path = tmp_path / "pc.yaml"
    path.write_text("Global:\n  use_dali: False\n  to_static: False\n  epochs: 2\n")
    with pytest.warns(UserWarning, match="Global.use_dali: key not used by corolla"):
        settings = read_global(load_config(path))
    assert settings.epochs == 2


def test_dump_round_trips(config_file):
    config = load_config(config_file)
    assert load_config(config_file) == __import__("yaml").safe_load(dump_config(config))
    assert dump_config(config).startswith("Global:")
