"""Label sets that mix levels of the Cell Ontology: a parent's score covers its descendants.

A question may name "T cell", "leukocyte" and "CD8-positive, alpha-beta T cell" together, and a
model may know finer classes than a question names. Three rules, all from the ontology's is_a
relation (:func:`mmgene.text.ontology.term_ancestors`):

* **Expansion** (:func:`expansions`): a label also answers for the model's own training classes that
  lie below it and below no more specific label of the set ("T cell" takes the model's "CD4-positive,
  alpha-beta T cell" and "CD8-positive, alpha-beta T cell"); its similarity is the largest of its own
  and theirs.
* **Inclusive probabilities** (:func:`inclusive`): after the softmax over the labels, a label's
  probability is its own plus that of every label of the set below it, so "T cell" covers "CD8 T cell".
* **Deepest confident term** (:func:`deepest_confident`): the answer is the most specific label whose
  inclusive probability is above ``min_prob`` (with ``min_prob >= 0.5`` these labels form one chain,
  unless a label lies below two unrelated labels of the set, which can then both be confident; below
  it, the answer stays on the cell's probable path: down from the likeliest top label into the likeliest
  label below while that one is likelier than the label above keeps for itself).

:func:`partial_credit` scores an answer against the truth: 1 for the true term, for an ancestor the
share of the truth's path from the root that it covers, 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmgene.config import check_range
from mmgene.errors import ParameterError
from mmgene.text.labels import missing_labels
from mmgene.text.ontology import find_term, is_known_term, is_term_id, normalise_term_id, term_ancestors


def resolve_terms(labels: Sequence[str], term_ids: Sequence[str] | None = None) -> list[str]:
    """The Cell Ontology id of each label: ``term_ids`` when given ('' for none), else the term whose
    name or synonym equals the label (:func:`mmgene.text.ontology.find_term`), else ''."""
    if isinstance(labels, str) or (term_ids is not None and isinstance(term_ids, str)):
        raise ParameterError(
            "labels and term_ids must be lists, one entry per label, got a string", "resolve_terms", "wrap a single label in a list"
        )
    if term_ids is not None:
        given = ["" if missing else str(t).strip() for t, missing in zip(term_ids, missing_labels(list(term_ids)))]
        ids = [normalise_term_id(t) or t for t in given]  # "cl:0000084", "CL_0000084" or the PURL
        if len(ids) != len(labels):
            raise ParameterError(f"{len(ids)} term ids for {len(labels)} labels", "argument term_ids", "pass one id (or '') per label")
        bad = [t for t in ids if t and not is_term_id(t)]
        if bad:
            raise ParameterError(f"{bad[0]!r} is not a Cell Ontology id", "argument term_ids", "give ids like 'CL:0000084', or '' for none")
        unknown = [t for t in ids if t and not is_known_term(t)]
        if unknown:  # it would be related to no other label: a typo, not a term
            raise ParameterError(
                f"{unknown[0]!r} is not in the Cell Ontology", "argument term_ids", "check the id, or give '' for a label without a term"
            )
        return ids
    found = [find_term(str(label)) for label in labels]
    return [t.term_id if t is not None else "" for t in found]


def is_below(term: str, above: str) -> bool:
    """Whether ``term`` is a strict descendant of ``above`` (both Cell Ontology ids)."""
    return bool(term) and bool(above) and term != above and above in term_ancestors(term)


def depth(term: str) -> int:
    """How specific a term is: the number of its ancestors (0 for no term)."""
    return len(term_ancestors(term)) if is_term_id(term) else 0


@dataclass(frozen=True)
class LabelHierarchy:
    """The is_a relations among one label set (``below[i]``: the labels strictly below label ``i``)."""

    labels: tuple[str, ...]
    term_ids: tuple[str, ...]
    below: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, labels: Sequence[str], term_ids: Sequence[str]) -> LabelHierarchy:
        """The relations among ``labels``, whose Cell Ontology ids are ``term_ids`` ('' for none), one per label."""
        ids = [str(t) for t in term_ids]
        if len(ids) != len(labels):
            raise ParameterError(f"{len(ids)} term ids for {len(labels)} labels", "LabelHierarchy.of(term_ids=...)",
                                 "pass one id (or '') per label")
        below = tuple(tuple(j for j, tj in enumerate(ids) if is_below(tj, ti)) for ti in ids)
        return cls(tuple(labels), tuple(ids), below)

    @property
    def nested(self) -> bool:
        """Whether any label of the set lies below another."""
        return any(self.below)


def expansions(hierarchy: LabelHierarchy, vocabulary: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Per label, the names of the vocabulary's classes (``(name, term id)`` pairs, e.g. a model's
    training classes) that lie strictly below it and neither are, nor lie below, another label of the
    set that is not above it; those classes stand for the label's unnamed descendants.

    A class below another label that is below this one belongs to that label; a class below two
    labels neither of which is above the other (the ontology's "CD14-low, CD16-positive monocyte" is
    both a "CD14-positive monocyte" and a "non-classical monocyte") would make each label answer for
    the other's cells, so it stands for neither. Two labels of one term (two spellings of it) are not
    each other's rivals: both answer for the classes below it."""
    ids = hierarchy.term_ids
    out: list[list[str]] = []
    for i, term in enumerate(ids):
        names: list[str] = []
        if term:
            above = term_ancestors(term)
            rivals = [t for t in ids if t and t != term and t not in above]
            for name, vocab_term in vocabulary:
                if not is_below(vocab_term, term) or vocab_term in ids:
                    continue
                if any(is_below(vocab_term, rival) for rival in rivals):
                    continue
                if name not in names:
                    names.append(name)
        out.append(names)
    return out


def _label_columns(probs: np.ndarray, hierarchy: LabelHierarchy, where: str) -> np.ndarray:
    """``probs`` as float64 cells x labels, one column per label of ``hierarchy`` (else a ParameterError)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(hierarchy.labels):
        raise ParameterError(f"probabilities of shape {probs.shape} for {len(hierarchy.labels)} labels", where,
                             "pass one row per cell and one column per label, in the hierarchy's order")
    return probs


def inclusive(probs: np.ndarray, hierarchy: LabelHierarchy) -> np.ndarray:
    """Cells x labels probabilities where each label also holds those of the labels below it."""
    probs = _label_columns(probs, hierarchy, "inclusive(probs=...)")
    out = probs.copy()
    for i, below in enumerate(hierarchy.below):
        if below:
            out[:, i] += probs[:, list(below)].sum(axis=1)
    return np.minimum(out, 1.0)


def _below_matrix(hierarchy: LabelHierarchy) -> np.ndarray:
    """Boolean labels x labels: ``[i, j]`` when label ``j`` lies below label ``i``."""
    n = len(hierarchy.labels)
    below = np.zeros((n, n), dtype=bool)
    for i, under in enumerate(hierarchy.below):
        below[i, list(under)] = True
    return below


def _on_probable_path(confident: np.ndarray, p: np.ndarray, hierarchy: LabelHierarchy) -> np.ndarray:
    """``confident`` kept only on each cell's probable path: from the likeliest label with none above it, down
    into the likeliest label directly below while that one is likelier than staying (the probability the
    current label keeps for itself, its inclusive one less that of the labels directly below it; a tie stays).

    Below ``min_prob`` 0.5 the confident labels may lie on several branches, and a label below a confident
    one may be confident only because the threshold is low: a cell that is 75% B cell is not the CD8 T cell it
    is 21% like, and a CD14 monocyte that is 60% "CD14-positive monocyte" (its own share) and 35% "CD16-positive
    monocyte" (a term below it) is not the latter. With ``min_prob`` 0.5 or above this path holds every
    confident label, so the rule is unchanged there."""
    below = _below_matrix(hierarchy)
    direct = below & ~((below.astype(np.int64) @ below.astype(np.int64)) > 0)  # [i, j]: j below i, no label between
    rows = np.arange(len(p))
    current = np.where(~below.any(axis=0)[None, :], p, -np.inf).argmax(axis=1)
    path = np.zeros_like(confident)
    path[rows, current] = True
    for _ in range(p.shape[1]):  # one step down a level per round; a path has at most one label per level
        children = direct[current]
        child_p = np.where(children, p, -np.inf)
        best = child_p.argmax(axis=1)
        stay = p[rows, current] - np.where(children, p, 0.0).sum(axis=1)
        move = children.any(axis=1) & (child_p[rows, best] > stay)
        if not move.any():
            break
        current = np.where(move, best, current)
        path[rows[move], best[move]] = True
    return confident & path


def deepest_confident(probs_inclusive: np.ndarray, hierarchy: LabelHierarchy, min_prob: float) -> np.ndarray:
    """Per cell, the index of the most specific label whose inclusive probability is above
    ``min_prob`` (ties: the more probable, then the earlier label); -1 where none is. With ``min_prob``
    below 0.5, only labels on the cell's probable path count (:func:`_on_probable_path`), so that a low
    ``min_prob`` calls fewer cells unknown without sending them to deeper labels."""
    p = _label_columns(probs_inclusive, hierarchy, "deepest_confident(probs_inclusive=...)")
    min_prob = check_range(min_prob, "min_prob", "deepest_confident(min_prob=...)", 0.0, 1.0, fix="use e.g. 0.5")
    depths = np.array([depth(t) for t in hierarchy.term_ids], dtype=np.float64)
    confident = p > min_prob
    if min_prob < 0.5 and len(p) and p.shape[1]:
        confident = _on_probable_path(confident, p, hierarchy)
    # rank by depth first, probability second; labels that are not confident never win
    key = np.where(confident, depths[None, :] * 2.0 + p, -np.inf)
    best = key.argmax(axis=1) if p.shape[1] else np.zeros(len(p), dtype=int)
    return np.where(confident.any(axis=1), best, -1)


def partial_credit(truth: Sequence[str], predicted: Sequence[str]) -> np.ndarray:
    """Per cell: 1 when the predicted term is the true one; for an ancestor of the true term, the share
    of the truth's terms (itself and its ancestors) that the prediction's terms cover; else 0
    (a descendant, an unrelated term, ``unknown`` or '')."""
    if len(truth) != len(predicted):
        raise ParameterError(
            f"{len(truth)} true terms for {len(predicted)} predictions", "partial_credit", "pass one truth and one prediction per cell"
        )
    credit = np.zeros(len(truth), dtype=np.float64)
    for k, (t, p) in enumerate(zip(truth, predicted)):
        if not t or not p:
            continue
        if t == p:
            credit[k] = 1.0
        elif is_term_id(t) and is_term_id(p) and is_below(t, p):
            credit[k] = (len(term_ancestors(p)) + 1) / (len(term_ancestors(t)) + 1)
    return credit


def balanced_partial_credit(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean :func:`partial_credit` per true class, averaged over classes (like balanced accuracy,
    which it equals when every prediction is a term of the set or wrong). Cells without a true term
    ('', None, NaN) have no class and are left out."""
    truth_arr = np.array(["" if missing else str(t) for t, missing in zip(truth, missing_labels(list(truth)))], dtype=object)
    credit = partial_credit(truth_arr.tolist(), predicted)
    classes = sorted(set(truth_arr.tolist()) - {""})
    if not classes:
        raise ParameterError("no cell to score", "balanced_partial_credit", "pass at least one cell")
    return float(np.mean([credit[truth_arr == c].mean() for c in classes]))
