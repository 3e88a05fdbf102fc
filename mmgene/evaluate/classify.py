"""Zero-shot cell-type classification from text prompts, as an evaluation report.

Each class gets a prompt ensemble (:mod:`mmgene.text.prompts`); a cell's score for a class is the
cosine between its joint-space vector and the class's mean prompt vector (:mod:`mmgene.text.classes`).
Reported (:mod:`mmgene.metrics`): accuracy, balanced accuracy, macro-F1, macro one-vs-rest AUROC,
per-class recall/precision/F1/AUROC, and the same at cell-type-centroid level (the mean vector of each
true class classified as one item). Cells without a label are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmgene.copies import copy_in_memory
from mmgene.errors import LabelError, ParameterError
from mmgene.io.labels import MIN_CLASSES, require_classes, require_distinct_names, require_names, usable_labels
from mmgene.metrics import classification_metrics, distinct_classes
from mmgene.query.refine import refine_scores
from mmgene.text.classes import class_vectors, standardise, standardised_cells, standardises, type_weights, unit_rows, zero_shot_scores
from mmgene.text.labels import label_text, missing_labels


def centroid_metrics(cells: np.ndarray, y_true: np.ndarray, class_vecs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Classify each true class's mean cell vector: accuracy over classes and each class's prediction."""
    present = np.unique(y_true)
    cent = unit_rows(np.stack([cells[y_true == k].mean(0) for k in present]))
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
    distinct_classes(classes, "argument classes")
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
    :class:`~mmgene.errors.LabelError`, as are labels that are all numbers or true/false
    (:func:`mmgene.io.labels.require_names`) and two that differ only in case or blanks."""
    from mmgene.io import obs_column

    keep, labels, n_dropped = usable_labels(obs_column(adata, label_col), f"obs[{label_col!r}]", task, min_classes)
    require_names(labels, f"obs[{label_col!r}]", task)
    require_distinct_names(labels, f"obs[{label_col!r}]", task)
    if n_dropped:
        subset = adata[keep]
        adata = copy_in_memory(subset)
    return adata, labels, n_dropped


def _labelled_rows(values: Any, keep: np.ndarray, name: str) -> np.ndarray | None:
    """The rows of ``values`` (argument ``name``, one per cell or None) of the labelled cells ``keep``."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.ndim != 2 or len(values) != len(keep):
        raise ParameterError(
            f"{name} of shape {values.shape} for {len(keep)} cells", f"argument {name}",
            "pass one row per cell, in the order of cells",
        )
    return values[keep]


def _checked(similarities: np.ndarray, n_cells: int, n_classes: int, name: str = "similarities") -> np.ndarray:
    """Given scores (argument ``name``), as a float array of one row per cell and one column per class."""
    sims = np.asarray(similarities)
    if sims.shape != (n_cells, n_classes):
        raise ParameterError(
            f"{name} have shape {sims.shape}, expected {(n_cells, n_classes)} (cells x classes)",
            f"argument {name}",
            "pass one row per cell and one column per class, in the order of classes",
        )
    return sims


def zero_shot(
    cells: np.ndarray,
    labels: Sequence[str],
    encode_text: Callable[[list[str]], np.ndarray],
    *,
    classes: Sequence[str] | None = None,
    prompts: Sequence[Sequence[str]] | None = None,
    ontology: bool = True,
    markers: bool = True,
    standardize: bool | None = None,
    refine: np.ndarray | None = None,
    similarities: np.ndarray | None = None,
    standardised: np.ndarray | None = None,
    weigh_types: bool = False,
) -> dict[str, Any]:
    """Zero-shot metrics for cell vectors ``cells`` with true ``labels``, querying each class by text.

    ``classes`` defaults to the sorted distinct labels; ``prompts`` to
    :func:`mmgene.text.prompts.class_prompts` of them (with marker genes unless ``markers=False``).
    A cell's score for a class is its cosine to the class's prompt vector, or ``similarities`` (cells x
    classes) when given, such as :func:`mmgene.query.scoring.label_similarities` with the hierarchy;
    ``standardised``, their z-scores computed by the caller (an ensemble's, member by member:
    :meth:`mmgene.query.scoring.LabelSimilarities.standardised`), replaces z-scoring them here.
    ``standardize`` z-scores each class's scores over the cells before the argmax (``None``: when there
    are at least 30 cells, annotate's rule, :func:`mmgene.text.classes.standardises`). ``refine``, the query's own features
    (:func:`mmgene.query.refine.expression_pcs`), refines the scores by self-training on them
    (:func:`mmgene.query.refine.refine_scores`; its scores are standardised, so ``standardize`` is moot).
    ``weigh_types`` z-scores as ``annotate(weigh_types=True)`` does (:func:`mmgene.text.classes.type_weights`),
    unless ``standardised`` is given.
    Cells without a label (None, NaN, empty or blank) are left out; ``unlabelled_cells`` counts them.
    """
    from mmgene.text.prompts import class_prompts

    keep = np.ones(len(cells), bool)
    if len(labels) == len(cells):
        keep = labelled(labels, "argument labels", min_classes=False)  # label_codes counts the classes
        if not keep.all():
            cells, labels = np.asarray(cells)[keep], np.asarray(labels, dtype=object)[keep]
            refine = _labelled_rows(refine, keep, "refine")
            similarities = _labelled_rows(similarities, keep, "similarities")
            standardised = _labelled_rows(standardised, keep, "standardised")
    classes, y = label_codes(labels, len(cells), classes)
    prompts = list(prompts) if prompts is not None else class_prompts(classes, ontology=ontology, markers=markers)
    vecs = class_vectors(encode_text, prompts)
    sims = zero_shot_scores(cells, vecs) if similarities is None else _checked(similarities, len(cells), len(classes))
    std = refine is None and standardises(len(cells), standardize)
    if refine is not None:  # refining starts from z-scores: the given ones, or the similarities'
        scores = refine_scores(sims if standardised is None else _checked(standardised, len(cells), len(classes), "standardised"), refine)
    elif std:
        scores = standardised_cells(sims)  # also refuses too few cells to z-score
        if standardised is not None:
            scores = _checked(standardised, len(cells), len(classes), "standardised")
        elif weigh_types:
            scores = standardise(sims, type_weights(scores))
    else:
        scores = sims
    out = classification_metrics(y, scores, classes)
    out["unlabelled_cells"] = int((~keep).sum())
    out["standardized"] = std or refine is not None
    out["refined"] = refine is not None
    out["centroid"] = centroid_metrics(unit_rows(cells), y, vecs, classes)
    out["classes"] = list(classes)
    out["prompts"] = {c: list(p) for c, p in zip(classes, prompts)}
    return out
