"""Classification metrics of a score matrix against true classes: accuracy, balanced accuracy,
macro-F1, macro one-vs-rest AUROC and per-class recall/precision/F1/AUROC; and how far the predicted
cell-type proportions are from the true ones (:func:`proportion_error`); and how far the difference in
balanced accuracy between two predictions of the same cells owes to which cells were sampled
(:func:`balanced_accuracy_difference`).

A base module: zero-shot evaluation (:mod:`mmgene.evaluate`), the evaluator run during training
(:mod:`mmgene.align.train`) and the marker baseline all report the same numbers from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.config import check_range
from mmgene.errors import LabelError, NonFiniteError, ParameterError, _preview, is_whole_number


def distinct_classes(classes: Sequence[Any], where: str) -> None:
    """Refuse a class named twice: its cells would be indexed to one of the two columns and the per-class
    figures of the other overwritten under the same name."""
    twice = sorted(c for c, n in Counter(map(str, classes)).items() if n > 1)
    if twice:
        raise ParameterError(f"classes name {_preview(twice)} more than once", where, "pass each class once")


def _check_indices(values: np.ndarray, n_classes: int, what: str, where: str) -> None:
    """Refuse ``values`` (``what``: true labels, predictions) unless each is a class index below ``n_classes``."""
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= n_classes:
        raise ParameterError(
            f"{what} must be a 1-d array of class indices from 0 to {n_classes - 1}, "
            f"got {_preview(dict.fromkeys(values.ravel().tolist()))}",
            where, "pass each cell's index into classes",
        )


def _checked_scores(y_true: Any, scores: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``scores`` as arrays, refused unless there is one finite row of numbers per cell (at
    least one), one column per class, and every label is a class index."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    where = "classification_metrics"
    if not len(y_true) or scores.shape != (len(y_true), n_classes) or scores.dtype.kind not in "biuf":
        raise ParameterError(
            f"scores of shape {scores.shape} (dtype {scores.dtype}) for {len(y_true)} cells and {n_classes} classes",
            where,
            "pass one row of numeric scores per cell, at least one cell, and one column per class in the order of classes",
        )
    _check_indices(y_true, n_classes, "true labels", where)
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        raise NonFiniteError(
            f"{int(bad.sum())} of {len(bad)} cells have NaN or infinite scores (first: row {int(np.flatnonzero(bad)[0])})",
            where, "drop those cells, or check how the scores were made",
        )
    return y_true, scores


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``argmax(scores)`` against integer labels ``y_true`` (index into ``classes``), the
    error of the predicted class proportions (:func:`proportion_error`) among them.

    A class that no cell has (a label asked of data without that type) has no recall and no F1 (NaN,
    "–" in reports), and one that no cell is called has no precision: a 0.000 would read as a type
    the model missed. Balanced accuracy and macro-F1 are means over the classes the cells have
    (scikit-learn's default macro-F1 also counts a class only predicted, at 0)."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    distinct_classes(classes, "classification_metrics, argument classes")
    y_true, scores = _checked_scores(y_true, scores, len(classes))
    pred = scores.argmax(1)
    present = np.unique(y_true)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "balanced_accuracy": float(np.mean([(pred[y_true == k] == k).mean() for k in present])) if len(present) else float("nan"),
        "macro_f1": float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0)),
        "proportion_error": proportion_error(y_true, pred, len(classes)),
    }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=np.arange(len(classes)), zero_division=0
    )
    per_class: dict[str, dict[str, float]] = {}
    aucs = []
    for k, name in enumerate(classes):
        positive = y_true == k
        called = bool((pred == k).any())
        entry = {
            "n": int(support[k]),
            "recall": float(recall[k]) if support[k] else float("nan"),
            "precision": float(precision[k]) if called else float("nan"),
            "f1": float(f1[k]) if support[k] else float("nan"),
        }
        if positive.any() and (~positive).any():
            entry["auroc"] = float(roc_auc_score(positive, scores[:, k]))
            aucs.append(entry["auroc"])
        per_class[str(name)] = entry
    out["macro_auroc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["per_class"] = per_class
    return out


def proportion_error(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Total variation distance between the true and the predicted class proportions (0: the same
    shares, 1: no overlap): half the summed absolute differences of each class's share of the cells."""
    y_true, pred = np.asarray(y_true), np.asarray(pred)
    if len(y_true) != len(pred):
        raise ParameterError(
            f"{len(y_true)} true classes for {len(pred)} predictions", "proportion_error", "pass one true and one predicted class per cell"
        )
    if not len(y_true):
        return float("nan")
    _check_indices(y_true, n_classes, "true classes", "proportion_error")
    _check_indices(pred, n_classes, "predictions", "proportion_error")
    true_share = np.bincount(y_true, minlength=n_classes) / len(y_true)
    pred_share = np.bincount(pred, minlength=n_classes) / len(pred)
    return float(0.5 * np.abs(true_share - pred_share).sum())


def _check_truth(truth: np.ndarray) -> None:
    """Refuse cells without a true label (None, NaN, empty or blank): scored, they would make a class of
    their own (None) or no interval at all (NaN)."""
    from mmgene.text.labels import missing_labels

    missing = missing_labels(truth)
    if missing.any():
        raise LabelError(
            f"{int(missing.sum())} of {len(truth)} cells have no true label (None, NaN, empty or blank; first: cell {int(np.flatnonzero(missing)[0])})",
            "balanced_accuracy_difference", "drop those cells from the truth and both predictions first",
        )


def balanced_accuracy_difference(
    truth: Sequence[Any], first: Sequence[Any], second: Sequence[Any], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Balanced accuracy of ``first`` minus that of ``second`` (predictions of the same cells, any
    labels), with a paired, class-stratified bootstrap interval at ``level``.

    Each resample redraws every true class's cells with replacement, the same cells for both
    predictions, so the interval measures only the luck of which cells a dataset has; a model's
    training seed moves the figures as well and is not in it. A cell's paired outcome is -1, 0 or 1
    (only the second right, both or neither, only the first), so a class's resampled mean is drawn
    exactly from the multinomial counts of the three, in memory independent of its size.
    Returns ``difference``, ``low``, ``high``, ``level`` and ``resamples``."""
    truth, first, second = (np.asarray(v, dtype=object) for v in (truth, first, second))
    if not (len(truth) == len(first) == len(second)) or not len(truth):
        raise ParameterError(
            f"need the same cells, at least one, in truth and both predictions; got {len(truth)}, {len(first)}, {len(second)}",
            "balanced_accuracy_difference", "pass one true label and two predictions per cell",
        )
    if not is_whole_number(resamples, 1):
        raise ParameterError(
            f"resamples must be a whole number of at least 1, got {resamples!r}", "balanced_accuracy_difference", "pass e.g. resamples=2000"
        )
    check_range(level, "level", "balanced_accuracy_difference", 0.0, 1.0, strict=True, fix="pass e.g. level=0.95")
    _check_truth(truth)
    rng = np.random.default_rng(seed)
    outcome = (first == truth).astype(np.int8) - (second == truth).astype(np.int8)
    classes = sorted(set(truth.tolist()), key=str)
    draws = np.zeros(resamples)
    difference = 0.0
    for cls in classes:
        values = outcome[truth == cls]
        counts = np.array([(values == v).sum() for v in (-1, 0, 1)])
        difference += values.mean()
        drawn = rng.multinomial(len(values), counts / len(values), size=resamples)
        draws += (drawn[:, 2] - drawn[:, 0]) / len(values)
    draws /= len(classes)
    tail = (1.0 - level) / 2
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return {"difference": float(difference / len(classes)), "low": float(low), "high": float(high), "level": level, "resamples": resamples}
