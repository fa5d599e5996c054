"""Reading PaddleClas list files: one ``path[<delimiter>label]`` per line, errors at ``file:line``."""
from __future__ import annotations

import os
import re
from typing import Callable, TypeVar

import attrs

from corolla.api import DataError

T = TypeVar("T")


@attrs.frozen
class ListLine:
    """One sample of a list file: the joined path, the raw label field (None if absent) and its origin."""

    path: str
    label: str | None
    origin: str  # "list.txt:12"


def read_list(list_path: str, image_root: str, delimiter: str | None, *, what: str) -> list[ListLine]:
    """Parse a list file. Blank lines are skipped; a line has a path and at most one label field.

    ``delimiter`` None (PaddleClas's default, a space) splits at runs of
    whitespace, so a path with spaces needs a tab-delimited file
    (``delimiter: "\\t"``). ``what`` names the config section for messages.
    """
    try:
        with open(list_path, encoding="utf-8-sig") as handle:  # Notepad-style BOMs would stick to the first path
            text = handle.read()
    except FileNotFoundError:
        raise DataError(f"{what}: list file not found: {list_path}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what}: list file {list_path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise DataError(f"{what}: cannot read list file {list_path}: {exc.strerror or exc}") from None
    _refuse_another_delimiter(text, delimiter, list_path, what)
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        origin = f"{list_path}:{number}"
        fields = line.split() if delimiter in (None, " ") else line.split(delimiter)
        if len(fields) > 2:
            hint = " (a path with spaces needs delimiter: \"\\t\" and a tab-separated file)" if delimiter in (None, " ") else ""
            raise DataError(f"{origin}: expected 'path{_shown(delimiter)}label' or just 'path', "
                            f"found {len(fields)} fields in {raw!r}{hint}")
        lines.append(ListLine(os.path.join(image_root, fields[0].strip()),
                              fields[1].strip() if len(fields) == 2 else None, origin))
    if not lines:
        raise DataError(f"{what}: list file {list_path} has no samples")
    return lines


def parse_labels(lines: list[ListLine], parse: Callable[[str], T], expected: str) -> list[T]:
    """Each line's label through ``parse``; a ValueError is a DataError naming the line."""
    labels = []
    for line in lines:
        try:
            labels.append(parse(line.label))
        except ValueError:
            raise DataError(f"{line.origin}: expected {expected}, found {line.label!r}") from None
    return labels


def class_label(field: str | None) -> int:
    """An integer class label; a missing label or -1 means unlabeled (-1)."""
    if field is None:
        return -1
    value = int(field)
    if value < -1:
        raise ValueError(field)
    return value


def multi_hot(field: str | None) -> tuple[int, ...]:
    """``0,1,0`` -> (0, 1, 0); a flag of -1 means unknown."""
    if field is None:
        raise ValueError("missing")
    values = tuple(int(v) for v in field.split(","))
    if any(v not in (-1, 0, 1) for v in values):
        raise ValueError(field)
    return values


def _refuse_another_delimiter(text: str, delimiter: str | None, list_path: str, what: str) -> None:
    """A file with no ``delimiter`` anywhere whose every line reads as ``path label`` was
    written with spaces: read with ``delimiter``, each label would stick to its path."""
    if delimiter == "\\t" and "\t" in text:
        raise DataError(f"{what}: delimiter is the two characters '\\t' (YAML keeps the backslash in single quotes), and "
                        f"{list_path} separates with tabs: write delimiter: \"\\t\" in double quotes")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if delimiter in (None, " ") or delimiter in text or not rows:
        return
    if all(len(row) == 2 and re.fullmatch(r"-?\d+(,-?\d+)*", row[1]) for row in rows):
        raise DataError(f"{what}: delimiter is {_shown(delimiter)!r}, but no line of {list_path} has one; its lines read "
                        f"as space-separated 'path label' ({' '.join(rows[0])!r}): set delimiter: ' ' (or remove the "
                        "key), or separate path and label with the delimiter")


def _shown(delimiter: str | None) -> str:
    return {None: " ", " ": " ", "\t": "<TAB>"}.get(delimiter, delimiter)

