"""Cell sentences (Cell2Sentence): each cell as its expressed genes' symbols, most expressed first.

Definition (Levine et al., Cell2Sentence): rank the genes of a cell by expression, descending, keep
the non-zero ones, upper-case their symbols and join them with single spaces. mmgene adds:

- **Ties** (many genes share a count of 1) are broken deterministically: by default equal values
  keep the matrix's gene order (``ties='position'``, what Cell2Sentence's stable argsort does before
  its shuffle; linear time on counts); ``'symbol'`` orders them alphabetically (independent of the
  gene order in the file); ``'random'`` draws one gene order per call from ``seed``. The order never
  depends on the chunking or storage.
- **No normalisation step**: ``normalize_total`` per cell, then ``log1p``, is a monotone per-cell
  transform, so it cannot change the order within a cell; ranks are computed on the stored values
  directly (counts or log1p data), which is exactly the order of the normalised values.
- **Exclusion** by exact symbol (``'MALAT1'``) or prefix (``'MT-'``, ``'RPL*'``), never by substring.
- **Duplicated symbols** (two Ensembl ids, one symbol) give one word, at the better of their ranks.
- Cells with no expressed gene give ``""``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from mmgene.cells import _kernels as k
from mmgene.cells._chunks import check_chunk_size, iter_chunks, ordered_map, threads_for
from mmgene.cells.ranking import sentence_ids
from mmgene.cells.vocabulary import Vocabulary, build_vocabulary
from mmgene.config import check_key
from mmgene.errors import ParameterError, is_whole_number

DEFAULT_CHUNK = 8192
NO_LIMIT = np.iinfo(np.int32).max


def _limit(top_k: int | None) -> int:
    if top_k is None:
        return NO_LIMIT
    if not is_whole_number(top_k, 1):
        raise ParameterError(f"top_k must be a positive integer or None, got {top_k!r}", "argument top_k", "pass e.g. top_k=100, or None for all expressed genes")
    return int(top_k)


def iter_sentences(
    view: Any, vocab: Vocabulary, top_k: int | None = None, chunk_size: int = DEFAULT_CHUNK, desc: str = "sentences", n_jobs: int | None = None
) -> Iterator[tuple[int, int, list[str], np.ndarray]]:
    """Yield ``(start, stop, sentences, n_words)`` for consecutive chunks of cells of an :class:`Expression`,
    chunks worked on by ``n_jobs`` threads (see :func:`sentences`)."""
    from mmgene.progress import progress

    limit = _limit(top_k)
    chunk_size = check_chunk_size(chunk_size)
    threads = threads_for(n_jobs)
    total = -(-view.shape[0] // chunk_size)

    scratch = threading.local()  # each thread's text buffer, reused from chunk to chunk

    def work(chunk: tuple[int, int, Any]) -> tuple[int, int, list[str], np.ndarray]:
        start, stop, block = chunk
        indptr, ids = sentence_ids(block, vocab, limit)
        return start, stop, k.join_sentences(indptr, ids, vocab, vocab.encoding, scratch), np.diff(indptr)

    yield from progress(ordered_map(work, iter_chunks(view, chunk_size), threads), total=total, desc=desc, unit="chunk")


def sentences(
    adata: Any,
    *,
    top_k: int | None = None,
    exclude: str | Iterable[str] = (),
    seed: int = 0,
    key_added: str = "cell_sentence",
    layer: str | None = None,
    inplace: bool = True,
    copy: bool = False,
    ties: str = "position",
    chunk_size: int = DEFAULT_CHUNK,
    n_jobs: int | None = None,
) -> Any:
    """Cell sentences: upper-cased symbols of each cell's expressed genes, most expressed first.

    Parameters
    ----------
    adata
        AnnData with counts or log1p data (in memory CSR or dense, or backed); the matrix is chosen by
        :func:`mmgene.io.expression` and streamed in chunks of ``chunk_size`` cells.
    top_k
        Keep the first ``top_k`` genes of each cell (``None``: all expressed genes).
    exclude
        Gene symbols to leave out: exact names (``'MALAT1'``) or prefixes ending in ``*`` or ``-``
        (``'MT-'``, ``'RPL*'``, ``'RPS*'``); case-insensitive; never substrings.
    seed
        Seed of the random gene order when ``ties='random'``.
    key_added
        ``obs`` column written when ``inplace``.
    layer
        Read this matrix (``'X'``, ``'raw'`` or a key of ``adata.layers``) instead of the one
        :func:`mmgene.io.expression` picks.
    inplace
        Write ``adata.obs[key_added]`` (and provenance in ``uns['mmgene'][key_added]``); otherwise
        return the list.
    copy
        Work on and return a copy of ``adata``.
    ties
        How equal values are ordered: ``'position'`` (matrix gene order, default), ``'symbol'``
        (alphabetical) or ``'random'`` (one seeded gene order per call).
    chunk_size
        Cells per streamed chunk.
    n_jobs
        Threads working on chunks at once; ``None``: ``mmgene.settings.n_jobs`` (default every core),
        ``1``: one thread. The sentences are the same for any value.

    Returns
    -------
    ``list[str]`` when ``inplace=False``; the copy when ``copy=True``; otherwise ``None``.
    """
    from mmgene.io import expression
    from mmgene.provenance import check_record_slot, record

    check_key(key_added, "sentences(key_added=...)", "cell_sentence")
    check_record_slot(adata, "sentences(adata=...)")  # before anything reads or writes adata
    check_chunk_size(chunk_size)
    if copy:
        if getattr(adata, "isbacked", False):
            raise ParameterError("copy=True is not possible for a backed AnnData", "argument copy", "use inplace=False to get the sentences as a list")
        adata = adata.copy()
        inplace = True
    limit = _limit(top_k)
    view = expression(adata, layer=layer)
    vocab = build_vocabulary(view.var, exclude, ties, seed)
    out: list[str] = []
    counts = []
    for _, _, chunk, n_words in iter_sentences(view, vocab, top_k, chunk_size, n_jobs=n_jobs):
        out.extend(chunk)
        counts.append(n_words)
    if not inplace:
        return out
    adata.obs[key_added] = out
    n_words = np.concatenate(counts)
    record(
        adata,
        key_added,
        packages=("numba",),
        method="cell sentences (Cell2Sentence): non-zero genes, descending expression, upper-cased symbols",
        matrix=view.source,
        kind=view.kind,
        top_k=None if limit == NO_LIMIT else limit,
        exclude=[exclude] if isinstance(exclude, str) else list(exclude),
        genes_excluded=vocab.n_excluded,
        vocabulary_size=int(len(vocab.words)),
        ties=ties,
        seed=int(seed),
        empty_cells=int((n_words == 0).sum()),
        mean_words=float(n_words.mean()) if len(n_words) else 0.0,
    )
    return adata if copy else None
