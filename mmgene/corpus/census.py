"""CELLxGENE Census (or any SOMA experiment) as a corpus source: a value filter, caps, one AnnData.

Online, :func:`census_anndata` reads through ``cellxgene_census`` (``get_obs`` then ``get_anndata``)
from an open Census handle, or opens the Census release ``CensusQuery.census_version``. Offline it reads
a local SOMA experiment (``CensusQuery.uri``, e.g. written by ``tiledbsoma.io.from_anndata``) through
``tiledbsoma.Experiment.open`` and ``axis_query``. Both do the same two steps, so both return the same
AnnData for the same cells:

1. read ``obs`` of the cells that pass ``obs_value_filter`` (metadata only, no matrix);
2. choose cells under the caps (:func:`select_cells`), then read only those rows of ``X``.

The AnnData has ``obs`` columns ``soma_joinid`` plus :attr:`CensusQuery.obs_columns`, indexed by
``obs_id`` where the experiment stores one (``from_anndata`` keeps the original cell names) and by the
``soma_joinid`` otherwise; ``var`` indexed by ``feature_id`` (Ensembl, when present and unique) or
``feature_name``, with ``var['gene_symbol']`` = ``feature_name``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import CorpusError, cause, is_whole_number
from mmgene.lazy import require

#: obs columns every Census experiment has (and a local test experiment must write).
CENSUS_OBS_COLUMNS = ("dataset_id", "assay", "cell_type", "cell_type_ontology_term_id", "tissue_general", "donor_id")
#: var columns read when present: Ensembl id and gene symbol.
CENSUS_VAR_COLUMNS = ("feature_id", "feature_name")
#: Census organism name for each species mmgene knows.
ORGANISMS = {"human": "Homo sapiens", "mouse": "Mus musculus"}


@dataclass(frozen=True)
class CensusQuery:
    """Which cells to take from CELLxGENE Census (or a local SOMA experiment at ``uri``), and how many.

    Caps are applied in a seeded random order of the cells (a permutation of the matching cells sorted
    by ``soma_joinid``): first at most ``max_cells_per_dataset`` from each source dataset
    (``dataset_column``), then at most ``max_cells_per_type`` of each cell type (``type_column``) among
    those, then at most ``max_cells`` in all. ``None`` means no cap. On Census, add
    ``is_primary_data == True`` to the filter to leave out cells that appear in several datasets.
    """

    obs_value_filter: str = ""
    organism: str = "Homo sapiens"
    #: a local SOMA experiment (folder or URI); ``None`` reads CELLxGENE Census.
    uri: str | None = None
    census_version: str = "stable"
    measurement: str = "RNA"
    #: X layer; ``None`` means ``'raw'`` for Census, ``'data'`` (from_anndata's default) for a local experiment.
    x_name: str | None = None
    var_value_filter: str | None = None
    obs_columns: tuple[str, ...] = CENSUS_OBS_COLUMNS
    dataset_column: str = "dataset_id"
    type_column: str = "cell_type"
    max_cells_per_dataset: int | None = None
    max_cells_per_type: int | None = None
    max_cells: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_cells_per_dataset", "max_cells_per_type", "max_cells"):
            value = getattr(self, name)
            if value is not None and not is_whole_number(value, 1):
                raise CorpusError(
                    f"{name} must be a whole number of at least 1 or None, got {value!r}",
                    "Census query",
                    f"pass a positive {name}",
                )
        if not is_whole_number(self.seed):
            raise CorpusError(
                f"seed must be a whole number >= 0, got {self.seed!r}", "Census query", "pass seed=0 or another integer"
            )
        if self.uri is None and not self.obs_value_filter.strip():
            raise CorpusError(
                "a Census query needs an obs_value_filter (without one it would read every cell of the Census)",
                "Census query",
                "pass e.g. obs_value_filter=\"tissue_general == 'lung' and is_primary_data == True\"",
            )
        # the columns the caps group by are always read, once each, in the order given
        columns = tuple(dict.fromkeys((*self.obs_columns, self.dataset_column, self.type_column)))
        object.__setattr__(self, "obs_columns", columns)

    def describe(self) -> str:
        """One line naming the source and the filter (for messages and provenance)."""
        source = (
            f"SOMA experiment {self.uri}" if self.uri else f"CELLxGENE Census {self.census_version} ({self.organism})"
        )
        return f"{source}, obs_value_filter {self.obs_value_filter!r}"


def select_cells(obs: pd.DataFrame, query: CensusQuery) -> np.ndarray:
    """The sorted ``soma_joinid`` values of the cells kept under ``query``'s caps (see :class:`CensusQuery`)."""
    ordered = obs.sort_values("soma_joinid", kind="stable").reset_index(drop=True)
    shuffled = ordered.iloc[np.random.default_rng(query.seed).permutation(len(ordered))]
    caps = ((query.dataset_column, query.max_cells_per_dataset), (query.type_column, query.max_cells_per_type))
    for column, cap in caps:
        if cap is not None:
            rank = shuffled.groupby(column, sort=False, dropna=False, observed=True).cumcount().to_numpy()
            shuffled = shuffled[rank < cap]
    if query.max_cells is not None:
        shuffled = shuffled.iloc[: query.max_cells]
    return np.sort(shuffled["soma_joinid"].to_numpy(dtype=np.int64))


def _check_columns(schema_names: list[str], wanted: tuple[str, ...], table: str, query: CensusQuery) -> None:
    missing = [c for c in wanted if c not in schema_names]
    if missing:
        raise CorpusError(
            f"the {table} table has no column {', '.join(map(repr, missing))}",
            query.describe(),
            f"choose among {', '.join(n for n in schema_names if n != 'soma_joinid')} (CensusQuery.obs_columns, dataset_column, type_column)",
        )


def _read_obs(read: Callable[[], pd.DataFrame], query: CensusQuery) -> pd.DataFrame:
    """Run ``read()`` (the obs read of either path), turning a rejected filter into a :class:`CorpusError`.

    tiledbsoma reports a bad filter as ``SOMAError`` (or ``ValueError``/``TypeError``), which share no
    public base besides ``Exception``: errors raised from tiledbsoma, somacore or tiledb are translated,
    anything else propagates."""
    try:
        return read()
    except Exception as exc:
        if isinstance(exc, (ValueError, TypeError)) or type(exc).__module__.startswith(
            ("tiledbsoma", "somacore", "tiledb")
        ):
            raise _query_error(exc, query) from exc
        raise


def _query_error(exc: Exception, query: CensusQuery) -> CorpusError:
    return CorpusError(
        f"the query failed ({cause(exc)})",
        query.describe(),
        "check the value filter's column names and quoting (SOMA value_filter syntax, e.g. \"cell_type == 'B cell'\")",
    )


def _tidy(adata: Any, has_obs_id: bool) -> Any:
    """Index obs by ``obs_id`` (else ``soma_joinid``) and var by ``feature_id`` (else ``feature_name``)."""
    obs = adata.obs
    if "obs_id" in obs.columns:
        adata.obs_names = obs.pop("obs_id").astype(str).to_numpy()
    elif not has_obs_id:  # with obs_id among the columns read, tiledbsoma already indexes obs by it
        adata.obs_names = obs["soma_joinid"].astype(str).to_numpy()
    var = adata.var
    if "feature_id" in var.columns and var["feature_id"].is_unique:
        adata.var_names = var["feature_id"].astype(str).to_numpy()
    elif "feature_name" in var.columns:
        adata.var_names = var["feature_name"].astype(str).to_numpy()
    else:
        adata.var_names = var["soma_joinid"].astype(str).to_numpy()
    if "feature_name" in var.columns:
        adata.var["gene_symbol"] = var["feature_name"].astype(str).to_numpy()
    return adata


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the FutureWarning/ImplicitModificationWarning that building the AnnData emits."""
    from anndata import ImplicitModificationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", ImplicitModificationWarning)
        yield


@dataclass(frozen=True)
class _Plan:
    """What to read from an experiment: checked column lists and the X layer."""

    obs_columns: list[str]
    var_columns: list[str]
    x_name: str
    has_obs_id: bool


def _plan(exp: Any, query: CensusQuery, default_x: str) -> _Plan:
    """Check ``query`` against the experiment's schema (obs columns, measurement, X layer)."""
    obs_names = list(exp.obs.schema.names)
    _check_columns(obs_names, query.obs_columns, "obs", query)
    if query.measurement not in exp.ms:
        raise CorpusError(
            f"the experiment has no measurement {query.measurement!r}",
            query.describe(),
            f"choose one of {', '.join(exp.ms.keys())}",
        )
    ms = exp.ms[query.measurement]
    x_name = query.x_name or default_x
    if x_name not in ms.X:
        raise CorpusError(
            f"the measurement has no X layer {x_name!r}",
            query.describe(),
            f"choose x_name among {', '.join(ms.X.keys())}",
        )
    has_obs_id = "obs_id" in obs_names
    return _Plan(
        ["soma_joinid", *query.obs_columns, *(["obs_id"] if has_obs_id else [])],
        ["soma_joinid", *(c for c in CENSUS_VAR_COLUMNS if c in ms.var.schema.names)],
        x_name,
        has_obs_id,
    )


def _open_local(query: CensusQuery) -> Any:
    """The local SOMA experiment at ``query.uri``, opened for reading."""
    soma = require("tiledbsoma", "reading a local SOMA experiment")
    try:
        return soma.Experiment.open(query.uri)
    except Exception as exc:  # DoesNotExistError, SOMAError, TileDBError: no common public base
        raise CorpusError(
            f"cannot open a SOMA experiment at {query.uri} ({type(exc).__name__})",
            query.describe(),
            "pass the folder written by tiledbsoma.io.from_anndata (or a Census-like experiment URI)",
        ) from exc


def _axis_rows(exp: Any, query: CensusQuery, plan: _Plan, joinids: np.ndarray) -> Any:
    """The cells ``joinids`` of ``exp`` with every gene the query keeps, as a tidied in-memory AnnData."""
    import tiledbsoma as soma

    with (
        exp.axis_query(
            query.measurement,
            obs_query=soma.AxisQuery(coords=(joinids,)),
            var_query=soma.AxisQuery(value_filter=query.var_value_filter),
        ) as axq,
        _quiet(),
    ):
        adata = axq.to_anndata(X_name=plan.x_name, column_names={"obs": plan.obs_columns, "var": plan.var_columns})
    return _tidy(adata, plan.has_obs_id)


def _from_experiment(query: CensusQuery) -> Any:
    with _open_local(query) as exp:
        plan = _plan(exp, query, "data")
        value_filter = query.obs_value_filter.strip() or None
        obs = _read_obs(
            lambda: exp.obs.read(value_filter=value_filter, column_names=plan.obs_columns).concat().to_pandas(), query
        )
        return _axis_rows(exp, query, plan, _selected(obs, query))


def _census_experiment(query: CensusQuery, census: Any) -> tuple[Any, Any]:
    """The open Census handle (``census``, or the release ``query`` names) and its experiment for the query's organism."""
    cxg = require("cellxgene_census", "reading CELLxGENE Census")
    if census is None:
        census = cxg.open_soma(census_version=query.census_version)
    try:
        return census, census["census_data"][query.organism.lower().replace(" ", "_")]
    except (KeyError, ValueError) as exc:
        raise CorpusError(
            f"the Census has no experiment for organism {query.organism!r}",
            query.describe(),
            "use 'Homo sapiens' or 'Mus musculus'",
        ) from exc


def _from_census(query: CensusQuery, census: Any) -> Any:
    cxg = require("cellxgene_census", "reading CELLxGENE Census")
    census, exp = _census_experiment(query, census)
    plan = _plan(exp, query, "raw")
    value_filter = query.obs_value_filter.strip() or None
    obs = _read_obs(
        lambda: cxg.get_obs(census, query.organism, value_filter=value_filter, column_names=plan.obs_columns), query
    )
    joinids = _selected(obs, query)
    with _quiet():
        adata = cxg.get_anndata(
            census,
            query.organism,
            measurement_name=query.measurement,
            X_name=plan.x_name,
            obs_coords=joinids,
            var_value_filter=query.var_value_filter,
            obs_column_names=plan.obs_columns,
            var_column_names=plan.var_columns,
        )
    return _tidy(adata, plan.has_obs_id)


def _selected(obs: pd.DataFrame, query: CensusQuery) -> np.ndarray:
    """:func:`select_cells`, refusing a query that matches no cell."""
    if obs.empty:
        raise CorpusError(
            "no cell matches the query", query.describe(), "check the filter's values (they are case-sensitive)"
        )
    return select_cells(obs, query)


def census_anndata(query: CensusQuery, census: Any = None) -> Any:
    """The cells ``query`` selects, as an in-memory AnnData (see the module docstring for its columns).

    ``census`` is an open Census handle (``cellxgene_census.open_soma()``, or any SOMA collection laid
    out like it); without one, and without ``query.uri``, the Census release is opened (network).
    ``uns['mmgene']['census']`` records the query and the cells taken.
    """
    adata = _from_experiment(query) if query.uri is not None else _from_census(query, census)
    return record_query(adata, query)


def record_query(adata: Any, query: CensusQuery) -> Any:
    """Name the query as ``adata``'s input and record it under ``uns['mmgene']['census']``; returns ``adata``."""
    from mmgene.provenance import record

    adata.uns.setdefault("mmgene", {})["input"] = {"file": query.describe()}
    record(
        adata,
        "census",
        packages=("tiledbsoma", "cellxgene-census"),
        source=query.uri or f"CELLxGENE Census {query.census_version}",
        organism=query.organism,
        obs_value_filter=query.obs_value_filter,
        var_value_filter=query.var_value_filter or "",
        max_cells_per_dataset=query.max_cells_per_dataset or 0,
        max_cells_per_type=query.max_cells_per_type or 0,
        max_cells=query.max_cells or 0,
        seed=query.seed,
        n_obs=int(adata.n_obs),
        n_vars=int(adata.n_vars),
    )
    return adata
