"""Check and L2-normalise embedding vectors, so that inner product equals cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmgene.errors import DataError, NonFiniteError, ParameterError, cause


def missing_rows(x: object) -> np.ndarray:
    """Rows that hold no vector: a non-finite value or only zeros once read as float32, as
    :func:`as_unit_vectors` reads them (no direction to compare by cosine), whether the array holds
    floats, integers or booleans, dense or sparse. All False for what is not a 2-D array of real numbers."""
    import scipy.sparse as sp

    arr = x.toarray() if sp.issparse(x) else np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "biufO":
        return np.zeros(len(arr) if arr.ndim else 0, bool)
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range is inf, as as_unit_vectors reads it
            arr = arr.astype(np.float32, copy=False)
    except (TypeError, ValueError):  # objects that are not numbers: as_unit_vectors refuses them
        return np.zeros(len(arr), bool)
    return ~np.isfinite(arr).all(axis=1) | ~arr.any(axis=1)


def as_float32(x: object, where: str) -> np.ndarray:
    """``x`` as a float32 array; text, complex numbers or rows of unequal length are a ParameterError."""
    fix = "pass an (n_cells, dim) array of real numbers or an obsm key"
    try:
        raw = np.asarray(x)
        if raw.dtype.kind == "c":  # numpy would drop the imaginary parts with only a warning
            raise TypeError("complex numbers are not real vectors")
        return raw.astype(np.float32, copy=False)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"expected an array of real numbers ({cause(exc)})", where, fix) from exc


def _row_norms(arr: np.ndarray) -> np.ndarray:
    """L2 norm of each row; a row whose squares overflow or underflow float32 is first divided by its
    largest absolute value (in place), so that it keeps its direction instead of becoming zero."""
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(arr, axis=1)
        odd = (norms == 0) | np.isinf(norms)
        if odd.any():
            scale = np.abs(arr[odd]).max(axis=1, keepdims=True)
            arr[odd] = arr[odd] / np.where(scale > 0, scale, 1.0)
            norms[odd] = np.linalg.norm(arr[odd], axis=1)
    return norms


def as_unit_vectors(x: object, names: Sequence[str] | None = None, where: str = "the vectors") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, d) array with rows of unit length.

    Raises on a non-2-D input, one that is not real numbers, NaN/inf values, or an all-zero row (a cell
    without embedding has no direction and cannot be compared by cosine).
    """
    import scipy.sparse as sp

    if sp.issparse(x):
        x = x.toarray()
    arr = as_float32(x, where)
    given = arr.shape  # the message names what was passed, not the one row a 1-D array is read as
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ParameterError(
            f"expected a 2-D array of vectors, got shape {given}", where, "pass an (n_cells, dim) array or an obsm key",
        )
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    if arr.shape[0] == 0:
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        first = names[bad[0]] if names is not None else int(bad[0])
        raise NonFiniteError(
            f"{bad.size} vectors contain NaN or infinite values", f"{where}, first at cell {str(first)!r}",
            "recompute the embedding for those cells or drop them",
        )
    norms = _row_norms(arr)
    zero = norms == 0
    if zero.any():
        bad = np.flatnonzero(zero)
        first = names[bad[0]] if names is not None else int(bad[0])
        raise DataError(
            f"{bad.size} vectors are all zeros and have no direction for cosine similarity",
            f"{where}, first at cell {str(first)!r}",
            "drop cells without an embedding (e.g. cells with no gene in the model's vocabulary)",
        )
    arr /= norms[:, None]
    return arr


def query_rows(queries: object, dim: int, *, normalize: bool, holder: str, where: str, fix: str) -> np.ndarray:
    """Search queries as C-contiguous float32 ``(n, dim)`` rows: unit length when ``normalize``
    (:func:`as_unit_vectors`), else as given; one vector is one query. Text, ragged rows or another
    shape or dimension are a ParameterError at ``where`` (``holder``: what has ``dim``, as in "the
    index has"; ``fix``: what to pass instead)."""
    if normalize:
        q = as_unit_vectors(queries, where="the query vectors")
    else:
        q = as_float32(queries, "the query vectors")
        q = np.ascontiguousarray(q[None, :] if q.ndim == 1 else q)
    if q.ndim != 2 or q.shape[1] != dim:
        got = f"dimension {q.shape[1]}" if q.ndim == 2 else f"shape {q.shape}, not (n_queries, dim)"
        raise ParameterError(f"query vectors have {got}, {holder} {dim}", where, fix)
    return q
