"""flowers102 list files from the Oxford download (``jpg/``, ``imagelabels.mat``, ``setid.mat``).

As PaddleClas's ``generate_flowers102_list.py`` and its quick start: train =
``trnid``, val = ``valid``, extra = ``tstid`` (kept in ``setid.mat`` order),
labels 0-based, ``train_extra_list.txt`` = train lines then extra lines; and
``flowers102_label_list.txt`` (``0 pink primrose``), the ``class_id_map_file`` of the
quick-start configs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from corolla.data.atomic import write_new_files
from corolla.plugin.errors import DataError

#: list file -> the setid.mat key it comes from
SPLITS = {"train_list.txt": "trnid", "val_list.txt": "valid", "extra_list.txt": "tstid"}
LABEL_LIST = "flowers102_label_list.txt"
#: each class's name, by 0-based label. The Oxford download has numbers only; these are the names
#: that torchvision's ``Flowers102.classes`` and PaddleClas's quick start give (its infer output
#: calls class 76 "passion flower"), the "?" of "pink-yellow dahlia?" included.
CLASS_NAMES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle",
    "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe-flower", "purple coneflower", "peruvian lily", "balloon flower", "giant white arum lily",
    "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william",
    "carnation", "garden phlox", "love in the mist", "mexican aster", "alpine sea holly",
    "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip", "lenten rose",
    "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium",
    "bishop of llandaff", "gaura", "geranium", "orange dahlia", "pink-yellow dahlia?",
    "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush", "californian poppy",
    "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy",
    "gazania", "azalea", "water lily", "rose", "thorn apple",
    "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose",
    "tree mallow", "magnolia", "cyclamen", "watercress", "canna lily",
    "hippeastrum", "bee balm", "ball moss", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
)


def write_flowers102_lists(root: str | Path, images: str = "jpg") -> dict[str, int]:
    """Write the four list files and the class map into ``root``; return each file's line count.

    Paths in the lists are ``<images>/image_NNNNN.jpg`` relative to ``root``.
    Every listed image must exist. Files already there with other contents are kept
    (a :class:`DataError` names them).
    """
    root = Path(root)
    labels = _read_mat(root / "imagelabels.mat", "labels")
    bad_labels = labels[(labels < 1) | (labels > len(CLASS_NAMES))]
    if bad_labels.size:
        raise DataError(f"{root / 'imagelabels.mat'}: label {int(bad_labels[0])} is outside 1..{len(CLASS_NAMES)} "
                        "(the flowers102 classes)")
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
    lines[LABEL_LIST] = [f"{label} {name}" for label, name in enumerate(CLASS_NAMES)]
    write_new_files({root / name: "".join(f"{line}\n" for line in content) for name, content in lines.items()},
                    writer="data flowers102", instead="Move or delete them to write new ones")
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
