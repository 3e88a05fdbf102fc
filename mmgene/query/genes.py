"""Which genes make a cell match a text query, when cells are GenePT-w vectors.

A GenePT-w cell vector is ``c = sum_g w_g v_g / ||sum_g w_g v_g||`` (``w_g``: the cell's
normalise-total-1e4 + log1p expression of gene g; ``v_g``: the gene's text-encoder vector). Its
cosine score with a unit query ``q`` embedded by the same encoder splits exactly into genes::

    score(c, q) = sum_g  w_g <v_g, q> / ||sum_g w_g v_g||  =  sum_g contribution_g

so ``contribution_g`` says how much gene g adds to (or, when negative, takes from) the score, and
the contributions of all genes add up to the cosine score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmgene.errors import GeneIdError, MissingColumnError, ParameterError
from mmgene.io.expression import TARGET_SUM, log_normalise


def _upper(symbols: np.ndarray) -> np.ndarray:
    """Symbols as they are matched: upper-cased."""
    return np.asarray([s.upper() for s in symbols], dtype=object)


def gene_weights(adata: Any, rows: np.ndarray, genes: Sequence[str], *, target_sum: float = TARGET_SUM) -> tuple[sp.csr_matrix, np.ndarray]:
    """GenePT-w weights of cells ``rows`` for the genes of ``genes`` found in ``adata``.

    Returns ``(W, gene_index)``: W is (len(rows) x matched genes) and ``gene_index[j]`` is the
    position in ``genes`` of W's column j. Expression as GenePT-w weighs it
    (:func:`mmgene.io.expression.log_normalise` in float64: counts normalised to ``target_sum`` per
    cell over all genes, then log1p; log1p data as it is). Symbols match case-insensitively.
    """
    from mmgene.io import expression

    expr = expression(adata)
    symbols = _upper(expr.symbols(or_names=True))
    upper = pd.Index([str(g).upper() for g in genes])
    first = ~upper.duplicated(keep="first")
    lookup, lookup_pos = upper[first], np.flatnonzero(first)
    col_pos = lookup.get_indexer(symbols)
    matched = np.flatnonzero(col_pos >= 0)
    if matched.size == 0:
        raise GeneIdError(
            "no gene of the data has a gene vector", "var['gene_symbol'] against the gene vectors",
            "read the data with mmgene.io.read so that gene symbols are filled, or use gene vectors for these genes",
        )
    order = np.argsort(rows, kind="stable")
    block = sp.csr_matrix(expr.take(np.asarray(rows)[order], what=f"{len(order):,} cells"))  # increasing rows, as a backed file is read
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    block = log_normalise(block[inverse], expr.kind, dtype=np.float64, target_sum=target_sum)
    return block[:, matched].tocsr(), lookup_pos[col_pos[matched]]


def gene_contributions(
    adata: Any,
    cells: Sequence[str],
    query_vector: np.ndarray,
    gene_vectors: Any,
    *,
    top_n: int = 10,
    target_sum: float = TARGET_SUM,
) -> pd.DataFrame:
    """The ``top_n`` genes contributing most to each cell's GenePT-w cosine score with ``query_vector``.

    ``gene_vectors`` has ``.symbols`` and ``.vectors`` (a :class:`mmgene.genes.GeneVectors`, or the path
    of a saved one), embedded by the encoder that embedded the query. Returns ``cell_id``, ``rank``, ``gene``,
    ``contribution``, ``weight`` (the cell's log-normalised expression) and ``similarity``
    (``<v_g, q>``), plus ``score``: the cell's total (the sum over *all* its genes).
    """
    if top_n < 1:
        raise ParameterError(f"top_n must be at least 1, got {top_n}", "gene_contributions", "use e.g. 10")
    if isinstance(gene_vectors, (str, os.PathLike)):
        from mmgene.genes.vectors import GeneVectors

        gene_vectors = GeneVectors.load(gene_vectors)
    symbols = list(map(str, gene_vectors.symbols))
    vectors = np.asarray(gene_vectors.vectors, dtype=np.float64)
    q = np.asarray(query_vector, dtype=np.float64).ravel()
    if vectors.ndim != 2 or vectors.shape[1] != q.size:
        raise ParameterError(
            f"the query vector has dimension {q.size} but the gene vectors {vectors.shape[-1]}", "gene_contributions",
            "embed the query with the text encoder that made the gene vectors (a GenePT-w space)",
        )
    q = q / np.linalg.norm(q)
    ids = [str(c) for c in cells]
    rows = pd.Index(list(map(str, adata.obs_names))).get_indexer(ids)
    if (rows < 0).any():
        raise MissingColumnError(ids[int(np.flatnonzero(rows < 0)[0])], "obs_names", list(map(str, adata.obs_names[:12])))
    weights, gene_pos = gene_weights(adata, rows, symbols, target_sum=target_sum)
    v = vectors[gene_pos]
    sim = v @ q
    norms = np.linalg.norm(np.asarray(weights @ v), axis=1)
    contrib = sp.csr_matrix(weights.multiply(sim[None, :]).multiply(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]))
    score = np.asarray(contrib.sum(axis=1)).ravel()
    out = []
    for i, cell in enumerate(ids):
        start, stop = contrib.indptr[i], contrib.indptr[i + 1]
        cols, vals = contrib.indices[start:stop], contrib.data[start:stop]
        top = np.argsort(-vals, kind="stable")[:top_n]
        cols, vals = cols[top], vals[top]
        out.append(pd.DataFrame({
            "cell_id": cell, "rank": np.arange(1, len(top) + 1), "gene": [symbols[gene_pos[c]] for c in cols],
            "contribution": vals, "weight": weights[i, cols].toarray().ravel() if len(cols) else np.zeros(0),
            "similarity": sim[cols], "score": score[i],
        }))
    columns = ["cell_id", "rank", "gene", "contribution", "weight", "similarity", "score"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def _expressed_symbols(adata: Any, cells: Sequence[str]) -> list[str]:
    """Symbols of genes expressed in any of ``cells`` (the only genes their contributions need)."""
    from mmgene.io import expression

    expr = expression(adata)
    rows = np.sort(pd.Index(list(map(str, adata.obs_names))).get_indexer([str(c) for c in cells]))
    rows = rows[rows >= 0]
    block = expr.take(rows, what=f"{len(rows):,} cells")
    cols = np.unique(sp.csr_matrix(block).indices) if rows.size else np.zeros(0, int)
    symbols = _upper(expr.symbols(or_names=True)[cols])
    return sorted({s for s in symbols if s})


def check_hit_cells(cell_ids: Sequence[str], adata: Any, *, where: str = "explain_hits(adata=...)", source: str | None = None) -> None:
    """Refuse an AnnData that lacks some of the hits' cells: it is not the one the index holds, so
    no hit could be explained from it. ``source`` names what the index was built from, for the advice."""
    ids = pd.Index(pd.unique(np.asarray([str(c) for c in cell_ids], dtype=object)))
    absent = ids[pd.Index(list(map(str, adata.obs_names))).get_indexer(ids) < 0]
    if len(absent):
        built_from = f" ({source})" if source else ""
        raise ParameterError(
            f"the AnnData's cells do not match the index's cells: {len(absent)} of the {len(ids)} cells the query found "
            f"(e.g. {absent[0]!r}) are not among its {adata.n_obs:,} cells", where,
            f"pass the AnnData the index was built from{built_from}, whose cells the index holds",
        )


def explain_hits(
    hits: pd.DataFrame, adata: Any, space: Any, *, gene_vectors: Any = None, top_n: int = 5,
    where: str = "explain_hits(adata=...)", source: str | None = None,
) -> pd.DataFrame:
    """Add ``top_genes`` (``'GENE:contribution ...'``) to a :func:`~mmgene.query.text_to_cells` table.

    ``space`` must be a GenePT-w space (cells are expression-weighted gene vectors); ``gene_vectors``
    default to :func:`mmgene.genes.default_gene_vectors` for the space's encoder. ``adata`` must hold
    every hit's cell (:func:`check_hit_cells`; ``where`` and ``source``, what the index was built
    from, go into its error).
    """
    if getattr(space, "variant", None) != "w":
        raise ParameterError(
            "gene contributions need cells embedded as GenePT-w (weighted gene vectors)", "explain_hits(space=...)",
            "query an index built on obsm['X_genept_w'] with model 'genept-w'",
        )
    check_hit_cells(hits["cell_id"].tolist(), adata, where=where, source=source)
    if gene_vectors is None:
        from mmgene.genes.default import default_gene_vectors

        gene_vectors = default_gene_vectors(space.encoder, genes=_expressed_symbols(adata, hits["cell_id"].unique()))
    out = hits.copy()
    out["top_genes"] = ""
    for text, group in hits.groupby("query", sort=False):
        q = space.encode_text([str(text)])[0]
        table = gene_contributions(adata, group["cell_id"].tolist(), q, gene_vectors, top_n=top_n)
        summary = table.groupby("cell_id", sort=False).apply(
            lambda t: " ".join(f"{g}:{c:.3f}" for g, c in zip(t["gene"], t["contribution"])), include_groups=False
        )
        out.loc[group.index, "top_genes"] = group["cell_id"].map(summary).fillna("").to_numpy()
    return out
