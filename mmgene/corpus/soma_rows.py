"""A Census query's cells read on demand: what a backed ``.h5ad`` is to a file, for a SOMA experiment.

:func:`mmgene.corpus.census.census_anndata` reads the selected cells' matrix at once. With
``CorpusOptions(backed=True)`` a Census row of a corpus becomes a :class:`SomaRows` instead: the same
two steps choose the cells (``obs`` read with the value filter, caps applied by
:func:`~mmgene.corpus.census.select_cells`), ``obs`` and ``var`` stay in memory, and rows of ``X`` are
read when sliced (``rows[a:b]`` is the in-memory AnnData ``census_anndata`` would give for those
cells), so streamed training reads a Census corpus chunk by chunk. It offers what mmgene's readers
use of an AnnData: ``obs``, ``var``, ``X[a:b]``, ``uns``, ``obsm``, ``shape``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mmgene.corpus.census import (
    CensusQuery,
    _selected,
    as_anndata,
    cells_table,
    genes_table,
    matching_cells,
    open_source,
    record_query,
    rows_matrix,
)
from mmgene.errors import CorpusError, ParameterError
from mmgene.provenance import record_of


class _Rows:
    """``X`` of :class:`SomaRows`: slicing rows reads them from the experiment."""

    def __init__(self, owner: SomaRows) -> None:
        self.owner = owner

    @property
    def shape(self) -> tuple[int, int]:
        return self.owner.shape

    def __getitem__(self, key: Any) -> Any:
        return self.owner[key].X


class SomaRows:
    """The cells of ``query`` (see the module docstring); ``census`` as for ``census_anndata``."""

    isbacked = False

    def __init__(self, query: CensusQuery, census: Any = None) -> None:
        self.query = query
        self._closed = False
        self._source = open_source(query, census)
        try:
            obs = matching_cells(self._source, query)
            self.joinids = _selected(obs, query)
            self.obs = cells_table(obs, self.joinids)
            self.var = genes_table(self._source, query)
        except BaseException:
            self.close()
            raise
        self.obsm: dict[str, Any] = {}
        self.layers: dict[str, Any] = {}
        self.raw = None
        self.uns: dict[str, Any] = {}
        self.X = _Rows(self)
        record_query(self, query)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.obs), len(self.var))

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    def __getitem__(self, key: Any) -> Any:
        """Rows ``key`` (a slice of consecutive cells) as an in-memory AnnData, read from the experiment."""
        if isinstance(key, tuple):
            key = self._rows_part(key)
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise ParameterError("a SOMA source reads consecutive rows", "SomaRows[...]", "slice it as rows[start:stop]")
        if self._closed:
            raise CorpusError(
                "the SOMA source was closed", self.query.describe(), "read the corpus again (mmgene.corpus.read_corpus)"
            )
        start, stop, _ = key.indices(self.n_obs)
        stop = max(start, stop)
        matrix = rows_matrix(self._source, self.query, self.joinids[start:stop], self.var)
        adata = as_anndata(matrix, self.obs.iloc[start:stop], self.var)
        adata.uns["mmgene"] = {"input": dict(record_of(self, "input"))}
        return adata

    def _rows_part(self, key: tuple) -> Any:
        """The rows of ``rows[a:b, :]`` (every gene, as an AnnData's ``[rows, :]``); a selection of genes would
        be ignored, so it is refused."""
        genes = key[1] if len(key) == 2 else slice(None) if len(key) == 1 else None
        if not isinstance(genes, slice) or genes.indices(self.n_vars) != (0, self.n_vars, 1):
            raise ParameterError(
                "a SOMA source reads whole rows (every gene)", "SomaRows[...]",
                "select genes on what it returns, e.g. rows[a:b][:, genes]",
            )
        return key[0]

    def close(self) -> None:
        """Close the experiment this object opened (the local one, or the Census release); a Census handle
        passed in stays open. Reading rows afterwards is a :class:`~mmgene.errors.CorpusError`."""
        if not self._closed:
            self._source.close()
        self._closed = True

    def __len__(self) -> int:
        return self.n_obs

    def __repr__(self) -> str:
        return f"SomaRows({self.n_obs:,} cells x {self.n_vars:,} genes of {self.query.describe()})"
