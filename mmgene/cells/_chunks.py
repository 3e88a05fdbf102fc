"""Row chunks of an :class:`mmgene.io.Expression` without copying in-memory CSR data, and the
threads that work on them.

``Expression.chunks`` slices (copies) each block; for an in-memory CSR matrix the block can instead
be a zero-copy view of the rows (whose index arrays :func:`mmgene.io.expression` has checked), its
values checked in one numba pass; a block that fails goes to
:func:`mmgene.io.expression.check_values`, which raises the error naming the cell and gene. Blocks
come out in canonical form (sorted column indices, repeated entries summed: on a copy, only when
needed). Dense and backed matrices go through ``Expression.chunks`` unchanged.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from mmgene.cells._kernels import values_ok
from mmgene.errors import ParameterError, is_whole_number
from mmgene.io.expression import check_values
from mmgene.io.structure import canonical


def check_chunk_size(chunk_size: Any) -> int:
    """``chunk_size`` as an int, or a clear error when it is not a positive whole number."""
    if not is_whole_number(chunk_size, 1):
        raise ParameterError(f"chunk_size must be a positive integer, got {chunk_size!r}", "argument chunk_size", "pass e.g. 4096")
    return int(chunk_size)


def iter_chunks(view: Any, chunk_size: int, check: bool = True) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """Yield ``(start, stop, csr)`` blocks of at most ``chunk_size`` rows, checked and in canonical
    form like ``view.chunks`` (``check=False``: the values of in-memory CSR blocks are left to the
    caller, except in blocks whose repeated entries are summed here: those are checked first)."""
    chunk_size = check_chunk_size(chunk_size)
    matrix = view.matrix
    if not (sp.issparse(matrix) and matrix.format == "csr"):
        yield from view.chunks(chunk_size)
        return
    n = view.shape[0]
    indptr = matrix.indptr
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        a, b = int(indptr[start]), int(indptr[stop])
        # set the arrays on an empty matrix: the constructor would copy views of a much larger array
        block = sp.csr_matrix((stop - start, matrix.shape[1]), dtype=matrix.dtype)
        block.data, block.indices, block.indptr = matrix.data[a:b], matrix.indices[a:b], indptr[start : stop + 1] - a
        if block.dtype.kind != "f":
            block = block.astype(np.float32)
        tidy = canonical(block)
        # before repeated entries are summed: bad values could cancel out
        if not view.checked and (check or tidy is not block) and not values_ok(block.data, view.kind == "counts"):
            check_values(block, view, start)  # names the first bad cell and gene
        yield start, stop, tidy


T = TypeVar("T")
R = TypeVar("R")


def threads_for(n_jobs: Any) -> int:
    """Threads for ``n_jobs``: ``None`` takes ``mmgene.settings.n_jobs``; ``-1`` every core this process
    may use (at most numba's thread count)."""
    import numba

    from mmgene.settings import settings

    if n_jobs is None:
        n_jobs = settings.n_jobs
    if not is_whole_number(n_jobs, -1) or n_jobs == 0:  # a count of threads, or -1: every core
        raise ParameterError(f"n_jobs must be a positive integer, -1 or None, got {n_jobs!r}", "argument n_jobs (or MMGENE_N_JOBS)", "pass e.g. 1, 4 or -1 (all cores)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    most = min(cores, int(numba.config.NUMBA_NUM_THREADS))
    return most if n_jobs == -1 else min(int(n_jobs), most)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``map(fn, items)`` on ``threads`` threads, in order, with at most ``threads + 1`` items in flight.

    Worth it when ``fn`` spends its time in code that releases the GIL (the numba kernels here), and
    the next item (a chunk read from disk) is produced while the workers run."""
    if threads <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="mmgene") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
