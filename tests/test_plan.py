"""The config plan: one checked reading of a config, shared by ``corolla config`` and every verb."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import corolla
import engine_support
from corolla.cli.main import main
from corolla.config.load import load_config, shipped_configs
from corolla.config.planner import read_plan
from corolla.engine.builders import build_callbacks
from corolla.plugin.errors import ComponentArgumentError, ConfigError, UnknownComponentError

QUICKSTART = str(shipped_configs() / "quickstart.yaml")
DISTILLATION = str(shipped_configs() / "distillation" / "person_PPLCNet_x1_0_distillation.yaml")


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


@pytest.mark.parametrize(
    "config, override, message",
    [
        (QUICKSTART, "Arch.class_num=six", r"Arch.class_num: backbone 'PPLCNet_x0_25' .* expects an integer, found 'six'"),
        (QUICKSTART, "Optimizer.momentum=abc", r"Optimizer.momentum: optimizer 'Momentum' .* expects a number, found 'abc'"),
        (QUICKSTART, "DataLoader.Train.dataset.transform_ops.2.RandFlipImage.flip_code=high",
         r"transform_ops.2.RandFlipImage.flip_code: transform 'RandFlipImage' .* expects an integer, found 'high'"),
        (QUICKSTART, "Global.sed=3", r"override of Global.sed: Global has no key 'sed' .*Did you mean 'seed'"),
        (QUICKSTART, "Arch.clas_num=3", r"Arch.clas_num: .* has no argument 'clas_num'. Did you mean 'class_num'"),
        (DISTILLATION, "Arch.models.1.Student.name=PPLCNet_x1_O",
         r"Arch.models.1.Student: unknown backbone 'PPLCNet_x1_O'. Close matches: PPLCNet_x1_5, PPLCNet_x1_0"),
        (DISTILLATION, "Arch.models.0.Teacher.class_num=two", r"Arch.models.0.Teacher.class_num: .* expects an integer, found 'two'"),
        (QUICKSTART, "DataLoader.Evl.loader.num_workers=0",
         r"override of DataLoader.Evl.loader.num_workers: DataLoader has no key 'Evl' .*Did you mean 'Eval'\?"),
        (QUICKSTART, "Optimizer.lr.learning_rate=-0.1", r"Optimizer.lr.learning_rate: expected a number > 0, found -0.1"),
        (QUICKSTART, "Optimizer.lr=-0.1", r"Optimizer.lr: expected a mapping .* or a number > 0, found -0.1"),
        (QUICKSTART, "Arch.class_num=-3", r"Arch.class_num: expected a class count of at least 1, found -3"),
        (DISTILLATION, "Arch.models.1.Student.class_num=0", r"Arch.models.1.Student.class_num: expected a class count of at least 1, found 0"),
        # values the optimizer and schedule factories check themselves: made once on stand-ins
        (QUICKSTART, "Optimizer.momentum=1.5", r"Optimizer: optimizer 'Momentum' .*: momentum: expected a number from 0 up to \(not including\) 1, found 1.5"),
        (QUICKSTART, "Optimizer.regularizer.coeff=-1", r"Optimizer.regularizer.coeff: expected a number >= 0, found -1"),
        (QUICKSTART, "Optimizer.lr.warmup_epoch=-1", r"Optimizer.lr.warmup_epoch: expected a number >= 0, found -1"),
        (QUICKSTART, "Optimizer.lr={name: Piecewise, decay_epochs: [1, 2], values: [0.1, 0.01]}", r"Optimizer.lr.values: expected 3 values \(one more than decay_epochs \[1, 2\]\), found 2"),
    ],
)
def test_config_and_train_reject_the_same_configs_with_the_same_message(config, override, message, capsys, tmp_path):
    assert main(["config", "-c", config, "-o", override]) == 2
    checked = capsys.readouterr().err
    assert main(["train", "-c", config, "-o", override, "-o", f"Global.output_dir={tmp_path}"]) == 2
    trained = capsys.readouterr().err
    assert checked.replace("corolla config", "corolla train") == trained
    assert len(trained.strip().splitlines()) == 1
    assert re.search(message, trained), trained
    assert not (tmp_path / "PPLCNet_x0_25").exists()  # nothing ran


@pytest.mark.parametrize(
    "written, misspelt, warning, error",
    [
        ("  Eval:\n    dataset:", "  Evl:\n    dataset:", r"DataLoader.Evl: key not used by corolla, ignored. Did you mean 'Eval'\?$", None),
        ("    loader:", "    loadr:", r"DataLoader.Train.loadr: key not used by corolla, ignored. Did you mean 'loader'\?$", None),
        ("    dataset:", "    datset:", r"DataLoader.Train.datset: .* Did you mean 'dataset'\?$",
         r"DataLoader.Train.dataset: missing; found keys: datset, sampler, loader$"),
        ("    sampler:", "    samplr:", r"DataLoader.Train.samplr: .* Did you mean 'sampler'\?$",
         r"DataLoader.Train.sampler: .* needs argument 'batch_size', which is missing"),
        ("Loss:\n  Train:", "Loss:\n  Trian:", r"Loss.Trian: key not used by corolla, ignored. Did you mean 'Train'\?$", None),
        ("Metric:\n  Train:", "Metric:\n  Tran:", r"Metric.Tran: key not used by corolla, ignored. Did you mean 'Train'\?$", None),
    ],
)
def test_a_misspelt_mode_key_is_named_before_what_it_breaks(written, misspelt, warning, error, capsys, tmp_path):
    config = tmp_path / "misspelt.yaml"
    config.write_text(Path(QUICKSTART).read_text().replace(written, misspelt, 1))
    assert main(["config", "-c", str(config)]) == (2 if error else 0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.search(warning, lines[0]), lines
    assert len(lines) == (2 if error else 1) and (error is None or re.search(error, lines[1])), lines


def test_paddleclas_data_loader_keys_corolla_does_not_use_only_warn(registry):
    section = {"dataset": {"name": "ImageNetDataset", "image_root": ".", "cls_label_path": "t.txt", "transform_ops": [{"DecodeImage": None}]},
               "sampler": {"batch_size": 2}}
    with pytest.warns(UserWarning) as warned:
        plan = read_plan({"DataLoader": {"Train": section, "UnLabelTrain": section, "mean": [0.5]}}, registry)
    assert list(plan.loaders) == ["Train"]
    assert [str(w.message) for w in warned] == ["DataLoader.UnLabelTrain: key not used by corolla, ignored.",
                                                "DataLoader.mean: key not used by corolla, ignored."]


@pytest.mark.parametrize("overrides, warning", [
    (["Global.epochs=3", "Global.start_eval_epoch=5"], "Global.start_eval_epoch=5 and Global.eval_interval=1 leave no epoch"),
    (["Global.epochs=3", "Global.eval_interval=4"], "Global.start_eval_epoch=0 and Global.eval_interval=4 leave no epoch"),
    (["Global.epochs=4", "Global.eval_interval=4"], None),
    (["Global.epochs=3", "Global.start_eval_epoch=3"], None),
    (["Global.epochs=3", "Global.start_eval_epoch=5", "Global.eval_during_train=False"], None),
])
def test_a_training_that_would_evaluate_no_epoch_is_warned_about(overrides, warning, registry):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_plan(load_config(QUICKSTART, overrides), registry)
    found = [str(w.message) for w in caught if "evaluated" in str(w.message)]
    expected = f"{warning} of Global.epochs={overrides[0].split('=')[1]} evaluated: training will write no best_model"
    assert found == ([expected] if warning else [])


def test_overrides_may_set_what_the_schema_or_the_signature_knows():
    registry = corolla.load_registry()
    config = load_config(QUICKSTART, ["Global.seed=3", "EMA.decay=0.999", "AMP.scale_loss=128", "Arch.pretrained=False",
                                      "Global.plugins.prefer.RandFlipImage=corolla", "Optimizer.lr.warmup_start_lr=1e-5"])
    plan = read_plan(config, registry)
    assert plan.settings.seed == 3 and plan.ema.decay == 0.999 and plan.amp.scale_loss == 128.0
    assert plan.settings.plugins.prefer == {"RandFlipImage": "corolla"}
    assert plan.lr_schedule.params["warmup_start_lr"] == 1e-5  # a YAML 1.1 string, read as a number


def test_numbers_written_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Optimizer:\n  name: AdamW\n  epsilon: 1e-8\n  lr:\n    name: Cosine\n    learning_rate: 5e-4\n    eta_min: 1E-6\n")
    plan = read_plan(load_config(path), corolla.load_registry())
    assert plan.optimizer.params["epsilon"] == 1e-8
    assert plan.lr_schedule.params == {"learning_rate": 5e-4, "eta_min": 1e-6}


def test_global_class_num_reaches_the_model_and_every_sub_model(registry):
    plan = read_plan({"Global": {"class_num": 4}, "Arch": {"name": "TinyNet"}}, registry)
    assert plan.model.part.params["class_num"] == 4 and plan.model.class_num == 4
    config = load_config(DISTILLATION, ["Global.class_num=5"])
    del config["Arch"]["class_num"]
    for item in config["Arch"]["models"]:
        next(iter(item.values())).pop("class_num", None)
    plan = read_plan(config, registry)
    assert [child.params["class_num"] for child in plan.model.part.children] == [5, 5]
    assert plan.model.class_num == 5


def test_arch_class_num_wins_over_global_class_num_with_a_warning_as_in_paddleclas(registry):
    with pytest.warns(UserWarning, match=r"Global.class_num=5 is ignored: Arch.class_num=3 is set, and wins"):
        plan = read_plan({"Global": {"class_num": 5}, "Arch": {"name": "TinyNet", "class_num": 3}}, registry)
    assert plan.model.class_num == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_plan({"Global": {"class_num": 3}, "Arch": {"name": "TinyNet", "class_num": 3}}, registry).model.class_num == 3


def test_the_plan_lists_every_component_with_its_plugin(registry):
    plan = read_plan(load_config(DISTILLATION), registry)
    parts = {part.key_path: part for part in plan.parts()}
    assert {"Arch", "Arch.models.0.Teacher", "Arch.models.1.Student", "Optimizer", "Optimizer.lr"} <= set(parts)
    assert parts["Arch.models.0.Teacher"].component.plugin.dist == "corolla"
    assert plan.ready_for() == ["train", "eval", "infer", "export", "predict"]


def test_a_verb_says_which_sections_it_lacks(registry):
    plan = read_plan({"Arch": {"name": "TinyNet"}}, registry)
    assert plan.ready_for() == []
    with pytest.raises(ConfigError, match="corolla train needs Loss.Train, Optimizer, DataLoader.Train"):
        plan.require("train")


@pytest.mark.parametrize(
    "config, error, message",
    [
        ({"AMP": {"level": "O3"}}, ConfigError, r"AMP.level: expected one of 'O1', 'O2', found 'O3'"),
        ({"EMA": {"decay": 2}}, ConfigError, r"EMA.decay: expected a number between 0 and 1"),
        ({"Infer": {"PostProcess": {"name": "Topkk"}}}, UnknownComponentError, r"unknown postprocess 'Topkk'.*Topk"),
        ({"Infer": {"PostProcess": {"name": "Topk", "topk": "five"}}}, ComponentArgumentError, r"Infer.PostProcess.topk: .*expects an integer"),
        ({"Infer": {"batch_size": 0}}, ConfigError, r"Infer.batch_size: expected an integer >= 1"),
        ({"Loss": {"Train": [{"CELoss": {"epsilon": "x"}}]}}, ComponentArgumentError, r"Loss.Train.0.CELoss.epsilon"),
        ({"Loss": {"Train": [{"DistillationDMLLoss": {"act": "relu"}}]}}, ComponentArgumentError, r"act: expected 'softmax'"),
        ({"Optimizer": {"name": "Momentum", "momentum": 0.9, "lr": {"name": "Cosine", "learning_rate": 0}}}, ConfigError,
         r"Optimizer.lr.learning_rate: expected a number > 0, found 0"),
    ],
)
def test_every_section_is_checked(config, error, message, registry):
    with pytest.raises(error, match=message):
        read_plan(config, registry)


def test_callback_hook_mistakes_are_named_by_config_or_before_training(fake_dist, capsys, tmp_path):
    fake_dist("odd-callbacks", {"odd_callbacks": """
        from corolla import hookimpl

        class Misspelt:
            def corolla_epoch_ended(self, run, epoch, logs):
                pass

        class WrongArgs:
            def corolla_epoch_end(self, run, epoch, log):
                pass

        def made_by_a_function():
            return Misspelt()

        @hookimpl
        def corolla_callbacks():
            return {"Misspelt": Misspelt, "WrongArgs": WrongArgs, "MadeByAFunction": made_by_a_function}
    """})
    for name, message in (("Misspelt", r"method 'corolla_epoch_ended' is not a lifecycle hook \(a misspelling is never called\)"),
                          ("WrongArgs", r"corolla_epoch_end takes log, which the hook does not pass \(it passes epoch, logs, run\)")):
        assert main(["config", "-c", QUICKSTART, "-o", f"Global.callbacks=[{{MetricsLog: null}}, {{{name}: null}}]"]) == 2
        assert re.search(rf"Global.callbacks.1.{name}: callback '{name}' from plugin .*: {message}", capsys.readouterr().err)
    # a callback a function makes is known once made, which training does before its first epoch
    override = "Global.callbacks=[{MadeByAFunction: null}]"
    assert main(["config", "-c", QUICKSTART, "-o", override]) == 0
    plan = read_plan(load_config(QUICKSTART, [override]), corolla.load_registry())
    with pytest.raises(ConfigError, match=r"^Global.callbacks.0.MadeByAFunction: method 'corolla_epoch_ended' is not a lifecycle hook"):
        build_callbacks(plan)

