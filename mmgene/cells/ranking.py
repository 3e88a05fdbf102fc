"""Order the expressed genes of each cell of a CSR chunk: value descending, ties by a fixed gene rank.

One way for every value type: pack (row, value, tie rank) into one ``uint64`` per entry and sort the
chunk's keys with a single ``np.sort``. Keys hold values rounded to float32, which is exact for
counts and float32 data; for other data (float64 log1p) runs of equal rounded values are then put in
exact order (:func:`mmgene.cells._kernels.exact_runs`). Counts with ties by column take a linear
counting sort instead, the default of cell sentences. :func:`lexsort_rows` is the plain NumPy
definition of the order, and the reference the kernels are tested against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmgene.cells import _kernels as k
from mmgene.io.structure import canonical  # sorted rows, repeated entries summed (as SciPy defines them)

#: rows sorted together: the keys of a few hundred cells stay in cache.
SORT_ROWS = 256


@dataclass
class RankedChunk:
    """Per row, the tie ranks and values of its non-zero genes in descending order (CSR layout)."""

    indptr: np.ndarray
    ranks: np.ndarray
    values: np.ndarray

    def positions(self) -> np.ndarray:
        """0-based rank of every entry inside its cell."""
        return k.row_positions(self.indptr)


def lexsort_rows(indptr: np.ndarray, values: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Entry permutation ordering each CSR row by (value descending, tie ascending): one NumPy
    ``lexsort`` of the chunk. The plain reference the kernels are tested against."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return np.lexsort((ties, -values, rows))


def float32_exact(values: np.ndarray) -> bool:
    """Whether every value survives a round trip through float32 (counts and float32 data do)."""
    if values.dtype == np.float32:
        return True
    return bool(np.array_equal(values.astype(np.float32).astype(values.dtype), values))


def row_blocks(n_rows: int, max_rows: int):
    """``(r0, r1)`` row ranges of at most ``max_rows`` rows (a composite key holds that many rows)."""
    for r0 in range(0, n_rows, max_rows):
        yield r0, min(r0 + max_rows, n_rows)


def sorted_keys(block: sp.csr_matrix, tie_rank: np.ndarray, keep: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, int]]:
    """Per block of rows of canonical ``block``: ``(key_ptr, keys, values, tie_bits)``, the kept
    non-zero entries' keys in exact order (value descending, tie rank ascending). ``values`` are the
    exact values in that order where the data is not float32 (else ``None``: the keys hold them)."""
    tie_bits, max_rows = k.key_layout(len(tie_rank))
    indptr = block.indptr.astype(np.int64)
    data = block.data
    col_of_rank = None
    if not float32_exact(data):
        col_of_rank = np.empty(len(tie_rank), np.int64)
        col_of_rank[tie_rank] = np.arange(len(tie_rank))
    for r0, r1 in row_blocks(block.shape[0], min(max_rows, SORT_ROWS)):
        a, b = indptr[r0], indptr[r1]
        ptr = indptr[r0 : r1 + 1] - a
        key_ptr, keys = k.sentence_keys(ptr, block.indices[a:b], data[a:b], tie_rank, keep, tie_bits)
        keys.sort()
        values = None
        if col_of_rank is not None:
            values = k.exact_runs(ptr, block.indices[a:b], data[a:b], key_ptr, keys, col_of_rank, tie_bits, block.shape[1])
        yield key_ptr, keys, values, tie_bits


def rank_chunk(block: sp.csr_matrix, tie_rank: np.ndarray, keep: np.ndarray | None = None) -> RankedChunk:
    """Sort the non-zero entries of every row of ``block`` by value (descending), ties by ``tie_rank``.

    ``tie_rank`` maps each column to a unique integer; ``keep`` (per column) drops genes first.
    """
    block = canonical(block)
    if keep is None:
        keep = np.ones(block.shape[1], dtype=bool)
    parts_ptr, ranks, values = [np.zeros(1, np.int64)], [], []
    for key_ptr, keys, exact, tie_bits in sorted_keys(block, tie_rank, keep):
        r, v = k.split_keys(keys, tie_bits)
        parts_ptr.append(key_ptr[1:] + parts_ptr[-1][-1])
        ranks.append(r)
        values.append(v if exact is None else exact)
    return RankedChunk(np.concatenate(parts_ptr), np.concatenate(ranks), np.concatenate(values))


def sentence_ids(block: sp.csr_matrix, vocab, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Word ids of each row's sentence (CSR layout): descending value, first occurrence, ``limit`` per row."""
    block = canonical(block)
    n_words = len(vocab.words)
    if vocab.ties == "position" and whole_numbers(block.data):  # linear time: counting sort per row
        if not block.has_sorted_indices:
            block = block.copy()
            block.sort_indices()
        dedupe = n_words < len(vocab.col_word)  # some columns share a word
        return k.sentence_counts_by_position(block.indptr.astype(np.int64), block.indices, block.data, vocab.keep, vocab.col_word, limit, n_words, dedupe)
    ptrs, ids = [np.zeros(1, np.int64)], []
    for key_ptr, keys, _, tie_bits in sorted_keys(block, vocab.tie_rank, vocab.keep):
        ptr, words = k.sentence_words(key_ptr, keys, vocab.word_of_rank, tie_bits, limit, n_words)
        ptrs.append(ptr[1:] + ptrs[-1][-1])
        ids.append(words)
    return np.concatenate(ptrs), np.concatenate(ids)


def whole_numbers(values: np.ndarray) -> bool:
    """Counts-like data: whole numbers below 2**53 (stored as int or float)."""
    if values.dtype.kind in "iu":
        return True
    return bool(k.all_within(values, -(2.0**53) + 1, 2.0**53, True))
