"""Zero-shot cell-type classification from text prompts, and its metrics.

Each class gets a prompt ensemble (:mod:`mmgene.evaluate.prompts`); a cell's score for a class is the
cosine between its joint-space vector and the class's mean prompt vector. Reported: accuracy,
balanced accuracy, macro-F1, macro one-vs-rest AUROC, per-class recall/precision/F1/AUROC, and the same
at cell-type-centroid level (the mean vector of each true class classified as one item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmgene.errors import LabelError, ParameterError
from mmgene.io.labels import MIN_CLASSES, label_text, missing_labels, require_classes, usable_labels
from mmgene.query.refine import refine_scores


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def class_vectors(encode_text: Callable[[list[str]], np.ndarray], prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """Normalised mean joint-space vector of each class's prompts (one text-encoder call for all)."""
    flat = [p for group in prompts for p in group]
    if not flat or any(len(g) == 0 for g in prompts):
        raise ParameterError("every class needs at least one prompt", "argument prompts")
    emb = _l2(encode_text(flat))
    bounds = np.cumsum([0] + [len(g) for g in prompts])
    return _l2(np.stack([emb[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])]))


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``argmax(scores)`` against integer labels ``y_true`` (index into ``classes``)."""
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


def centroid_metrics(cells: np.ndarray, y_true: np.ndarray, class_vecs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Classify each true class's mean cell vector: accuracy over classes and each class's prediction."""
    present = np.unique(y_true)
    cent = _l2(np.stack([cells[y_true == k].mean(0) for k in present]))
    pred = (cent @ class_vecs.T).argmax(1)
    return {
        "accuracy": float((pred == present).mean()),
        "predicted": {str(classes[k]): str(classes[p]) for k, p in zip(present, pred)},
    }


def label_codes(labels: Sequence[str], n_cells: int, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The classes (default: the sorted distinct labels) and each label's index among them.

    The label check shared by every evaluation: one label per cell, none missing (None, NaN, empty
    or blank: drop those cells first, see :func:`labelled`), at least two classes to choose from,
    and every label a class.
    """
    if len(labels) != n_cells:
        raise ParameterError(f"{n_cells} cells but {len(labels)} labels", "arguments cells/labels", "pass one label per cell")
    unlabelled = missing_labels(labels)
    if unlabelled.any():
        raise LabelError(
            f"{int(unlabelled.sum())} of {n_cells} cells have no label (None, NaN, empty or blank)",
            "argument labels",
            "drop those cells first (mmgene.evaluate.classify.labelled gives the mask)",
        )
    labels = label_text(labels)
    classes = [str(c) for c in classes] if classes is not None else require_classes(labels, "argument labels", "zero-shot classification")
    if len(classes) < MIN_CLASSES:
        raise LabelError(f"zero-shot classification needs at least {MIN_CLASSES} classes, got {classes}", "argument classes", "pass two or more classes")
    index = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(labels.tolist()) - set(index))
    if missing:
        raise ParameterError(f"labels not among the classes: {missing[:5]}", "argument classes", "add them to classes")
    return classes, np.array([index[v] for v in labels], dtype=np.int64)


def labelled(labels: Sequence[str], where: str = "labels", task: str = "zero-shot evaluation", min_classes: bool = True) -> np.ndarray:
    """Mask of the cells that have a label: the others are dropped (their number is reported) rather
    than scored as a class called "nan"; with ``min_classes``, fewer than two classes left is a
    :class:`~mmgene.errors.LabelError`."""
    keep, _, _ = usable_labels(labels, where, task, min_classes)
    return keep


def labelled_cells(adata: Any, label_col: str, task: str = "evaluate", min_classes: bool = True) -> tuple[Any, np.ndarray, int]:
    """``(cells, labels, n_dropped)``: the cells of ``adata`` with a label in ``obs[label_col]`` (a copy
    when some have none: those are dropped and counted, never scored as a class "nan"), their labels
    as ``str``, and how many were dropped. With ``min_classes``, fewer than two classes is a
    :class:`~mmgene.errors.LabelError`."""
    from mmgene.io import obs_column

    keep, labels, n_dropped = usable_labels(obs_column(adata, label_col), f"obs[{label_col!r}]", task, min_classes)
    if n_dropped:
        subset = adata[keep]
        adata = subset.to_memory() if getattr(adata, "isbacked", False) else subset.copy()
    return adata, labels, n_dropped


def zero_shot_scores(cells: np.ndarray, class_vecs: np.ndarray, standardize: bool = False) -> np.ndarray:
    """Cosine similarity of every cell to every class vector.

    ``standardize=True`` z-scores each class's column over the given cells, so that a class whose
    prompts sit closer to every cell (or farther from all) does not win (or lose) every argmax. It uses
    the query cells but no labels (transductive); per-class AUROC does not change, since each column is
    only shifted and scaled. It needs at least two cells.
    """
    scores = _l2(cells) @ class_vecs.T
    if standardize:
        if scores.shape[0] < 2:
            raise ParameterError("standardize needs at least two cells", "argument cells", "score more cells or pass standardize=False")
        scores = (scores - scores.mean(0)) / np.maximum(scores.std(0), 1e-6)
    return scores


def zero_shot(
    cells: np.ndarray,
    labels: Sequence[str],
    encode_text: Callable[[list[str]], np.ndarray],
    *,
    classes: Sequence[str] | None = None,
    prompts: Sequence[Sequence[str]] | None = None,
    ontology: bool = True,
    markers: bool = True,
    standardize: bool = False,
    refine: np.ndarray | None = None,
) -> dict[str, Any]:
    """Zero-shot metrics for cell vectors ``cells`` with true ``labels``, querying each class by text.

    ``classes`` defaults to the sorted distinct labels; ``prompts`` to :func:`class_prompts` of them
    (with marker genes unless ``markers=False``). ``standardize`` z-scores each class's scores over the
    cells before the argmax (see :func:`zero_shot_scores`). ``refine``, the query's own features
    (:func:`mmgene.query.refine.expression_pcs`), refines the scores by self-training on them
    (:func:`mmgene.query.refine.refine_scores`; its scores are standardised, so ``standardize`` is moot).
    Cells without a label (None, NaN, empty or blank) are left out; ``unlabelled_cells`` counts them.
    """
    from mmgene.evaluate.prompts import class_prompts

    keep = np.ones(len(cells), bool)
    if len(labels) == len(cells):
        keep = labelled(labels, "argument labels", min_classes=False)  # label_codes counts the classes
        if not keep.all():
            cells, labels = np.asarray(cells)[keep], np.asarray(labels, dtype=object)[keep]
            refine = refine[keep] if refine is not None else None
    classes, y = label_codes(labels, len(cells), classes)
    prompts = list(prompts) if prompts is not None else class_prompts(classes, ontology=ontology, markers=markers)
    vecs = class_vectors(encode_text, prompts)
    scores = refine_scores(zero_shot_scores(cells, vecs), refine) if refine is not None else zero_shot_scores(cells, vecs, standardize=standardize)
    out = classification_metrics(y, scores, classes)
    out["unlabelled_cells"] = int((~keep).sum())
    out["standardized"] = bool(standardize) or refine is not None
    out["refined"] = refine is not None
    out["centroid"] = centroid_metrics(_l2(cells), y, vecs, classes)
    out["classes"] = list(classes)
    out["prompts"] = {c: list(p) for c, p in zip(classes, prompts)}
    return out
