"""Order the expressed genes of each cell of a CSR chunk: value descending, ties by a fixed gene rank.

The fast path packs (row, value, tie rank) into one ``uint64`` per entry and sorts the whole chunk
with a single ``np.sort``; values that are not exactly float32 (float64 log data) keep full precision
through float32 keys plus an exact re-sort of equal-key runs.
"""

from __future__ import annotations

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


def float32_exact(values: np.ndarray) -> bool:
    """Whether every value survives a round trip through float32 (counts and float32 data do)."""
    if values.dtype == np.float32:
        return True
    return bool(np.array_equal(values.astype(np.float32).astype(values.dtype), values))


def row_blocks(n_rows: int, max_rows: int):
    """``(r0, r1)`` row ranges of at most ``max_rows`` rows (a composite key holds that many rows)."""
    for r0 in range(0, n_rows, max_rows):
        yield r0, min(r0 + max_rows, n_rows)


def exact_order(indptr: np.ndarray, values: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Entry permutation ordering each row by (value descending, tie ascending), exact in float64."""
    indptr = np.asarray(indptr, dtype=np.int64)
    longest = int(np.diff(indptr).max()) if len(indptr) > 1 else 0
    tie_bits, max_rows = k.key_layout(max(longest, 2))
    perm = np.empty(len(values), np.int64)
    approx = np.empty(len(values), np.float32)
    for r0, r1 in row_blocks(len(indptr) - 1, max_rows):
        a, b = indptr[r0], indptr[r1]
        sub_perm, sub_approx = k.approximate_order(indptr[r0 : r1 + 1] - a, values[a:b], tie_bits)
        perm[a:b] = sub_perm + a
        approx[a:b] = sub_approx
    k.fix_runs(indptr, perm, approx, values, ties)
    return perm


def _filtered(block: sp.csr_matrix, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data, indices = block.data, block.indices
    mask = (data > 0) & keep[indices]
    cum = np.zeros(len(mask) + 1, np.int64)
    np.cumsum(mask, out=cum[1:])
    return cum[block.indptr], data[mask], indices[mask]


def rank_chunk(block: sp.csr_matrix, tie_rank: np.ndarray, keep: np.ndarray | None = None) -> RankedChunk:
    """Sort the non-zero entries of every row of ``block`` by value (descending), ties by ``tie_rank``.

    ``tie_rank`` maps each column to a unique integer; ``keep`` (per column) drops genes first.
    """
    block = canonical(block)
    if keep is None:
        keep = np.ones(block.shape[1], dtype=bool)
    if float32_exact(block.data):
        tie_bits, max_rows = k.key_layout(len(tie_rank))
        indptr = block.indptr.astype(np.int64)
        parts_ptr, ranks, values = [np.zeros(1, np.int64)], [], []
        for r0, r1 in row_blocks(block.shape[0], max_rows):
            a, b = indptr[r0], indptr[r1]
            ptr, keys = k.sentence_keys(indptr[r0 : r1 + 1] - a, block.indices[a:b], block.data[a:b], tie_rank, keep, tie_bits)
            keys.sort()
            r, v = k.split_keys(keys, tie_bits)
            parts_ptr.append(ptr[1:] + parts_ptr[-1][-1])
            ranks.append(r)
            values.append(v)
        return RankedChunk(np.concatenate(parts_ptr), np.concatenate(ranks), np.concatenate(values))
    indptr, data, indices = _filtered(block, keep)
    ranks = tie_rank[indices]
    values = data.astype(np.float64, copy=False)
    perm = exact_order(indptr, values, ranks)
    return RankedChunk(indptr, ranks[perm], values[perm])


def sentence_ids(block: sp.csr_matrix, vocab, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Word ids of each row's sentence (CSR layout): descending value, first occurrence, ``limit`` per row."""
    block = canonical(block)
    n_words = len(vocab.words)
    data = block.data
    if vocab.ties == "position" and whole_numbers(data):  # linear time: counting sort per row
        if not block.has_sorted_indices:
            block = block.copy()
            block.sort_indices()
        dedupe = n_words < len(vocab.col_word)  # some columns share a word
        return k.sentence_counts_by_position(block.indptr.astype(np.int64), block.indices, block.data, vocab.keep, vocab.col_word, limit, n_words, dedupe)
    if not float32_exact(data):
        ranked = rank_chunk(block, vocab.tie_rank, vocab.keep)
        return k.take_rows(ranked.indptr, vocab.word_of_rank[ranked.ranks], limit, n_words, True, -1, -1)
    data32 = data.astype(np.float32, copy=False)
    tie_bits, max_rows = k.key_layout(len(vocab.tie_rank))
    indptr = block.indptr.astype(np.int64)
    ptrs, ids = [np.zeros(1, np.int64)], []
    for r0, r1 in row_blocks(block.shape[0], min(max_rows, SORT_ROWS)):
        a, b = indptr[r0], indptr[r1]
        ptr, keys = k.sentence_keys(indptr[r0 : r1 + 1] - a, block.indices[a:b], data32[a:b], vocab.tie_rank, vocab.keep, tie_bits)
        keys.sort()
        ptr, words = k.sentence_words(ptr, keys, vocab.word_of_rank, tie_bits, limit, n_words)
        ptrs.append(ptr[1:] + ptrs[-1][-1])
        ids.append(words)
    return np.concatenate(ptrs), np.concatenate(ids)


def whole_numbers(values: np.ndarray) -> bool:
    """Counts-like data: whole numbers below 2**53 (stored as int or float)."""
    if values.dtype.kind in "iu":
        return True
    return bool(k.all_within(values, -(2.0**53) + 1, 2.0**53, True))
