"""numba kernels that order, cut and join the entries of CSR rows without a Python loop per cell.

Every kernel works on one chunk of rows given as ``indptr`` plus flat per-entry arrays, so memory is
bounded by the chunk, never by the whole matrix.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: bits of a non-negative float32 (its sign bit is always 0).
VALUE_BITS = 31
VALUE_MASK = np.uint64((1 << VALUE_BITS) - 1)


def key_layout(n_ranks: int) -> tuple[int, int]:
    """Bits for the tie rank and the most rows one composite key can hold (see :func:`row_keys`)."""
    tie_bits = max(1, int(n_ranks - 1).bit_length())
    row_bits = 64 - VALUE_BITS - tie_bits
    if row_bits < 1:
        raise ValueError(f"too many genes for a composite key: {n_ranks}")
    return tie_bits, 1 << row_bits


def row_keys(indptr: np.ndarray, values: np.ndarray, ties: np.ndarray, tie_bits: int) -> np.ndarray:
    """Composite ``uint64`` keys: (row, value descending, tie ascending), one per entry.

    ``values`` are non-negative float32 (their IEEE bit patterns, sign bit 0, sort like the numbers),
    so one ``np.sort`` of the chunk's keys orders every row at once.
    """
    keys = values.astype(np.float32, copy=False).view(np.uint32).astype(np.uint64)
    np.subtract(VALUE_MASK, keys, out=keys)
    keys <<= np.uint64(tie_bits)
    keys |= ties.astype(np.uint64, copy=False)
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.uint64), np.diff(indptr))
    rows <<= np.uint64(tie_bits + VALUE_BITS)
    keys |= rows
    return keys


def split_keys(keys: np.ndarray, tie_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Tie ranks (int64) and float32 values back from sorted :func:`row_keys`."""
    ties = (keys & np.uint64((1 << tie_bits) - 1)).astype(np.int64)
    bits = (keys >> np.uint64(tie_bits)) & VALUE_MASK
    values = (VALUE_MASK - bits).astype(np.uint32).view(np.float32)
    return ties, values


def approximate_order(indptr: np.ndarray, values: np.ndarray, tie_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by float32-rounded value (descending) with one ``np.sort`` of composite keys.

    Returns ``(perm, approx)``: entry indices in that order and their float32 values. Rounding to
    float32 is monotone, so the exact order can differ only inside runs of equal float32 values,
    which :func:`fix_runs` then re-sorts exactly.
    """
    positions = row_positions(indptr).astype(np.uint64)
    keys = row_keys(indptr, values.astype(np.float32), positions, tie_bits)
    keys.sort()
    pos, approx = split_keys(keys, tie_bits)
    starts = np.repeat(indptr[:-1], np.diff(indptr))
    return starts + pos, approx


@nb.njit(cache=True, nogil=True)
def fix_runs(indptr: np.ndarray, perm: np.ndarray, approx: np.ndarray, values: np.ndarray, ties: np.ndarray) -> None:  # pragma: no cover
    """Inside every run of equal ``approx`` values of a row, order ``perm`` by (exact value desc, tie asc)."""
    for i in range(indptr.shape[0] - 1):
        a, b = indptr[i], indptr[i + 1]
        j = a
        while j < b:
            e = j + 1
            while e < b and approx[e] == approx[j]:
                e += 1
            if e - j > 1:  # insertion sort: runs are short (true ties and float32 near-ties)
                for p in range(j + 1, e):
                    cur = perm[p]
                    q = p - 1
                    while q >= j and (
                        values[perm[q]] < values[cur] or (values[perm[q]] == values[cur] and ties[perm[q]] > ties[cur])
                    ):
                        perm[q + 1] = perm[q]
                        q -= 1
                    perm[q + 1] = cur
            j = e


@nb.njit(cache=True, nogil=True)
def take_rows(
    indptr: np.ndarray, ids: np.ndarray, limit: int, n_ids: int, dedupe: bool, prefix: int, suffix: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Keep at most ``limit`` ids per row (the first ones), optionally the first occurrence of each id only,
    and optionally wrap each row in ``prefix``/``suffix`` ids (``-1`` for none)."""
    n = indptr.shape[0] - 1
    extra = (1 if prefix >= 0 else 0) + (1 if suffix >= 0 else 0)
    out_ptr = np.zeros(n + 1, np.int64)
    out = np.empty(ids.shape[0] + extra * n, np.int32)
    seen = np.zeros(n_ids if dedupe else 1, np.bool_)
    w = 0
    for i in range(n):
        if prefix >= 0:
            out[w] = prefix
            w += 1
        body = w
        c = 0
        for p in range(indptr[i], indptr[i + 1]):
            if c >= limit:
                break
            g = ids[p]
            if dedupe:
                if seen[g]:
                    continue
                seen[g] = True
            out[w] = g
            w += 1
            c += 1
        if dedupe:
            for p in range(body, w):
                seen[out[p]] = False
        if suffix >= 0:
            out[w] = suffix
            w += 1
        out_ptr[i + 1] = w
    return out_ptr, out[:w]


@nb.njit(cache=True, nogil=True)
def join_rows(
    indptr: np.ndarray, ids: np.ndarray, word_bytes: np.ndarray, word_offsets: np.ndarray
) -> np.ndarray:  # pragma: no cover - numba
    """UTF-8 bytes of every row's words joined by spaces, each row ended by a newline."""
    total = 0
    for p in range(ids.shape[0]):
        g = ids[p]
        total += word_offsets[g + 1] - word_offsets[g] + 1
    n = indptr.shape[0] - 1
    for i in range(n):
        if indptr[i + 1] == indptr[i]:
            total += 1
    buf = np.empty(total, np.uint8)
    w = 0
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        for p in range(a, b):
            g = ids[p]
            for q in range(word_offsets[g], word_offsets[g + 1]):
                buf[w] = word_bytes[q]
                w += 1
            buf[w] = 32 if p + 1 < b else 10
            w += 1
        if a == b:
            buf[w] = 10
            w += 1
    return buf


@nb.njit(cache=True, nogil=True)
def row_positions(indptr: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """0-based position of every entry within its row."""
    out = np.empty(indptr[-1] - indptr[0], np.int64)
    base = indptr[0]
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            out[p - base] = p - indptr[i]
    return out


def join_sentences(indptr: np.ndarray, ids: np.ndarray, word_bytes: np.ndarray, word_offsets: np.ndarray) -> list[str]:
    """One string per row: its words separated by single spaces (empty rows give ``""``)."""
    buf = join_rows(indptr, ids, word_bytes, word_offsets)
    return str(memoryview(buf), "utf-8").split("\n")[:-1]



# --- fused kernels: one pass to build keys, one np.sort, one pass to read them back ---------------


@nb.njit(cache=True, nogil=True)
def sentence_keys(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, tie_rank: np.ndarray, keep: np.ndarray, tie_bits: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Keys (row, value desc, tie rank) of the non-zero, kept entries; values must be float32-exact."""
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    keys = np.empty(indptr[n] - indptr[0], np.uint64)
    shift = np.uint64(tie_bits + VALUE_BITS)
    tshift = np.uint64(tie_bits)
    w = 0
    one = np.empty(1, np.float32)
    as_bits = one.view(np.uint32)
    for i in range(n):
        hi = np.uint64(i) << shift
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            c = indices[p]
            if v > 0 and keep[c]:
                one[0] = v
                keys[w] = hi | ((np.uint64(0x7FFFFFFF) - np.uint64(as_bits[0])) << tshift) | np.uint64(tie_rank[c])
                w += 1
        out_ptr[i + 1] = w
    return out_ptr, keys[:w]


@nb.njit(cache=True, nogil=True)
def sentence_words(
    indptr: np.ndarray, keys: np.ndarray, word_of_rank: np.ndarray, tie_bits: int, limit: int, n_words: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Word ids per row from sorted keys: first occurrence of each word, at most ``limit`` per row."""
    n = indptr.shape[0] - 1
    mask = np.uint64((1 << tie_bits) - 1)
    out_ptr = np.zeros(n + 1, np.int64)
    out = np.empty(keys.shape[0], np.int32)
    seen = np.zeros(n_words, np.bool_)
    w = 0
    for i in range(n):
        body = w
        c = 0
        for p in range(indptr[i], indptr[i + 1]):
            if c >= limit:
                break
            g = word_of_rank[np.int64(keys[p] & mask)]
            if seen[g]:
                continue
            seen[g] = True
            out[w] = g
            w += 1
            c += 1
        for p in range(body, w):
            seen[out[p]] = False
        out_ptr[i + 1] = w
    return out_ptr, out[:w]


@nb.njit(cache=True, nogil=True)
def geneformer_keys(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    col_target: np.ndarray,
    recip_n: np.ndarray,
    target_sum: float,
    recip_median: np.ndarray,
    tie_bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Normalise kept entries as Geneformer does and build keys (row, float32 value desc, position).

    The value is ``x * (1/n) * target_sum * (1/median)`` in that order, with the dtypes of the inputs
    (numpy promotion rules, as SciPy applies them), then float64. Returns ``(indptr, keys, targets,
    values)`` over the kept entries in input order.
    """
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    m = indptr[n] - indptr[0]
    keys = np.empty(m, np.uint64)
    targets = np.empty(m, np.int64)
    values = np.empty(m, np.float64)
    shift = np.uint64(tie_bits + VALUE_BITS)
    tshift = np.uint64(tie_bits)
    one = np.empty(1, np.float32)
    as_bits = one.view(np.uint32)
    w = 0
    for i in range(n):
        hi = np.uint64(i) << shift
        r = recip_n[i]
        start = w
        for p in range(indptr[i], indptr[i + 1]):
            t = col_target[indices[p]]
            x = data[p]
            if t < 0 or x == 0:
                continue
            v = np.float64((x * r) * target_sum) * recip_median[t]
            one[0] = np.float32(v)
            keys[w] = hi | ((np.uint64(0x7FFFFFFF) - np.uint64(as_bits[0])) << tshift) | np.uint64(w - start)
            targets[w] = t
            values[w] = v
            w += 1
        out_ptr[i + 1] = w
    return out_ptr, keys[:w], targets[:w], values[:w]


@nb.njit(cache=True, nogil=True)
def geneformer_tokens(
    indptr: np.ndarray,
    keys: np.ndarray,
    targets: np.ndarray,
    values: np.ndarray,
    tokens: np.ndarray,
    tie_bits: int,
    limit: int,
    prefix: int,
    suffix: int,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Token ids per row from sorted :func:`geneformer_keys`: exact order, truncated, optionally wrapped.

    Runs of equal float32 keys are re-sorted on the exact float64 values, ties by ascending target
    (= ascending token id).
    """
    n = indptr.shape[0] - 1
    mask = np.uint64((1 << tie_bits) - 1)
    tshift = np.uint64(tie_bits)
    extra = (1 if prefix >= 0 else 0) + (1 if suffix >= 0 else 0)
    out_ptr = np.zeros(n + 1, np.int64)
    out = np.empty(keys.shape[0] + extra * n, np.int32)
    perm = np.empty(0, np.int64)
    w = 0
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        m = b - a
        if perm.shape[0] < m:
            perm = np.empty(max(m, 2 * perm.shape[0]), np.int64)
        for p in range(m):
            perm[p] = a + np.int64(keys[a + p] & mask)
        j = 0
        while j < m:
            e = j + 1
            vb = keys[a + j] >> tshift
            while e < m and (keys[a + e] >> tshift) == vb:
                e += 1
            if e - j > 1:
                for p in range(j + 1, e):
                    cur = perm[p]
                    q = p - 1
                    while q >= j and (
                        values[perm[q]] < values[cur] or (values[perm[q]] == values[cur] and targets[perm[q]] > targets[cur])
                    ):
                        perm[q + 1] = perm[q]
                        q -= 1
                    perm[q + 1] = cur
            j = e
        if prefix >= 0:
            out[w] = prefix
            w += 1
        for p in range(min(m, limit)):
            out[w] = tokens[targets[perm[p]]]
            w += 1
        if suffix >= 0:
            out[w] = suffix
            w += 1
        out_ptr[i + 1] = w
    return out_ptr, out[:w]

