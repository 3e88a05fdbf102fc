"""Classes as vectors in a joint space, and each cell's scores for them.

* :func:`class_vectors`: a class is the mean of its prompts' unit text vectors, re-normalised (prompt
  ensembling as in CLIP); the prompts come from :func:`mmgene.text.prompts.class_prompts` or your own.
* :func:`zero_shot_scores`: cosine of every cell to every class vector (cells x classes).
* :func:`standardise`: each class's column z-scored over the cells, so that a class whose prompts sit
  closer to every cell (or farther from all) does not win (or lose) every argmax; :func:`standardises`
  says whether a default setting does so for a number of cells.
* :func:`type_weights`: cell weights that make the z-scores' means and spreads count the types a first
  argmax finds alike. Plain z-scores give the cells of a type that is a fraction ``p`` of the data a
  score near ``sqrt((1 - p) / p)`` for it: an abundant type is damped and a rare one lifted, which
  helps rare types' recall and costs the abundant type cells (and skews cell-type proportions).

The zero-spread rule of :func:`standardise`, the one rule for every z-score of scores in mmgene: a column
whose standard deviation over the cells is at most :data:`MIN_SPREAD` cannot tell the cells apart
(its differences are rounding, not signal), so it becomes 0 for every cell, neither helping nor hurting
any cell's argmax. Scores here are cosines, log-probabilities or z-scored expression, on a scale of
about 1, where a spread of 1e-6 is rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mmgene.errors import DataError, NonFiniteError, ParameterError

#: a score column with a standard deviation at most this has no spread (see the module docstring)
MIN_SPREAD = 1e-6
#: fewer cells than this are scored by their raw similarities: a z-score over a handful of cells is noise
MIN_CELLS_TO_STANDARDISE = 30


def standardises(n_cells: int, setting: bool | None) -> bool:
    """Whether the scores of ``n_cells`` cells are z-scored: ``setting`` when given, else (``None``,
    the default of annotate and evaluate) when there are at least :data:`MIN_CELLS_TO_STANDARDISE`."""
    return n_cells >= MIN_CELLS_TO_STANDARDISE if setting is None else bool(setting)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 rows of unit length; an all-zero row stays zero (it has no direction, so it
    scores 0 against every class)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def class_vectors(encode_text: Callable[[list[str]], np.ndarray], prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """One float32 unit vector per class: the mean of its prompts' unit vectors, re-normalised.

    ``encode_text`` maps a list of texts to one row each (a joint space's ``encode_text``, or a text
    encoder's ``encode``); it is called once, for all prompts. ``prompts`` holds one non-empty list of
    texts per class (:func:`mmgene.text.prompts.class_prompts`). A class vector that is zero, NaN or
    infinite (the encoder gave its prompts no usable direction) is an error.
    """
    given = [prompts] if isinstance(prompts, str) else list(prompts)
    if any(isinstance(g, str) for g in given):  # list("a B cell") would be one prompt per character
        raise ParameterError("each class needs a list of prompts, got a string", "argument prompts",
                             "pass one list of prompts per class, e.g. [['a B cell'], ['a T cell']]")
    groups = [list(g) for g in given]
    flat = [p for group in groups for p in group]
    if not flat or any(len(g) == 0 for g in groups):
        raise ParameterError("every class needs at least one prompt", "argument prompts", "pass one non-empty list of prompts per class")
    emb = unit_rows(encode_text(flat))
    if emb.ndim != 2 or len(emb) != len(flat):
        raise ParameterError(f"the text encoder returned shape {emb.shape} for {len(flat)} prompts", "argument encode_text",
                             "pass a function that returns one vector per text")
    bounds = np.cumsum([0] + [len(g) for g in groups])
    vecs = unit_rows(np.stack([emb[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])]))
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        first = groups[int(np.flatnonzero(~finite)[0])][0]
        raise NonFiniteError(f"{int((~finite).sum())} class vectors contain NaN or infinite values", f"the prompts of {first!r}",
                             "check the text encoder (a model that returns NaN is broken)")
    empty = ~vecs.any(axis=1)
    if empty.any():
        first = groups[int(np.flatnonzero(empty)[0])][0]
        raise DataError(f"{int(empty.sum())} class vectors are all zeros and have no direction for cosine similarity",
                        f"the prompts of {first!r}", "check the text encoder, or give the class other prompts")
    return vecs


def standardise(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Z-score each column (class) of ``scores`` (cells x classes) over the cells, as float64.

    The arithmetic is done in the precision of ``scores`` (float32 cosines stay float32 until the
    result). A column with a standard deviation at most :data:`MIN_SPREAD` becomes 0 (see the module
    docstring). One cell has no spread: its row is all zeros. A stack of several models' scores
    (models x cells x classes, an ensemble's members) gives the z-scores of the mean of each model's
    z-scores: every model counts alike, whatever the spread of its cosines, and the result is on the
    scale of one model's z-scores (the scale ``min_z`` and the temperature were chosen on).
    ``weights`` (one non-negative number per cell, e.g. :func:`type_weights`) weigh the cells in each
    column's mean and standard deviation, in float64. A NaN or infinite score is an error: it would
    make its whole column's spread NaN, and so the column 0 for every cell.
    """
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    _check_finite(scores)  # once: the members and their mean below are then finite too
    return _zscores(scores, weights)


def _zscores(scores: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """:func:`standardise` of finite float ``scores``."""
    if scores.ndim == 3:
        return _zscores(np.mean([_zscores(member, weights) for member in scores], axis=0), weights)
    if weights is None:
        mean = scores.mean(axis=0, keepdims=True)
        std = scores.std(axis=0, keepdims=True)
    else:
        scores = scores.astype(np.float64)
        share = _cell_shares(weights, len(scores))
        mean = share @ scores
        std = np.sqrt(share @ (scores - mean) ** 2)
    return np.divide(scores - mean, std, out=np.zeros(scores.shape, dtype=np.float64), where=std > MIN_SPREAD)


def _check_finite(scores: np.ndarray) -> None:
    """Refuse NaN or infinite scores, saying where the first one is."""
    bad = ~np.isfinite(scores)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        axes = "(model, cell, class)" if scores.ndim == 3 else "(cell, class)"
        raise NonFiniteError(f"{int(bad.sum())} scores are NaN or infinite", f"standardise(scores), first at {axes} {at}",
                             "score only cells that have a vector (drop NaN rows), or check the model")


def _cell_shares(weights: np.ndarray, n_cells: int) -> np.ndarray:
    """``weights`` checked (one finite, non-negative number per cell, not all zero) and summing to 1."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_cells,) or not np.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
        raise ParameterError(
            f"weights must be {n_cells} finite, non-negative numbers, not all zero (got shape {weights.shape})",
            "standardise(weights=...)", "pass one weight per cell, e.g. type_weights(first_scores)",
        )
    return (weights / weights.sum())[None, :]


def type_weights(scores: np.ndarray) -> np.ndarray:
    """One weight per cell, ``1 / the number of cells whose argmax class is its own``: every class that
    wins some cells weighs as much in total, whatever its share (see the module docstring). ``scores``
    (cells x classes) are the first pass's, usually the plain z-scores."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or not scores.shape[1]:  # argmax of no class is numpy's own error
        raise ParameterError(f"scores of shape {scores.shape}: type weights need cells x classes, at least one class",
                             "type_weights(scores=...)", "score the cells against at least one class")
    winner = scores.argmax(axis=1)
    return 1.0 / np.bincount(winner)[winner]


def zero_shot_scores(cells: np.ndarray, class_vecs: np.ndarray, standardize: bool = False) -> np.ndarray:
    """Cosine similarity of every cell to every class vector (cells x classes).

    ``standardize=True`` returns :func:`standardise` of them: it uses the scored cells but no labels
    (transductive), and per-class AUROC does not change, since each column is only shifted and scaled.
    It needs at least two cells.
    """
    scores = unit_rows(cells) @ np.asarray(class_vecs).T
    return standardised_cells(scores) if standardize else scores


def standardised_cells(scores: np.ndarray) -> np.ndarray:
    """:func:`standardise` of scores that a caller asked to z-score: one cell cannot be, which is an error."""
    if np.shape(scores)[0] < 2:
        raise ParameterError("standardize needs at least two cells", "argument cells", "score more cells or pass standardize=False")
    return standardise(scores)
