"""PaddleClas's attribute post-processes (PULC person, vehicle and table attributes).

Each reads the per-class sigmoid probabilities of a multi-label model (``Global.use_multilabel``)
and gives, per image, PaddleClas's ``{'attributes': ..., 'output': [0, 1, ...]}`` (printed as
PaddleClas's deploy tool prints it), with the positive classes as the prediction's classes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from corolla.api import DataError, Prediction

#: PA100k's 26 attributes, in the order of PaddleClas's person attribute labels
PERSON_ATTRIBUTES = (
    "Hat", "Glasses", "ShortSleeve", "LongSleeve", "UpperStride", "UpperLogo", "UpperPlaid", "UpperSplice",
    "LowerStripe", "LowerPattern", "LongCoat", "Trousers", "Shorts", "Skirt&Dress", "boots",
    "HandBag", "ShoulderBag", "Backpack", "HoldObjectsInFront", "AgeOver60", "Age18-60", "AgeLess18",
    "Female", "Front", "Side", "Back",
)
VEHICLE_COLORS = ("yellow", "orange", "green", "gray", "red", "blue", "white", "golden", "brown", "black")
VEHICLE_TYPES = ("sedan", "suv", "van", "hatchback", "mpv", "pickup", "bus", "truck", "estate")
#: per table attribute: (name of its threshold argument, text when above it, text otherwise)
TABLE_ATTRIBUTES = (
    ("source_threshold", "Scanned", "Photo"),
    ("number_threshold", "Little", "Numerous"),
    ("color_threshold", "Black-and-White", "Multicolor"),
    ("clarity_threshold", "Clear", "Blurry"),
    ("obstruction_threshold", "Without-Obstacles", "With-Obstacles"),
    ("angle_threshold", "Horizontal", "Tilted"),
)


def _threshold(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], found {value!r}")
    return float(value)


def _rows(scores: np.ndarray, classes: int, who: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != classes:
        raise DataError(f"{who} reads {classes} attribute probabilities per image, found scores of shape "
                        f"{list(scores.shape)}; is Arch.class_num {classes}?")
    return scores


def _prediction(file: str, row: np.ndarray, thresholds: np.ndarray, attributes: Any, names: Sequence[str]) -> Prediction:
    """The prediction of one image: classes above their thresholds, PaddleClas's details."""
    output = (row > thresholds).astype(int).tolist()
    positive = [i for i, flag in enumerate(output) if flag]
    return Prediction(str(file), positive, [float(row[i]) for i in positive], [names[i] for i in positive],
                      details={"attributes": attributes, "output": output})


class PersonAttribute:
    """PA100k's 26 pedestrian attributes read as PaddleClas reads them: gender, age and
    direction by arg-max within their groups, glasses above ``glasses_threshold``, holding
    objects above ``hold_threshold``, the rest above ``threshold``; for example
    ``['Male', 'Age18-60', 'Back', 'Glasses: False', 'Hat: False', 'HoldObjectsInFront:
    False', 'No bag', 'Upper: ShortSleeve', 'Lower:  Trousers', 'No boots']``.

    Classes 19-21 are named AgeLess18, Age18-60, AgeOver60 as PaddleClas's post-process
    names them, so that the lines match PaddleClas's (PaddleDetection's PA100k table lists them in the
    opposite order).
    """

    AGES = ("AgeLess18", "Age18-60", "AgeOver60")
    DIRECTIONS = ("Front", "Side", "Back")
    BAGS = ("HandBag", "ShoulderBag", "Backpack")
    UPPER = ("UpperStride", "UpperLogo", "UpperPlaid", "UpperSplice")
    LOWER = ("LowerStripe", "LowerPattern", "LongCoat", "Trousers", "Shorts", "Skirt&Dress")

    def __init__(self, threshold: float = 0.5, glasses_threshold: float = 0.3, hold_threshold: float = 0.6) -> None:
        self.threshold = _threshold(threshold, "threshold")
        self.thresholds = np.full(len(PERSON_ATTRIBUTES), self.threshold)
        self.thresholds[1] = self.glasses_threshold = _threshold(glasses_threshold, "glasses_threshold")
        self.thresholds[18] = self.hold_threshold = _threshold(hold_threshold, "hold_threshold")

    def attributes(self, r: np.ndarray) -> list[str]:
        """PaddleClas's ten phrases for one image's probabilities."""
        t = self.threshold
        bag = int(np.argmax(r[15:18]))
        upper = " ".join(["Upper:", "LongSleeve" if r[3] > r[2] else "ShortSleeve",
                          *(name for name, p in zip(self.UPPER, r[4:8]) if p > t)])
        lower = [name for name, p in zip(self.LOWER, r[8:14]) if p > t] or [self.LOWER[int(np.argmax(r[8:14]))]]
        return [
            "Female" if r[22] > t else "Male",
            self.AGES[int(np.argmax(r[19:22]))],
            self.DIRECTIONS[int(np.argmax(r[23:26]))],
            f"Glasses: {r[1] > self.glasses_threshold}",
            f"Hat: {r[0] > t}",
            f"HoldObjectsInFront: {r[18] > self.hold_threshold}",
            self.BAGS[bag] if r[15 + bag] > t else "No bag",
            upper,
            "Lower: " + "".join(f" {name}" for name in lower),
            "Boots" if r[14] > t else "No boots",
        ]

    def __call__(self, scores: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        rows = _rows(scores, len(PERSON_ATTRIBUTES), "PersonAttribute")
        return [_prediction(f, r, self.thresholds, self.attributes(r), PERSON_ATTRIBUTES) for f, r in zip(files, rows)]


class VehicleAttribute:
    """The 10 colours and 9 types of PULC's vehicle attributes: the most probable colour
    (type) when its probability reaches ``color_threshold`` (``type_threshold``), as
    ``'Color: (red, prob: 0.98), Type: (suv, prob: 0.91)'`` (``Color unknown`` /
    ``Type unknown`` below the threshold)."""

    def __init__(self, color_threshold: float = 0.5, type_threshold: float = 0.5) -> None:
        self.color_threshold = _threshold(color_threshold, "color_threshold")
        self.type_threshold = _threshold(type_threshold, "type_threshold")
        self.thresholds = np.array([self.color_threshold] * len(VEHICLE_COLORS) + [self.type_threshold] * len(VEHICLE_TYPES))

    def attributes(self, r: np.ndarray) -> str:
        """PaddleClas's sentence for one image's probabilities."""
        colors, types = r[:len(VEHICLE_COLORS)], r[len(VEHICLE_COLORS):]
        c, t = int(np.argmax(colors)), int(np.argmax(types))
        color = f"Color: ({VEHICLE_COLORS[c]}, prob: {colors[c]})" if colors[c] >= self.color_threshold else "Color unknown"
        kind = f"Type: ({VEHICLE_TYPES[t]}, prob: {types[t]})" if types[t] >= self.type_threshold else "Type unknown"
        return f"{color}, {kind}"

    def __call__(self, scores: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        rows = _rows(scores, len(self.thresholds), "VehicleAttribute")
        names = VEHICLE_COLORS + VEHICLE_TYPES
        return [_prediction(f, r, self.thresholds, self.attributes(r), names) for f, r in zip(files, rows)]


class TableAttribute:
    """PULC's 6 table-image attributes, each one of two words by its own threshold:
    Scanned/Photo, Little/Numerous, Black-and-White/Multicolor, Clear/Blurry,
    Without-Obstacles/With-Obstacles, Horizontal/Tilted (PaddleClas compares the last two
    with ``number_threshold``; corolla with their own)."""

    def __init__(self, source_threshold: float = 0.5, number_threshold: float = 0.5, color_threshold: float = 0.5,
                 clarity_threshold: float = 0.5, obstruction_threshold: float = 0.5, angle_threshold: float = 0.5) -> None:
        given = (source_threshold, number_threshold, color_threshold, clarity_threshold, obstruction_threshold, angle_threshold)
        self.thresholds = np.array([_threshold(value, name) for value, (name, _, _) in zip(given, TABLE_ATTRIBUTES)])

    def __call__(self, scores: np.ndarray, files: Sequence[str]) -> list[Prediction]:
        rows = _rows(scores, len(TABLE_ATTRIBUTES), "TableAttribute")
        names = [above for _, above, _ in TABLE_ATTRIBUTES]
        return [
            _prediction(f, r, self.thresholds,
                        [above if p > t else below for p, t, (_, above, below) in zip(r, self.thresholds, TABLE_ATTRIBUTES)],
                        names)
            for f, r in zip(files, rows)
        ]
