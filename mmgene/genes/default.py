"""The default GenePT gene vectors: offline gene text (NCBI's gene table, shipped with mmgene) + offline MiniLM.

Nothing here needs the network. Vectors are cached twice: every text's vector in the embedding cache,
and whole tables as Parquet files under ``<settings.cache_dir>/gene_vectors/`` keyed by encoder and the
requested genes, so the second call for the same genes reads one file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmgene.genes.text_sources import normalise_symbols
from mmgene.genes.vectors import GeneVectors
from mmgene.settings import settings


def default_gene_vectors(encoder: Any = None, genes: Iterable[str] | None = None, *, backend: str = "auto") -> GeneVectors:
    """GenePT gene vectors from the offline gene text, embedded by ``encoder`` (default offline MiniLM).

    Parameters
    ----------
    encoder
        A :class:`~mmgene.text.encoders.TextEncoder` or a spec for :func:`~mmgene.text.encoders.text_encoder`.
    genes
        Only these symbols (aliases resolved, keys as given, upper-cased); ``None`` embeds the whole
        table (~59,500 genes; slow on a CPU the first time, then cached).
    backend
        How a sentence-transformers ``encoder`` given as a spec runs
        (:data:`~mmgene.text.encoders.BACKENDS`): ``'auto'`` runs a first embedding of a thousand texts
        or more with ONNX Runtime and int8 query/key/value projections (3.4x faster than torch on a
        2-core CPU, least cosine 0.998 to torch's vectors; docs/benchmarks.md), ``'torch'`` with
        sentence-transformers' torch model. An encoder object keeps its own backend.
    """
    from mmgene.errors import InputFileError, ParameterError
    from mmgene.text.encoders import BACKENDS, text_encoder

    if backend not in BACKENDS:
        raise ParameterError(f"unknown text encoder backend {backend!r}", "argument backend", f"use one of: {', '.join(BACKENDS)}")
    from mmgene.genes.offline_text import OfflineGeneText

    spec = encoder is None or isinstance(encoder, (str, os.PathLike))
    enc = text_encoder(encoder, backend=backend) if spec and not str(encoder or "minilm").startswith("openai:") else text_encoder(encoder)
    source = OfflineGeneText()
    wanted = None if genes is None else normalise_symbols(genes, "argument genes")
    digest = hashlib.sha256("\n".join(wanted if wanted is not None else ["<all>"]).encode()).hexdigest()[:16]
    # 'auto' may embed with int8 where 'torch' gives float32 vectors: their tables are kept apart
    key = hashlib.sha256(f"{enc.cache_key}|{getattr(enc, 'backend', '')}|{source.version}".encode()).hexdigest()[:16]
    path = Path(settings.cache_dir) / "gene_vectors" / f"offline_{key}_{digest}.parquet"
    if path.is_file():
        try:
            return GeneVectors.load(path)
        except InputFileError:  # a damaged table in mmgene's own cache is made again, not put to the user
            pass
    vectors = GeneVectors.from_texts(source.texts(wanted), enc, source=source)
    vectors.save(path, overwrite=True)  # mmgene's own cache
    return vectors
