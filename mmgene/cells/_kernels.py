"""numba kernels that order, cut and join the entries of CSR rows without a Python loop per cell.

Every kernel works on one chunk of rows given as ``indptr`` plus flat per-entry arrays, so memory is
bounded by the chunk, never by the whole matrix.

The kernels trust their index arrays (numba does not check bounds): chunks reach them only through
:mod:`mmgene.io.expression` and :func:`mmgene.cells._chunks.iter_chunks`, which check ``indptr`` and
every column index first (:mod:`mmgene.io.structure`) and hand over rows in canonical form.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_NO_BYTES = np.zeros(0, np.uint8)

#: bits of a non-negative float32 (its sign bit is always 0).
VALUE_BITS = 31
VALUE_MASK = np.uint64((1 << VALUE_BITS) - 1)


def key_layout(n_ranks: int) -> tuple[int, int]:
    """Bits for the tie rank and the most rows one composite key can hold (see :func:`sentence_keys`)."""
    tie_bits = max(1, int(n_ranks - 1).bit_length())
    row_bits = 64 - VALUE_BITS - tie_bits
    if row_bits < 1:
        raise ValueError(f"too many genes for a composite key: {n_ranks}")
    return tie_bits, 1 << row_bits


def split_keys(keys: np.ndarray, tie_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Tie ranks (int64) and float32 values back from sorted :func:`sentence_keys`."""
    ties = (keys & np.uint64((1 << tie_bits) - 1)).astype(np.int64)
    bits = (keys >> np.uint64(tie_bits)) & VALUE_MASK
    values = (VALUE_MASK - bits).astype(np.uint32).view(np.float32)
    return ties, values


@nb.njit(cache=True, nogil=True)
def row_positions(indptr: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """0-based position of every entry within its row."""
    out = np.empty(indptr[-1] - indptr[0], np.int64)
    base = indptr[0]
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            out[p - base] = p - indptr[i]
    return out


def join_sentences(indptr: np.ndarray, ids: np.ndarray, vocab, encoding: str = "utf-8", scratch: Any = None) -> list[str]:
    """One string per row: its words separated by single spaces (empty rows give ``""``).

    ``scratch`` (e.g. a ``threading.local()``) keeps the byte buffer between calls of one thread, so
    each chunk does not pay again for fresh pages of a buffer as large as its text."""
    spare = getattr(scratch, "buffer", None)
    buf, ends = join_words(indptr, ids, vocab.packed, vocab.word_bytes, vocab.word_offsets, _NO_BYTES if spare is None else spare)
    if scratch is not None:
        scratch.buffer = buf
    view = memoryview(buf)
    stops = ends.tolist()
    starts = [0, *(e + 1 for e in stops[:-1])]
    return [str(view[a:b], encoding) for a, b in zip(starts, stops)]


# --- the orderings of a cell's genes (benchmarks/bench_orderings.py; mmgene.cells.ranking.lexsort_rows
# is the NumPy reference all are tested against) ------------------------------------------------------
# sentence_keys + np.sort (+ exact_runs unless float32): the general one, any value type and tie order.
# sentence_counts_by_position: counts with ties by column (sentences' default): 1.9x the keyed sort.
# geneformer_rank: Geneformer tokens: 1.9x normalising in NumPy and ordering with the keyed sort.


@nb.njit(cache=True, nogil=True)
def sentence_keys(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, tie_rank: np.ndarray, keep: np.ndarray, tie_bits: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Keys (row, value desc, tie rank) of the non-zero, kept entries, so that one ``np.sort`` orders
    every row of the chunk. The value part is the value rounded to float32 (whose IEEE bits sort like
    the numbers): exact for float32 data; other data then needs :func:`exact_runs`."""
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    keys = np.empty(indptr[n] - indptr[0], np.uint64)
    shift = np.uint64(tie_bits + VALUE_BITS)
    tshift = np.uint64(tie_bits)
    w = 0
    for i in range(n):
        hi = np.uint64(i) << shift
        for p in range(indptr[i], indptr[i + 1]):
            c = indices[p]
            x = data[p]
            if x > 0 and keep[c]:
                bits = np.uint64(_f32_bits(np.float32(x)))
                keys[w] = hi | ((np.uint64(0x7FFFFFFF) - bits) << tshift) | np.uint64(tie_rank[c])
                w += 1
        out_ptr[i + 1] = w
    return out_ptr, keys[:w]


@nb.njit(cache=True, nogil=True)
def exact_runs(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    key_ptr: np.ndarray,
    keys: np.ndarray,
    col_of_rank: np.ndarray,
    tie_bits: int,
    n_cols: int,
) -> np.ndarray:  # pragma: no cover - numba
    """Put sorted :func:`sentence_keys` of any value type in exact order; return each key's value.

    Inside every run of one row's keys with the same float32-rounded value, entries are re-sorted
    by (exact value descending, tie rank ascending). Insertion sort: such runs are true ties (already
    in tie order: one comparison each) or a few near-ties. ``col_of_rank`` is each tie rank's column.
    """
    n = indptr.shape[0] - 1
    mask = np.uint64((1 << tie_bits) - 1)
    tshift = np.uint64(tie_bits)
    values = np.empty(keys.shape[0], np.float64)
    row_value = np.zeros(n_cols, np.float64)  # the current row's value of each of its columns
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            row_value[indices[p]] = data[p]
        a, b = key_ptr[i], key_ptr[i + 1]
        for q in range(a, b):
            values[q] = row_value[col_of_rank[np.int64(keys[q] & mask)]]
        j = a
        while j < b:
            e = j + 1
            while e < b and (keys[e] >> tshift) == (keys[j] >> tshift):
                e += 1
            for p in range(j + 1, e):
                kv = keys[p]
                vv = values[p]
                q = p - 1
                while q >= j and (values[q] < vv or (values[q] == vv and keys[q] > kv)):
                    keys[q + 1] = keys[q]
                    values[q + 1] = values[q]
                    q -= 1
                keys[q + 1] = kv
                values[q + 1] = vv
            j = e
    return values


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
def sentence_counts_by_position(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, keep: np.ndarray, col_word: np.ndarray, limit: int, n_words: int, dedupe: bool
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Sentences of whole-number data with ties in column order, in linear time.

    Rows must have sorted column indices. Each row is stably counting-sorted by value (descending),
    so equal values keep their column order; rows whose largest value is far above their length use a
    stable merge sort instead. Then the first occurrence of each word is kept (``dedupe``: only needed
    when several columns share a word), ``limit`` per row.
    """
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    out = np.empty(indptr[n] - indptr[0], np.int32)
    seen = np.zeros(n_words, np.bool_)
    cap = 1 << 16
    counts = np.zeros(cap + 2, np.int64)
    vals = np.empty(0, np.int64)
    words = np.empty(0, np.int32)
    order = np.empty(0, np.int32)
    w = 0
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if vals.shape[0] < b - a:
            size = max(b - a, 2 * vals.shape[0])
            vals = np.empty(size, np.int64)
            words = np.empty(size, np.int32)
            order = np.empty(size, np.int32)
        m = 0
        top = 0
        for p in range(a, b):
            c = indices[p]
            x = data[p]
            if x > 0 and keep[c]:
                v = np.int64(x)
                vals[m] = v
                words[m] = col_word[c]
                if v > top:
                    top = v
                m += 1
        if m > 0 and top <= cap and top <= 8 * m + 1024:
            for q in range(m):
                counts[top - vals[q] + 1] += 1
            for v in range(top + 1):
                counts[v + 1] += counts[v]
            for q in range(m):
                d = top - vals[q]
                order[counts[d]] = q
                counts[d] += 1
            for v in range(top + 2):
                counts[v] = 0
        elif m > 0:
            o = np.argsort(-vals[:m], kind="mergesort")
            for q in range(m):
                order[q] = o[q]
        if not dedupe:
            for q in range(min(m, limit)):
                out[w] = words[order[q]]
                w += 1
            out_ptr[i + 1] = w
            continue
        body = w
        c = 0
        for q in range(m):
            if c >= limit:
                break
            g = words[order[q]]
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
def all_within(data: np.ndarray, low: float, high: float, whole: bool) -> bool:  # pragma: no cover - numba
    """One pass: every value in ``[low, high)`` (NaN fails), and a whole number when ``whole``.

    Branch-free blocks (SIMD), stopping at the first block with a bad value."""
    n = data.shape[0]
    for a in range(0, n, 4096):
        ok = True
        if whole:
            for p in range(a, min(a + 4096, n)):
                x = data[p]
                ok &= (x >= low) & (x < high) & (x == np.floor(x))
        else:
            for p in range(a, min(a + 4096, n)):
                x = data[p]
                ok &= (x >= low) & (x < high)
        if not ok:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def values_ok(data: np.ndarray, whole: bool) -> bool:  # pragma: no cover - numba
    """Every value finite and >= 0 (and a whole number when ``whole``)."""
    return all_within(data, 0.0, np.inf, whole)


@nb.njit(cache=True, nogil=True)
def columns_increase(indptr: np.ndarray, indices: np.ndarray) -> bool:  # pragma: no cover - numba
    """Every row's column indices strictly increase (sorted, no repeats).

    One branch-free (SIMD) count of the positions not above their predecessor over all the rows'
    entries; the rows are fine when those are exactly the row starts that fall below the previous
    row's end."""
    n = indptr.shape[0] - 1
    a0, b0 = indptr[0], indptr[n]
    after, before = indices[a0 + 1 : b0], indices[a0 : max(a0, b0 - 1)]
    drops = 0
    for s in range(0, after.shape[0], 65536):  # int32 counts over slices: what LLVM vectorises
        x, y = after[s : s + 65536], before[s : s + 65536]
        count = np.int32(0)
        for p in range(x.shape[0]):
            count += np.int32(x[p] <= y[p])
        drops += count
    starts = 0
    for i in range(1, n):
        p = indptr[i]
        if indptr[i - 1] < p < b0:  # a row start, counted once however many empty rows share it
            starts += np.int64(indices[p] <= indices[p - 1])
    return drops == starts


#: bits dropped from a float64 value's pattern for its radix key: the key keeps the exponent and
#: 12 mantissa bits (23 bits); equal keys are re-sorted exactly.
KEY_SHIFT = 40
#: most entries of one row :func:`geneformer_rank` sorts (16-bit entry numbers); Geneformer's
#: vocabularies have ~25,000 genes and a row holds each gene at most once.
MAX_ROW_GENES = 65_535


@nb.njit(cache=True, nogil=True)
def move_left(buf: np.ndarray, dst: int, src: int, n: int) -> None:  # pragma: no cover - numba
    """``buf[dst:dst + n] = buf[src:src + n]`` for ``dst <= src``, in place (no temporary copy)."""
    for j in range(n):
        buf[dst + j] = buf[src + j]


@nb.njit(cache=True, nogil=True)
def _token_buffer(indptr: np.ndarray, extra: int, out: np.ndarray, start: int) -> np.ndarray:  # pragma: no cover - numba
    """``out[start:]`` checked to hold every row's tokens plus ``extra`` per row (a new array when ``out`` is empty)."""
    n = indptr.shape[0] - 1
    need = indptr[n] - indptr[0] + extra * n
    if out.shape[0] == 0:
        return np.empty(need, np.int32)
    if out.shape[0] - start < need:
        raise ValueError("output buffer too small")
    return out[start:]


@nb.njit(cache=True, nogil=True)
def geneformer_rank(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    col_token: np.ndarray,
    recip_n: np.ndarray,
    target_sum: float,
    col_recip_median: np.ndarray,
    compute_totals: bool,
    limit: int,
    prefix: int,
    suffix: int,
    out: np.ndarray,
    start: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """Geneformer token ids per row, sorted exactly, in linear time per row.

    Column ``c`` holds token ``col_token[c]`` (``-1``: dropped) whose median's reciprocal is
    ``col_recip_median[c]``. Each entry is normalised as ``x * (1/n) * target_sum * (1/median)``
    (input dtypes, numpy promotion, then float64; ``n`` is the row's float64 total when
    ``compute_totals``) and kept when its column has a token and its value is above zero (Geneformer
    ranks the non-zeros of the normalised matrix).

    Rows are ordered by an LSD radix sort of one ``uint32`` per entry: a monotone key (the float64
    value's bits without the low :data:`KEY_SHIFT`), rebased to the row's minimum and cut to 16
    bits, above the entry's 16-bit index (at most :data:`MAX_ROW_GENES` entries per row), so one or
    two 8-bit passes suffice. Runs of equal cut keys are then put in exact order by (value
    descending, token id ascending), so the result equals a full sort with ties by token id.

    The first ``limit`` tokens are kept, optionally wrapped in ``prefix``/``suffix`` (``-1`` for
    none). They are written to ``out[start:]`` (room for ``nnz + extra * n_rows`` needed), or to a
    new array when ``out`` is empty. Returns the row pointers (from 0), the written tokens, and two
    flags: some value is not a finite whole number >= 0; some row's column indices do not strictly
    increase (duplicates possible). The tokens are only meaningful when neither is set.
    """
    n = indptr.shape[0] - 1
    extra = (1 if prefix >= 0 else 0) + (1 if suffix >= 0 else 0)
    out = _token_buffer(indptr, extra, out, start)
    out_ptr = np.zeros(n + 1, np.int64)
    size = 16
    vals = np.empty(size, np.float64)
    tgts = np.empty(size, np.int32)
    ka = np.empty(size, np.uint32)
    kb = np.empty(size, np.uint32)
    rk = np.empty(size, np.uint32)
    dup = np.empty(size, np.int64)
    h0 = np.zeros(256, np.int32)  # counts, then next positions, of the low and the high key byte
    h1 = np.zeros(256, np.int32)
    vshift = np.uint64(KEY_SHIFT)
    top = np.uint64(0x7FFFFFFFFFFFFFFF) >> vshift
    w = 0
    # checked in separate vectorised passes: inside the row loop these checks cost a third of the time
    bad = not values_ok(data[indptr[0] : indptr[n]], True)
    unordered = not columns_increase(indptr, indices)
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if b - a > size:
            size = max(b - a, 2 * size)
            vals = np.empty(size, np.float64)
            tgts = np.empty(size, np.int32)
            ka = np.empty(size, np.uint32)
            kb = np.empty(size, np.uint32)
            rk = np.empty(size, np.uint32)
            dup = np.empty(size, np.int64)
        if compute_totals:
            total = 0.0
            for p in range(a, b):
                total += np.float64(data[p])
            recip_n[i] = 1.0 / total if total > 0.0 else 0.0  # a row of stored zeros has no counts
        r = recip_n[i]
        m = 0
        kmin = top
        kmax = np.uint64(0)
        # branch-free: every entry is written at m, and m only moves past kept ones (a non-zero
        # value in a column with a token); dropped entries' keys (top) leave kmin alone
        for p in range(a, b):
            c = indices[p]
            t = col_token[c]
            v = np.float64((data[p] * r) * target_sum) * col_recip_median[c]
            vals[m] = v
            tgts[m] = t
            key = top - (_f64_bits(v) >> vshift)  # descending value = ascending key
            rk[m] = np.uint32(key)
            keep = (v > 0.0) & (t >= 0)
            kmin = min(kmin, key if keep else top)
            kmax = max(kmax, key if keep else np.uint64(0))
            m += np.int64(keep)
        # LSD radix sort of the row's keys rebased to kmin and cut to 16 bits (above the 16-bit entry
        # number): one or two 8-bit passes, both histograms counted while packing; equal cut keys are
        # put in exact order below
        span = kmax - kmin if m > 0 else np.uint64(0)
        cut = np.uint64(0)
        while (span >> cut) > np.uint64(0xFFFF):
            cut += np.uint64(1)
        passes = 0 if m < 2 or span == 0 else (1 if (span >> cut) < np.uint64(256) else 2)
        h0[:] = 0
        h1[:] = 0
        k32 = np.uint32(kmin)
        c32 = np.uint32(cut)
        for q in range(m):
            r = (rk[q] - k32) >> c32
            ka[q] = (r << np.uint32(16)) | np.uint32(q)
            h0[r & np.uint32(255)] += 1
            h1[r >> np.uint32(8)] += 1
        src = ka
        if passes > 0:
            s0 = np.int32(0)
            s1 = np.int32(0)
            for d in range(256):
                c0 = h0[d]
                h0[d] = s0
                s0 += c0
                c1 = h1[d]
                h1[d] = s1
                s1 += c1
            for q in range(m):  # by the low byte, ka -> kb
                e = ka[q]
                d = (e >> np.uint32(16)) & np.uint32(255)
                pos = h0[d]
                h0[d] = pos + 1
                kb[pos] = e
            src = kb
            if passes == 2:  # by the high byte, kb -> ka
                for q in range(m):
                    e = kb[q]
                    d = e >> np.uint32(24)
                    pos = h1[d]
                    h1[d] = pos + 1
                    ka[pos] = e
                src = ka
        l16 = np.uint32(0xFFFF)
        s16 = np.uint32(16)
        # equal cut keys: note (branch-free) every position whose key equals the previous one, then
        # put each such run in exact order: value descending, then token id ascending
        n_dup = 0
        for q in range(1, m):
            dup[n_dup] = q
            n_dup += np.int64((src[q] >> s16) == (src[q - 1] >> s16))
        t = 0
        while t < n_dup:
            j = dup[t] - 1
            e = dup[t] + 1
            t += 1
            while t < n_dup and dup[t] == e:
                e += 1
                t += 1
            for p in range(j + 1, e):
                cur = src[p]
                ci = np.int64(cur & l16)
                q = p - 1
                while q >= j:
                    qi = np.int64(src[q] & l16)
                    if vals[ci] > vals[qi] or (vals[ci] == vals[qi] and tgts[ci] < tgts[qi]):
                        src[q + 1] = src[q]
                        q -= 1
                    else:
                        break
                src[q + 1] = cur
        if prefix >= 0:
            out[w] = prefix
            w += 1
        for q in range(min(m, limit)):
            out[w] = tgts[np.int64(src[q] & l16)]
            w += 1
        if suffix >= 0:
            out[w] = suffix
            w += 1
        out_ptr[i + 1] = w
    flags = np.zeros(2, np.bool_)
    flags[0] = bad
    flags[1] = unordered
    return out_ptr, out[: out_ptr[n]], flags


@intrinsic
def _f64_bits(typingctx, value):  # pragma: no cover - compiled by numba
    """The IEEE bit pattern of a float64 as a uint64 (a register move, no memory)."""
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _f32_bits(typingctx, value):  # pragma: no cover - compiled by numba
    """The IEEE bit pattern of a float32 as a uint32 (a register move, no memory)."""
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _store_u64(typingctx, arr, offset, value):  # pragma: no cover - compiled by numba
    """Store ``value`` as 8 little-endian bytes at ``arr[offset:offset + 8]`` (any alignment)."""
    sig = types.void(arr, types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        array, off, val = args
        data = context.make_array(signature.args[0])(context, builder, array).data
        ptr = builder.bitcast(builder.gep(data, [off]), ir.IntType(64).as_pointer())
        builder.store(val, ptr).align = 1
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def join_words(
    indptr: np.ndarray, ids: np.ndarray, packed: np.ndarray, word_bytes: np.ndarray, offsets: np.ndarray, spare: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """UTF-8 bytes of every row's words joined by spaces, each row ended by a newline; and the
    offset of every row's newline. The bytes are written to the start of ``spare`` when it is large
    enough (returned whole, for reuse), else to a new buffer.

    ``word_bytes[offsets[g]:offsets[g + 1]]`` is word ``g`` followed by a space; words of up to 16
    such bytes are also ``packed`` into two little-endian ``uint64`` and copied as whole words.
    """
    n = indptr.shape[0] - 1
    total = n
    for p in range(ids.shape[0]):
        total += offsets[ids[p] + 1] - offsets[ids[p]]
    buf = spare if spare.shape[0] >= total + 16 else np.empty(total + total // 4 + 16, np.uint8)
    ends = np.empty(n, np.int64)
    w = 0
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        for p in range(a, b):
            g = ids[p]
            length = offsets[g + 1] - offsets[g]
            if length <= 16:  # one or two unaligned 8-byte stores (the buffer has 16 bytes of slack)
                _store_u64(buf, w, packed[2 * g])
                if length > 8:
                    _store_u64(buf, w + 8, packed[2 * g + 1])
                w += length
            else:
                for q in range(offsets[g], offsets[g + 1]):
                    buf[w] = word_bytes[q]
                    w += 1
        if b > a:
            w -= 1
        buf[w] = 10
        ends[i] = w
        w += 1
    return buf, ends

