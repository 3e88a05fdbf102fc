"""Which FAISS index to build, and with which parameters.

``kind="auto"`` picks exact search for small collections and an inverted-file index for large ones:

========================  =========================================================================
cells                     index
========================  =========================================================================
< 100,000                 ``flat``: exact inner product (``IndexFlatIP``), no training, no tuning
100,000 - 20,000,000      ``ivf``: ``IVF{nlist},Flat``; nlist ~ 2*sqrt(n), nprobe calibrated
>= 20,000,000             ``ivfpq``: ``IVF{nlist},PQ{m}x8`` (32 bytes a cell at d=256), nprobe calibrated
========================  =========================================================================

``hnsw`` (``HNSW{M},Flat``) is available on request: faster queries at equal recall, but a slower
build, more memory and no GPU support. Every parameter can be given explicitly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mmgene.errors import ParameterError

KINDS = ("auto", "flat", "ivf", "ivfpq", "hnsw")
#: below this many cells ``auto`` builds an exact index.
FLAT_MAX = 100_000
#: from this many cells on ``auto`` compresses vectors with product quantisation.
PQ_MIN = 20_000_000


@dataclass
class IndexParams:
    """Index kind and parameters (``None`` means: choose from the data)."""

    kind: str = "auto"
    nlist: int | None = None
    """Inverted lists (IVF kinds); default a power of two near 2*sqrt(n)."""
    nprobe: int | None = None
    """Lists visited per query (IVF kinds); default: calibrated to ``target_recall``."""
    pq_m: int | None = None
    """PQ sub-quantisers (ivfpq); default d/8 (a divisor of d)."""
    pq_nbits: int = 8
    M: int = 32
    """Graph degree (hnsw)."""
    ef_construction: int = 80
    ef_search: int | None = None
    """Search breadth (hnsw); default: calibrated to ``target_recall``."""
    target_recall: float = 0.95
    """Recall@``calibration_k`` the calibration aims for (against exact search)."""
    calibration_k: int = 10
    calibration_queries: int = 200
    train_size: int | None = None
    """Vectors k-means trains on (IVF kinds); default 40*nlist (FAISS asks for 39 per list), 10,240 at least for PQ."""
    kmeans_iter: int = 10
    seed: int = 0
    calibrated: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexParams:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _power_of_two_near(x: float) -> int:
    return int(2 ** round(math.log2(max(x, 1.0))))


def _divisor_near(d: int, target: int) -> int:
    """The divisor of ``d`` closest to ``target`` (ties: the larger)."""
    divisors = [m for m in range(1, d + 1) if d % m == 0]
    return min(divisors, key=lambda m: (abs(m - target), -m))


def resolve(params: IndexParams, n: int, d: int) -> IndexParams:
    """Fill every ``None`` for ``n`` vectors of dimension ``d`` and check the values."""
    if params.kind not in KINDS:
        raise ParameterError(f"unknown index kind {params.kind!r}", "CellIndex(kind=...)", f"use one of {', '.join(KINDS)}")
    if n < 1:
        raise ParameterError("no vectors to index", "CellIndex.build", "pass at least one cell")
    if not 0 < params.target_recall <= 1:
        raise ParameterError(f"target_recall must be in (0, 1], got {params.target_recall}", "CellIndex(target_recall=...)", "use e.g. 0.95")
    p = IndexParams.from_dict(params.to_dict())
    if p.kind == "auto":
        p.kind = "flat" if n < FLAT_MAX else ("ivf" if n < PQ_MIN else "ivfpq")
    if p.kind in ("ivf", "ivfpq"):
        if p.nlist is None:
            p.nlist = max(1, min(_power_of_two_near(2 * math.sqrt(n)), 65536, n // 39 or 1))
        if p.nlist < 1 or p.nlist > n:
            raise ParameterError(
                f"nlist={p.nlist} needs between 1 and {n} training vectors", "CellIndex(nlist=...)",
                f"use nlist <= {n} (about 2*sqrt(n) = {int(2 * math.sqrt(n))}), or kind='flat' for few cells",
            )
        if p.nprobe is not None and not 1 <= p.nprobe <= p.nlist:
            raise ParameterError(f"nprobe={p.nprobe} must be between 1 and nlist={p.nlist}", "CellIndex(nprobe=...)", "lower nprobe")
        if p.train_size is None:
            p.train_size = min(n, max(40 * p.nlist, 40 * 2**p.pq_nbits if p.kind == "ivfpq" else 0))
        p.train_size = max(p.nlist, min(p.train_size, n))
    if p.kind == "ivfpq":
        if p.pq_m is None:
            p.pq_m = _divisor_near(d, max(1, d // 8))
        if d % p.pq_m:
            raise ParameterError(f"pq_m={p.pq_m} does not divide the dimension {d}", "CellIndex(pq_m=...)", "choose a divisor of the dimension")
        if n < 2**p.pq_nbits:
            raise ParameterError(
                f"product quantisation with {p.pq_nbits} bits needs at least {2 ** p.pq_nbits} vectors, got {n}",
                "CellIndex(kind='ivfpq')", "use kind='flat' or 'ivf' for so few cells, or lower pq_nbits",
            )
    if p.kind == "hnsw" and p.M < 2:
        raise ParameterError(f"M={p.M} is too small", "CellIndex(M=...)", "use M between 8 and 64")
    return p


def factory_string(p: IndexParams) -> str:
    """The ``faiss.index_factory`` description of a resolved parameter set."""
    if p.kind == "flat":
        return "Flat"
    if p.kind == "ivf":
        return f"IVF{p.nlist},Flat"
    if p.kind == "ivfpq":
        return f"IVF{p.nlist},PQ{p.pq_m}x{p.pq_nbits}"
    if p.kind == "hnsw":
        return f"HNSW{p.M},Flat"
    raise ParameterError(f"unresolved index kind {p.kind!r}", "factory_string", "call resolve() first")
