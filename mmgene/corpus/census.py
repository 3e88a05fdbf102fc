"""CELLxGENE Census (or any SOMA experiment) as a corpus source: a value filter, caps, one AnnData.

Online, :func:`census_anndata` reads from an open Census handle, or opens the Census release
``CensusQuery.census_version`` through ``cellxgene_census.open_soma``. Offline it reads a local SOMA
experiment (``CensusQuery.uri``, e.g. written by ``tiledbsoma.io.from_anndata``) through
``tiledbsoma.Experiment.open``. Both then do the same two steps with the SOMA arrays' own ``read``,
so both return the same AnnData for the same cells:

1. read ``obs`` of the cells that pass ``obs_value_filter`` (metadata only, no matrix);
2. choose cells under the caps (:func:`select_cells`), then read only those rows of ``X``.

The AnnData has ``obs`` columns ``soma_joinid`` plus :attr:`CensusQuery.obs_columns`, indexed by
``obs_id`` where the experiment stores one (``from_anndata`` keeps the original cell names) and by the
``soma_joinid`` otherwise; ``var`` indexed by ``feature_id`` (Ensembl, when present and unique) or
``feature_name``, with ``var['gene_symbol']`` = ``feature_name``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import CorpusError, MMGeneError, cause, is_whole_number
from mmgene.lazy import require

#: obs columns every Census experiment has (and a local test experiment must write).
CENSUS_OBS_COLUMNS = ("dataset_id", "assay", "cell_type", "cell_type_ontology_term_id", "tissue_general", "donor_id")
#: var columns read when present: Ensembl id and gene symbol.
CENSUS_VAR_COLUMNS = ("feature_id", "feature_name")
#: Census organism name for each species mmgene knows.
ORGANISMS = {"human": "Homo sapiens", "mouse": "Mus musculus"}
#: seconds opening a Census release (its mirror and release directories, then the SOMA collection)
#: may take when ``$MMGENE_HTTP_DEADLINE`` is not set.
OPEN_DEADLINE = 120.0


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
                f"seed must be a whole number >= 0, got {self.seed!r}", "Census query", "pass seed=0 or another integer >= 0"
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


def _read_table(read: Callable[[], pd.DataFrame], query: CensusQuery) -> pd.DataFrame:
    """Run ``read()`` (an ``obs`` or ``var`` read), turning a rejected filter into a :class:`CorpusError`.

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
    return _Plan(
        ["soma_joinid", *query.obs_columns, *(["obs_id"] if "obs_id" in obs_names else [])],
        ["soma_joinid", *(c for c in CENSUS_VAR_COLUMNS if c in ms.var.schema.names)],
        x_name,
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


class _Opening:
    """``open_()`` run on a daemon thread, so that the caller can stop waiting for it.

    cellxgene_census fetches its directories with ``requests.get`` and no timeout: a server that takes
    the connection and never answers would block the caller for ever. A daemon thread (unlike a thread
    pool's worker) does not hold up interpreter exit, and a handle that arrives after the caller gave
    up is closed on arrival, so nothing it opened stays open."""

    def __init__(self, open_: Callable[[], Any]) -> None:
        self._open = open_
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._abandoned = False
        self._result: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="mmgene-census-open", daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self._open()
        except BaseException as exc:  # handed to the waiting thread, which decides
            self._error = exc
        with self._lock:
            self._finished.set()
            late = self._abandoned
        if late:
            self._discard()

    def wait(self, seconds: float) -> bool:
        """Whether ``open_`` finished within ``seconds`` (then :meth:`result` has its outcome)."""
        try:
            finished = self._finished.wait(seconds)
        except BaseException:  # e.g. KeyboardInterrupt: the result will never be collected
            self._give_up()
            raise
        if not finished:
            self._give_up()
        return finished

    def result(self) -> Any:
        """The opened handle, or the error ``open_`` raised (call after :meth:`wait` returned ``True``)."""
        if self._error is not None:
            raise self._error
        return self._result

    def _give_up(self) -> None:
        with self._lock:
            self._abandoned = True
            finished = self._finished.is_set()
        if finished:  # else ``_run`` discards the result when it comes
            self._discard()

    def _discard(self) -> None:
        close = getattr(self._result, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # nobody is left to tell; the handle is unreachable either way
                pass


def _open_release(cxg: Any, query: CensusQuery) -> Any:
    """``cxg.open_soma`` for the release ``query`` names, given up after the deadline (``$MMGENE_HTTP_DEADLINE``
    or :data:`OPEN_DEADLINE` seconds) with a :class:`CorpusError`."""
    from mmgene.net.deadline import resolve_deadline

    seconds = resolve_deadline(None, OPEN_DEADLINE)
    opening = _Opening(lambda: cxg.open_soma(census_version=query.census_version))
    if not opening.wait(seconds):
        raise CorpusError(
            f"the CELLxGENE Census release {query.census_version!r} did not answer within {seconds:g} s",
            query.describe(),
            f"check the network connection, allow more time with MMGENE_HTTP_DEADLINE=<seconds> (now {seconds:g}), "
            "or read a local SOMA experiment (the query's uri)",
        )
    return opening.result()


def _census_experiment(query: CensusQuery, census: Any) -> tuple[Any, Any]:
    """The open Census handle (``census``, or the release ``query`` names) and its experiment for the query's organism."""
    cxg = require("cellxgene_census", "reading CELLxGENE Census")
    if census is None:
        try:
            census = _open_release(cxg, query)
        except (MMGeneError, MemoryError):
            raise
        except Exception as exc:  # requests' and the release directory's errors: no network, a moved or unknown release
            raise CorpusError(
                f"cannot open the CELLxGENE Census release {query.census_version!r} ({cause(exc)})",
                query.describe(),
                "check the network connection and the release name, or read a local SOMA experiment (the query's uri)",
            ) from exc
    try:
        return census, census["census_data"][query.organism.lower().replace(" ", "_")]
    except (KeyError, ValueError) as exc:
        raise CorpusError(
            f"the Census has no experiment for organism {query.organism!r}",
            query.describe(),
            "use 'Homo sapiens' or 'Mus musculus'",
        ) from exc


@dataclass(frozen=True)
class SomaSource:
    """An experiment opened for a query, the handle to close when done (``None``: the caller's), and its plan."""

    experiment: Any
    owned: Any
    plan: _Plan

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()


def open_source(query: CensusQuery, census: Any = None) -> SomaSource:
    """Open the experiment ``query`` reads (its ``uri``, or the Census) and check the query against it.

    A Census handle passed as ``census`` stays the caller's to close; what this opens, the returned
    source's ``close`` closes (also when the check fails)."""
    if query.uri is not None:
        experiment = owned = _open_local(query)
        default_x = "data"
    else:
        handle, experiment = _census_experiment(query, census)
        owned = handle if census is None else None
        default_x = "raw"
    try:
        return SomaSource(experiment, owned, _plan(experiment, query, default_x))
    except BaseException:
        if owned is not None:
            owned.close()
        raise


def matching_cells(source: SomaSource, query: CensusQuery) -> pd.DataFrame:
    """``obs`` of the cells that pass ``query.obs_value_filter`` (metadata only, no matrix)."""
    value_filter = query.obs_value_filter.strip() or None
    columns = source.plan.obs_columns
    return _read_table(
        lambda: source.experiment.obs.read(value_filter=value_filter, column_names=columns).concat().to_pandas(), query
    )


def cells_table(obs: pd.DataFrame, joinids: np.ndarray) -> pd.DataFrame:
    """The rows of ``obs`` for ``joinids``, in that order, indexed by ``obs_id`` (else ``soma_joinid``)."""
    cells = obs.set_index("soma_joinid", drop=False).loc[joinids].reset_index(drop=True)
    names = cells.pop("obs_id") if "obs_id" in cells.columns else cells["soma_joinid"]
    cells.index = pd.Index(names.astype(str).to_numpy())
    return cells


def genes_table(source: SomaSource, query: CensusQuery) -> pd.DataFrame:
    """``var`` of the genes the query keeps, indexed by ``feature_id`` (Ensembl) when present and unique,
    else ``feature_name``, else ``soma_joinid``; ``gene_symbol`` copies ``feature_name``."""
    columns = source.plan.var_columns
    ms = source.experiment.ms[query.measurement]
    genes = _read_table(
        lambda: ms.var.read(value_filter=query.var_value_filter, column_names=columns).concat().to_pandas(), query
    )
    if "feature_id" in genes.columns and genes["feature_id"].is_unique:
        names = genes["feature_id"]
    else:
        names = genes["feature_name" if "feature_name" in genes.columns else "soma_joinid"]
    genes.index = pd.Index(names.astype(str).to_numpy())
    if "feature_name" in genes.columns:
        genes["gene_symbol"] = genes["feature_name"].astype(str).to_numpy()
    return genes


def rows_matrix(source: SomaSource, query: CensusQuery, joinids: np.ndarray, genes: pd.DataFrame) -> Any:
    """The ``X`` rows of the cells ``joinids`` (in that order) over ``genes``, as a CSR matrix.

    Read on this thread through the array's own ``read`` and built with scipy. tiledbsoma's
    ``axis_query().to_anndata`` reads in a thread pool and builds its matrix with the multi-threaded
    ``fastercsx``; that path crashed this project's test process twice (a segfault, never reproduced
    on demand; compare TileDB-SOMA #4437), and its speed matters only for matrices far larger than
    one streamed chunk."""
    import scipy.sparse as sp

    gene_ids = genes["soma_joinid"].to_numpy()
    wanted = gene_ids if query.var_value_filter else slice(None)
    entries = source.experiment.ms[query.measurement].X[source.plan.x_name].read((joinids, wanted)).tables().concat()
    rows = pd.Index(joinids).get_indexer(entries["soma_dim_0"].to_numpy())
    columns = pd.Index(gene_ids).get_indexer(entries["soma_dim_1"].to_numpy())
    values = entries["soma_data"].to_numpy()
    # tocsr sums any repeated entry and sorts each row's genes
    return sp.coo_matrix((values, (rows, columns)), shape=(len(joinids), len(gene_ids))).tocsr()


def as_anndata(matrix: Any, cells: pd.DataFrame, genes: pd.DataFrame) -> Any:
    """One AnnData of the three parts (copies of the tables, so the caller's stay unchanged)."""
    import anndata

    with _quiet():
        return anndata.AnnData(X=matrix, obs=cells.copy(), var=genes.copy())


def _read_selected(query: CensusQuery, census: Any) -> Any:
    source = open_source(query, census)
    try:
        obs = matching_cells(source, query)
        joinids = _selected(obs, query)
        genes = genes_table(source, query)
        return as_anndata(rows_matrix(source, query, joinids, genes), cells_table(obs, joinids), genes)
    finally:
        source.close()


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
    return record_query(_read_selected(query, census), query)


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
