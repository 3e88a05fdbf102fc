"""Check and L2-normalise embedding vectors, so that inner product equals cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmgene.errors import DataError, NonFiniteError, ParameterError


def missing_rows(x: object) -> np.ndarray:
    """Rows that hold no vector: a non-finite value or only zeros (no direction to compare by cosine).
    All False for what is not a 2-D array of numbers, which :func:`as_unit_vectors` refuses."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "fc":
        return np.zeros(len(arr) if arr.ndim else 0, bool)
    return ~np.isfinite(arr).all(axis=1) | ~arr.any(axis=1)


def as_unit_vectors(x: object, names: Sequence[str] | None = None, where: str = "the vectors") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, d) array with rows of unit length.

    Raises on a non-2-D input, NaN/inf values, or an all-zero row (a cell without embedding has no
    direction and cannot be compared by cosine).
    """
    import scipy.sparse as sp

    if sp.issparse(x):
        x = x.toarray()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ParameterError(f"expected a 2-D array of vectors, got shape {arr.shape}", where, "pass an (n_cells, dim) array or an obsm key")
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
    norms = np.linalg.norm(arr, axis=1)
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
