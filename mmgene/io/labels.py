"""Label columns: which cells have a usable label, and whether enough classes are left.

Which label is missing is defined once, in :mod:`mmgene.text.labels` (None, NaN, empty or blank).
Cells with a missing label are dropped, and how many is reported, rather than becoming a class called
``"nan"`` or ``""``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import LabelError, _preview
from mmgene.text.labels import label_text, missing_labels

#: fewest classes a classifier, a contrastive objective or a negative draw can use.
MIN_CLASSES = 2


def report_dropped(n_dropped: int, n_total: int, where: str, task: str) -> None:
    """Say on stderr (unless quiet) how many cells ``task`` drops for having no label in ``where``."""
    if n_dropped:
        from mmgene.progress import info

        info(f"{task}: dropped {n_dropped:,} of {n_total:,} cells with no label in {where} (None, NaN, empty or blank)")


def require_classes(labels: Sequence[str] | np.ndarray, where: str, task: str, n_dropped: int = 0) -> list[str]:
    """The sorted distinct ``labels``; a :class:`LabelError` when fewer than :data:`MIN_CLASSES`."""
    classes = sorted(set(map(str, labels)))
    if len(classes) < MIN_CLASSES:
        found = f"only {_preview(classes)}" if classes else "none"
        dropped = f" after dropping {n_dropped:,} cells with no label" if n_dropped else ""
        raise LabelError(
            f"{task} needs at least {MIN_CLASSES} classes, but the labels hold {found}{dropped}",
            where,
            "choose a label column with two or more cell types, or label more cells",
        )
    return classes


def usable_labels(values: Any, where: str, task: str, min_classes: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """``(keep, labels, n_dropped)``: which cells have a label, their labels as ``str`` and how many
    were dropped (reported on stderr). With ``min_classes``, fewer than two classes left is a
    :class:`LabelError`."""
    keep = ~missing_labels(values)
    labels = label_text(values)[keep]
    n_dropped = int((~keep).sum())
    report_dropped(n_dropped, len(keep), where, task)
    if min_classes:
        require_classes(labels, where, task, n_dropped)
    return keep, labels, n_dropped
