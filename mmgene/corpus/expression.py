"""One dataset's expression over a given list of genes, for models that compare datasets gene by gene."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.io.expression import DEFAULT_CHUNK


def log_normalised(ds: Any, cells: np.ndarray | None = None, chunk_cells: int = DEFAULT_CHUNK) -> Any:
    """A corpus dataset's kept cells (or those of them at the sorted positions ``cells``) x its own genes,
    log-normalised, sparse CSR (float32). Rows are normalised independently, so a subset reads as the
    same rows of the whole. A matrix on disk (a backed corpus) is read ``chunk_cells`` consecutive rows
    at a time, keeping the rows asked for, so memory holds one chunk and the rows kept."""
    import scipy.sparse as sp

    from mmgene.io import expression

    view = expression(ds.adata)
    rows = np.flatnonzero(ds.keep)
    if cells is not None:
        rows = rows[cells]
    if view.in_memory:
        return view.log_normalise(sp.csr_matrix(view.take(rows)), dtype=np.float32)
    parts = []
    for start in range(0, view.shape[0], chunk_cells):
        lo, hi = np.searchsorted(rows, [start, start + chunk_cells])
        if hi > lo:
            parts.append(view.log_normalise(view.chunk(start, min(start + chunk_cells, view.shape[0]))[rows[lo:hi] - start]))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, view.shape[1]), dtype=np.float32)


def pick_genes(block: Any, ds: Any, genes: Sequence[str]) -> Any:
    """The columns of ``block`` (``ds``'s cells x its own genes) for ``genes``, matched by human symbol;
    genes ``ds`` lacks are zero. Sparse CSR."""
    import scipy.sparse as sp

    where = {g: i for i, g in enumerate(ds.symbols) if g}
    cols = np.array([where.get(g, -1) for g in genes])
    present = np.flatnonzero(cols >= 0)
    pick = sp.csr_matrix((np.ones(len(present), np.float32), (cols[present], present)), shape=(block.shape[1], len(genes)))
    return (block @ pick).tocsr()


def log_expression(ds: Any, genes: Sequence[str]) -> Any:
    """Cells x ``genes`` log-normalised expression of a corpus dataset's kept cells, matched by human
    symbol (genes it lacks are zero), sparse CSR."""
    return pick_genes(log_normalised(ds), ds, genes)
