"""Each cell's similarity to each label of a question, respecting the Cell Ontology.

:func:`label_similarities` is the one scoring step behind :func:`mmgene.query.annotate` and the
leave-one-dataset-out evaluation: a label's vector is its prompt ensemble
(:func:`mmgene.text.classes.class_vectors`); with ``hierarchy=True`` a label whose Cell Ontology term
lies above some of the model's training classes also answers for them (its similarity is the
largest of its own and theirs, :func:`mmgene.text.hierarchy.expansions`), so "T cell" finds the
cells the model learnt as CD4- and CD8-positive T cells.

An ensemble (:class:`mmgene.align.ensemble.EnsembleModel`) is also scored member by member, and
:meth:`LabelSimilarities.standardised` averages the members' z-scores (and z-scores the average)
rather than z-scoring the joint cosines: on the leave-one-dataset-out folds that scored higher at
every ensemble size from two members on (``docs/benchmarks.md``, "how many members").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmgene.errors import ParameterError
from mmgene.query.terms import label_terms
from mmgene.text.classes import class_vectors
from mmgene.text.hierarchy import LabelHierarchy, expansions, resolve_terms


@dataclass
class LabelSimilarities:
    """Cosine similarities (cells x labels), the labels' ontology relations and what was expanded;
    for an ensemble also each member's similarities (members x cells x labels)."""

    similarities: np.ndarray
    hierarchy: LabelHierarchy
    expanded: list[list[str]]
    prompts: list[list[str]]
    members: np.ndarray | None = None

    def standardised(self, weigh_types: bool = False) -> np.ndarray:
        """The per-label z-scores that annotate's rule takes (:func:`mmgene.text.classes.standardise`):
        of the similarities, or for an ensemble the z-scores of the mean of the members' z-scores.
        With ``weigh_types`` the z-scores are taken again with each cell weighed by
        :func:`mmgene.text.classes.type_weights` of the plain ones, so every label that wins cells
        counts alike in the means and spreads."""
        from mmgene.text.classes import standardise, type_weights

        scores = self.similarities if self.members is None else self.members
        plain = standardise(scores)
        return standardise(scores, type_weights(plain)) if weigh_types and len(plain) else plain


def space_vocabulary(space: Any) -> list[tuple[str, str]]:
    """The ``(name, Cell Ontology id)`` of every training class a joint space knows (an aligned
    model's ``meta['classes']``, with ``meta['class_ids']``, and ids found by name where none was
    saved); [] for spaces without classes, such as GenePT."""
    meta = getattr(space, "meta", None)
    if not isinstance(meta, dict) or not meta.get("classes"):
        return []
    names = [str(n) for n in meta["classes"]]
    saved = meta.get("class_ids")
    ids = [str(t) for t in saved] if isinstance(saved, list) and len(saved) == len(names) else [""] * len(names)
    missing = [i for i, t in enumerate(ids) if not t]
    for i, found in zip(missing, resolve_terms([names[i] for i in missing])):
        ids[i] = found
    return [(n, t) for n, t in zip(names, ids) if t.startswith("CL:")]


def label_similarities(
    space: Any,
    cells: np.ndarray,
    groups: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    prompts_of: Any,
    term_ids: Sequence[str] | None = None,
    hierarchy: bool = True,
) -> LabelSimilarities:
    """Similarities of ``cells`` (the space's cell vectors; products with the unit label vectors, so
    cosines when the cell vectors have unit length) to ``labels`` whose prompt lists are ``groups``.

    ``prompts_of(names)`` gives the prompt lists of the expansion classes (the same rule as the labels').
    ``term_ids`` are the labels' Cell Ontology ids ('' for none; default: read from the labels by
    :func:`mmgene.query.terms.label_terms`). With ``hierarchy=False`` no label is expanded and the
    relations are left empty. An ensemble's members are scored too, each on its own part of ``cells``
    (``space.member_vectors``), into ``members``.
    """
    scored = _one_space(space, cells, groups, labels, prompts_of=prompts_of, term_ids=term_ids, hierarchy=hierarchy)
    split = getattr(space, "member_vectors", None)
    if split is None or not len(scored.similarities):
        return scored
    ids = scored.hierarchy.term_ids if hierarchy else term_ids
    scored.members = np.stack([
        _one_space(member, part, groups, labels, prompts_of=prompts_of, term_ids=ids, hierarchy=hierarchy).similarities
        for member, part in zip(space.members, split(cells))
    ])
    return scored


def _one_space(
    space: Any, cells: np.ndarray, groups: Sequence[Sequence[str]], labels: Sequence[str], *, prompts_of: Any,
    term_ids: Sequence[str] | None, hierarchy: bool,
) -> LabelSimilarities:
    """:func:`label_similarities` in one joint space."""
    vecs = class_vectors(space.encode_text, groups)
    cells = np.asarray(cells)
    if cells.shape[1] != vecs.shape[1]:
        raise ParameterError(
            f"cell vectors have dimension {cells.shape[1]} but text vectors {vecs.shape[1]}", "annotate", "use one joint space for both"
        )
    sims = cells @ vecs.T
    if not hierarchy:
        return LabelSimilarities(sims, LabelHierarchy.of(labels, [""] * len(labels)), [[] for _ in labels], [list(g) for g in groups])
    tree = LabelHierarchy.of(labels, label_terms(labels, term_ids))
    expanded = expansions(tree, space_vocabulary(space))
    names = sorted({n for group in expanded for n in group})
    if names and len(cells):
        extra = cells @ class_vectors(space.encode_text, prompts_of(names)).T
        column = {n: k for k, n in enumerate(names)}
        for i, group in enumerate(expanded):
            if group:
                sims[:, i] = np.maximum(sims[:, i], extra[:, [column[n] for n in group]].max(axis=1))
    return LabelSimilarities(sims, tree, expanded, [list(g) for g in groups])
