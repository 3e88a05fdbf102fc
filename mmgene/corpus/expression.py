"""One dataset's expression over a given list of genes, for models that compare datasets gene by gene."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def log_normalised(ds: Any) -> Any:
    """A corpus dataset's kept cells x its own genes, log-normalised, sparse CSR (float32)."""
    import scipy.sparse as sp

    from mmgene.io import expression

    view = expression(ds.adata)
    return view.log_normalise(sp.csr_matrix(view.matrix[np.flatnonzero(ds.keep)]), dtype=np.float32)


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
