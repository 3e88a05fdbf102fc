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
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from numbers import Integral, Real
from typing import Any

from mmgene.errors import ParameterError

KINDS = ("auto", "flat", "ivf", "ivfpq", "hnsw")
#: the kinds a built (resolved) index has; ``auto`` is only a request.
RESOLVED_KINDS = KINDS[1:]
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


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object", list: "a list"}


@dataclass(frozen=True)
class Rule:
    """What one stored or given value may be: its type, null or not, and a range, choices or pattern.

    Rules are data, so one table serves both the checks of user arguments (:func:`resolve`) and the
    schema of saved metadata (``meta.json`` of an index folder): every range is written once.
    """

    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[Any, ...] = ()
    pattern: str | None = None
    items: type | None = None
    """Type of every element (lists only)."""
    nullable: bool = False
    required: bool = True
    """Must be present in a stored mapping (a nullable field may still hold null)."""

    def describe(self) -> str:
        """The rule in words, e.g. ``'an integer >= 1 or null'``."""
        if self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = _TYPE_NAMES.get(self.type, self.type.__name__)
            if self.items is not None:
                text += f" of {self.items.__name__} values"
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_number(self.low)}"
            elif self.high is not None:
                text += f" <= {_number(self.high)}"
            if self.pattern:
                text += f" matching {self.pattern}"
        return text + (" or null" if self.nullable else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule, as ``'must be ..., got ...'``; None when it does not."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}, got null"
        return None if self._holds(value) else f"must be {self.describe()}, got {_show(value)}"

    def _holds(self, value: Any) -> bool:
        """True when a non-null ``value`` has the type and lies in the range, choices or pattern."""
        if not _has_type(value, self.type) or (self.items is not None and not all(_has_type(v, self.items) for v in value)):
            return False
        if self.choices and value not in self.choices:
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and value > self.high:
            return False
        return not self.pattern or re.fullmatch(self.pattern, value) is not None


def _has_type(value: Any, kind: type) -> bool:
    """Type test where bools are not numbers, any integer is an int and any finite real a float."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, Integral)
    if kind is float:
        return isinstance(value, Real) and math.isfinite(value)
    return isinstance(value, kind)


def _number(x: float) -> str:
    """A bound as written: ``1``, ``0.5``, ``2147483647`` (not ``2.14748e+09``)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _show(value: Any, limit: int = 60) -> str:
    """A short one-line repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_problem(values: Mapping[str, Any], rules: Mapping[str, Rule], *, prefix: str = "", strict: bool = False) -> tuple[str, str] | None:
    """The first field of ``values`` that breaks ``rules``, as ``(field, problem)``; None when all hold.

    Missing required fields come first, in rule order; ``strict`` also refuses fields without a rule
    (a typo such as ``nprobes`` would otherwise be ignored silently).
    """
    for name, rule in rules.items():
        if name not in values:
            if rule.required:
                return prefix + name, f"is missing (expected {rule.describe()})"
            continue
        problem = rule.problem(values[name])
        if problem:
            return prefix + name, problem
    if strict:
        unknown = [str(k) for k in values if k not in rules]
        if unknown:
            return prefix + unknown[0], f"is not a known field (known: {', '.join(rules)})"
    return None


#: type and range of every :class:`IndexParams` field: the one place these ranges are written.
PARAM_RULES: dict[str, Rule] = {
    "kind": Rule(str, choices=KINDS),
    "nlist": Rule(int, low=1, nullable=True),
    "nprobe": Rule(int, low=1, nullable=True),
    "pq_m": Rule(int, low=1, nullable=True),
    "pq_nbits": Rule(int, low=1, high=16),
    "M": Rule(int, low=2),
    "ef_construction": Rule(int, low=1),
    "ef_search": Rule(int, low=1, nullable=True),
    "target_recall": Rule(float, low=0, high=1, low_open=True),
    "calibration_k": Rule(int, low=1),
    "calibration_queries": Rule(int, low=1),
    "train_size": Rule(int, low=1, nullable=True),
    "kmeans_iter": Rule(int, low=1),
    "seed": Rule(int, low=0, high=2**31 - 1),
    "calibrated": Rule(dict),
}
assert set(PARAM_RULES) == set(IndexParams.__dataclass_fields__), "every IndexParams field needs a rule"


def stored_params_problem(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem of saved parameters (``meta.json['params']``): types, ranges, and consistency
    of a built index (a resolved kind, nprobe within nlist, the sizes its FAISS factory string needs)."""
    found = first_problem(data, PARAM_RULES, prefix="params.", strict=True)
    if found:
        return found
    kind = data["kind"]
    if kind not in RESOLVED_KINDS:
        return "params.kind", f"must be one of {', '.join(map(repr, RESOLVED_KINDS))} in a built index, got {kind!r}"
    needed = {"ivf": ("nlist",), "ivfpq": ("nlist", "pq_m")}.get(kind, ())
    for name in needed:
        if data[name] is None:
            return f"params.{name}", f"must be set for a {kind} index, got null"
    if kind in ("ivf", "ivfpq") and data["nprobe"] is not None and data["nprobe"] > data["nlist"]:
        return "params.nprobe", f"must be at most params.nlist={data['nlist']}, got {data['nprobe']}"
    return None


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
    found = first_problem(params.to_dict(), PARAM_RULES)
    if found:
        name, problem = found
        raise ParameterError(f"{name} {problem}", f"CellIndex({name}=...)", f"pass {PARAM_RULES[name].describe()}")
    if n < 1:
        raise ParameterError("no vectors to index", "CellIndex.build", "pass at least one cell")
    p = IndexParams.from_dict(params.to_dict())
    if p.kind == "auto":
        p.kind = "flat" if n < FLAT_MAX else ("ivf" if n < PQ_MIN else "ivfpq")
    if p.kind in ("ivf", "ivfpq"):
        if p.nlist is None:
            p.nlist = max(1, min(_power_of_two_near(2 * math.sqrt(n)), 65536, n // 39 or 1))
        if p.nlist < 1 or p.nlist > n:
            raise ParameterError(
                f"nlist={p.nlist} needs between 1 and {n} training vectors", "CellIndex(nlist=...)",
                f"use --nlist {n} or less (nlist=; about 2*sqrt(n) = {int(2 * math.sqrt(n))}), or --kind flat (kind='flat') for few cells",
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
                "CellIndex(kind='ivfpq')", "use --kind ivf or flat (kind='ivf' / 'flat') for so few cells, or in Python a lower pq_nbits",
            )
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
