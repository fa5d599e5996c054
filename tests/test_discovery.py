"""Plugins are found through entry points; broken, disabled and clashing plugins are handled."""
from __future__ import annotations

import re
import sys
import warnings

import pytest

from corolla import current_key_path, load_registry
from corolla.plugin.discovery import PluginImportWarning
from corolla.plugin.errors import PluginError, UnknownComponentError
from corolla.plugin.lazy import lazy_variants

NET_PLUGIN = """
from corolla import hookimpl

class TinyNet:
    def __init__(self, class_num=10, width=4):
        self.class_num, self.width = class_num, width

@hookimpl
def corolla_backbones():
    return {"TinyNet": TinyNet}
"""

OTHER_NET_PLUGIN = """
from corolla import hookimpl

def other_tiny_net(class_num=10):
    return ("other", class_num)

@hookimpl
def corolla_backbones():
    return {"TinyNet": other_tiny_net, "OtherNet": other_tiny_net}
"""


def quiet_registry(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginImportWarning)
        return load_registry(**kwargs)


def test_builtin_plugins_come_from_the_corolla_distribution():
    registry = load_registry(strict=True)
    builtins = {p.name: p for p in registry.plugins if p.value.startswith("corolla.plugins")}
    assert {"backbones", "losses", "transforms", "datasets"} <= set(builtins)
    assert {p.dist for p in builtins.values()} == {"corolla"}


def test_component_records_kind_plugin_distribution_and_version(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN}, version="2.3.1")
    component = quiet_registry().resolve("backbone", "TinyNet")
    assert (component.kind, component.name) == ("backbone", "TinyNet")
    assert (component.plugin.name, component.plugin.dist, component.plugin.version) == ("tiny", "tiny-models", "2.3.1")
    assert component.qualified_name == "tiny-models:TinyNet"


def test_same_name_from_two_plugins_is_an_error_naming_both(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN}, version="2.3.1")
    fake_dist("other-models", {"other": OTHER_NET_PLUGIN}, version="0.9")
    registry = quiet_registry()
    with pytest.raises(PluginError) as info:
        registry.resolve("backbone", "TinyNet", key_path="Arch")
    message = str(info.value)
    for fragment in ("Arch", "'tiny'", "tiny-models 2.3.1", "'other'", "other-models 0.9", "Global.plugins.prefer"):
        assert fragment in message
    # an unambiguous name from the same plugin still works
    assert registry.build("backbone", "OtherNet", {"class_num": 3}) == ("other", 3)


def test_qualified_name_and_preference_pick_the_winner(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN})
    fake_dist("other-models", {"other": OTHER_NET_PLUGIN})
    registry = quiet_registry()
    assert registry.build("backbone", "other-models:TinyNet", {"class_num": 5}) == ("other", 5)
    assert registry.build("backbone", "tiny_models:TinyNet", {}).width == 4  # dist names normalise
    preferred = quiet_registry(prefer={"TinyNet": "other-models"})
    assert preferred.build("backbone", "TinyNet", {}) == ("other", 10)


def test_plugin_that_fails_to_import_warns_and_others_keep_working(fake_dist):
    fake_dist("broken-dist", {"broken": "raise ImportError('no module named fancy_cuda_kernels')\n"}, version="0.1")
    fake_dist("tiny-models", {"tiny": NET_PLUGIN})
    with pytest.warns(PluginImportWarning) as record:
        registry = load_registry()
    messages = [str(w.message) for w in record]
    assert any("broken" in m and "broken-dist 0.1" in m and "fancy_cuda_kernels" in m for m in messages)
    assert registry.resolve("backbone", "TinyNet").plugin.name == "tiny"
    assert [f.plugin.name for f in registry.failures] == ["broken"]


def test_registration_that_raises_is_reported_like_an_import_failure(fake_dist):
    fake_dist("bad-reg", {"badreg": "def corolla_losses():\n    raise RuntimeError('table broken')\n"})
    with pytest.warns(PluginImportWarning, match="badreg.*table broken"):
        registry = load_registry()
    assert "badreg" not in [p.name for p in registry.plugins]


def test_strict_mode_turns_a_failing_plugin_into_an_error(fake_dist):
    fake_dist("broken-dist", {"broken": "1/0\n"})
    with pytest.raises(PluginError, match=r'Error importing plugin "broken".*broken-dist.*ZeroDivisionError'):
        load_registry(strict=True)


def test_disabled_plugin_is_never_imported(fake_dist):
    prefix = fake_dist("tiny-models", {"tiny": NET_PLUGIN, "noisy": "raise SystemError('must not be imported')\n"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginImportWarning)
        registry = load_registry(disabled=["no:noisy"])
    assert f"{prefix}_noisy" not in sys.modules
    assert registry.disabled == ["noisy"]
    assert registry.resolve("backbone", "TinyNet")


def test_unknown_component_names_kind_close_matches_and_what_was_searched(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN})
    registry = quiet_registry()
    with pytest.raises(UnknownComponentError) as info:
        registry.resolve("backbone", "TinyNte", key_path="Arch.name")
    message = str(info.value)
    assert message.startswith("Arch.name: unknown backbone 'TinyNte'")
    assert "Close matches: TinyNet" in message
    assert f"from {len(registry.plugins)} plugins" in message
    assert "tiny-models 1.0" in message and "corolla" in message


def test_arguments_are_checked_against_the_signature_before_building(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN})
    registry = quiet_registry()
    with pytest.raises(Exception) as info:
        registry.build("backbone", "TinyNet", {"class_nun": 3}, key_path="Arch")
    message = str(info.value)
    assert "Arch.class_nun" in message and "TinyNet" in message and "'class_num'" in message
    assert "tiny-models" in message


def test_missing_required_argument_names_component_and_path(fake_dist):
    fake_dist("need-dist", {"need": """
def corolla_datasets():
    def ListData(image_root, cls_label_path, delimiter=" "):
        return (image_root, cls_label_path)
    return {"ListData": ListData}
"""})
    registry = quiet_registry()
    with pytest.raises(Exception, match=r"DataLoader.Train.dataset: dataset 'ListData'.*needs argument 'cls_label_path'"):
        registry.build("dataset", "ListData", {"image_root": "x"}, key_path="DataLoader.Train.dataset")


def test_unmarked_hooks_work_and_misspelt_hooks_are_reported(fake_dist):
    fake_dist("typo-dist", {"typo": "from corolla import hookimpl\n@hookimpl\ndef corolla_backbone():\n    return {}\n"})
    fake_dist("plain-dist", {"plain": "def corolla_transforms():\n    return {'Identity': lambda: (lambda x: x)}\n"})
    with pytest.warns(PluginImportWarning, match="unknown hook 'corolla_backbone'"):
        registry = load_registry()
    op = registry.build("transform", "Identity", {})
    assert op(41) == 41


def test_lazy_reference_and_alias(fake_dist):
    prefix = fake_dist("lazy-dist", {"lazyp": """
from corolla import Alias, hookimpl, lazy

def NewNet(depth=3):
    return ("new", depth)

@hookimpl
def corolla_backbones():
    table = lazy(__name__, "NewNet")
    table["OldNet"] = Alias("NewNet")
    table["Missing"] = __name__ + ":DoesNotExist"
    return table
"""})
    registry = quiet_registry()
    assert registry.resolve("backbone", "NewNet").target == f"{prefix}_lazyp:NewNet"
    with pytest.warns(DeprecationWarning, match="'OldNet' is deprecated; use 'NewNet'"):
        assert registry.build("backbone", "OldNet", {"depth": 5}) == ("new", 5)
    with pytest.raises(PluginError, match="lazyp.*DoesNotExist"):
        registry.build("backbone", "Missing")


def test_lazy_variants_reads_the_table_from_source_and_sees_an_edited_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    family = tmp_path / "lazy_family_module.py"
    family.write_text('import no_such_package\nVARIANTS = {"NetA": {}, "NetB": {}}\n')  # never imported
    assert lazy_variants("lazy_family_module") == {"NetA": "lazy_family_module:BUILDERS.NetA",
                                                   "NetB": "lazy_family_module:BUILDERS.NetB"}
    family.write_text('VARIANTS = {"NetA": {}, "NetC": {}, "NetD": {}}\n')
    assert list(lazy_variants("lazy_family_module", namespace="MAKERS")) == ["NetA", "NetC", "NetD"]
    family.write_text('WIDTH = "NetE"\nVARIANTS = {WIDTH: {}}\n')
    with pytest.raises(PluginError, match=r"lazy_family_module.py: every key of VARIANTS must be a string literal"):
        lazy_variants("lazy_family_module")


def test_component_can_build_sub_components_with_current_registry_under_its_key_path(fake_dist):
    fake_dist("tiny-models", {"tiny": NET_PLUGIN, "pair": """
from corolla import current_key_path, current_registry

def Pair(models):
    where = current_key_path()
    return [current_registry().build("backbone", m, {}, key_path=f"{where}.models.{i}") for i, m in enumerate(models)]

def corolla_backbones():
    return {"Pair": Pair}
"""})
    registry = quiet_registry()
    built = registry.build("backbone", "Pair", {"models": ["TinyNet", "TinyNet"]}, key_path="Arch")
    assert [m.width for m in built] == [4, 4]
    with pytest.raises(UnknownComponentError, match=r"^Arch.models.1: unknown backbone 'TinyNett'"):
        registry.build("backbone", "Pair", {"models": ["TinyNet", "TinyNett"]}, key_path="Arch")
    with pytest.raises(RuntimeError, match=r"current_key_path\(\) is only available while Registry.build runs"):
        current_key_path()


def test_a_built_in_name_given_again_resolves_to_the_built_in_with_one_notice(fake_dist):
    fake_dist("my-aug", {"aug": "def corolla_transforms():\n    return {'RandFlipImage': lambda flip_code=1: 'theirs'}\n"})
    registry = quiet_registry()
    with pytest.warns(UserWarning, match=r"transform 'RandFlipImage' is also given by plugin 'aug' \(my-aug 1.0\); "
                                          r"using corolla's own.*'my-aug:RandFlipImage'.*Global.plugins.prefer.RandFlipImage=my-aug"):
        assert registry.resolve("transform", "RandFlipImage").plugin.dist == "corolla"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per name and registry
        assert registry.resolve("transform", "RandFlipImage").plugin.dist == "corolla"
    assert registry.build("transform", "my-aug:RandFlipImage", {}) == "theirs"
    assert quiet_registry(prefer={"RandFlipImage": "my-aug"}).build("transform", "RandFlipImage", {}) == "theirs"


def test_config_requirements_on_plugin_distributions(fake_dist):
    from corolla.plugin.discovery import check_requirements

    fake_dist("corolla-example-plugin", {"ex": "def corolla_losses():\n    return {}\n"}, version="0.1.0")
    check_requirements(["corolla-example-plugin>=0.1", "corolla"], key_path="Global.plugins.require")
    with pytest.raises(PluginError, match=r"Global.plugins.require: corolla-example-plugin 0.1.0 is installed, "
                                                  r">=0.2 is required; no-such-plugin is not installed\. Install them with: "
                                                  r"pip install 'corolla-example-plugin>=0.2' 'no-such-plugin'"):
        check_requirements(["corolla-example-plugin>=0.2", "no-such-plugin"], key_path="Global.plugins.require")
    with pytest.raises(PluginError, match="is not a requirement"):
        check_requirements(["not a requirement!"], key_path="Global.plugins.require")


SIZED = """
def corolla_backbones():
    def SizedNet(*, class_num: int = 10, size: tuple[int, int] = (224, 224), crops: list[tuple[int, int]] | None = None):
        import paddle
        net = paddle.nn.Linear(3, class_num)
        net.made_with = {"size": size, "crops": crops}
        return net
    return {"SizedNet": SizedNet}
"""


def test_a_list_from_yaml_is_taken_for_a_tuple_annotation_and_passed_as_a_tuple(fake_dist):
    from corolla.config.load import load_config, shipped_configs
    from corolla.config.planner import read_plan
    from corolla.plugin.errors import ComponentArgumentError

    fake_dist("sized-dist", {"sized": SIZED})
    registry = quiet_registry()
    made = registry.build("backbone", "SizedNet", {"size": [32, 32], "crops": [[8, 8], [16, 16]]}, key_path="Arch")
    assert made.made_with == {"size": (32, 32), "crops": [(8, 8), (16, 16)]}
    config = load_config(shipped_configs() / "quickstart.yaml", ["Arch.name=SizedNet", "Arch.size=[32,32]"])
    assert read_plan(config, registry).model.part.params["size"] == (32, 32)
    for wrong, problem in (([32, 32, 32], "wrong number of elements"), ([32, "x"], "is not an instance of int")):
        with pytest.raises(ComponentArgumentError, match=rf"Arch.size: backbone 'SizedNet' .* expects a list of integers, "
                                                         rf"found {re.escape(repr(wrong))} \(list\): .*{problem}"):
            registry.build("backbone", "SizedNet", {"size": wrong}, key_path="Arch")
