"""Cells that none of the asked labels fits: a class the model learnt, outside the question, is nearer.

Why: the standardised scores of :func:`mmgene.query.annotate` say which asked label a cell is *most*
like, so a B cell asked about T and NK cells still scores high for one of them. A model trained on
labelled classes knows more types than a question names. When a cell's cosine similarity to one of
those *other* classes beats its similarity to every asked label by more than a margin, the cell is
none of the asked labels. Both similarities use the same prompt ensembles.

The other classes are the model's training classes with a Cell Ontology id
(:func:`mmgene.query.scoring.space_vocabulary`: the ids saved with the model, else found by name).
Left out are those that are an asked label (by id or cleaned name), or lie above or below an asked
label's term (by is_a):

- a class below a label answers for it (a "T cell" question covers the CD8 T cells the model knows);
- a class above a label ("leukocyte") would beat every label.

A class without an id is never an other class, because nothing says whether it lies below an asked
label. Corpus models, and models trained on one AnnData with an ``ontology_col``, save their classes'
ids; otherwise a class has an id only when its name is a Cell Ontology name or synonym ("B cell", not
"CD19+ B"). A model without such classes (GenePT, for one) has no other classes, and then the rule does
nothing.

The margin :data:`mmgene.query.config.OTHERS_MARGIN` was chosen by leaving datasets out
(docs/benchmarks.md, "Cells of no asked type"). It maximised the mean over the eight shared datasets
of (share of a left-out class's cells rejected) - (share of the other cells rejected), when each
dataset's classes were offered all but one. Six of the eight folds choose it when their own dataset is left out of the choice (the other
two choose 0.01).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmgene.query.config import OTHERS_MARGIN


@dataclass
class NearestOther:
    """Per cell: how far its best asked label trails its nearest other class, and which class that is."""

    classes: list[str]
    lead: np.ndarray
    nearest: np.ndarray

    def rejects(self, margin: float = OTHERS_MARGIN) -> np.ndarray:
        """Cells whose nearest other class beats every asked label by more than ``margin``."""
        return self.lead > margin


def other_classes(vocabulary: Sequence[tuple[str, str]], labels: Sequence[str], term_ids: Sequence[str]) -> list[str]:
    """Names of the ``(name, term id)`` training classes that are none of ``labels`` (by cleaned name or
    id) and lie neither above nor below any label's term. A label that is a class by name has that class's
    id as a term too: the model's own class names ("Tcm/Naive helper T cells") often resolve to no term by name."""
    from mmgene.text.labels import clean_label
    from mmgene.text.ontology import term_ancestors

    names = {clean_label(label).lower() for label in labels}
    named = [term for name, term in vocabulary if term and clean_label(name).lower() in names]
    asked = list(dict.fromkeys([*(t for t in term_ids if t), *named]))
    above = set().union(*(term_ancestors(t) for t in asked)) if asked else set()
    out: list[str] = []
    for name, term in vocabulary:
        if clean_label(name).lower() in names or term in asked or term in above or any(a in term_ancestors(term) for a in asked):
            continue
        if name not in out:
            out.append(name)
    return out


def nearest_other(
    space: Any,
    cells: np.ndarray,
    similarities: np.ndarray,
    classes: Sequence[str],
    prompts_of: Callable[[Sequence[str]], list[list[str]]],
) -> NearestOther:
    """Compare each cell's best label similarity (``similarities``, cells x labels) with its best
    similarity to the other ``classes``, whose prompts are ``prompts_of(classes)``."""
    from mmgene.text.classes import class_vectors

    n = len(similarities)
    if not classes or not n:
        return NearestOther(list(classes), np.full(n, -np.inf), np.full(n, "", dtype=object))
    other = np.asarray(cells) @ class_vectors(space.encode_text, prompts_of(list(classes))).T
    best = other.argmax(axis=1)
    lead = other[np.arange(n), best] - np.asarray(similarities).max(axis=1)
    return NearestOther(list(classes), lead.astype(np.float64), np.asarray(classes, dtype=object)[best])


def nearest_other_for(
    space: Any,
    cells: np.ndarray,
    similarities: np.ndarray,
    labels: Sequence[str],
    term_ids: Sequence[str],
    prompts_of: Callable[[Sequence[str]], list[list[str]]],
) -> NearestOther:
    """:func:`nearest_other` over the space's training classes that are others to ``labels`` (with
    Cell Ontology ids ``term_ids``; see :func:`other_classes`)."""
    from mmgene.query.scoring import space_vocabulary

    classes = other_classes(space_vocabulary(space), labels, term_ids)
    return nearest_other(space, cells, similarities, classes, prompts_of)
