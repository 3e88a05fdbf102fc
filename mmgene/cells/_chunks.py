"""Row chunks of an :class:`mmgene.io.Expression` without copying in-memory CSR data.

``Expression.chunks`` slices (copies) each block; for an in-memory CSR matrix the block can instead
be a zero-copy view of the rows, checked in one numba pass; a block that fails goes to
:func:`mmgene.io.expression.check_values`, which raises the error naming the cell and gene.
Dense and backed matrices go through ``Expression.chunks`` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgene.cells._kernels import values_ok
from mmgene.errors import ParameterError
from mmgene.io.expression import check_values


def iter_chunks(view: Any, chunk_size: int) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """Yield ``(start, stop, csr)`` blocks of at most ``chunk_size`` rows, checked like ``view.chunks``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be a positive integer, got {chunk_size!r}", "argument chunk_size", "pass e.g. 4096")
    matrix = view.matrix
    if not (sp.issparse(matrix) and matrix.format == "csr"):
        yield from view.chunks(int(chunk_size))
        return
    n = view.shape[0]
    indptr = matrix.indptr
    for start in range(0, n, int(chunk_size)):
        stop = min(start + int(chunk_size), n)
        a, b = int(indptr[start]), int(indptr[stop])
        # set the arrays on an empty matrix: the constructor would copy views of a much larger array
        block = sp.csr_matrix((stop - start, matrix.shape[1]), dtype=matrix.dtype)
        block.data, block.indices, block.indptr = matrix.data[a:b], matrix.indices[a:b], indptr[start : stop + 1] - a
        block.has_sorted_indices = matrix.has_sorted_indices
        if block.dtype.kind != "f":
            block = block.astype(np.float32)
        if not values_ok(block.data, view.kind == "counts"):
            check_values(block, view, start)  # names the first bad cell and gene
        yield start, stop, block
