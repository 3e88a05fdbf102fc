"""Classification metrics of a score matrix against true classes: accuracy, balanced accuracy,
macro-F1, macro one-vs-rest AUROC and per-class recall/precision/F1/AUROC; and how far the predicted
cell-type proportions are from the true ones (:func:`proportion_error`).

A base module: zero-shot evaluation (:mod:`mmgene.evaluate`), the evaluator run during training
(:mod:`mmgene.align.train`) and the marker baseline all report the same numbers from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``argmax(scores)`` against integer labels ``y_true`` (index into ``classes``), the
    error of the predicted class proportions (:func:`proportion_error`) among them."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(y_true)
    pred = scores.argmax(1)
    present = np.unique(y_true)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
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
        entry = {
            "n": int(support[k]),
            "recall": float(recall[k]),
            "precision": float(precision[k]),
            "f1": float(f1[k]),
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
    if not len(y_true):
        return float("nan")
    true_share = np.bincount(y_true, minlength=n_classes) / len(y_true)
    pred_share = np.bincount(pred, minlength=n_classes) / len(pred)
    return float(0.5 * np.abs(true_share - pred_share).sum())
