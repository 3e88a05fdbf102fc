"""Build (cell, caption[, negative], label) training examples from an AnnData: ``datasets`` splits plus their classes.

Columns, in the order the loss reads them:

``cell``
    the omics input (see :func:`mmgene.cells.inputs.cell_inputs`): gene symbols and expression
    values, and any obsm representations asked for;
``caption``
    text describing the cell (name, ontology text or marker genes, see :mod:`mmgene.text.captions`);
``negative``
    (``negatives=True``) a caption of a *different* class, drawn with the seed;
``label``
    the class id (index into the result's ``classes``), used to keep same-class pairs out of the
    contrastive negatives;
``negative_label``
    (``negatives=True``) the class id of ``negative``: another row's negative that describes a cell's
    own class is kept out of that cell's negatives;
``obs_name``
    the cell's name in ``adata.obs_names`` (dropped before training).

The split never leaks a group (see :func:`mmgene.pairs.splits.split_cells`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgene.errors import ParameterError
from mmgene.io import expression, obs_column
from mmgene.io.expression import DEFAULT_CHUNK
from mmgene.io.labels import require_classes, require_distinct_names, usable_labels
from mmgene.text.labels import label_text
from mmgene.text.captions import ClassText, class_text, marker_caption
from mmgene.text.origin import Origin
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.result import TrainingPairs
from mmgene.pairs.splits import split_cells
from mmgene.progress import info

def _classes(
    adata: Any, label_cols: Sequence[str], ontology_col: str | None, origin: Origin
) -> tuple[np.ndarray, list[ClassText], int]:
    """Per-cell class ids (classes keyed by the first label column), per-class text, and how many
    cells have no label there (class id -1: left out of both splits, never a class "nan"; also a cell
    whose ontology id is CELLxGENE's ``unknown``). Two labels that differ only in case or blanks are a
    :class:`~mmgene.errors.LabelError`, as in evaluation: as two classes, their identical captions would
    be each other's contrastive negatives.

    A class's Cell Ontology id (``ontology_col``) is the one most of its cells carry (ties: the first
    in sorted order); cells without an id do not vote.

    Fewer than two classes is a :class:`~mmgene.errors.LabelError`: contrastive pairs need another
    class to contrast with. Missing values in the other columns just give no name.
    """
    where, task = f"obs[{label_cols[0]!r}]", "making training pairs"
    onto = label_text(obs_column(adata, ontology_col)) if ontology_col else None
    keep, first, n_dropped = usable_labels(obs_column(adata, label_cols[0]), where, task, min_classes=False)
    if onto is not None:
        keep, first, n_dropped = _drop_untyped(keep, first, n_dropped, onto, ontology_col)
    require_distinct_names(first, where, task)
    require_classes(first, where, task, n_dropped)
    others = [label_text(obs_column(adata, c)) for c in label_cols[1:]]
    names, first_pos, kept_codes = np.unique(first, return_index=True, return_inverse=True)
    rows = np.flatnonzero(keep)
    codes = np.full(len(keep), -1, np.int64)
    codes[rows] = kept_codes
    majority = majority_terms(first, onto[rows]) if onto is not None else {}
    ids = [majority.get(name, "") for name in names]
    texts = []
    for name, pos, term_id in zip(names, first_pos, ids):
        i = int(rows[pos])
        values = [name] + [col[i] for col in others]
        texts.append(class_text(values, term_id or None, origin))
    return codes, texts, n_dropped


def _drop_untyped(
    keep: np.ndarray, labels: np.ndarray, n_dropped: int, onto: np.ndarray, ontology_col: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """``keep``, ``labels`` (of the kept cells) and the count of cells without a label, once the cells whose
    Cell Ontology id is CELLxGENE's ``unknown`` (a cell its authors did not type) are left out, as
    :func:`mmgene.corpus.read_corpus` leaves them out (reported on stderr)."""
    from mmgene.corpus.corpus import UNANNOTATED_ID

    untyped = keep & (onto == UNANNOTATED_ID)
    if not untyped.any():
        return keep, labels, n_dropped
    info(
        f"making training pairs: dropped {int(untyped.sum()):,} of {len(keep):,} cells whose obs[{ontology_col!r}] is "
        f"{UNANNOTATED_ID!r} (CELLxGENE's id for a cell its authors did not type)"
    )
    return keep & ~untyped, labels[~untyped[keep]], n_dropped + int(untyped.sum())


def majority_terms(labels: np.ndarray, ids: np.ndarray) -> dict[str, str]:
    """Per label, the Cell Ontology id most of its cells carry (ties: the first in sorted order);
    cells without an id ("") do not vote, and a label none of whose cells has one is left out."""
    import pandas as pd

    frame = pd.DataFrame({"label": np.asarray(labels, dtype=object), "id": np.asarray(ids, dtype=object)})
    counts = frame[frame["id"] != ""].groupby(["label", "id"]).size().reset_index(name="n")
    counts = counts.sort_values(["label", "n", "id"], ascending=[True, False, True], kind="stable")
    return {str(k): str(v) for k, v in counts.drop_duplicates("label").set_index("label")["id"].items()}


class GeneMoments:
    """Per-gene sum and sum of squares of log1p(CP10k) expression over chosen cells: the mean that a
    cell's marker genes are measured against, and the variance that ranks variable genes.

    Rows are summed in float32 within each block of :data:`~mmgene.io.expression.DEFAULT_CHUNK` rows
    (in row order, as SciPy sums a block) and blocks in float64, so the sums are the same, bit for bit,
    whether a block's rows come at once or in smaller reads (streamed training reads its own chunks).
    """

    def __init__(self, n_genes: int) -> None:
        self.total = np.zeros(n_genes)
        self.total_sq = np.zeros(n_genes)
        self.n = 0
        self._block = -1
        self._part = np.zeros(n_genes, np.float32)
        self._part_sq = np.zeros(n_genes, np.float32)

    def add(self, rows: np.ndarray, block: sp.csr_matrix) -> None:
        """Add log-normalised ``block`` whose rows are the dataset's rows ``rows`` (increasing, and
        after every row added before)."""
        blocks = np.asarray(rows, dtype=np.int64) // DEFAULT_CHUNK
        for b in np.unique(blocks):
            if b != self._block:
                self._flush()
                self._block = int(b)
            part = block[np.flatnonzero(blocks == b)] if len(blocks) and blocks[0] != blocks[-1] else block
            np.add.at(self._part, part.indices, part.data)
            np.add.at(self._part_sq, part.indices, part.data * part.data)
            self.n += part.shape[0]

    def _flush(self) -> None:
        self.total += self._part
        self.total_sq += self._part_sq
        self._part[:] = 0
        self._part_sq[:] = 0

    def finish(self) -> GeneMoments:
        """Close the last block (call once every row is added)."""
        self._flush()
        self._block = -1
        return self

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(1, self.n)

    def ranked(self, symbols: np.ndarray) -> list[str]:
        """Gene symbols by decreasing variance (genes without variance or symbol left out)."""
        n = max(1, self.n)
        var = self.total_sq / n - (self.total / n) ** 2
        order = np.argsort(-var, kind="stable")
        return [str(symbols[g]) for g in order if var[g] > 0 and symbols[g]]


def gene_moments(adata: Any, rows: np.ndarray) -> GeneMoments:
    """:class:`GeneMoments` of ``rows`` of ``adata`` (one chunked pass, vectorised and sparse)."""
    view = expression(adata)
    moments = GeneMoments(view.shape[1])
    want = np.zeros(view.shape[0], dtype=bool)
    want[rows] = True
    for start, stop, block in view.chunks():
        sel = np.flatnonzero(want[start:stop])
        if sel.size:
            moments.add(start + sel, view.log_normalise(block[sel], dtype=np.float32))
    return moments.finish()


def excess_top(view: Any, block: sp.csr_matrix, mean: np.ndarray, k: int = 8) -> sp.csr_matrix:
    """Each row of ``block`` (raw rows of ``view``'s matrix) kept to its ``k`` genes most above ``mean``
    (log1p(CP10k) expression; positive excess only), highest first: :func:`mmgene.cells.inputs.top_genes`."""
    from mmgene.cells.inputs import top_genes

    block = view.log_normalise(block, dtype=np.float32)
    block.data = (block.data - mean[block.indices]).astype(np.float32)
    block.data[block.data < 0] = 0
    block.eliminate_zeros()
    return top_genes(sp.csr_matrix(block), k)


def excess_genes(view: Any, block: sp.csr_matrix, mean: np.ndarray, symbols: np.ndarray, k: int = 8) -> list[list[str]]:
    """For each row of ``block`` (raw rows of ``view``'s matrix), the ``k`` genes most above ``mean``
    (log1p(CP10k) expression; only expressed genes with a positive excess and a symbol)."""
    top = excess_top(view, block, mean, k)
    out = []
    for j in range(block.shape[0]):
        lo, hi = top.indptr[j], top.indptr[j + 1]
        order = np.argsort(-top.data[lo:hi], kind="stable")
        out.append([str(symbols[g]) for g in top.indices[lo:hi][order] if symbols[g]])
    return out


def specific_genes(adata: Any, rows: np.ndarray, reference: np.ndarray, k: int = 8, *, mean: np.ndarray | None = None) -> list[list[str]]:
    """For each cell in ``rows``, the ``k`` genes most above their mean over ``reference`` cells
    (:func:`excess_genes`; ``mean``: that mean when already known). Vectorised per chunk."""
    view = expression(adata)
    symbols = view.symbols()
    if mean is None:
        mean = gene_moments(adata, reference).mean
    want = np.zeros(view.shape[0], dtype=bool)
    want[rows] = True
    out: dict[int, list[str]] = {}
    for start, stop, block in view.chunks():
        sel = np.flatnonzero(want[start:stop])
        if sel.size:
            out.update(zip((start + sel).tolist(), excess_genes(view, block[sel], mean, symbols, k)))
    return [out.get(int(r), []) for r in rows]


def marker_counts(adata: Any, k: int = 8) -> dict[str, int]:
    """How many of ``adata``'s cells each gene symbol marks, a cell's markers being its ``k`` genes most
    above the mean over all cells (:func:`excess_top`): ``count_markers(specific_genes(...))`` over every
    cell, counted per chunk without a list per cell."""
    view = expression(adata)
    symbols = view.symbols()
    mean = gene_moments(adata, np.arange(view.shape[0])).mean
    per_gene = np.zeros(view.shape[1], dtype=np.int64)
    for _, _, block in view.chunks():
        per_gene += np.bincount(excess_top(view, block, mean, k).indices, minlength=view.shape[1])
    freq: dict[str, int] = {}
    for g in np.flatnonzero(per_gene):
        if symbols[g]:
            freq[str(symbols[g])] = freq.get(str(symbols[g]), 0) + int(per_gene[g])
    return freq


def variable_genes(adata: Any, rows: np.ndarray) -> list[str]:
    """Gene symbols by decreasing variance of log1p(CP10k) expression over ``rows`` (vectorised, sparse)."""
    return gene_moments(adata, rows).ranked(expression(adata).symbols())


@dataclass
class PairPlan:
    """What :func:`make_pairs` decides from ``obs`` alone: each cell's class, the classes' text and the split."""

    #: class id of every cell (-1: no label); an index into ``texts``.
    codes: np.ndarray
    texts: list[ClassText]
    unlabelled: int
    #: sorted rows of the training and test cells.
    train: np.ndarray
    test: np.ndarray
    label_col: str

    @property
    def class_names(self) -> list[str]:
        return [t.label for t in self.texts]


def plan_pairs(adata: Any, label_cols: str | Sequence[str], *, ontology_col: str | None, config: PairsConfig, seed: int) -> PairPlan:
    """Classes and the split of :func:`make_pairs` (reads ``obs`` only, so a backed file costs no matrix read)."""
    label_cols = [label_cols] if isinstance(label_cols, str) else list(label_cols)
    if not label_cols:
        raise ParameterError("no label column given", "argument label_cols", "pass e.g. label_cols='cell_type'")
    codes, texts, unlabelled = _classes(adata, label_cols, ontology_col, config.origin)
    class_names = [t.label for t in texts]
    unknown = sorted(set(map(str, config.exclude_labels)) - set(class_names))
    if unknown:
        raise ParameterError(
            f"exclude_labels names classes that do not exist: {unknown}",
            f"obs[{label_cols[0]!r}]",
            f"choose from {class_names}",
        )
    train, test = split_cells(adata, test_size=config.test_size, seed=seed, group_col=config.group_col)
    train, test = train[codes[train] >= 0], test[codes[test] >= 0]  # cells without a label take no part
    excluded = np.isin(np.asarray(class_names, dtype=object)[codes[train]], list(map(str, config.exclude_labels)))
    train = train[~excluded]
    if train.size == 0:
        raise ParameterError("no cell is left for training", "arguments exclude_labels/test_size", "exclude fewer classes")
    return PairPlan(codes, texts, unlabelled, train, test, label_cols[0])


class RowDrawer:
    """Draws the rows of :func:`make_pairs` (captions, panel choice, negatives) cell after cell from one
    generator seeded with ``seed``: the training cells in order, then the test cells. A row's ``cell``
    is a variant number, -1 for the cell's own input or ``p`` for its input restricted to panel ``p``;
    ``index`` is the cell's row. Streamed training replays it chunk by chunk from saved generator states."""

    def __init__(self, plan: PairPlan, config: PairsConfig, seed: int, n_panels: int) -> None:
        self.plan, self.config, self.n_panels = plan, config, n_panels
        self.rng = np.random.default_rng(seed)
        self.caption_lists = [t.all_captions() for t in plan.texts]
        self.trained_classes = sorted(set(plan.codes[plan.train].tolist()))

    def negative_for(self, code: int) -> tuple[str, int]:
        rng, texts = self.rng, self.plan.texts
        others = [c for c in self.trained_classes if c != code] or [c for c in range(len(texts)) if c != code]
        if not others:
            raise ParameterError("negatives need at least two classes", f"obs[{self.plan.label_col!r}]")
        other = others[int(rng.integers(len(others)))]
        pool = self.caption_lists[other]
        return pool[int(rng.integers(len(pool)))], other

    def rows(self, indices: np.ndarray, n_captions: int, with_markers: bool, markers: Sequence[list[str]] | None) -> dict[str, list]:
        """Rows for the cells ``indices`` (``markers[pos]``: the marker genes of ``indices[pos]``)."""
        rng, texts, codes = self.rng, self.plan.texts, self.plan.codes
        marker_share, panel_share = self.config.marker_share, self.config.panel_share
        cols: dict[str, list] = {"cell": [], "caption": [], "label": [], "index": []}
        if self.config.negatives:
            cols["negative"], cols["negative_label"] = [], []
        for pos, i in enumerate(indices):
            code = int(codes[i])
            for _ in range(n_captions):
                genes = markers[pos] if (with_markers and markers is not None) else []
                if genes and rng.random() < marker_share:
                    k = int(rng.integers(1, min(3, len(genes)) + 1))
                    picked = [genes[j] for j in sorted(rng.choice(len(genes), size=k, replace=False))]
                    names = texts[code].names or [texts[code].label]
                    caption = marker_caption(names[int(rng.integers(len(names)))], picked, rng)
                elif with_markers:
                    pool = self.caption_lists[code]
                    caption = pool[int(rng.integers(len(pool)))]
                else:
                    caption = texts[code].name_captions()[0]
                if with_markers and self.n_panels and rng.random() < panel_share:
                    cols["cell"].append(int(rng.integers(self.n_panels)))
                else:
                    cols["cell"].append(-1)
                cols["caption"].append(caption)
                cols["label"].append(code)
                cols["index"].append(int(i))
                if self.config.negatives:
                    negative, other = self.negative_for(code)
                    cols["negative"].append(negative)
                    cols["negative_label"].append(other)
        return cols


def panel_count(config: PairsConfig, inputs: Sequence[str]) -> int:
    """How many gene panels training rows are drawn from (0: none)."""
    return len(config.panel_sizes) if config.panel_share > 0 and "genes" in inputs else 0


def count_markers(markers: Sequence[list[str]] | None, freq: dict[str, int] | None = None) -> dict[str, int]:
    """How many cells each marker gene marks, added to ``freq`` (a new count when not given)."""
    freq = {} if freq is None else freq
    for genes in markers or []:
        for g in genes:
            freq[g] = freq.get(g, 0) + 1
    return freq


def marker_list(markers: Sequence[list[str]] | None = None, *, freq: dict[str, int] | None = None) -> list[str]:
    """The genes that mark training cells (``markers``, or their counts ``freq``), most often first, at most 2,000."""
    freq = count_markers(markers) if freq is None else freq
    return sorted(freq, key=lambda g: (-freq[g], g))[:2000]


def expressed_split(adata: Any, names_a_gene: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``train`` and ``test`` without the cells that express no gene with a symbol (``names_a_gene[i]``
    false: zero counts, or only unnamed genes): the omics tower reads nothing for them, so each would
    train as the same empty input under its class's captions. They are left out, as cells without a
    label are; none left to train on is a DataError. (Also the streamed reader's rule.)"""
    from mmgene.errors import DataError

    keep_train, keep_test = names_a_gene[train], names_a_gene[test]
    empty = np.sort(np.concatenate([train[~keep_train], test[~keep_test]]))
    if not empty.size:
        return train, test
    view = expression(adata)
    names = ", ".join(repr(str(adata.obs_names[i])) for i in empty[:3]) + (f" and {empty.size - 3:,} more" if empty.size > 3 else "")
    if not keep_train.any():
        raise DataError(
            "no training cell expresses a gene with a symbol (all have zero counts), so the omics tower has nothing to read",
            f"{view.origin}, {view.source}, cells {names}",
            "give the matrix that holds the cells' counts (X, a layer or raw)",
        )
    info(f"{empty.size:,} labelled cells express no gene with a symbol (zero counts) and are left out of the pairs: {names}")
    return train[keep_train], test[keep_test]


def make_pairs(
    adata: Any,
    label_cols: str | Sequence[str] = "cell_type",
    *,
    ontology_col: str | None = None,
    inputs: Sequence[str] = ("genes",),
    config: PairsConfig | None = None,
    seed: int = 0,
) -> TrainingPairs:
    """Training and test examples (``train``, ``test`` when test_size > 0) with their classes, as
    :class:`~mmgene.pairs.result.TrainingPairs`.

    Parameters
    ----------
    label_cols
        obs column(s) naming the cell type; the first defines the classes, all give names. Cells with
        no label in the first (None, NaN, empty or blank) are left out; the result's
        ``unlabelled_cells`` counts them. Fewer than two classes left is a ``LabelError``.
    ontology_col
        obs column of Cell Ontology ids (``CL:...``): adds the term's label, synonyms and definition.
    inputs
        What the omics tower reads: ``"genes"`` and/or obsm keys.
    config
        Captions, negatives, the split and the cells' gene inputs (:class:`~mmgene.pairs.config.PairsConfig`;
        default: its defaults). With ``panel_share``, a share of training rows read only the top-n most
        variable genes of the training cells (n drawn from ``panel_sizes``), so the model also reads
        datasets that were filtered to highly variable genes (scanpy's pbmc68k_reduced keeps 765).
    seed
        Seeds the split, the captions, the negatives and the panels.
    """
    from mmgene.lazy import require

    require("datasets", "training pairs")
    import datasets

    from mmgene.cells.inputs import cell_inputs

    config = config or PairsConfig()
    plan = plan_pairs(adata, label_cols, ontology_col=ontology_col, config=config, seed=seed)
    train, test, class_names = plan.train, plan.test, plan.class_names
    drawer = RowDrawer(plan, config, seed, panel_count(config, inputs))
    cells = cell_inputs(adata, inputs=inputs, max_genes=config.max_genes)
    if "genes" in inputs:
        names_a_gene = np.fromiter((any(cell["genes"]) for cell in cells), dtype=bool, count=len(cells))
        train, test = expressed_split(adata, names_a_gene, train, test)
    want_markers = "genes" in inputs and config.marker_share > 0
    moments = gene_moments(adata, train) if (drawer.n_panels or want_markers) else None
    panels: list[list[dict[str, Any]]] = []
    if drawer.n_panels:
        ranked = moments.ranked(expression(adata).symbols())
        panels = [cell_inputs(adata, inputs=inputs, max_genes=config.max_genes, gene_panel=ranked[:n]) for n in config.panel_sizes]
    obs_names = np.asarray(adata.obs_names).astype(str)
    markers = specific_genes(adata, train, train, mean=moments.mean) if want_markers else None

    def rows_for(indices: np.ndarray, n_captions: int, with_markers: bool) -> dict[str, list]:
        cols = drawer.rows(indices, n_captions, with_markers, markers)
        index = cols.pop("index")
        cols["cell"] = [cells[i] if v < 0 else panels[v][i] for i, v in zip(index, cols["cell"])]
        cols["obs_name"] = obs_names[index].tolist()
        return cols

    info(f"pairs: {train.size} training cells x {config.captions_per_cell} captions, {test.size} test cells")
    negatives = config.negatives
    order = ["cell", "caption"] + (["negative"] if negatives else []) + ["label"] + (["negative_label"] if negatives else []) + ["obs_name"]
    splits = {"train": datasets.Dataset.from_dict(rows_for(train, config.captions_per_cell, True))}
    if test.size:
        splits["test"] = datasets.Dataset.from_dict(rows_for(test, 1, False))
    dataset = datasets.DatasetDict({k: v.select_columns(order) for k, v in splits.items()})
    for split in dataset.values():
        split.info.description = "mmgene pairs; classes: " + "; ".join(class_names)
    return TrainingPairs(dataset, class_names, plan.texts, plan.unlabelled, marker_list(markers))
