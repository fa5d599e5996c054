"""The conformance kit catches each broken rule, naming the component, its distribution and the rule."""
from __future__ import annotations

import pytest

from corolla import load_registry
from corolla.plugin.discovery import PluginImportWarning
from corolla.testing import conformance_rules
from corolla.testing.conformance import (
    ConformanceError,
    check_backbone,
    check_batch_transform,
    check_callback,
    check_component,
    check_loss,
    check_metric,
    check_transform,
    components_of,
    default_registry,
)

BROKEN = '''
import numpy as np
import paddle
from corolla.api import generator


class GlobalRandomFlip:
    def __call__(self, img):
        return img[:, ::-1] if np.random.random() < 0.5 else img


class ToInt:
    def __call__(self, img):
        return img.astype(np.int32)


class Flatten:
    def __call__(self, img):
        return img.reshape(-1)


class RefusesUnlabeled:
    def __call__(self, images, labels):
        if (labels < 0).any():
            raise ValueError("no")
        return images, labels


class LabelsUnlabeled:
    def __call__(self, images, labels):
        return images, np.abs(labels)


class AllRows:
    def __call__(self, outputs, labels):
        picked = paddle.take_along_axis(outputs, paddle.clip(labels, min=0).reshape([-1, 1]), axis=1)
        return {"AllRows": -picked.mean()}


class CalledLoss:
    def __call__(self, outputs, labels):
        return {"loss": outputs.mean()}


class Forgetful:
    def __init__(self):
        self.total = 0.0

    def reset(self):
        pass

    def update(self, outputs, labels):
        self.total += 1.0
        return {}

    def result(self):
        return {"count": self.total}


class Misspelled:
    def corolla_epoch_ends(self, run, epoch, logs):
        pass


class ExtraArgument:
    def corolla_step_end(self, run, epoch, step, logs, optimizer):
        pass


class WideHead(paddle.nn.Layer):
    def __init__(self, class_num=10):
        super().__init__()
        self.fc = paddle.nn.Linear(3, class_num + 1)

    def forward(self, x):
        return self.fc(x.mean(axis=[2, 3]))


class HiddenState(paddle.nn.Layer):
    def __init__(self, class_num=10):
        super().__init__()
        self.fc = paddle.nn.Linear(3, class_num)
        self.scale = float(np.random.default_rng().random() + 1.0)  # not a parameter or buffer

    def forward(self, x):
        return self.fc(x.mean(axis=[2, 3])) * self.scale


def corolla_transforms():
    return {"GlobalRandomFlip": GlobalRandomFlip, "ToInt": ToInt, "Flatten": Flatten}


def corolla_batch_transforms():
    return {"RefusesUnlabeled": RefusesUnlabeled, "LabelsUnlabeled": LabelsUnlabeled}


def corolla_losses():
    return {"AllRows": AllRows, "CalledLoss": CalledLoss}


def corolla_metrics():
    return {"Forgetful": Forgetful}


def corolla_callbacks():
    return {"Misspelled": Misspelled, "ExtraArgument": ExtraArgument}


def corolla_backbones():
    return {"WideHead": WideHead, "HiddenState": HiddenState}
'''


@pytest.fixture
def registry(fake_dist):
    fake_dist("broken-plugin", {"broken": BROKEN}, version="0.3")
    return load_registry(strict=True)


@pytest.mark.parametrize("check, name, options, rule", [
    (check_transform, "GlobalRandomFlip", {}, r"two results under the same seed .* corolla.api.generator\(\)"),
    (check_transform, "ToInt", {"after_normalize": True}, r"turned a float32 image into int32"),
    (check_transform, "ToInt", {}, r"turned a uint8 image into int32"),
    (check_transform, "Flatten", {}, r"expected one image with 3 dimensions"),
    (check_batch_transform, "RefusesUnlabeled", {}, r"unlabeled sample \(-1\) raised ValueError"),
    (check_batch_transform, "LabelsUnlabeled", {}, r"turned an unlabeled sample \(-1\) into a labeled one"),
    (check_loss, "AllRows", {}, r"unlabeled row \(label -1\) gets a gradient"),
    (check_loss, "CalledLoss", {}, r"a term called 'loss'"),
    (check_metric, "Forgetful", {}, r"reset\(\) must forget earlier batches"),
    (check_callback, "Misspelled", {}, r"'corolla_epoch_ends' is not a lifecycle hook"),
    (check_callback, "ExtraArgument", {}, r"corolla_step_end takes optimizer, which the hook does not pass"),
    (check_backbone, "WideHead", {}, r"logits of shape \[2, 4\] for 2 images; expected \[2, 3\]"),
    (check_backbone, "HiddenState", {}, r"second instance loaded with the first one's state dict gives other logits"),
])
def test_kit_names_the_component_and_the_broken_rule(registry, check, name, options, rule):
    with pytest.raises(ConformanceError, match=rf"from plugin 'broken' \(broken-plugin 0.3\): .*{rule}"):
        check(name, registry=registry, **options)


def test_components_of_lists_a_distribution_and_says_when_it_gives_none(registry):
    assert ("loss", "broken-plugin:AllRows") in components_of("broken_plugin", registry)
    with pytest.raises(ConformanceError, match=r"'no-such-plugin' gives no components; installed: .*broken-plugin"):
        components_of("no-such-plugin", registry)


def test_a_kind_without_a_check_says_so():
    with pytest.raises(ConformanceError, match=r"no check for the optimizer kind"):
        check_component("optimizer", "Momentum")


CLASHING_LOSS = '''
class CELoss:
    def __call__(self, outputs, labels):
        return {"loss": outputs.mean()}


def corolla_losses():
    return {"CELoss": CELoss}
'''

GREY = '''
import numpy as np
from corolla.api import generator


class RandomGrayscale:
    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def __call__(self, img):
        if generator().random() >= self.prob:
            return img
        return np.repeat(img.mean(axis=2, keepdims=True).astype(img.dtype), 3, axis=2)


def corolla_transforms():
    return {"RandomGrayscale": RandomGrayscale}
'''


def test_a_name_that_corolla_also_gives_checks_the_plugins_own_component(fake_dist):
    fake_dist("clashing-plugin", {"clashing": CLASHING_LOSS})
    registry = load_registry(strict=True)
    assert components_of("clashing-plugin", registry) == [("loss", "clashing-plugin:CELoss")]
    for kind, name in components_of("clashing-plugin", registry):
        with pytest.raises(ConformanceError, match=r"from plugin 'clashing' \(clashing-plugin 1.0\): .*a term called 'loss'"):
            check_component(kind, name, registry=registry)


def test_a_name_that_two_plugins_give_checks_each_ones_own_component(fake_dist):
    fake_dist("grey-one", {"grey_one": GREY})
    fake_dist("grey-two", {"grey_two": GREY})
    registry = load_registry(strict=True)
    for dist in ("grey-one", "grey-two"):
        for kind, name in components_of(dist, registry):
            check_component(kind, name, registry=registry)


def test_a_plugin_that_fails_to_import_fails_its_own_distributions_conformance_only(fake_dist, monkeypatch):
    fake_dist("grey-one", {"grey_one": GREY})
    fake_dist("broken-import", {"broken_import": "raise ImportError('no such thing')"})
    monkeypatch.setattr(conformance_rules, "_registry", None)  # the installed plugins' registry, built anew
    with pytest.warns(PluginImportWarning, match=r'Error importing plugin "broken_import".*no such thing'):
        default_registry()
    assert components_of("grey-one") == [("transform", "grey-one:RandomGrayscale")]
    check_component("transform", "grey-one:RandomGrayscale")
    failed = r"plugin 'broken_import' \(broken-import 1.0\) failed to import or register: ImportError: no such thing"
    with pytest.raises(ConformanceError, match=failed):
        components_of("broken-import")
    with pytest.raises(ConformanceError, match=failed):
        check_component("transform", "broken-import:RandomGrayscale")
