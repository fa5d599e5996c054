"""PaddleClas's classification post-processes: ``Topk`` and ``ThreshOutput`` (PULC)."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from corolla.api import Prediction, read_label_map


class _ClassNames:
    """The label names of ``class_id_map_file`` (none without one); a class the file does not
    name is shown by its number, with one warning."""

    def __init__(self, class_id_map_file: str | None, delimiter: str | None) -> None:
        self.file = class_id_map_file
        self.labels = read_label_map(class_id_map_file, key_path="class_id_map_file", delimiter=delimiter) if class_id_map_file else {}
        self._warned = False

    def __call__(self, ids: Sequence[int]) -> list[str]:
        if not self.labels:
            return []
        missing = [i for i in ids if i not in self.labels]
        if missing and not self._warned:
            self._warned = True
            warnings.warn(f"class_id_map_file: {self.file} names {len(self.labels)} classes, but not class {missing[0]}; "
                          "classes it does not name are shown by their number", stacklevel=3)
        return [self.labels.get(i, str(i)) for i in ids]


class Topk:
    """The ``topk`` most probable classes with their label names."""

    def __init__(
        self,
        topk: int = 5,
        class_id_map_file: str | None = None,
        delimiter: str | None = None,
    ) -> None:
        if topk < 1:
            raise ValueError(f"topk must be at least 1, found {topk}")
        self.topk = topk
        self.class_id_map_file = class_id_map_file
        self.names = _ClassNames(class_id_map_file, delimiter)

    def __call__(self, probabilities: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        results = []
        for file, row in zip(files, probabilities):
            ids = [int(i) for i in np.argsort(-row, kind="stable")[: self.topk]]
            names = self.names(ids)
            results.append(Prediction(str(file), ids, [float(row[i]) for i in ids], names))
        return results


class ThreshOutput:
    """Class 1 when its probability reaches ``threshold``, else class 0 (with ``1 - p``)."""

    def __init__(self, threshold: float = 0.5, label_0: str = "0", label_1: str = "1") -> None:
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


class MultiLabelThreshOutput:
    """Every class whose (sigmoid) probability reaches ``threshold``, with its score rounded
    to five decimals as PaddleClas does, and its label name from ``class_id_map_file``."""

    def __init__(self, threshold: float = 0.5, class_id_map_file: str | None = None, delimiter: str | None = None) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"threshold: expected a probability in [0, 1], found {threshold!r}")
        self.threshold = float(threshold)
        self.class_id_map_file = class_id_map_file
        self.names = _ClassNames(class_id_map_file, delimiter)

    def __call__(self, probabilities: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        results = []
        for file, row in zip(files, probabilities):
            ids = [int(i) for i in np.flatnonzero(row >= self.threshold)]
            names = self.names(ids)
            results.append(Prediction(str(file), ids, [round(float(row[i]), 5) for i in ids], names))
        return results

