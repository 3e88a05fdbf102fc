"""Check a sparse matrix's index arrays before anything compiled reads them, and put rows in order.

Compiled code (SciPy's C++ routines, mmgene's numba kernels) trusts ``indptr`` and ``indices``: an
index out of range reads outside an array, which crashes or silently changes the output. So every
sparse matrix mmgene reads is checked here first, with vectorised NumPy:

- ``indptr`` has one entry per row (per column for CSC) plus one, starts at 0, never decreases and
  ends at the number of stored entries (``len(indices) == len(data)``): once per matrix, O(rows);
- every entry of ``indices`` lies in ``0 .. n - 1`` (``n`` genes for CSR, cells for CSC): for a
  matrix in memory at once, for a backed CSR matrix chunk by chunk as its rows are read.

Rows whose column indices are out of order are sorted, and entries repeated within a row (the same
cell and gene stored twice) are **summed**, which is what SciPy means by such a matrix
(``X.toarray()`` shows the sum). Both happen on a copy of the chunk being read: the user's matrix is
never modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgene.errors import DataError, InputFileError, MatrixStructureError, MMGeneError, cause

FIX = (
    "the matrix is corrupt: write it again from its source (SciPy's "
    "matrix.check_format(full_check=True) names the problem)"
)
#: entries of an on-disk index array read at once when it is checked whole (bounded memory).
READ_BLOCK = 1 << 24


@contextmanager
def disk_errors(view: Any, what: str) -> Iterator[None]:
    """Report a storage library's error while reading ``what`` of a matrix left on disk (h5py's
    ``OSError`` for a compressed chunk that fails to decode, a zarr codec's ``RuntimeError``) as an
    :class:`InputFileError` naming the file, instead of a traceback; a matrix in memory raises as is."""
    try:
        yield
    except (MMGeneError, MemoryError):
        raise
    except Exception as exc:
        if view.in_memory:
            raise
        raise InputFileError(
            f"cannot read {what} of {view.source} ({cause(exc)})", view.origin,
            "the file is damaged (part of it cannot be decoded): copy it again from its source",
        ) from exc


def _where(view: Any, fmt: str) -> str:
    return f"{view.origin}, {view.source} ({fmt.upper()})"


def _axes(view: Any, fmt: str) -> tuple[str, Any, str, Any]:
    """(major noun, major names, minor noun, minor names): rows are cells in CSR, genes in CSC."""
    if fmt == "csc":
        return "gene", view.var_names, "cell", view.obs_names
    return "cell", view.obs_names, "gene", view.var_names


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def _name(noun: str, names: Any, i: int) -> str:
    return f"{noun} {str(names[i])!r} ({'row' if noun == 'cell' else 'column'} {i})"


def check_indptr(indptr: np.ndarray, n_indices: int, n_data: int, view: Any, fmt: str = "csr") -> None:
    """Raise :class:`MatrixStructureError` unless ``indptr`` fits a matrix of ``view.shape`` with
    ``n_indices`` stored indices and ``n_data`` stored values."""
    major, names, _, _ = _axes(view, fmt)
    n_major = len(names)
    where = _where(view, fmt)
    if indptr.ndim != 1 or indptr.dtype.kind not in "iu":
        raise MatrixStructureError(f"the sparse matrix's indptr holds {indptr.dtype} values of shape {indptr.shape}, not integers", where, FIX)
    if len(indptr) != n_major + 1:
        raise MatrixStructureError(
            f"the sparse matrix's indptr has {len(indptr):,} entries for {_count(n_major, major)}; it needs {n_major + 1:,}", where, FIX
        )
    if int(indptr[0]) != 0:
        raise MatrixStructureError(f"the sparse matrix's indptr starts at {int(indptr[0]):,}, not 0", where, FIX)
    if n_indices != n_data:
        raise MatrixStructureError(f"the sparse matrix stores {n_indices:,} indices but {n_data:,} values", where, FIX)
    drops = np.flatnonzero(indptr[1:] < indptr[:-1])
    if drops.size:
        i = int(drops[0])
        raise MatrixStructureError(
            f"the sparse matrix's indptr decreases at {_count(drops.size, major)}, first at {_name(major, names, i)}: "
            f"from {int(indptr[i]):,} to {int(indptr[i + 1]):,}",
            where,
            FIX,
        )
    if int(indptr[-1]) != n_indices:
        raise MatrixStructureError(
            f"the sparse matrix's indptr ends at {int(indptr[-1]):,} but {n_indices:,} entries are stored", where, FIX
        )


def check_indices(indices: np.ndarray, indptr: np.ndarray, view: Any, fmt: str = "csr", offset: int = 0, base: int = 0) -> None:
    """Raise :class:`MatrixStructureError` unless every index lies in ``0 .. n - 1``.

    ``indices`` are the entries from ``base`` on of the block described by ``indptr`` (whose first
    major item is number ``offset`` of the whole matrix); only used to name the place of a bad one.
    """
    major, major_names, minor, minor_names = _axes(view, fmt)
    n_minor = len(minor_names)
    if indices.size == 0:
        return
    if indices.dtype.kind not in "iu":
        raise MatrixStructureError(f"the sparse matrix's indices hold {indices.dtype} values, not integers", _where(view, fmt), FIX)
    if int(indices.min()) >= 0 and int(indices.max()) < n_minor:
        return
    bad = np.flatnonzero((indices < 0) | (indices >= n_minor))
    p = int(bad[0])
    i = offset + int(np.searchsorted(indptr, base + p, side="right")) - 1
    raise MatrixStructureError(
        f"{_count(bad.size, minor + ' index', minor + ' indices')} of the sparse matrix outside 0..{n_minor - 1:,} "
        f"({_count(n_minor, minor)}), "
        f"first {int(indices[p]):,} at {_name(major, major_names, i)}",
        _where(view, fmt),
        FIX,
    )


def _backed_arrays(matrix: Any, view: Any) -> tuple[Any, Any, Any] | None:
    """The ``indptr``, ``indices`` and ``data`` arrays (h5py/zarr) of a backed AnnData sparse matrix."""
    group = getattr(matrix, "group", None)
    if group is None or getattr(matrix, "format", None) not in ("csr", "csc"):
        return None
    for name in ("indptr", "indices", "data"):
        if name not in group:
            raise MatrixStructureError(f"the sparse matrix on disk has no {name!r} array", _where(view, matrix.format), FIX)
    return group["indptr"], group["indices"], group["data"]


def check_on_disk_indices(indices: Any, indptr: np.ndarray, view: Any, fmt: str) -> None:
    """:func:`check_indices` of an on-disk (h5py/zarr) index array, :data:`READ_BLOCK` entries at a time."""
    for a in range(0, indices.shape[0], READ_BLOCK):
        check_indices(np.asarray(indices[a : a + READ_BLOCK]), indptr, view, fmt, 0, a)


def check_structure(view: Any) -> None:
    """Check the index arrays of ``view.matrix`` (a no-op for dense matrices).

    In memory: ``indptr`` and every index at once. Backed: ``indptr`` at once (what AnnData reads to
    slice rows), the indices of CSR matrices chunk by chunk as rows are read (:func:`check_block`),
    those of CSC matrices at once (AnnData reads a whole CSC matrix to slice its rows).
    """
    matrix = view.matrix
    dtype = getattr(matrix, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise DataError(
            f"{view.source} holds {np.dtype(dtype)} values, not numbers", view.origin,
            f"convert it to numbers first, e.g. adata.X = adata.X.astype('float32') (for {view.source})",
        )
    if sp.issparse(matrix):
        fmt = matrix.format
        if fmt in ("csr", "csc"):  # other SciPy formats keep no index pointers
            check_indptr(np.asarray(matrix.indptr), len(matrix.indices), len(matrix.data), view, fmt)
            check_indices(np.asarray(matrix.indices), matrix.indptr, view, fmt)
        return
    arrays = _backed_arrays(matrix, view)
    if arrays is None:
        return
    if tuple(matrix.shape) != tuple(view.shape):  # a backed matrix's shape is read from the file, not checked against obs/var
        raise MatrixStructureError(
            f"the sparse matrix is {matrix.shape[0]:,} x {matrix.shape[1]:,}, but the AnnData has "
            f"{view.shape[0]:,} cells x {view.shape[1]:,} genes", _where(view, matrix.format), FIX,
        )
    fmt = matrix.format
    indptr_arr, indices, data = arrays
    with disk_errors(view, "the index arrays"):
        indptr = np.asarray(indptr_arr[...])
        check_indptr(indptr, indices.shape[0], data.shape[0], view, fmt)
        if fmt == "csc":
            check_on_disk_indices(indices, indptr, view, fmt)


def check_block(block: sp.csr_matrix, view: Any, offset: int) -> None:
    """Check the column indices of a CSR chunk of rows ``offset ..`` as read from disk (its pointers
    come from the ``indptr`` that :func:`check_structure` checked)."""
    check_indices(np.asarray(block.indices), block.indptr, view, "csr", offset)


def canonical(block: sp.csr_matrix) -> sp.csr_matrix:
    """``block`` with each row's column indices sorted and repeated entries summed (as SciPy defines
    them): ``block`` itself when it already is, otherwise a copy. Its index arrays must be checked."""
    if block.indptr.dtype != block.indices.dtype:  # SciPy's C++ routines want one index type
        block = sp.csr_matrix((block.data, block.indices, block.indptr), shape=block.shape)
    if block.has_canonical_format:
        return block
    block = block.copy()
    block.sum_duplicates()
    return block
