"""Several index folders (one per file, per node or per batch of new cells) searched as one index.

:class:`IndexShards` asks every shard for its top ``k``, turns shard positions into global ones (the
shards' rows one after the other, in the order given) and keeps the best ``k`` by score, ties by
global position: what one index over all the cells returns, exactly so when the shards are exact
(``flat``) indexes. Every shard is a checked :class:`~mmgene.index.CellIndex` folder; the shards must
agree on dimension, joint space (model and embedding key) and obs columns, and no cell id may appear
in two shards.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmgene.errors import ParameterError
from mmgene.index.faiss_index import CellIndex, check_k, hits_table
from mmgene.index.folder import CELL_ID, first_repeat
from mmgene.vectors import query_rows

if TYPE_CHECKING:
    from mmgene.io.panel import GenePanel


class IndexShards:
    """Search several :class:`~mmgene.index.CellIndex` shards as one (see the module docstring)."""

    def __init__(self, shards: Sequence[CellIndex], names: Sequence[str] | None = None) -> None:
        self.shards = list(shards)
        if not self.shards:
            raise ParameterError("no index shard given", "IndexShards", "pass one or more index folders")
        self.names = [str(n) for n in names] if names is not None else [f"shard {i}" for i in range(len(self.shards))]
        if len(self.names) != len(self.shards):  # zip() below would leave the unnamed shards unchecked
            raise ParameterError(f"{len(self.names)} names for {len(self.shards)} shards", "IndexShards(names=...)", "pass one name per shard, or none")
        first = self.shards[0]
        for name, shard in zip(self.names[1:], self.shards[1:]):
            for what, mine, theirs in (
                ("dimension", shard.dim, first.dim),
                ("model", shard.model, first.model),
                ("embedding key", shard.embedding_key, first.embedding_key),
                ("obs columns", list(shard.meta.get("obs_columns", [])), list(first.meta.get("obs_columns", []))),
            ):
                if mine != theirs:
                    raise ParameterError(
                        f"the shards disagree on their {what}: {theirs!r} in {self.names[0]}, {mine!r} in {name}",
                        "IndexShards", "search shards built from one embedding with the same columns",
                    )
        self.offsets = np.cumsum([0] + [s.ntotal for s in self.shards])
        self._check_unique_ids()

    @classmethod
    def load(
        cls, paths: Sequence[str | os.PathLike[str]], *, mmap: bool = True, rerank: bool = True, verify: bool = True,
    ) -> IndexShards:
        """Open index folders (each checked by :meth:`CellIndex.load`) as shards, in the order given."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        shards = [CellIndex.load(p, mmap=mmap, rerank=rerank, verify=verify) for p in paths]
        return cls(shards, names=[str(p) for p in paths])

    def _check_unique_ids(self) -> None:
        import pyarrow as pa

        ids = pa.chunked_array([pa.array(s.cells[CELL_ID].astype(str).to_numpy(dtype=object), pa.string()) for s in self.shards])
        found = first_repeat(ids)
        if found is not None:
            (si, _), (sj, _) = self.locate(list(found))
            raise ParameterError(
                f"cell id {ids[found[0]].as_py()!r} is in two shards ({self.names[si]} and {self.names[sj]})", "IndexShards",
                "give every cell one id across the shards (e.g. prefix ids by their dataset)",
            )

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        return int(self.offsets[-1])

    def __len__(self) -> int:
        return self.ntotal

    @property
    def dim(self) -> int:
        return self.shards[0].dim

    @property
    def model(self) -> str | None:
        return self.shards[0].model

    @property
    def embedding_key(self) -> str | None:
        return self.shards[0].embedding_key

    @property
    def gene_panel(self) -> GenePanel | None:
        """The genes of every shard together; None when a shard records none (its cells' genes are unknown)."""
        panels = [shard.gene_panel for shard in self.shards]
        if any(panel is None for panel in panels):
            return None
        return functools.reduce(lambda a, b: a.union(b), panels)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"IndexShards({len(self.shards)} shards, {self.ntotal:,} cells, dim={self.dim}, model={self.model!r})"

    def locate(self, positions: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
        """``(shard, position within it)`` of each global position."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.ntotal):
            raise ParameterError(f"positions must be in [0, {self.ntotal})", "IndexShards.locate", "pass positions returned by search")
        shard = np.searchsorted(self.offsets, pos, side="right") - 1
        return [(int(s), int(p - self.offsets[s])) for s, p in zip(shard, pos)]

    # ------------------------------------------------------------------ search
    def search(self, queries: Any, k: int = 10, *, normalize: bool = True, rerank: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine similarities and global positions for each query, best first, merged over
        the shards (see the module docstring); shapes and missing slots as :meth:`CellIndex.search`."""
        check_k(k, "IndexShards.search")
        q = query_rows(queries, self.dim, normalize=normalize, holder="the shards have", where="IndexShards.search",
                       fix="encode queries with the shards' model, one (n_queries, dim) array")
        k = min(int(k), self.ntotal)
        scores, positions = [], []
        for offset, shard in zip(self.offsets, self.shards):
            s, p = shard.search(q, k, normalize=False, rerank=rerank)
            scores.append(s)
            positions.append(np.where(p >= 0, p + offset, -1))
        s, p = np.hstack(scores), np.hstack(positions)
        order = np.lexsort((np.where(p >= 0, p, np.iinfo(np.int64).max), -s), axis=1)[:, :k]
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(p, order, axis=1)

    def hits(self, queries: Any, k: int = 10, *, query_names: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Search and return the long table of :meth:`CellIndex.hits` (global positions)."""
        scores, ids = self.search(queries, k)
        known = list(self.shards[0].meta.get("obs_columns", []))
        return hits_table(scores, ids, self._cells_at, known, query_names=query_names, columns=columns)

    def _cells_at(self, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
        shard = np.searchsorted(self.offsets, positions, side="right") - 1
        parts, where = [], []
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            rows = self.shards[s].cells.iloc[positions[sel] - self.offsets[s]][[CELL_ID, *columns]]
            parts.append(rows.astype(object))
            where.append(sel)
        if not parts:
            return pd.DataFrame(columns=[CELL_ID, *columns])
        table = pd.concat(parts, ignore_index=True)
        return table.iloc[np.argsort(np.concatenate(where), kind="stable")]

