"""The genes that make one cell match a text query (GenePT-w spaces), as a bar chart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import DataError, MissingColumnError, ParameterError
from mmgene.pl._figure import axes, check_ax, check_save, finish
from mmgene.pl._inputs import check_anndata, single_text

POSITIVE, NEGATIVE = "#1f77b4", "#d62728"


def top_genes(
    adata: Any,
    space: Any,
    text: str,
    cell: str,
    *,
    gene_vectors: Any = None,
    top_n: int = 10,
    title: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    overwrite: bool = False,
) -> Any:
    """The ``top_n`` genes adding most to ``cell``'s cosine score with ``text``, largest on top.

    ``space`` is a GenePT-w space (``'genept-w'`` or a :class:`~mmgene.query.GenePTSpace`), where a
    score splits exactly into genes (:func:`mmgene.query.gene_contributions`); ``gene_vectors``
    default to the offline gene text of the genes the cell expresses, embedded by the space's
    encoder. Bars are each gene's contribution; the title gives the cell's whole score. Returns the
    Axes, the Figure (``return_fig=True``) or ``None`` (shown), as scanpy's plots do; ``save`` replaces a
    file only with ``overwrite=True``. A cell with no expressed gene that has a gene vector is refused.
    """
    from mmgene.query.genes import _expressed_symbols, gene_contributions
    from mmgene.query.space import load_space

    check_anndata(adata)
    check_ax(ax)
    check_save(save, "mmgene_top_genes", overwrite)
    text = single_text(text)
    if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise ParameterError(f"top_n must be a whole number of at least 1, got {top_n!r}", "argument top_n", "pass e.g. top_n=10")
    cell, names = str(cell), pd.Index([str(name) for name in adata.obs_names])
    if cell not in names:
        raise MissingColumnError(cell, "obs_names", list(names[:12]))
    if not names.is_unique:  # a cell id must name one row of the counts
        repeated = names[names.duplicated()][0]
        raise ParameterError(
            f"the cell ids are not unique: {repeated!r} names {int((names == repeated).sum())} cells", "adata.obs_names",
            "make them unique first, e.g. adata.obs_names_make_unique()",
        )
    space = load_space(space)
    if getattr(space, "variant", None) != "w":
        raise ParameterError(
            "the genes behind a score are known only when cells are GenePT-w vectors (weighted gene vectors)", "argument space",
            "pass space='genept-w' (or a GenePTSpace('w'))",
        )
    if gene_vectors is None:
        from mmgene.genes.default import default_gene_vectors

        expressed = _expressed_symbols(adata, [cell])
        if not expressed:
            raise _no_genes(cell)
        gene_vectors = default_gene_vectors(space.encoder, genes=expressed)
    table = gene_contributions(adata, [cell], space.encode_text([text])[0], gene_vectors, top_n=int(top_n))
    if not len(table):
        raise _no_genes(cell)
    made = ax is None
    fig, ax = axes(ax, figsize=(4.5, 0.8 + 0.28 * len(table)))
    values = table["contribution"].to_numpy()
    ax.barh(np.arange(len(table)), values, color=[POSITIVE if v >= 0 else NEGATIVE for v in values])
    ax.set_yticks(np.arange(len(table)), table["gene"].tolist())
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    score = float(table["score"].iloc[0])
    ax.set(xlabel="contribution to the cosine score", title=title if title is not None else f"{cell}: {text!r} (score {score:.3f})")
    return finish(fig, ax, "mmgene_top_genes", show=show, save=save, return_fig=return_fig, overwrite=overwrite,
                  made=made)


def _no_genes(cell: str) -> DataError:
    """The error for a cell whose score no gene explains: it has no counts, or none in a gene with a vector."""
    return DataError(
        f"cell {cell!r} expresses no gene that has a gene vector, so no gene explains its score", f"cell {cell!r}",
        "pick a cell with counts (e.g. one of the query's hits), or pass gene_vectors= covering its genes",
    )
