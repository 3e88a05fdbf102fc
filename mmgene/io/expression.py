"""Find the matrix that holds expression (raw counts or log-normalised) and stream it in checked chunks.

Every later stage asks :func:`expression` for its input instead of reading ``adata.X`` directly, so
counts in ``layers['counts']`` or ``.raw``, backed files and dense matrices are all handled once, here.

Every row that is read is checked, never a sample: a sparse matrix's index arrays before anything
slices it (:mod:`mmgene.io.structure`), the values (finite, >= 0, whole numbers when the matrix holds
counts) chunk by chunk as rows are read. :meth:`Expression.validate` checks every row at once: in
one vectorised pass for a matrix in memory (what :func:`mmgene.io.read` does), chunk by chunk for a
backed one (what ``mmgene info`` does), so a big file is not read once more by every command.
Chunks come out with sorted column indices and repeated entries summed.

The view also says what every stage needs to know about the matrix besides its values: each gene's
symbol (:func:`gene_symbols`) and the expression log-normalised one way, ``log1p`` of counts per
:data:`TARGET_SUM` (:func:`log_normalise`), so that cell inputs, GenePT-w, training captions and gene
contributions read the same numbers for the same cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import DTypeLike

from mmgene.errors import (
    EmptyMatrixError,
    GeneIdError,
    NegativeValuesError,
    NonFiniteError,
    NotCountsError,
    ParameterError,
)
from mmgene.io.structure import canonical, check_block, check_structure, disk_errors
from mmgene.provenance import input_file

Kind = Literal["counts", "log1p"]
#: rows inspected to decide what a matrix holds (the first ones that hold any value).
SAMPLE_ROWS = 1000
#: values tested at once for being whole numbers (bounds the temporary arrays).
VALUE_SLICE = 1 << 20
#: share of whole numbers among the sampled values above which a matrix holds counts.
MOSTLY_WHOLE = 0.5
#: largest value a log1p-normalised matrix plausibly holds (log1p(1e6) ~ 13.8).
MAX_LOG_VALUE = 20.0
DEFAULT_CHUNK = 2048
#: counts per cell after normalisation (scanpy's ``normalize_total(target_sum=1e4)``, as GenePT and
#: Cell2Sentence use it).
TARGET_SUM = 1e4


@dataclass
class Expression:
    """A view of the expression matrix mmgene uses: where it lives, what it holds, and its genes."""

    matrix: Any
    source: str
    kind: Kind
    var: pd.DataFrame
    obs_names: pd.Index
    origin: str = "the AnnData"
    #: every index and value of ``matrix`` has been checked (chunks then skip the checks).
    checked: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.obs_names), len(self.var))

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    @property
    def in_memory(self) -> bool:
        """Whether the matrix is in memory (SciPy sparse or NumPy), not read from disk as it is used:
        then checking it whole costs one vectorised pass, not a read of the file."""
        return sp.issparse(self.matrix) or isinstance(self.matrix, np.ndarray)

    def take(self, rows: Any = None, cols: Any = None, what: str = "the expression matrix") -> Any:
        """``matrix[rows]``, ``matrix[:, cols]`` or both, as stored (unchecked); a storage library's error
        on a damaged file is an :class:`~mmgene.errors.InputFileError` naming ``what`` (:func:`disk_errors`)."""
        with disk_errors(self, what):
            if cols is None:
                return self.matrix[rows if rows is not None else slice(None)]
            if rows is None:
                return self.matrix[:, cols]
            return self.matrix[rows][:, cols]

    def chunk(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows ``start:stop`` as a checked float CSR matrix in canonical form (sorted column indices,
        repeated entries summed, on a copy), never the whole matrix at once."""
        with disk_errors(self, f"cells {start:,} to {stop - 1:,}"):
            block = self.matrix[start:stop]
        if not sp.issparse(block):
            block = np.asarray(block)
            block = sp.csr_matrix(block if block.dtype.itemsize >= 4 else block.astype(np.float32))  # SciPy has no float16
        block = block.tocsr()
        if block.dtype.kind not in "f":
            block = block.astype(np.float32)
        if not self.checked:
            check_block(block, self, start)
            check_values(block, self, start)  # before repeated entries are summed: bad values could cancel out
        return canonical(block)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(start, stop, csr)`` blocks of at most ``chunk_size`` rows."""
        if chunk_size < 1:
            raise ParameterError(f"chunk_size must be at least 1, got {chunk_size}", fix="pass a positive chunk_size")
        n = self.shape[0]
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            yield start, stop, self.chunk(start, stop)

    def genes_per_cell(self, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
        """How many genes each cell expresses (positive entries), read ``chunk_size`` cells at a time."""
        counts = np.zeros(self.shape[0], dtype=np.int64)
        for start, stop, block in self.chunks(chunk_size):
            counts[start:stop] = np.diff((block > 0).tocsr().indptr)
        return counts

    def validate(self) -> Expression:
        """Check every index and value now, so a bad row anywhere is reported before any work: one
        vectorised pass for a sparse matrix in memory, chunk by chunk (bounded memory) otherwise."""
        if not self.checked:
            check_structure(self)
            self._check_all_values()
        return self

    def _check_all_values(self) -> None:
        """Check every value (the index arrays must be checked already); marks the view checked."""
        if sp.issparse(self.matrix) and self.matrix.format in ("csr", "csc"):
            check_values(self.matrix, self, 0)
        else:
            for _ in self.chunks():
                pass
        self.checked = True

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "kind": self.kind, "n_obs": self.shape[0], "n_vars": self.shape[1]}

    def symbols(self, *, or_names: bool = False) -> np.ndarray:
        """Each gene's symbol, as :func:`gene_symbols` reads it from this matrix's gene table."""
        return gene_symbols(self.var, origin=f"{self.origin} ({self.source})", or_names=or_names)

    def log_normalise(self, block: sp.csr_matrix, *, dtype: DTypeLike = np.float32) -> sp.csr_matrix:
        """:func:`log_normalise` of rows read from this matrix (counts normalised, log1p data as is)."""
        return log_normalise(block, self.kind, dtype=dtype)

    def log_chunks(self, chunk_size: int = DEFAULT_CHUNK, *, dtype: DTypeLike = np.float32) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """:meth:`chunks`, each block log-normalised (:func:`log_normalise`)."""
        for start, stop, block in self.chunks(chunk_size):
            yield start, stop, self.log_normalise(block, dtype=dtype)


def gene_symbols(var: pd.DataFrame, *, origin: str = "the AnnData", or_names: bool = False) -> np.ndarray:
    """Each gene's symbol as the data spells it (object array, ``''`` where a gene has none).

    ``var['gene_symbol']`` when present (what :func:`mmgene.io.read` fills), else symbols found in
    ``var_names`` or the usual id columns, or mapped from Ensembl ids
    (:func:`mmgene.genes.ids.resolve_gene_ids`). When ``var`` holds nothing recognisable (or its
    names repeat) that is a ``GeneIdError``, or with ``or_names=True`` the ``var_names`` as they are:
    for callers that match symbols against a list, where an unknown name simply matches nothing.
    Case is kept, because symbols are shown to people and written into captions and model
    vocabularies; code that matches symbols compares them upper-cased.
    """
    if "gene_symbol" in var.columns:
        col = var["gene_symbol"].astype(object)
        return col.where(col.notna(), "").astype(str).to_numpy(dtype=object)
    from mmgene.genes.ids import resolve_gene_ids

    try:
        return np.asarray(resolve_gene_ids(var, source=origin).symbols, dtype=object)
    except GeneIdError:
        if not or_names:
            raise
        return pd.Series(np.asarray(var.index, dtype=object), dtype=object).fillna("").astype(str).to_numpy(dtype=object)


def log_normalise(block: sp.csr_matrix, kind: Kind, *, dtype: DTypeLike = np.float32, target_sum: float = TARGET_SUM) -> sp.csr_matrix:
    """``log1p`` of each row's counts scaled to ``target_sum`` (scanpy's ``normalize_total`` +
    ``log1p``); ``kind='log1p'`` data is already normalised and only converted.

    Works on a CSR copy of ``dtype`` (stored zeros dropped), so the caller's block is untouched. The
    precision is the caller's: float32 for the omics tower's inputs, float64 where values are summed
    over thousands of genes (GenePT-w, gene contributions). Rows are independent: normalising a subset
    of rows gives the same values as normalising all of them and taking that subset.
    """
    block = sp.csr_matrix(block, dtype=dtype, copy=True)
    block.eliminate_zeros()
    if kind == "counts":
        totals = np.asarray(block.sum(axis=1)).ravel()
        scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
        block.data *= np.repeat(scale, np.diff(block.indptr))
        np.log1p(block.data, out=block.data)
    return block


def _first_bad_cell(mask: np.ndarray, block: Any, view: Expression, offset: int) -> str:
    """Name the first cell (lowest row, then column) and its gene where ``mask`` (over ``block.data``)
    is true; ``block`` is CSR or CSC, its rows numbered from ``offset``."""
    pos = np.flatnonzero(mask)
    major = np.searchsorted(block.indptr, pos, side="right") - 1
    minor = np.asarray(block.indices)[pos]
    rows, cols = (minor, major) if block.format == "csc" else (major, minor)
    k = int(np.lexsort((cols, rows))[0])
    row, col = offset + int(rows[k]), int(cols[k])
    return f"first at row {row}: cell {str(view.obs_names[row])!r}, gene {str(view.var_names[col])!r}"


def _values_ok(data: np.ndarray, whole: bool) -> bool:
    """Every value finite and >= 0 (and a whole number when ``whole``), by reductions: no temporary
    array as large as ``data``. NaN fails both comparisons of the minimum and maximum."""
    if data.size == 0 or data.dtype.kind in "bu":
        return True
    if data.dtype.kind == "i":
        return bool(data.min() >= 0)
    if not (data.min() >= 0 and np.isfinite(data.max())):
        return False
    if whole:
        for a in range(0, data.size, VALUE_SLICE):
            part = data[a : a + VALUE_SLICE]
            if not np.array_equal(np.floor(part), part):
                return False
    return True


def check_values(block: Any, view: Expression, offset: int) -> None:
    """Raise on NaN/inf, negative values, or non-integers where counts are expected, naming the first
    bad cell and gene. ``block`` is a CSR chunk of rows ``offset ..`` or a whole CSR/CSC matrix."""
    data = block.data
    if _values_ok(data, view.kind == "counts"):
        return
    where = f"{view.origin}, {view.source}"
    bad = ~np.isfinite(data)
    if bad.any():
        raise NonFiniteError(
            f"{int(bad.sum())} NaN or infinite values in {view.source}",
            f"{where}, {_first_bad_cell(bad, block, view, offset)}",
            "remove or repair those cells (e.g. replace NaN by 0 only if it truly means no expression)",
        )
    neg = data < 0
    if neg.any():
        raise NegativeValuesError(
            f"{int(neg.sum())} negative values in {view.source}; expression must be non-negative "
            "(a scaled or centred matrix cannot be ranked)",
            f"{where}, {_first_bad_cell(neg, block, view, offset)}",
            "give mmgene raw counts (X, layers['counts'] or .raw) instead of scaled data",
        )
    frac = data != np.floor(data) if view.kind == "counts" else np.zeros(0, bool)
    if frac.any():
        raise NotCountsError(
            f"{int(frac.sum())} non-integer values in {view.source}, where raw counts are required",
            f"{where}, {_first_bad_cell(frac, block, view, offset)}",
            "pass raw UMI/read counts (e.g. in layers['counts']), not normalised values",
        )


def _candidates(adata: Any, layer: str | None = None) -> list[tuple[str, Any, pd.DataFrame]]:
    """The matrices that may hold expression, in order of preference; only ``layer`` when one is named
    (``'X'``, ``'raw'`` or a key of ``adata.layers``)."""
    if layer is not None:
        return [_named_layer(adata, layer)]
    found = []
    if adata.X is not None:
        found.append(("X", adata.X, adata.var))
    if "counts" in getattr(adata, "layers", {}):
        found.append(("layers['counts']", adata.layers["counts"], adata.var))
    if getattr(adata, "raw", None) is not None:
        found.append(("raw.X", adata.raw.X, adata.raw.var))
    return found


def _named_layer(adata: Any, layer: str) -> tuple[str, Any, pd.DataFrame]:
    from mmgene.errors import MissingColumnError

    if layer == "X" and adata.X is not None:
        return "X", adata.X, adata.var
    if layer == "raw" and getattr(adata, "raw", None) is not None:
        return "raw.X", adata.raw.X, adata.raw.var
    layers = list(getattr(adata, "layers", {}))
    if layer in layers:
        return f"layers[{layer!r}]", adata.layers[layer], adata.var
    available = [*(["X"] if adata.X is not None else []), *(["raw"] if getattr(adata, "raw", None) is not None else []), *layers]
    raise MissingColumnError(layer, "layers", available)


def _sample(matrix: Any, n_obs: int) -> np.ndarray:
    """Non-zero values of the first ``SAMPLE_ROWS`` rows that hold any (a file may begin with empty
    cells); empty only when the whole matrix is zero. Dense or sparse, backed or in memory."""
    for start in range(0, n_obs, SAMPLE_ROWS):
        block = matrix[start : start + SAMPLE_ROWS]
        values = np.asarray(block.data) if sp.issparse(block) else np.asarray(block).ravel()
        values = values[values != 0]
        if values.size:
            return values
    return np.zeros(0, np.float32)


def _classify(values: np.ndarray) -> str:
    """``'counts'``, ``'log1p'``, ``'negative'``, ``'nonfinite'``, ``'other'`` or ``'zero'``.

    Mostly whole numbers mean counts: log-normalised values are practically never whole, so a few
    fractions among counts are errors, reported with their cell when the matrix is checked."""
    if values.size == 0:
        return "zero"
    if not np.isfinite(values).all():
        return "nonfinite"
    if (values < 0).any():
        return "negative"
    if (values == np.floor(values)).mean() >= MOSTLY_WHOLE:
        return "counts"
    if values.max() <= MAX_LOG_VALUE:
        return "log1p"
    return "other"


def expression(adata: Any, *, layer: str | None = None, require: Kind | None = None, origin: str | None = None) -> Expression:
    """Pick the expression matrix of ``adata``.

    Raw counts are preferred, looked for in ``X``, then ``layers['counts']``, then ``.raw.X``. When no
    counts exist and ``require`` is not ``'counts'``, a log1p-normalised matrix (e.g. scanpy's
    ``.raw`` after ``normalize_total`` + ``log1p``) is accepted: ranks and GenePT-w only need that.

    Parameters
    ----------
    adata
        An AnnData (in memory or backed).
    layer
        Read only this matrix: ``'X'``, ``'raw'`` (``.raw.X``) or a key of ``adata.layers``; it must
        still hold counts (or log1p data unless ``require='counts'``).
    require
        ``'counts'`` to refuse anything but integer counts; ``None`` to accept log1p data too.
    origin
        How to name the data in error messages (a file path); defaults to ``uns['mmgene']['input']``.
    """
    if origin is None:
        origin = input_file(adata, "the AnnData")
    n_obs, n_vars = adata.shape
    if n_obs == 0 or n_vars == 0:
        raise EmptyMatrixError(
            f"the matrix is empty ({n_obs} cells x {n_vars} genes)", origin, "pass an AnnData with cells and genes"
        )
    seen: list[str] = []
    chosen: dict[str, Expression] = {}
    for name, matrix, var in _candidates(adata, layer):
        view = Expression(matrix, name, "counts", var, adata.obs_names, origin)
        check_structure(view)  # before anything slices the matrix
        with disk_errors(view, "the first cells"):
            kind = _classify(_sample(matrix, n_obs))
        seen.append(f"{name}: {kind}")
        chosen.setdefault(kind, view)
    order: list[Kind] = ["counts"] if require == "counts" else ["counts", "log1p"]
    for kind in order:
        if kind in chosen:
            view = chosen[kind]
            view.kind = kind
            return view
    if set(chosen) <= {"nonfinite", "negative", "zero"} and set(chosen) - {"zero"}:
        # Only broken matrices: let the value check name the exact cell and gene.
        view = chosen["nonfinite" if "nonfinite" in chosen else "negative"]
        view.kind = "log1p"
        view._check_all_values()
    if set(chosen) == {"zero"}:
        raise EmptyMatrixError(
            f"every value in the first {n_obs:,} cells is zero, which are all the cells ({'; '.join(seen)})",
            origin,
            "check that the matrix was read correctly and holds expression",
        )
    wanted = "raw integer counts" if require == "counts" else "raw counts or log1p-normalised expression"
    raise NotCountsError(
        f"no matrix holds {wanted} (found {'; '.join(seen) or 'no X, layers or raw'})",
        origin,
        "store raw counts in X or layers['counts'] (or keep them in .raw)",
    )
