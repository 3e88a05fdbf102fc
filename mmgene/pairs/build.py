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
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgene.errors import ParameterError
from mmgene.io import expression, obs_column
from mmgene.io.labels import usable_labels
from mmgene.text.labels import label_text
from mmgene.text.captions import ClassText, class_text, marker_caption
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.result import TrainingPairs
from mmgene.pairs.splits import split_cells
from mmgene.progress import info

def _classes(adata: Any, label_cols: Sequence[str], ontology_col: str | None) -> tuple[np.ndarray, list[ClassText], int]:
    """Per-cell class ids (classes keyed by the first label column), per-class text, and how many
    cells have no label there (class id -1: left out of both splits, never a class "nan").

    Fewer than two classes is a :class:`~mmgene.errors.LabelError`: contrastive pairs need another
    class to contrast with. Missing values in the other columns just give no name.
    """
    where = f"obs[{label_cols[0]!r}]"
    keep, first, n_dropped = usable_labels(obs_column(adata, label_cols[0]), where, "making training pairs")
    others = [label_text(obs_column(adata, c)) for c in label_cols[1:]]
    onto = label_text(obs_column(adata, ontology_col)) if ontology_col else None
    names, first_pos, kept_codes = np.unique(first, return_index=True, return_inverse=True)
    rows = np.flatnonzero(keep)
    codes = np.full(len(keep), -1, np.int64)
    codes[rows] = kept_codes
    texts = []
    for name, pos in zip(names, first_pos):
        i = int(rows[pos])
        values = [name] + [col[i] for col in others]
        texts.append(class_text(values, (onto[i] or None) if onto is not None else None))
    return codes, texts, n_dropped


def specific_genes(adata: Any, rows: np.ndarray, reference: np.ndarray, k: int = 8) -> list[list[str]]:
    """For each cell in ``rows``, the ``k`` genes most above their mean over ``reference`` cells.

    log1p(CP10k) expression; only expressed genes with a positive excess count. Vectorised per chunk.
    """
    from mmgene.cells.inputs import top_genes

    view = expression(adata)
    symbols = view.symbols()
    mean = np.zeros(view.shape[1], dtype=np.float64)
    ref_set = np.zeros(view.shape[0], dtype=bool)
    ref_set[reference] = True
    for start, stop, block in view.chunks():
        sel = ref_set[start:stop]
        if sel.any():
            mean += np.asarray(view.log_normalise(block[sel], dtype=np.float32).sum(axis=0)).ravel()
    mean /= max(1, int(ref_set.sum()))
    want = np.zeros(view.shape[0], dtype=bool)
    want[rows] = True
    out: dict[int, list[str]] = {}
    for start, stop, block in view.chunks():
        sel = np.flatnonzero(want[start:stop])
        if not sel.size:
            continue
        block = view.log_normalise(block[sel], dtype=np.float32)
        block.data = (block.data - mean[block.indices]).astype(np.float32)
        block.data[block.data < 0] = 0
        block.eliminate_zeros()
        top = top_genes(sp.csr_matrix(block), k)
        for j, r in enumerate(sel):
            lo, hi = top.indptr[j], top.indptr[j + 1]
            order = np.argsort(-top.data[lo:hi], kind="stable")
            out[start + int(r)] = [str(symbols[g]) for g in top.indices[lo:hi][order] if symbols[g]]
    return [out.get(int(r), []) for r in rows]


def variable_genes(adata: Any, rows: np.ndarray) -> list[str]:
    """Gene symbols by decreasing variance of log1p(CP10k) expression over ``rows`` (vectorised, sparse)."""
    view = expression(adata)
    symbols = view.symbols()
    total = np.zeros(view.shape[1])
    total_sq = np.zeros(view.shape[1])
    want = np.zeros(view.shape[0], dtype=bool)
    want[rows] = True
    for start, stop, block in view.chunks():
        sel = want[start:stop]
        if sel.any():
            b = view.log_normalise(block[sel], dtype=np.float32)
            total += np.asarray(b.sum(axis=0)).ravel()
            total_sq += np.asarray(b.multiply(b).sum(axis=0)).ravel()
    n = max(1, int(want.sum()))
    var = total_sq / n - (total / n) ** 2
    order = np.argsort(-var, kind="stable")
    return [str(symbols[g]) for g in order if var[g] > 0 and symbols[g]]


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
    captions_per_cell, marker_share, negatives = config.captions_per_cell, config.marker_share, config.negatives
    exclude_labels, max_genes, panel_share = config.exclude_labels, config.max_genes, config.panel_share
    label_cols = [label_cols] if isinstance(label_cols, str) else list(label_cols)
    if not label_cols:
        raise ParameterError("no label column given", "argument label_cols", "pass e.g. label_cols='cell_type'")
    codes, texts, unlabelled = _classes(adata, label_cols, ontology_col)
    class_names = [t.label for t in texts]
    unknown = sorted(set(map(str, exclude_labels)) - set(class_names))
    if unknown:
        raise ParameterError(
            f"exclude_labels names classes that do not exist: {unknown}",
            f"obs[{label_cols[0]!r}]",
            f"choose from {class_names}",
        )
    train, test = split_cells(adata, test_size=config.test_size, seed=seed, group_col=config.group_col)
    train, test = train[codes[train] >= 0], test[codes[test] >= 0]  # cells without a label take no part
    excluded = np.isin(np.asarray(class_names, dtype=object)[codes[train]], list(map(str, exclude_labels)))
    train = train[~excluded]
    if train.size == 0:
        raise ParameterError("no cell is left for training", "arguments exclude_labels/test_size", "exclude fewer classes")
    rng = np.random.default_rng(seed)
    cells = cell_inputs(adata, inputs=inputs, max_genes=max_genes)
    panels: list[list[dict[str, Any]]] = []
    if panel_share > 0 and "genes" in inputs:
        ranked = variable_genes(adata, train)
        panels = [cell_inputs(adata, inputs=inputs, max_genes=max_genes, gene_panel=ranked[:n]) for n in config.panel_sizes]
    obs_names = np.asarray(adata.obs_names).astype(str)
    markers = specific_genes(adata, train, train) if ("genes" in inputs and marker_share > 0) else None
    caption_lists = [t.all_captions() for t in texts]
    trained_classes = sorted(set(codes[train].tolist()))

    def negative_for(code: int) -> tuple[str, int]:
        others = [c for c in trained_classes if c != code] or [c for c in range(len(texts)) if c != code]
        if not others:
            raise ParameterError("negatives need at least two classes", f"obs[{label_cols[0]!r}]")
        other = others[int(rng.integers(len(others)))]
        pool = caption_lists[other]
        return pool[int(rng.integers(len(pool)))], other

    def rows_for(indices: np.ndarray, n_captions: int, with_markers: bool) -> dict[str, list]:
        cols: dict[str, list] = {"cell": [], "caption": [], "label": [], "obs_name": []}
        if negatives:
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
                    pool = caption_lists[code]
                    caption = pool[int(rng.integers(len(pool)))]
                else:
                    caption = texts[code].name_captions()[0]
                if with_markers and panels and rng.random() < panel_share:
                    cols["cell"].append(panels[int(rng.integers(len(panels)))][i])
                else:
                    cols["cell"].append(cells[i])
                cols["caption"].append(caption)
                cols["label"].append(code)
                cols["obs_name"].append(obs_names[i])
                if negatives:
                    negative, other = negative_for(code)
                    cols["negative"].append(negative)
                    cols["negative_label"].append(other)
        return cols

    info(f"pairs: {train.size} training cells x {captions_per_cell} captions, {test.size} test cells")
    order = ["cell", "caption"] + (["negative"] if negatives else []) + ["label"] + (["negative_label"] if negatives else []) + ["obs_name"]
    splits = {"train": datasets.Dataset.from_dict({k: v for k, v in rows_for(train, captions_per_cell, True).items()})}
    if test.size:
        splits["test"] = datasets.Dataset.from_dict(rows_for(test, 1, False))
    dataset = datasets.DatasetDict({k: v.select_columns(order) for k, v in splits.items()})
    for split in dataset.values():
        split.info.description = "mmgene pairs; classes: " + "; ".join(class_names)
    freq: dict[str, int] = {}
    for genes in markers or []:
        for g in genes:
            freq[g] = freq.get(g, 0) + 1
    marker_genes = sorted(freq, key=lambda g: (-freq[g], g))[:2000]
    return TrainingPairs(dataset, class_names, texts, unlabelled, marker_genes)
