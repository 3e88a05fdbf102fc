"""Cells whose label the corpus's other datasets contradict, so that training can leave them out.

Author labels are not all equally good: some datasets were labelled cell by cell against sorted bulk
profiles, some by clusters, and a label's boundary moves from one dataset to the next. A class trained
on such cells teaches the model another dataset's boundary. Each dataset is judged by the others:

- a logistic regression is fitted on the other datasets of the same species (Cell Ontology ids as
  classes, datasets weighed equally, classes balanced), over the judged dataset's 2,000 most variable
  genes among those it shares with at least two of them, each gene standardised within its own dataset (so a dataset's depth or gene panel is
  not read as a class; a gene a dataset lacks is 0 there);
- for a cell labelled ``t`` its probabilities are summed over the classes that can be ``t`` (the same
  term, an ancestor, a descendant or a term with a common descendant: :func:`terms_overlap`), and over the
  classes that can only be one of the dataset's *other* labels;
- the cell is contradicted when the second sum is larger: the other datasets call it another of the types
  its own dataset names.

A label is judged only when some class of the others can be it and none of the dataset's other labels
(a mouse lung's "neutrophil", which the others know only as "leukocyte", is not judged), and a dataset
only by others of its species (a mouse NK cell looks more like a human T cell than like a human NK cell
to a linear model over shared symbols).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.progress import info

#: genes the regression reads: the judged dataset's most variable shared genes (scanpy's customary count)
TOP_GENES = 2000


def _standardised(block: Any, ds: Any, genes: Sequence[str]) -> np.ndarray:
    """Cells x genes of ``ds``'s log-normalised ``block``, each gene standardised over the dataset's cells
    (0 for a gene the dataset lacks), clipped at 10 standard deviations."""
    from mmgene.corpus.expression import pick_genes

    dense = pick_genes(block, ds, genes).toarray()
    dense -= dense.mean(axis=0)
    dense /= dense.std(axis=0) + 1e-3
    dense[:, ~np.isin(np.asarray(genes), ds.symbols)] = 0.0
    return np.clip(dense, -10.0, 10.0, out=dense)


def _shared_genes(block: Any, ds: Any, others: Sequence[Any], limit: int = TOP_GENES) -> list[str]:
    """The ``limit`` genes of ``ds`` most variable in it (its log-normalised ``block``) among those that at
    least two of ``others`` have (all of them when there are fewer)."""
    from mmgene.corpus.expression import pick_genes

    need = min(2, len(others))
    counts: dict[str, int] = {}
    for other in others:
        for gene in set(other.symbols.tolist()) - {""}:
            counts[gene] = counts.get(gene, 0) + 1
    shared = sorted(g for g in set(ds.symbols.tolist()) - {""} if counts.get(g, 0) >= need)
    if len(shared) <= limit:
        return shared
    picked = pick_genes(block, ds, shared)
    variance = np.asarray(picked.power(2).mean(axis=0)).ravel() - np.asarray(picked.mean(axis=0)).ravel() ** 2
    return sorted(shared[i] for i in np.argsort(-variance, kind="stable")[:limit])


def _judge(ds: Any, others: Sequence[Any], blocks: _Blocks) -> np.ndarray:
    """Booleans over ``ds``'s kept cells: True where ``others`` contradict the cell's label."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros(ds.n_cells, dtype=bool)
    own = np.asarray(ds.ontology_ids, dtype=object)
    labels = sorted(set(own.tolist()) - {""})
    references = np.concatenate([np.asarray(o.ontology_ids, dtype=object) for o in others])
    fit = references != ""
    classes = sorted(set(references[fit].tolist()))
    judged = {label: _sides(label, labels, classes) for label in labels}
    judged = {label: sides for label, sides in judged.items() if sides is not None}
    genes = _shared_genes(blocks[ds], ds, others) if judged and len(classes) >= 2 else []
    if len(genes) < 2:
        return out
    weights = np.concatenate([np.full(o.n_cells, 1.0 / o.n_cells) for o in others])[fit]
    stacked = np.vstack([_standardised(blocks[o], o, genes) for o in others])
    if not fit.all():
        stacked = stacked[fit]
    model = LogisticRegression(max_iter=200, class_weight="balanced")
    model.fit(stacked, references[fit], sample_weight=weights * len(weights) / weights.sum())
    proba = model.predict_proba(_standardised(blocks[ds], ds, genes))  # columns in sorted class order, as ``classes``
    for label, (can_be, only_rival) in judged.items():
        cells = np.flatnonzero(own == label)
        out[cells] = proba[np.ix_(cells, only_rival)].sum(axis=1) > proba[np.ix_(cells, can_be)].sum(axis=1)
    return out


class _Blocks:
    """Each dataset's log-normalised matrix, made on first use and kept, so that a dataset that judges
    several others is normalised once."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}

    def __getitem__(self, ds: Any) -> Any:
        from mmgene.corpus.expression import log_normalised

        if ds.name not in self._made:
            self._made[ds.name] = log_normalised(ds)
        return self._made[ds.name]


def _sides(label: str, labels: Sequence[str], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices of ``classes`` that can be ``label``, and of those that can only be one of the dataset's
    other ``labels``; None when no class can be ``label`` without also being another label (not judged)."""
    from mmgene.text.ontology import terms_overlap

    rivals = [u for u in labels if u != label and not terms_overlap(u, label)]
    can_be = np.array([terms_overlap(c, label) for c in classes])
    can_be_rival = np.array([any(terms_overlap(c, u) for u in rivals) for c in classes])
    if not (can_be & ~can_be_rival).any():
        return None
    return np.flatnonzero(can_be), np.flatnonzero(can_be_rival & ~can_be)


def contradicted_cells(corpus: Any) -> dict[str, np.ndarray]:
    """For each dataset of ``corpus``, booleans over its kept cells: True where the other datasets of its
    species contradict the cell's Cell Ontology label (the module's rule). A dataset with no other of its
    species, or without ontology ids, has none."""
    out: dict[str, np.ndarray] = {}
    blocks = _Blocks()
    for ds in corpus:
        others = [o for o in corpus if o.name != ds.name and o.species == ds.species]
        out[ds.name] = _judge(ds, others, blocks) if others else np.zeros(ds.n_cells, dtype=bool)
        if out[ds.name].any():
            info(f"{int(out[ds.name].sum())} of {ds.n_cells} cells of {ds.name!r} contradicted by the other datasets")
    return out
