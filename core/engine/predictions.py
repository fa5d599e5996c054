"""From class probabilities to what ``infer`` and ``predict`` print: ids, scores, label names.

``Infer.PostProcess`` names one of PaddleClas's classification post-processes:

- ``Topk`` (``topk``, ``class_id_map_file``): the ``topk`` most probable classes;
- ``ThreshOutput`` (``threshold``, ``label_0``, ``label_1``): binary decision on
  the class-1 probability (PULC).

Both print the seed's line::

    name:\tclass id(s): [1, 0], score(s): [1.00, 0.00], label_name(s): ['someone', 'nobody']
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np

from corolla.plugin.errors import ConfigError, DataError
from corolla.config.specs import named_spec


@attrs.frozen
class Prediction:
    """The result for one image."""

    file: str
    class_ids: list[int]
    scores: list[float]
    label_names: list[str]

    def line(self) -> str:
        """The seed's one-line form (scores to two decimals)."""
        text = f"{Path(self.file).name}:\tclass id(s): {self.class_ids}, score(s): [{', '.join(f'{s:.2f}' for s in self.scores)}]"
        if self.label_names:
            text += f", label_name(s): {self.label_names}"
        return text

    def json(self) -> str:
        """A JSON object with full-precision scores."""
        return json.dumps(attrs.asdict(self))


def read_label_map(path: str | Path, *, key_path: str, delimiter: str | None = None) -> dict[int, str]:
    """A ``class_id_map_file``: one ``id name`` per line (split at the first
    ``delimiter``, default a space; the name may contain spaces)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key_path}: class id map file not found: {path}")
    labels: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        head, _, name = line.strip().partition(delimiter or " ")
        if not head.isdigit():
            raise DataError(f"{path}:{number}: expected 'CLASS_ID NAME', found {line!r}")
        labels[int(head)] = name.strip()
    return labels


class Topk:
    """The ``topk`` most probable classes with their label names."""

    def __init__(
        self,
        topk: int = 5,
        class_id_map_file: str | None = None,
        delimiter: str | None = None,
        *,
        key_path: str = "Infer.PostProcess",
    ) -> None:
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ConfigError(f"{key_path}.topk: expected an integer >= 1, found {topk!r}")
        self.topk = topk
        self.class_id_map_file = class_id_map_file
        self.labels = (
            read_label_map(class_id_map_file, key_path=f"{key_path}.class_id_map_file", delimiter=delimiter)
            if class_id_map_file
            else {}
        )

    def __call__(self, probabilities: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        results = []
        for file, row in zip(files, probabilities):
            ids = [int(i) for i in np.argsort(-row, kind="stable")[: self.topk]]
            names = [self.labels.get(i, str(i)) for i in ids] if self.labels else []
            results.append(Prediction(str(file), ids, [float(row[i]) for i in ids], names))
        return results


class ThreshOutput:
    """Class 1 when its probability reaches ``threshold``, else class 0 (with ``1 - p``)."""

    def __init__(self, threshold: float = 0.5, label_0: str = "0", label_1: str = "1", *, key_path: str = "Infer.PostProcess") -> None:
        self.threshold = float(threshold)
        self.label_0, self.label_1 = str(label_0), str(label_1)

    def __call__(self, probabilities: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        results = []
        for file, row in zip(files, probabilities):
            score = float(row[1])
            if score < self.threshold:
                results.append(Prediction(str(file), [0], [1.0 - score], [self.label_0]))
            else:
                results.append(Prediction(str(file), [1], [score], [self.label_1]))
        return results


_POSTPROCESSES: dict[str, Callable[..., Any]] = {"Topk": Topk, "ThreshOutput": ThreshOutput}


def build_postprocess(node: Mapping[str, Any] | None, *, base_dir: Path | None = None, key_path: str = "Infer.PostProcess") -> Any:
    """The post-process a ``PostProcess`` section names (``Topk`` with top-5 when absent).

    ``base_dir`` resolves a relative ``class_id_map_file`` (an exported model's folder).
    """
    if node is None:
        return Topk(5, key_path=key_path)
    spec = named_spec(node, key_path)
    if spec.name not in _POSTPROCESSES:
        raise ConfigError(f"{key_path}.name: expected one of {', '.join(_POSTPROCESSES)}, found {spec.name!r}")
    params = dict(spec.params)
    if base_dir is not None and params.get("class_id_map_file"):
        params["class_id_map_file"] = str(base_dir / params["class_id_map_file"])
    try:
        return _POSTPROCESSES[spec.name](**params, key_path=key_path)
    except TypeError as exc:
        raise ConfigError(f"{key_path}: {spec.name} {exc}") from None


def emit(predictions: Sequence[Prediction], *, json_path: str | Path | None = None, echo: Callable[[str], Any] = print) -> None:
    """Print each prediction's line; also write JSON lines to ``json_path`` when given."""
    for prediction in predictions:
        echo(prediction.line())
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(p.json() + "\n" for p in predictions), encoding="utf-8")
