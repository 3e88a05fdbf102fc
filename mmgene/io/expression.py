"""Find the matrix that holds expression (raw counts or log-normalised) and stream it in checked chunks.

Every later stage asks :func:`expression` for its input instead of reading ``adata.X`` directly, so
counts in ``layers['counts']`` or ``.raw``, backed files and dense matrices are all handled once, here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmgene.errors import (
    EmptyMatrixError,
    NegativeValuesError,
    NonFiniteError,
    NotCountsError,
    ParameterError,
)

Kind = Literal["counts", "log1p"]
#: rows inspected to decide what a matrix holds.
SAMPLE_ROWS = 1000
#: largest value a log1p-normalised matrix plausibly holds (log1p(1e6) ~ 13.8).
MAX_LOG_VALUE = 20.0
DEFAULT_CHUNK = 2048


@dataclass
class Expression:
    """A view of the expression matrix mmgene uses: where it lives, what it holds, and its genes."""

    matrix: Any
    source: str
    kind: Kind
    var: pd.DataFrame
    obs_names: pd.Index
    origin: str = "the AnnData"

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.obs_names), len(self.var))

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    def chunk(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows ``start:stop`` as a checked float CSR matrix (never the whole matrix at once)."""
        block = self.matrix[start:stop]
        block = block.tocsr() if sp.issparse(block) else sp.csr_matrix(np.asarray(block))
        if block.dtype.kind not in "f":
            block = block.astype(np.float32)
        check_values(block, self, start)
        return block

    def chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(start, stop, csr)`` blocks of at most ``chunk_size`` rows."""
        if chunk_size < 1:
            raise ParameterError(f"chunk_size must be at least 1, got {chunk_size}", fix="pass a positive chunk_size")
        n = self.shape[0]
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            yield start, stop, self.chunk(start, stop)

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "kind": self.kind, "n_obs": self.shape[0], "n_vars": self.shape[1]}


def _first_bad_cell(mask_rows: np.ndarray, block: sp.csr_matrix, view: Expression, offset: int) -> tuple[str, str]:
    """Name the first cell and gene where ``mask_rows`` (over ``block.data``) is true."""
    idx = int(np.flatnonzero(mask_rows)[0])
    row = int(np.searchsorted(block.indptr, idx, side="right") - 1)
    col = int(block.indices[idx])
    return str(view.obs_names[offset + row]), str(view.var_names[col])


def check_values(block: sp.csr_matrix, view: Expression, offset: int) -> None:
    """Raise on NaN/inf, negative values, or non-integers where counts are expected."""
    data = block.data
    bad = ~np.isfinite(data)
    if bad.any():
        cell, gene = _first_bad_cell(bad, block, view, offset)
        raise NonFiniteError(
            f"{int(bad.sum())} NaN or infinite values in {view.source}",
            f"{view.origin}, {view.source}, first at cell {cell!r}, gene {gene!r}",
            "remove or repair those cells (e.g. replace NaN by 0 only if it truly means no expression)",
        )
    neg = data < 0
    if neg.any():
        cell, gene = _first_bad_cell(neg, block, view, offset)
        raise NegativeValuesError(
            f"{int(neg.sum())} negative values in {view.source}; expression must be non-negative "
            "(a scaled or centred matrix cannot be ranked)",
            f"{view.origin}, {view.source}, first at cell {cell!r}, gene {gene!r}",
            "give mmgene raw counts (X, layers['counts'] or .raw) instead of scaled data",
        )
    if view.kind == "counts":
        frac = data != np.floor(data)
        if frac.any():
            cell, gene = _first_bad_cell(frac, block, view, offset)
            raise NotCountsError(
                f"{int(frac.sum())} non-integer values in {view.source}, where raw counts are required",
                f"{view.origin}, {view.source}, first at cell {cell!r}, gene {gene!r}",
                "pass raw UMI/read counts (e.g. in layers['counts']), not normalised values",
            )


def _candidates(adata: Any) -> list[tuple[str, Any, pd.DataFrame]]:
    found = []
    if adata.X is not None:
        found.append(("X", adata.X, adata.var))
    if "counts" in getattr(adata, "layers", {}):
        found.append(("layers['counts']", adata.layers["counts"], adata.var))
    if getattr(adata, "raw", None) is not None:
        found.append(("raw.X", adata.raw.X, adata.raw.var))
    return found


def _sample(matrix: Any, n_obs: int) -> np.ndarray:
    """Non-zero values of the first rows (dense or sparse, backed or in memory)."""
    block = matrix[: min(SAMPLE_ROWS, n_obs)]
    if sp.issparse(block):
        return np.asarray(block.data)
    arr = np.asarray(block).ravel()
    return arr[arr != 0]


def _classify(values: np.ndarray) -> str:
    """``'counts'``, ``'log1p'``, ``'negative'``, ``'nonfinite'``, ``'other'`` or ``'zero'``."""
    if values.size == 0:
        return "zero"
    if not np.isfinite(values).all():
        return "nonfinite"
    if (values < 0).any():
        return "negative"
    if (values == np.floor(values)).all():
        return "counts"
    if values.max() <= MAX_LOG_VALUE:
        return "log1p"
    return "other"


def expression(adata: Any, *, require: Kind | None = None, origin: str | None = None) -> Expression:
    """Pick the expression matrix of ``adata``.

    Raw counts are preferred, looked for in ``X``, then ``layers['counts']``, then ``.raw.X``. When no
    counts exist and ``require`` is not ``'counts'``, a log1p-normalised matrix (e.g. scanpy's
    ``.raw`` after ``normalize_total`` + ``log1p``) is accepted: ranks and GenePT-w only need that.

    Parameters
    ----------
    adata
        An AnnData (in memory or backed).
    require
        ``'counts'`` to refuse anything but integer counts; ``None`` to accept log1p data too.
    origin
        How to name the data in error messages (a file path); defaults to ``uns['mmgene']['input']``.
    """
    if origin is None:
        origin = str(adata.uns.get("mmgene", {}).get("input", {}).get("file", "the AnnData"))
    n_obs, n_vars = adata.shape
    if n_obs == 0 or n_vars == 0:
        raise EmptyMatrixError(
            f"the matrix is empty ({n_obs} cells x {n_vars} genes)", origin, "pass an AnnData with cells and genes"
        )
    seen: list[str] = []
    chosen: dict[str, tuple[str, Any, pd.DataFrame]] = {}
    for name, matrix, var in _candidates(adata):
        kind = _classify(_sample(matrix, n_obs))
        seen.append(f"{name}: {kind}")
        chosen.setdefault(kind, (name, matrix, var))
    order: list[Kind] = ["counts"] if require == "counts" else ["counts", "log1p"]
    for kind in order:
        if kind in chosen:
            name, matrix, var = chosen[kind]
            return Expression(matrix, name, kind, var, adata.obs_names, origin)
    if set(chosen) <= {"nonfinite", "negative", "zero"} and set(chosen) - {"zero"}:
        # Only broken matrices: let the per-chunk check name the exact cell and gene.
        key = "nonfinite" if "nonfinite" in chosen else "negative"
        name, matrix, var = chosen[key]
        view = Expression(matrix, name, "log1p", var, adata.obs_names, origin)
        for _ in view.chunks():
            pass
    if set(chosen) == {"zero"}:
        raise EmptyMatrixError(
            f"every value in the first {min(SAMPLE_ROWS, n_obs)} cells is zero ({'; '.join(seen)})",
            origin,
            "check that the matrix was read correctly and holds expression",
        )
    wanted = "raw integer counts" if require == "counts" else "raw counts or log1p-normalised expression"
    raise NotCountsError(
        f"no matrix holds {wanted} (found {'; '.join(seen)})",
        origin,
        "store raw counts in X or layers['counts'] (or keep them in .raw)",
    )
