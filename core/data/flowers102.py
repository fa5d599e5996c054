"""flowers102 list files from the Oxford download (``jpg/``, ``imagelabels.mat``, ``setid.mat``).

As PaddleClas's ``generate_flowers102_list.py`` and its quick start: train =
``trnid``, val = ``valid``, extra = ``tstid`` (kept in ``setid.mat`` order),
labels 0-based, ``train_extra_list.txt`` = train lines then extra lines.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from corolla.plugin.errors import DataError

#: list file -> the setid.mat key it comes from
SPLITS = {"train_list.txt": "trnid", "val_list.txt": "valid", "extra_list.txt": "tstid"}


def write_flowers102_lists(root: str | Path, images: str = "jpg") -> dict[str, int]:
    """Write the four list files into ``root``; return each file's line count.

    Paths in the lists are ``<images>/image_NNNNN.jpg`` relative to ``root``.
    Every listed image must exist.
    """
    root = Path(root)
    labels = _read_mat(root / "imagelabels.mat", "labels")
    splits = {name: _read_mat(root / "setid.mat", key) for name, key in SPLITS.items()}
    lines: dict[str, list[str]] = {}
    for name, ids in splits.items():
        bad = ids[(ids < 1) | (ids > len(labels))]
        if bad.size:
            raise DataError(f"{root / 'setid.mat'}: {SPLITS[name]} has image id {int(bad[0])}, "
                            f"outside 1..{len(labels)} (the images in imagelabels.mat)")
        lines[name] = [f"{images}/image_{int(i):05d}.jpg {int(labels[i - 1]) - 1}" for i in ids]
    missing = [line.split()[0] for name in SPLITS for line in lines[name] if not (root / line.split()[0]).is_file()]
    if missing:
        raise DataError(f"{len(missing)} listed images are missing under {root}, e.g. {', '.join(missing[:3])}")
    lines["train_extra_list.txt"] = lines["train_list.txt"] + lines["extra_list.txt"]
    for name, content in lines.items():
        (root / name).write_text("".join(f"{line}\n" for line in content), encoding="utf-8")
    return {name: len(content) for name, content in lines.items()}


def _read_mat(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat  # scipy is needed only here

    if not path.is_file():
        raise DataError(f"{path}: not found (download it from the flowers102 page)")
    try:
        data = loadmat(path)
    except Exception as exc:  # scipy raises several types for files that are not .mat
        raise DataError(f"{path}: not a readable .mat file: {exc}") from None
    if key not in data:
        keys = ", ".join(k for k in data if not k.startswith("__")) or "none"
        raise DataError(f"{path}: no variable {key!r} (it has: {keys})")
    values = np.asarray(data[key]).ravel()
    if values.size == 0 or not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{path}: {key!r} should be a vector of numbers, found {values.dtype} of size {values.size}")
    return values.astype(np.int64)
