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

The cost is bounded for an atlas-sized corpus (:class:`ConsensusConfig`): one regression reads at most
``reference_cells`` cells, split equally among the datasets it learns from (a larger dataset gives one
seeded sample that keeps every class, the same for every regression); with more than ``max_groups`` (100)
datasets of a species they are judged in that many groups, each by the datasets of the other groups (one
regression per group, over each member's most variable genes in turn); and cells are read, normalised and judged
``chunk_cells`` at a time, so no dataset is held normalised or dense as a whole and a corpus on disk
(``CorpusOptions(backed=True)``, for streamed training) is read three times at most. Under these limits
(the shared corpus is) every cell of every other dataset is read, one regression per dataset. Under a
launcher the regressions are shared out among the ranks and every rank gets every verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmgene.progress import info


@dataclass(frozen=True)
class ConsensusConfig:
    """How much the consensus reads and holds at once; see the module docstring."""

    #: genes one regression reads: its judged datasets' most variable shared genes (scanpy's customary count)
    top_genes: int = 2000
    #: training cells of one regression at most, split equally among the datasets it learns from
    reference_cells: int = 20_000
    #: regressions per species at most; more datasets are judged in this many groups (a group's regression
    #: reads the union of its members' genes, so a member with fewer genes is judged on some it lacks)
    max_groups: int = 100
    #: cells normalised, standardised and judged at a time
    chunk_cells: int = 10_000
    #: seed of the reference samples
    seed: int = 0

    def __post_init__(self) -> None:
        from mmgene.config import check_whole

        for name, minimum in (("top_genes", 2), ("reference_cells", 1), ("max_groups", 2), ("chunk_cells", 1), ("seed", 0)):
            check_whole(getattr(self, name), name, f"ConsensusConfig.{name}", minimum=minimum)


@dataclass(frozen=True)
class _GeneStats:
    """A dataset's log-normalised mean and standard deviation per own gene, over all its kept cells."""

    mean: np.ndarray
    std: np.ndarray
    #: the dataset's human symbol per gene (``""`` for none; unique otherwise)
    symbols: np.ndarray

    def columns(self, genes: Sequence[str]) -> np.ndarray:
        """Positions of ``genes`` among the dataset's genes, -1 for a gene it lacks."""
        import pandas as pd

        named = np.flatnonzero(self.symbols != "")
        found = pd.Index(self.symbols[named]).get_indexer(list(genes))
        return np.where(found >= 0, named[found], -1)


def _chunks(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def _gene_stats(ds: Any, chunk_cells: int) -> _GeneStats:
    from mmgene.corpus.expression import log_normalised

    total = np.zeros(len(ds.symbols))
    squares = np.zeros(len(ds.symbols))
    for cells in _chunks(ds.n_cells, chunk_cells):
        block = log_normalised(ds, cells, chunk_cells).astype(np.float64)
        total += np.asarray(block.sum(axis=0)).ravel()
        squares += np.asarray(block.multiply(block).sum(axis=0)).ravel()
    mean = total / max(ds.n_cells, 1)
    std = np.sqrt(np.maximum(squares / max(ds.n_cells, 1) - mean**2, 0.0))
    return _GeneStats(mean, std, np.asarray(ds.symbols, dtype=object))


class _Reads:
    """What the consensus reads of the datasets of one species, made on first use and kept, so that each
    dataset is read three times at most: its gene statistics (one pass), its reference sample (the positions
    of the kept cells a regression learns from, and their log-normalised rows) and, when judged, its cells;
    ``having`` counts the species' datasets that have each gene."""

    def __init__(self, config: ConsensusConfig, quota: int, having: Counter[str]) -> None:
        self.config, self.quota, self.having = config, quota, having
        self._stats: dict[str, _GeneStats] = {}
        self._samples: dict[str, tuple[np.ndarray, Any]] = {}

    def stats(self, ds: Any) -> _GeneStats:
        if ds.name not in self._stats:
            self._stats[ds.name] = _gene_stats(ds, self.config.chunk_cells)
        return self._stats[ds.name]

    def sample(self, ds: Any) -> tuple[np.ndarray, Any]:
        from mmgene.corpus.expression import log_normalised

        if ds.name not in self._samples:
            rng = np.random.default_rng([self.config.seed, *ds.name.encode()])
            rows = balanced_sample(np.asarray(ds.ontology_ids, dtype=object), self.quota, rng)
            self._samples[ds.name] = rows, log_normalised(ds, rows, self.config.chunk_cells)
        return self._samples[ds.name]


def _standardised(block: Any, ds: Any, genes: Sequence[str], stats: _GeneStats) -> np.ndarray:
    """Cells x genes of ``block`` (log-normalised rows of ``ds``), each gene standardised over all the
    dataset's cells (0 for a gene the dataset lacks), clipped at 10 standard deviations."""
    from mmgene.corpus.expression import pick_genes

    dense = pick_genes(block, ds, genes).toarray()
    cols = stats.columns(genes)
    present = cols >= 0
    dense[:, present] -= stats.mean[cols[present]].astype(np.float32)
    dense[:, present] /= (stats.std[cols[present]] + 1e-3).astype(np.float32)
    dense[:, ~present] = 0.0
    return np.clip(dense, -10.0, 10.0, out=dense)


def balanced_sample(labels: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of at most ``quota`` of ``labels``: all of them when they fit, else every label
    keeps up to an equal share (water-filling: a label smaller than the share gives all its cells and its
    spare share goes to the others; what the share leaves over goes to the largest labels first)."""
    labels = np.asarray(labels, dtype=object)
    if len(labels) <= quota:
        return np.arange(len(labels))
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    low, high = 0, int(counts.max())  # the largest share whose takes fit the quota, by bisection
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(counts, mid).sum() <= quota else (low, mid - 1)
    share = low
    take = np.minimum(counts, share)
    spare = quota - int(take.sum())
    for i in np.argsort(-counts, kind="stable"):
        if spare == 0:
            break
        if take[i] < counts[i]:
            take[i] += 1
            spare -= 1
    picked = [rng.choice(np.flatnonzero(inverse == i), size=int(take[i]), replace=False) for i in range(len(names))]
    return np.sort(np.concatenate(picked))


def _shared_genes(group: Sequence[Any], others: Sequence[Any], reads: _Reads, limit: int, counts: Counter[str]) -> list[str]:
    """Up to ``limit`` genes among those that at least two of ``others`` have (``counts``: how many of
    them have each gene; all of them when fewer than two others): each
    dataset of ``group``'s most variable genes, taken in turn (its first, then their second, ...), so that
    each judged dataset is read on its own variable genes, not on a pancreas's beside a blood sample's."""
    need = min(2, len(others))
    own = set().union(*(_gene_set(ds) for ds in group))
    shared = sorted(g for g in own if counts[g] >= need)
    if len(shared) <= limit:
        return shared
    rankings = []
    for ds in group:
        stats = reads.stats(ds)
        cols = stats.columns(shared)
        present = np.flatnonzero(cols >= 0)
        rankings.append(present[np.argsort(-stats.std[cols[present]] ** 2, kind="stable")])
    picked: dict[int, None] = {}
    for rank in range(max(len(r) for r in rankings)):
        if len(picked) >= limit:
            break
        for ranking in rankings:
            if rank < len(ranking) and len(picked) < limit:
                picked.setdefault(int(ranking[rank]), None)
    return sorted(shared[i] for i in picked)


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


def _gene_set(ds: Any) -> set[str]:
    return set(ds.symbols.tolist()) - {""}


def _judge_group(group: Sequence[Any], others: Sequence[Any], reads: _Reads) -> dict[str, np.ndarray]:
    """Per dataset of ``group``, booleans over its kept cells: True where ``others`` contradict the label."""
    from sklearn.linear_model import LogisticRegression

    from mmgene.corpus.expression import log_normalised

    config = reads.config
    out = {ds.name: np.zeros(ds.n_cells, dtype=bool) for ds in group}
    rows = [reads.sample(o)[0] for o in others]
    references = np.concatenate([np.asarray(o.ontology_ids, dtype=object)[r] for o, r in zip(others, rows)])
    fit = references != ""
    classes = sorted(set(references[fit].tolist()))
    judged: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for ds in group:
        labels = sorted(set(np.asarray(ds.ontology_ids, dtype=object).tolist()) - {""})
        sides = {label: _sides(label, labels, classes) for label in labels}
        judged[ds.name] = {label: s for label, s in sides.items() if s is not None}
    if not any(judged.values()) or len(classes) < 2:
        return out
    counts = reads.having.copy()  # the datasets of the species that have each gene, less the group's own
    counts.subtract(gene for ds in group for gene in _gene_set(ds))
    genes = _shared_genes([ds for ds in group if judged[ds.name]], others, reads, config.top_genes, counts)
    if len(genes) < 2:
        return out
    weights = _dataset_weights([len(r) for r in rows], fit)
    stacked = np.vstack([_standardised(reads.sample(o)[1], o, genes, reads.stats(o)) for o in others])
    if not fit.all():
        stacked = stacked[fit]
    model = LogisticRegression(max_iter=200, class_weight="balanced")
    model.fit(stacked, references[fit], sample_weight=weights * len(weights) / weights.sum())
    del stacked
    for ds in group:
        own = np.asarray(ds.ontology_ids, dtype=object)
        for cells in _chunks(ds.n_cells, config.chunk_cells) if judged[ds.name] else ():
            block = log_normalised(ds, cells, config.chunk_cells)
            proba = model.predict_proba(_standardised(block, ds, genes, reads.stats(ds)))  # columns in sorted class order
            for label, (can_be, only_rival) in judged[ds.name].items():
                at = np.flatnonzero(own[cells] == label)
                out[ds.name][cells[at]] = proba[np.ix_(at, only_rival)].sum(axis=1) > proba[np.ix_(at, can_be)].sum(axis=1)
    return out


def _dataset_weights(sizes: Sequence[int], fit: np.ndarray) -> np.ndarray:
    """A weight per fitted row (``fit``: the rows with an ontology id, of samples of ``sizes`` one after the
    other) that gives every dataset the same total: its cells without an id take no share of it."""
    owner = np.repeat(np.arange(len(sizes)), sizes)[fit]
    return 1.0 / np.bincount(owner, minlength=len(sizes))[owner]


def _groups(datasets: Sequence[Any], max_groups: int) -> list[list[Any]]:
    """One group per dataset, or ``max_groups`` groups dealt round by name when there are more."""
    ordered = sorted(datasets, key=lambda ds: ds.name)
    if len(ordered) <= max_groups:
        return [[ds] for ds in ordered]
    return [ordered[i :: max_groups] for i in range(max_groups)]


def contradicted_cells(corpus: Any, config: ConsensusConfig | None = None) -> dict[str, np.ndarray]:
    """For each dataset of ``corpus``, booleans over its kept cells: True where the other datasets of its
    species contradict the cell's Cell Ontology label (the module's rule). A dataset with no other of its
    species, or without ontology ids, has none.

    Under a launcher (``torchrun``) call it on every rank: the groups are dealt out to the ranks
    (:func:`mmgene.distributed.my_share`), each judges its own, and every rank gets all the verdicts, so the
    ranks leave out the same cells without one rank judging while the others wait."""
    from mmgene import distributed

    config = config or ConsensusConfig()
    found: dict[str, np.ndarray] = {ds.name: np.zeros(ds.n_cells, dtype=bool) for ds in corpus}
    jobs: list[tuple[str, list[Any], list[Any]]] = []  # (species, group, the species' datasets), every rank alike
    for species in dict.fromkeys(ds.species for ds in corpus):
        members = [ds for ds in corpus if ds.species == species]
        if len(members) >= 2:
            jobs += [(species, group, members) for group in _groups(members, config.max_groups)]
    reads: dict[str, _Reads] = {}  # per species, made on this rank's first group of it
    mine: dict[str, list[int]] = {}
    for species, group, members in distributed.my_share(jobs):
        if species not in reads:
            # one sample per dataset, sized for the regression that learns from the most datasets
            smallest = min(len(g) for s, g, _ in jobs if s == species)
            having = Counter(gene for ds in members for gene in _gene_set(ds))  # counted once, not once per group
            reads[species] = _Reads(config, max(config.reference_cells // (len(members) - smallest), 1), having)
        names = {ds.name for ds in group}
        judged = _judge_group(group, [o for o in members if o.name not in names], reads[species])
        mine.update({name: np.flatnonzero(cells).tolist() for name, cells in judged.items()})
    for verdicts in distributed.gather_objects(mine):
        for name, positions in verdicts.items():
            found[name][positions] = True
    out = {ds.name: found[ds.name] for ds in corpus}
    for ds in corpus:
        if out[ds.name].any():
            info(f"{int(out[ds.name].sum())} of {ds.n_cells} cells of {ds.name!r} contradicted by the other datasets")
    return out
