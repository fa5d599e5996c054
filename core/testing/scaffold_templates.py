"""The files ``corolla new-plugin`` writes (:mod:`corolla.testing.scaffold`), as ``string.Template``
text: ``$dist`` the distribution, ``$module`` the import name, ``$prefix`` the components' prefix."""

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "corolla components: $names"
requires-python = ">=3.10"
dependencies = ["corolla"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# How corolla finds the plugin: the entry-point group "corolla.plugins".
[project.entry-points."corolla.plugins"]
$module = "$module"

[tool.setuptools]
packages = ["$module"]
'''

README = '''# $dist

corolla components: $names.

```bash
pip install '.[test]'                # or pip install -e '.[test]' while you work on it
corolla plugins                      # lists them, with this distribution and version
pytest tests                         # corolla's conformance kit on every component (pytest: the test extra)
corolla quickstart                   # once: makes ./corolla_quickstart/data
corolla train -c example.yaml        # trains with them on that data
```

Each component lives in its own module of `$module/`; `$module/__init__.py` registers them
lazily (`corolla.api.lazy`), so `corolla plugins` lists them without importing Paddle. See
corolla's `docs/plugins.md` for what each kind receives and must return.
'''

INIT = '''"""$dist: corolla plugin hooks. Each gives lazy "module:attribute" references
(corolla.api.lazy), so that listing the components imports nothing heavy."""
from corolla.api import hookimpl, lazy
$hooks'''

HOOK = '''

@hookimpl
def $hook() -> dict:
    return lazy(f"{__name__}.$file", "$name")
'''

TEST = '''"""Every component of $dist keeps its kind's contract (corolla's conformance kit)."""
import pytest

from corolla.testing.conformance import check_component, components_of
from corolla.testing.datasets import make_list_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=3, image_size=40)


@pytest.mark.parametrize("kind, name", components_of("$dist"))
def test_conformance(kind, name, data):
    if kind == "dataset":
        check_component(kind, name, {"image_root": str(data.root), "cls_label_path": str(data.train_list)}, class_num=3)
    else:
        check_component(kind, name)
'''

#: kind -> (module file, hook, component name suffix, source)
COMPONENTS: dict[str, tuple[str, str, str, str]] = {
    "backbone": ("backbone", "corolla_backbones", "Net", '''"""$name: a small convolutional classifier."""
from typing import Sequence, Union

import paddle
from paddle import nn


class ${name}Model(nn.Layer):
    def __init__(self, class_num: int, width: int, return_stages: Sequence[int]) -> None:
        super().__init__()
        sizes = [3, width, 2 * width]
        self.stages = nn.LayerList([
            nn.Sequential(nn.Conv2D(sizes[i], sizes[i + 1], 3, stride=2, padding=1), nn.BatchNorm2D(sizes[i + 1]), nn.ReLU())
            for i in range(2)
        ])
        self.fc = nn.Linear(sizes[-1], class_num)
        self.return_stages = list(return_stages)

    def forward(self, x: paddle.Tensor) -> Union[paddle.Tensor, dict]:
        features = {}
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.return_stages:
                features[f"stage{index}"] = x
        logits = self.fc(x.mean(axis=[2, 3]))
        return {"logits": logits, **features} if self.return_stages else logits


def $name(*, class_num: int = 1000, width: int = 16, return_stages: Union[bool, Sequence[int], None] = None) -> ${name}Model:
    """$name: two convolution stages of ``width`` and ``2 width`` channels and a linear classifier.
    ``return_stages``: True or stage indices (0, 1); forward then returns {"logits", "stage<i>"}."""
    stages = [0, 1] if return_stages is True else list(return_stages or [])
    if any(i not in (0, 1) for i in stages):
        raise ValueError(f"return_stages: expected True or stage indices 0, 1; found {return_stages!r}")
    return ${name}Model(class_num, width, stages)
'''),
    "transform": ("transforms", "corolla_transforms", "Transform", '''"""$name: a per-sample augmentation."""
import numpy as np

from corolla.api import generator


class $name:
    """With probability ``prob``, invert a uint8 HWC image (before NormalizeImage)."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob: expected a number in [0, 1], found {prob}")
        self.prob = prob

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return 255 - img if generator().random() < self.prob else img  # corolla's seeded generator
'''),
    "batch_transform": ("batch_transforms", "corolla_batch_transforms", "BatchTransform", '''"""$name: a batch augmentation."""
import numpy as np

from corolla.api import generator


class $name:
    """Scale each float32 NCHW image's values by ``1 + strength * N(0, 1)``; labels pass unchanged."""

    def __init__(self, strength: float = 0.1) -> None:
        if strength < 0:
            raise ValueError(f"strength: expected a number >= 0, found {strength}")
        self.strength = strength

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple:
        gains = 1.0 + self.strength * generator().standard_normal(len(images)).astype(np.float32)
        return images * gains[:, None, None, None], labels
'''),
    "loss": ("losses", "corolla_losses", "Loss", '''"""$name: a loss."""
from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.api import pick_output


class $name:
    """Cross entropy over labeled rows (label -1, unlabeled, is skipped)."""

    def __call__(self, outputs: Any, labels: paddle.Tensor) -> dict:
        logits = pick_output(outputs)
        labels = labels.reshape([-1])
        labeled = (labels >= 0).astype("float32")
        per_row = F.cross_entropy(logits, paddle.clip(labels, min=0), reduction="none").reshape([-1])
        return {"$name": (per_row * labeled).sum() / paddle.clip(labeled.sum(), min=1.0)}
'''),
    "dataset": ("datasets", "corolla_datasets", "Dataset", '''"""$name: a dataset."""
import os
from typing import Any

import numpy as np

from corolla.api import DataError, Pipeline, read_image_bytes


class $name:
    """``path label`` lines of ``cls_label_path`` (paths relative to ``image_root``; no label: -1)."""

    def __init__(self, image_root: str, cls_label_path: str, transform_ops: Pipeline) -> None:
        try:
            with open(cls_label_path, encoding="utf-8") as stream:
                rows = [line.split() for line in stream if line.strip()]
        except OSError as exc:
            raise DataError(f"$name: cannot read cls_label_path {cls_label_path}: {exc}") from None
        self.images = [os.path.join(image_root, row[0]) for row in rows]
        self.labels = [int(row[1]) if len(row) > 1 else -1 for row in rows]
        self.transform_ops = transform_ops

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple:
        return self.transform_ops.sample(read_image_bytes(self.images[index])), np.int64(self.labels[index])
'''),
    "metric": ("metrics", "corolla_metrics", "Metric", '''"""$name: a metric."""
from typing import Any

import numpy as np

from corolla.api import pick_output


class $name:
    """Accuracy over labeled rows since ``reset``, as ``accuracy``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct = self.count = 0

    def update(self, outputs: Any, labels: Any) -> dict:
        labels = labels.numpy().reshape(-1)
        if labels.dtype.kind == "f":  # soft labels (Mixup): no ground-truth class
            return {}
        guesses = pick_output(outputs).numpy().argmax(axis=-1)
        labeled = labels >= 0
        self.correct += int((guesses[labeled] == labels[labeled]).sum())
        self.count += int(labeled.sum())
        return {}

    def result(self) -> dict:
        return {"accuracy": self.correct / self.count} if self.count else {}
'''),
    "callback": ("callbacks", "corolla_callbacks", "Callback", '''"""$name: a callback."""
from pathlib import Path
from typing import Any, Mapping

from corolla.api import hookimpl


class $name:
    """Append each epoch's logs to ``<output_dir>/<filename>`` (main process only)."""

    def __init__(self, filename: str = "epochs.log") -> None:
        self.filename = filename

    @hookimpl
    def corolla_epoch_end(self, run: Any, epoch: int, logs: Mapping[str, float]) -> None:
        if run.is_main:
            with Path(run.output_dir, self.filename).open("a") as stream:
                stream.write(f"epoch {epoch}: {dict(logs)}\\n")
'''),
}
