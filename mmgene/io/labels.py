"""Label columns: which cells have a usable label, and whether enough classes are left.

Which label is missing is defined once, in :mod:`mmgene.text.labels` (None, NaN, empty or blank).
Cells with a missing label are dropped, and how many is reported, rather than becoming a class called
``"nan"`` or ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import LabelError, _preview
from mmgene.text.labels import label_text, missing_labels, spelling_key

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


_NOT_A_NAME = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^(true|false)$", re.IGNORECASE)


def require_names(labels: Sequence[str] | np.ndarray, where: str, task: str) -> None:
    """A :class:`LabelError` when every label is a number or true/false (a count, a cluster id, a flag
    column chosen by mistake): text prompts and the ontology read names, and a report on "a 3 cell"
    would be a figure about nothing."""
    distinct = sorted(set(map(str, labels)))
    if distinct and all(_NOT_A_NAME.match(v.strip()) for v in distinct):
        raise LabelError(
            f"{task} reads cell-type names, but the labels are all numbers or true/false ({_preview(distinct)})",
            where,
            "choose the column of cell-type names (e.g. cell_type); name clusters first (mmgene annotate, or a mapping)",
        )


def require_distinct_names(labels: Sequence[str] | np.ndarray, where: str, task: str) -> None:
    """A :class:`LabelError` when two classes differ only in case or blanks ("CD14+ Monocyte" and
    " cd14+ monocyte"): their prompts are the same, so the cells of one would be scored against two
    classes the model cannot tell apart, and the report would count the split as errors."""
    seen: dict[str, str] = {}
    for label in sorted(set(map(str, labels))):
        same = spelling_key(label)
        if same in seen:
            raise LabelError(
                f"{task} found {seen[same]!r} and {label!r} as two classes: they differ only in case or blanks",
                where,
                "write each cell type one way (e.g. strip and fix the case of the column) before evaluating",
            )
        seen[same] = label


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
