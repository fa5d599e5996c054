"""What ``infer`` and ``predict`` print for an image: class ids, scores, label names.

A post-process (``Infer.PostProcess``, a plugin kind) turns the model's scores into a
:class:`Prediction` per image, printed as the seed's line::

    name:\tclass id(s): [1, 0], score(s): [1.00, 0.00], label_name(s): ['someone', 'nobody']
"""
from __future__ import annotations

import json
from pathlib import Path

import attrs

from corolla.plugin.errors import DataError


@attrs.frozen
class Prediction:
    """The result for one image."""

    file: str
    class_ids: list[int]
    scores: list[float]
    label_names: list[str]
    #: what an attribute post-process says beyond the classes, printed instead of them as
    #: PaddleClas prints it: ``{'attributes': [...], 'output': [0, 1, ...]}``
    details: dict | None = None

    def line(self, root: str | Path | None = None) -> str:
        """The seed's one-line form (scores to two decimals), the file named relative to
        ``root`` (the folder that was classified), else by its base name."""
        name = Path(self.file).relative_to(root).as_posix() if root is not None else Path(self.file).name
        if self.details is not None:
            return f"{name}:\t {self.details}"
        text = f"{name}:\tclass id(s): {self.class_ids}, score(s): [{', '.join(f'{s:.2f}' for s in self.scores)}]"
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
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        head, _, name = line.strip().partition(delimiter or " ")
        if not head.isdigit():
            raise DataError(f"{path}:{number}: expected 'CLASS_ID NAME', found {line!r}")
        labels[int(head)] = name.strip()
    return labels
