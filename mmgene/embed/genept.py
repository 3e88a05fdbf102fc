"""GenePT cell embeddings: GenePT-w (expression-weighted gene vectors) and GenePT-s (cell sentence text).

GenePT-w
    ``normalize_total(1e4)`` + ``log1p`` of the counts (log1p input is used as is), then for each cell the
    average of its genes' vectors weighted by that expression, L2-normalised. Computed as one sparse
    product per chunk of cells, so memory is bounded and nothing is densified.
GenePT-s
    The sentence ``"A cell with genes ranked by expression: " + top genes`` (from
    :func:`mmgene.cells.sentences`), embedded by the text encoder that made the gene vectors.

Cells with nothing to embed (no expressed gene that has a vector, or an empty sentence) are never
silently zero: by default their row is NaN, ``obs['<name>_n_genes']`` is 0 for them, and
``uns['mmgene'][key_added]`` lists them (``on_empty='zero'`` writes zeros instead, ``'raise'`` refuses).
``inplace=False`` returns the vectors and writes nothing into the AnnData (what a joint space needs).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mmgene.choices import OnEmpty
from mmgene.config import check_key
from mmgene.errors import DataError, GeneIdError, ParameterError, is_whole_number
from mmgene.genes.ids import note_mouse_symbols
from mmgene.io import expression
from mmgene.progress import info, progress
from mmgene.provenance import check_record_slot, record

SENTENCE_PREFIX = "A cell with genes ranked by expression: "
#: cell names listed in ``uns`` (the full flag is in obs).
MAX_LISTED = 1000


def _check_on_empty(on_empty: str) -> None:
    if on_empty not in ("nan", "zero", "raise"):
        raise ParameterError(f"on_empty must be 'nan', 'zero' or 'raise', got {on_empty!r}", "argument on_empty")


def _check_returns(copy: bool, inplace: bool, where: str) -> None:
    """Refuse ``copy=True`` with ``inplace=False``: one asks for the AnnData back, the other for the vectors."""
    if copy and not inplace:
        raise ParameterError(
            "copy=True and inplace=False ask for two different results (a copy of the AnnData, the bare vectors)",
            f"{where}(copy=..., inplace=...)", "pass copy=True for an annotated copy, or inplace=False for the vectors alone",
        )


def _handle_empty(emb: np.ndarray, empty: np.ndarray, obs_names: pd.Index, on_empty: str, method: str, reason: str) -> None:
    if not empty.any():
        return
    names = list(obs_names[empty][:5])
    if on_empty == "raise":
        raise DataError(
            f"{int(empty.sum())} cells have {reason}, so {method} cannot embed them (first: {', '.join(map(str, names))})",
            "the AnnData",
            "drop those cells, or pass on_empty='nan' to flag them",
        )
    emb[empty] = np.nan if on_empty == "nan" else 0.0
    info(f"mmgene: {int(empty.sum())} cells have {reason}; their {method} rows are {'NaN' if on_empty == 'nan' else 'zero'} (flagged in obs)")


def _resolve_vectors(gene_vectors: Any, encoder: Any, symbols: np.ndarray, expressed: np.ndarray) -> Any:
    from mmgene.genes.vectors import GeneVectors

    if gene_vectors is None:
        from mmgene.genes.default import default_gene_vectors

        wanted = sorted({s.upper() for s, e in zip(symbols, expressed) if e and s})
        return default_gene_vectors(encoder, genes=wanted)
    if isinstance(gene_vectors, (str, os.PathLike)):
        return GeneVectors.load(gene_vectors)
    if not isinstance(gene_vectors, GeneVectors):
        raise ParameterError(
            f"gene_vectors must be a GeneVectors, a file path or None, got {type(gene_vectors).__name__}", "argument gene_vectors"
        )
    return gene_vectors


def _expressed_genes(view: Any, chunk_size: int) -> np.ndarray:
    """Genes with a non-zero value in at least one cell (one streaming pass)."""
    seen = np.zeros(view.shape[1], dtype=bool)
    for _, _, block in view.chunks(chunk_size):
        seen[np.unique(block.indices[block.data != 0])] = True
    return seen


def genept_w(
    adata: Any,
    *,
    gene_vectors: Any = None,
    encoder: Any = None,
    key_added: str = "X_genept_w",
    layer: str | None = None,
    chunk_size: int = 2048,
    on_empty: OnEmpty = "nan",
    copy: bool = False,
    inplace: bool = True,
) -> Any:
    """GenePT-w: expression-weighted average of gene vectors per cell, L2-normalised.

    Parameters
    ----------
    adata
        AnnData with raw counts (normalised here) or log1p data (used as is); read via :func:`mmgene.io.expression`.
    gene_vectors
        A :class:`~mmgene.genes.GeneVectors`, a ``.parquet``/``.safetensors`` file, or ``None`` for
        :func:`~mmgene.genes.default_gene_vectors` over the genes expressed in ``adata`` (offline text,
        ``encoder`` or the offline MiniLM).
    key_added
        ``obsm`` key of the result (float32, cells x dimension); ``obs['<key_added without X_>_n_genes']``
        gets the number of expressed genes with a vector per cell.
    layer
        Read this matrix (``'X'``, ``'raw'`` or a key of ``adata.layers``) instead of the one
        :func:`mmgene.io.expression` picks.
    on_empty
        Cells with no expressed gene that has a vector: ``'nan'`` rows (default), ``'zero'`` rows, or ``'raise'``.
    copy
        Return a new AnnData instead of writing into ``adata``.
    inplace
        ``False``: return the vectors (float32, cells x dimension) and write nothing into ``adata``.

    Returns
    -------
    The AnnData when ``copy=True``, the vectors when ``inplace=False``, else ``None``. ``uns['mmgene'][key_added]``
    records the encoder, the text source, the genes matched and the cells with no matched gene.
    """
    check_key(key_added, "genept_w(key_added=...)", "X_genept_w")
    check_record_slot(adata, "genept_w(adata=...)")  # before anything reads or writes adata
    _check_on_empty(on_empty)
    _check_returns(copy, inplace, "genept_w")
    if not is_whole_number(chunk_size, 1):
        raise ParameterError(f"chunk_size must be a positive integer, got {chunk_size!r}", "argument chunk_size", "pass e.g. 2048")
    adata = adata.copy() if copy else adata
    view = expression(adata, layer=layer)
    symbols = view.symbols()
    expressed = _expressed_genes(view, chunk_size) if gene_vectors is None else np.ones(len(symbols), dtype=bool)
    gv = _resolve_vectors(gene_vectors, encoder, symbols, expressed)
    rows = gv.lookup(symbols)
    if gene_vectors is None:  # the default vectors embed human genes' NCBI text
        note_mouse_symbols(adata, "GenePT's default gene vectors (the NCBI text of human genes)")
    matched = np.flatnonzero(rows >= 0)
    if matched.size == 0:
        raise GeneIdError(
            f"none of the {len(symbols)} genes has a gene vector (gene vectors cover {len(gv)} genes, e.g. {', '.join(map(str, gv.symbols[:3]))})",
            f"var of {view.origin} ({view.source})",
            "check that var holds human gene symbols (var['gene_symbol']) and that the gene vectors were made for them",
        )
    V = gv.vectors[rows[matched]].astype(np.float64)
    n = view.shape[0]
    emb = np.empty((n, gv.dim), dtype=np.float32)
    n_genes = np.zeros(n, dtype=np.int32)
    # float64: each cell's weights are summed over thousands of genes
    chunks = view.log_chunks(chunk_size, dtype=np.float64)
    for start, stop, block in progress(chunks, total=-(-n // chunk_size), desc="GenePT-w", unit="chunk"):
        sub = block[:, matched]  # stored zeros are already gone
        weight = np.asarray(sub.sum(axis=1)).ravel()
        mean = sub @ V
        np.divide(mean, weight[:, None], out=mean, where=weight[:, None] > 0)
        norms = np.linalg.norm(mean, axis=1)
        np.divide(mean, norms[:, None], out=mean, where=norms[:, None] > 0)
        emb[start:stop] = mean
        n_genes[start:stop] = np.diff(sub.indptr)
    empty = n_genes == 0
    _handle_empty(emb, empty, adata.obs_names, on_empty, "GenePT-w", "no expressed gene with a gene vector")
    if not inplace:
        return emb
    adata.obsm[key_added] = emb
    adata.obs[f"{key_added.removeprefix('X_')}_n_genes"] = n_genes
    meta = gv.meta
    record(
        adata,
        key_added,
        packages=("numpy", "scipy"),
        method="GenePT-w",
        encoder=meta.get("encoder", "unknown"),
        encoder_key=meta.get("encoder_key", ""),
        text_source=meta.get("text_source", "unknown"),
        text_source_version=meta.get("text_source_version", ""),
        gene_vectors_created=meta.get("created", ""),
        dimension=int(gv.dim),
        matrix=view.source,
        normalization="normalize_total(1e4) + log1p" if view.kind == "counts" else "none (log1p input used as is)",
        genes_total=int(len(symbols)),
        genes_matched=int(matched.size),
        genes_matched_rate=round(float(matched.size) / max(len(symbols), 1), 4),
        n_empty_cells=int(empty.sum()),
        empty_cells=[str(c) for c in adata.obs_names[empty][:MAX_LISTED]],
        on_empty=on_empty,
        obs_n_genes=f"{key_added.removeprefix('X_')}_n_genes",
    )
    return adata if copy else None


def genept_s(
    adata: Any,
    *,
    encoder: Any = None,
    top_k: int | None = 100,
    key_added: str = "X_genept_s",
    layer: str | None = None,
    prefix: str = SENTENCE_PREFIX,
    on_empty: OnEmpty = "nan",
    copy: bool = False,
    inplace: bool = True,
) -> Any:
    """GenePT-s: embed each cell's sentence ``prefix + top genes by expression`` with a text encoder.

    Parameters
    ----------
    encoder
        A :class:`~mmgene.text.encoders.TextEncoder` or spec (default the offline MiniLM); use the one that
        made your gene vectors.
    top_k
        Genes per sentence (``None``: every expressed gene; a model truncates what exceeds its input).
    key_added, layer, on_empty, copy, inplace
        As for :func:`genept_w`; ``obs['<key_added without X_>_n_genes']`` is the number of genes in each sentence.

    Sentences are embedded in chunks of :data:`mmgene.distributed.CHUNK_SIZE`; under ``torchrun`` call it
    on every rank: each embeds its share and rank 0 gets every vector (the others return None and
    leave ``adata`` as it was).
    """
    check_key(key_added, "genept_s(key_added=...)", "X_genept_s")
    check_record_slot(adata, "genept_s(adata=...)")  # before anything reads or writes adata
    _check_on_empty(on_empty)
    _check_returns(copy, inplace, "genept_s")
    if top_k is not None and not is_whole_number(top_k, 1):
        raise ParameterError(f"top_k must be a positive integer or None, got {top_k!r}", "argument top_k", "pass e.g. 100, or None for every expressed gene")
    if not isinstance(prefix, str):
        raise ParameterError(f"prefix must be text, got {type(prefix).__name__}", "argument prefix", f"pass e.g. {SENTENCE_PREFIX!r}")
    from mmgene.cells import sentences as cell_sentences
    from mmgene.distributed import map_rows
    from mmgene.text.encoders import TextEncoder, text_encoder

    adata = adata.copy() if copy else adata
    enc = text_encoder(encoder)
    sentences = list(cell_sentences(adata, top_k=top_k, layer=layer, inplace=False))
    n_genes = np.fromiter((len(s.split()) for s in sentences), dtype=np.int32, count=len(sentences))
    empty = n_genes == 0
    texts = [prefix + s for s, e in zip(sentences, empty) if not e]
    # under a launcher each rank embeds its share of the sentences and rank 0 gets all (the others None)
    # a model reads a sentence's first genes by design: no note about the rest (any encoder-like object is taken)
    encode = partial(enc.encode, cut_expected=True) if isinstance(enc, TextEncoder) else enc.encode
    vecs = map_rows(len(texts), lambda a, b: encode(texts[a:b]) if b > a else np.zeros((0, enc.dim), dtype=np.float32))
    if vecs is None:
        return None
    emb = np.zeros((len(sentences), vecs.shape[1]), dtype=np.float32)
    emb[~empty] = vecs
    _handle_empty(emb, empty, adata.obs_names, on_empty, "GenePT-s", "no expressed gene (an empty sentence)")
    if not inplace:
        return emb
    adata.obsm[key_added] = emb
    adata.obs[f"{key_added.removeprefix('X_')}_n_genes"] = n_genes
    record(
        adata,
        key_added,
        packages=("sentence-transformers", "torch", "openai"),
        method="GenePT-s",
        encoder=enc.name,
        encoder_key=enc.cache_key,
        encoder_backend=getattr(enc, "backend", "n/a"),
        text_source="cell sentences (gene symbols ranked by expression)",
        dimension=int(emb.shape[1]),
        prefix=prefix,
        top_k=top_k if top_k is not None else "all",
        genes_in_sentences_mean=round(float(n_genes.mean()), 3) if len(n_genes) else 0.0,
        n_empty_cells=int(empty.sum()),
        empty_cells=[str(c) for c in adata.obs_names[empty][:MAX_LISTED]],
        on_empty=on_empty,
        obs_n_genes=f"{key_added.removeprefix('X_')}_n_genes",
    )
    return adata if copy else None
