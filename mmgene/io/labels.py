"""Label columns: which cells have a usable label, and whether enough classes are left.

A label is **missing** when it is ``None``, NaN (also pandas' ``NA``/``NaT``), or a string that is empty
or only whitespace. Cells with a missing label are dropped, and how many is reported, rather than
becoming a class called ``"nan"`` or ``""``. Any other value is a label, compared as text (a literal
``"nan"`` string is a label, since someone wrote it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import LabelError, _preview

#: fewest classes a classifier, a contrastive objective or a negative draw can use.
MIN_CLASSES = 2


def _factorized(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, text)``: each cell's code into ``text``, the distinct labels as ``str`` with ``""``
    for missing ones; code ``-1`` for None/NaN/NA. Work is per distinct label, not per cell."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values.astype(object))
    text = np.array([str(u) for u in uniques], dtype=object)
    blank = np.array([isinstance(u, (str, bytes)) and not u.strip() for u in uniques], dtype=bool)
    text[blank] = ""
    return codes, text


def missing_labels(values: Any) -> np.ndarray:
    """Boolean mask: True where a label is missing (None, NaN, NA, empty or whitespace-only text)."""
    codes, text = _factorized(values)
    return (codes < 0) | (text[np.maximum(codes, 0)] == "") if len(text) else np.ones(len(codes), bool)


def label_text(values: Any) -> np.ndarray:
    """Labels as ``str`` (object array), with ``""`` where a label is missing."""
    codes, text = _factorized(values)
    out = np.append(text, "").astype(object)[codes]  # code -1 picks the appended ""
    return out


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
