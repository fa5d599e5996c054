"""Checking a dataset before training: its files (no decoding), labels and classes."""
from __future__ import annotations

import warnings
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


def describe_check(dataset: Any, class_num: int | None, *, skip_bad_images: bool, mode: str,
                   labels_needed: bool = False) -> str:
    """Check the dataset's files (no decoding) and labels; return the summary line.

    Missing images are an error naming their list lines, unless they are to be skipped;
    a set of which no image exists, an evaluation set without labels, and a training set
    without labels where every loss needs them (``labels_needed``) are errors.
    """
    if not callable(getattr(dataset, "check", None)):
        return f"{type(dataset).__name__}: {len(dataset)} samples (not checked)"
    summary = dataset.check(class_num)
    if summary.missing and not skip_bad_images:
        shown = "; ".join(summary.missing[:5]) + ("; ..." if len(summary.missing) > 5 else "")
        raise DataError(f"{len(summary.missing)} of {summary.images} images are missing: {shown}. "
                        "Fix the list, or set loader.skip_bad_images: true to skip them.")
    if summary.images and len(summary.missing) == summary.images:
        raise DataError(f"DataLoader.{mode}: none of the {summary.images} images of {summary.source} exists "
                        f"({summary.missing[0]}, ...)")
    _check_labels(summary, mode, labels_needed)
    line = summary.describe()
    if summary.missing:
        line += " (missing images will be skipped: loader.skip_bad_images)"
    return line


def _check_labels(summary: Any, mode: str, labels_needed: bool) -> None:
    if mode == "Eval" and summary.images and summary.unlabeled == summary.images:
        raise DataError(f"DataLoader.Eval: none of the {summary.images} images of {summary.source} has a label, and "
                        "evaluation needs labels (infer classifies images without them)")
    if not (labels_needed and summary.unlabeled):
        return
    if summary.unlabeled == summary.images:
        raise DataError(f"DataLoader.{mode}: none of the {summary.images} images of {summary.source} has a label, and "
                        f"every loss of Loss.{mode} needs labels: nothing would be learned")
    warnings.warn(f"DataLoader.{mode}: {summary.unlabeled} of the {summary.images} images of {summary.source} have no "
                  f"label, and every loss of Loss.{mode} needs labels: they are not trained on (a distillation loss "
                  "between two models, such as DistillationDMLLoss, learns from them)", UserWarning, stacklevel=3)


# --- batches --------------------------------------------------------------------------
