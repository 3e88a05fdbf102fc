"""From cell sentences back to expression (Cell2Sentence's inverse transformation).

Cell2Sentence observed that, over the expressed genes of a dataset, normalised log-expression is close
to linear in ``log10(1 + rank)``. :func:`fit_rank_expression` fits that line on a dataset (streamed,
exact least squares over every non-zero entry); :func:`reconstruct` turns sentences into an
approximate expression matrix with it. Ranks are 0-based positions in the sentence (the first gene
has rank 0), so ``expression = intercept + slope * log10(1 + rank)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmgene.cells._chunks import iter_chunks
from mmgene.cells.ranking import rank_chunk
from mmgene.config import check_range
from mmgene.errors import EmptyMatrixError, ParameterError
from mmgene.io.expression import TARGET_SUM

DEFAULT_CHUNK = 4096


@dataclass(frozen=True)
class RankExpressionFit:
    """``log-expression ~ intercept + slope * log10(1 + rank)``, fitted on ``n`` expressed entries."""

    slope: float
    intercept: float
    pearson: float
    n: int
    target_sum: float
    normalized: bool

    def predict(self, rank: np.ndarray | int) -> np.ndarray:
        """Expected log-expression of the gene at 0-based ``rank`` (clipped at 0)."""
        value = self.intercept + self.slope * np.log10(1.0 + np.asarray(rank, dtype=np.float64))
        return np.maximum(value, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Moments:
    """Running sums for a least-squares line and a Pearson correlation."""

    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.n += len(x)
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float(x @ x)
        self.syy += float(y @ y)
        self.sxy += float(x @ y)

    def line(self) -> tuple[float, float, float]:
        n = self.n
        cxx = self.sxx - self.sx**2 / n
        cyy = self.syy - self.sy**2 / n
        cxy = self.sxy - self.sx * self.sy / n
        slope = cxy / cxx if cxx > 0 else 0.0
        intercept = (self.sy - slope * self.sx) / n
        r = cxy / np.sqrt(cxx * cyy) if cxx > 0 and cyy > 0 else 0.0
        return slope, intercept, float(r)


def _ranked_log_expression(view: Any, normalize: bool, target_sum: float, chunk_size: int):
    """Per chunk: (0-based rank, log-expression) of every non-zero entry, ranks in descending order."""
    tie_rank = np.arange(view.shape[1], dtype=np.int64)
    for start, stop, block in iter_chunks(view, chunk_size):
        ranked = rank_chunk(block, tie_rank)
        rows = np.repeat(np.arange(stop - start), np.diff(ranked.indptr))
        values = ranked.values.astype(np.float64)
        if view.kind == "counts" and normalize:
            totals = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
            values = np.log1p(values / totals[rows] * target_sum)
        elif view.kind == "counts":
            values = np.log1p(values)
        yield start, ranked, rows, ranked.positions(), values


def fit_rank_expression(
    adata: Any, *, normalize: bool = True, target_sum: float = TARGET_SUM, chunk_size: int = DEFAULT_CHUNK, key: str | None = "rank_expression_fit"
) -> RankExpressionFit:
    """Fit log-expression against ``log10(1 + rank)`` over all expressed entries of ``adata``.

    Counts are normalised per cell to ``target_sum`` and ``log1p``-transformed (``normalize=True``);
    log1p data are used as they are. The fit is recorded in ``adata.uns['mmgene'][key]``.
    """
    from mmgene.io import expression
    from mmgene.provenance import record

    check_range(target_sum, "target_sum", "argument target_sum", 0.0, None, strict=True, fix="pass e.g. 1e4")
    view = expression(adata)
    moments = _Moments()
    for _, _, _, positions, values in _ranked_log_expression(view, normalize, target_sum, chunk_size):
        moments.add(np.log10(1.0 + positions), values)
    if moments.n < 2:
        raise EmptyMatrixError("fewer than two expressed values: nothing to fit", view.origin, "pass cells with expression")
    slope, intercept, r = moments.line()
    fit = RankExpressionFit(slope, intercept, r, moments.n, float(target_sum), bool(normalize and view.kind == "counts"))
    if key:
        record(adata, key, method="least squares of log-expression on log10(1 + rank) (Cell2Sentence inverse)", matrix=view.source, kind=view.kind, **fit.to_dict())
    return fit


def reconstruct(sentences: Sequence[str], fit: RankExpressionFit, genes: Sequence[str]) -> sp.csr_matrix:
    """Approximate log-expression (cells x ``genes``, CSR float32) from cell sentences.

    The word at 0-based position ``r`` gets ``fit.predict(r)``; words not in ``genes`` (matched
    case-insensitively, first occurrence) are skipped, a word repeated in a sentence counts once (at
    its first position), and genes absent from a sentence stay 0.
    """
    upper = pd.Index([str(g).upper() for g in genes])
    first = ~upper.duplicated()
    lookup = pd.Index(upper[first])
    columns = np.flatnonzero(first)
    split = [s.split() if isinstance(s, str) else [] for s in sentences]
    lengths = np.fromiter((len(w) for w in split), dtype=np.int64, count=len(split))
    flat = [w for words in split for w in words]
    rows = np.repeat(np.arange(len(split)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(len(flat)) - starts
    where = lookup.get_indexer(pd.Index(flat).str.upper()) if flat else np.zeros(0, np.int64)
    known = where >= 0
    rows, cols, positions = rows[known], columns[where[known]], positions[known]
    # keep the first position of a word repeated inside one sentence
    _, first_hit = np.unique(rows * len(genes) + cols, return_index=True)
    rows, cols, positions = rows[first_hit], cols[first_hit], positions[first_hit]
    values = fit.predict(positions).astype(np.float32)
    out = sp.csr_matrix((values, (rows, cols)), shape=(len(split), len(genes)))
    out.eliminate_zeros()
    return out


def reconstruction_pearson(adata: Any, fit: RankExpressionFit | None = None, *, chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Pearson correlation of reconstructed vs true log-expression over all expressed entries.

    Equivalent to ``reconstruct(sentences(adata))`` compared with the true values at the non-zero
    entries, without building the strings (streamed). Fits the line first when ``fit`` is None.
    """
    from mmgene.io import expression

    fit = fit or fit_rank_expression(adata, key=None, chunk_size=chunk_size)
    view = expression(adata)
    moments = _Moments()
    for _, _, _, positions, values in _ranked_log_expression(view, fit.normalized, fit.target_sum, chunk_size):
        moments.add(fit.predict(positions), values)
    return {"pearson": moments.line()[2], "entries": moments.n, "slope": fit.slope, "intercept": fit.intercept}
