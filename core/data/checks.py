"""Checking a dataset before training: its files (no decoding), labels and classes."""
from __future__ import annotations

from typing import Any

from corolla.plugin.errors import DataError


def check_same_classes(reference: Any, other: Any, mode: str) -> None:
    """A split whose dataset names its classes (``class_names``) must use the training
    set's, or its labels would mean other classes (a validation folder lacking a class)."""
    expected, found = getattr(reference, "class_names", None), getattr(other, "class_names", None)
    if expected is None or found is None or list(expected) == list(found):
        return
    hint = (f" Set DataLoader.{mode}.dataset.class_id_map_file to the training set's map "
            f"({reference.class_id_map_file})" if hasattr(reference, "class_id_map_file") else "")
    raise DataError(f"DataLoader.{mode}: its classes ({', '.join(found)}) are not the training set's "
                    f"({', '.join(expected)}), so its labels would mean other classes.{hint}")


def describe_check(dataset: Any, class_num: int | None, *, skip_bad_images: bool) -> str:
    """Check the dataset's files (no decoding) and labels; return the summary line.

    Missing images are an error naming their list lines, unless they are to be skipped.
    """
    if not callable(getattr(dataset, "check", None)):
        return f"{type(dataset).__name__}: {len(dataset)} samples (not checked)"
    summary = dataset.check(class_num)
    if summary.missing and not skip_bad_images:
        shown = "; ".join(summary.missing[:5]) + ("; ..." if len(summary.missing) > 5 else "")
        raise DataError(f"{len(summary.missing)} of {summary.images} images are missing: {shown}. "
                        "Fix the list, or set loader.skip_bad_images: true to skip them.")
    line = summary.describe()
    if summary.missing:
        line += " (missing images will be skipped: loader.skip_bad_images)"
    return line


# --- batches --------------------------------------------------------------------------
