"""``CellIndex``: a FAISS index over cell vectors, with cell ids and obs columns in a Parquet sidecar.

Vectors are L2-normalised before they enter the index, so inner product is cosine similarity and
scores lie in [-1, 1].

An index is saved as a folder of plain files (``index.faiss``, ``cells.parquet``, ``meta.json``, and
``index.ivfdata`` for inverted lists on disk) that :meth:`CellIndex.load` checks before any search can
mislabel a hit; the format of that folder and its checks are in :mod:`mmgene.index.folder`. Folders
built from a stream of vectors (:func:`mmgene.index.ondisk.build_streamed`) may re-rank candidates
exactly from the full vectors they were built from (``meta.json['rerank']``, checked at load).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmgene.errors import DataError, InputFileError, IntegrityError, MissingColumnError, ParameterError, UnknownCellError, is_whole_number
from mmgene.hits import own_hit_mask
from mmgene.index.folder import (
    CELL_ID, CELLS_FILE, FORMAT, FORMAT_VERSION, INDEX_FILE, META_FILE, METRIC, ONDISK_FORMAT_VERSION, REBUILD, _check_faiss,
    _check_inside, _faiss, _meta_to_write, _parquet_safe, _read_cells, _read_faiss, _read_meta, cells_checksum,
    check_index_file, index_checksum, lists_checksum,
)
from mmgene.index.params import IndexParams, factory_string, resolve
from mmgene.provenance import record_of
from mmgene.vectors import as_unit_vectors, missing_rows, query_rows

if TYPE_CHECKING:
    from mmgene.io.panel import GenePanel


def check_k(k: Any, where: str) -> None:
    """Refuse a number of neighbours that is not a whole number >= 1 (``2.5``, ``'3'``, ``True``)."""
    if not is_whole_number(k, 1):
        raise ParameterError(f"k must be at least 1 (a whole number), got {k!r}", where, "ask for k >= 1 neighbours")


def check_model(model: Any, dim: int, embedding_key: str | None, where: str) -> None:
    """Refuse ``model`` (the joint space an index records for text queries) when it encodes text into another
    dimension than the ``dim`` of the vectors indexed: no text query could be answered, so this is said at
    build time (:func:`mmgene.query.space.check_model_dim`), naming both dimensions, the key and the model.

    A model folder that does not exist yet (written elsewhere and moved beside the index afterwards, as
    ``mmgene demo`` does) cannot be loaded, so it is recorded unchecked; a text query loads it later.
    """
    from mmgene.query.space import check_model_dim, space_name, unwritten_folder

    if unwritten_folder(model):
        return
    vectors = f"obsm[{embedding_key!r}]" if embedding_key is not None else "the vectors"
    check_model_dim(model, dim, f"{where}(model={space_name(model, model)!r}): {vectors}")


def _drop_self(ids: np.ndarray, self_ids: np.ndarray, k: int) -> np.ndarray:
    """Remove each query's own id from its (k+1)-long result row (or the last hit when absent)."""
    return ids[~own_hit_mask(ids, self_ids)].reshape(len(ids), k)


def by_score_then_position(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row best first, equal scores by position (empty slots, -1, last): FAISS returns tied cells in
    no set order, and :class:`~mmgene.index.shards.IndexShards` and re-ranking order them by position."""
    order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -scores), axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def hits_table(
    scores: np.ndarray, ids: np.ndarray, cells_at: Any, known: Sequence[str], *,
    query_names: Sequence[str] | None = None, columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The long table of :meth:`CellIndex.hits` from search output: ``query``, ``rank``, ``cell_id``,
    ``score``, the obs ``columns`` (default: all ``known``) and ``position`` (slots -1 left out);
    ``cells_at(positions, columns)`` returns the cell table's rows at those positions."""
    nq, kk = ids.shape
    names = list(query_names) if query_names is not None else [str(i) for i in range(nq)]
    if len(names) != nq:
        raise ParameterError(f"{len(names)} query names for {nq} queries", "CellIndex.hits", "pass one name per query")
    flat = ids.ravel()
    keep = flat >= 0
    table = pd.DataFrame({
        "query": np.repeat(np.asarray(names, dtype=object), kk)[keep],
        "rank": np.tile(np.arange(1, kk + 1), nq)[keep],
        "position": flat[keep],
        "score": scores.ravel()[keep],
    })
    cols = list(known) if columns is None else [columns] if isinstance(columns, str) else list(columns)  # one name, not its letters
    for col in cols:
        if col not in known:
            raise MissingColumnError(col, "the index's cell table", list(known))
    extra = cells_at(table["position"].to_numpy(), cols).reset_index(drop=True)
    return pd.concat([table[["query", "rank"]], extra[[CELL_ID]], table[["score"]], extra[cols], table[["position"]]], axis=1)


def calibration_rows(p: IndexParams, n: int) -> np.ndarray:
    """The sorted indexed cells (of ``n``) whose neighbours calibrate nprobe / ef_search."""
    return np.sort(np.random.default_rng(p.seed).choice(n, min(p.calibration_queries, n), replace=False))


def training_rows(p: IndexParams, n: int) -> np.ndarray:
    """The sorted rows (of ``n``) an IVF index trains on: ``p.train_size`` drawn with ``p.seed``."""
    return np.sort(np.random.default_rng(p.seed).choice(n, p.train_size, replace=False))


#: training vectors k-means wants per centroid; FAISS prints a warning of its own below this
POINTS_PER_CENTROID = 39


def small_training_note(p: IndexParams, n_train: int) -> str | None:
    """What an IVF (-PQ) index trained on ``n_train`` vectors has more of than k-means can train well
    (:data:`POINTS_PER_CENTROID` vectors a centroid), in words; None when the sample is large enough."""
    short = [(p.nlist, f"{p.nlist} inverted lists")]
    if p.kind == "ivfpq":
        short.append((2**p.pq_nbits, f"{2 ** p.pq_nbits} product-quantisation centroids per sub-vector"))
    short = [(k, text) for k, text in short if n_train < POINTS_PER_CENTROID * k]
    if not short:
        return None
    needed = POINTS_PER_CENTROID * max(k for k, _ in short)
    return (
        f"index: k-means trains {' and '.join(text for _, text in short)} on {n_train:,} vectors, fewer than the "
        f"{POINTS_PER_CENTROID} a centroid ({needed:,}) FAISS asks for; the calibration measures the recall this gives"
    )


def new_index(p: IndexParams, d: int, sample: np.ndarray | None) -> Any:
    """An empty FAISS index for resolved ``p``, trained on the unit vectors ``sample`` (IVF kinds).

    A sample smaller than k-means wants is said once by mmgene (:func:`small_training_note`, an
    informational line) rather than by FAISS's C++ code, whose own warning per sub-quantiser would
    reach stderr even under ``--quiet``; the recall it costs is measured by the calibration.
    """
    faiss = _faiss()
    index = faiss.index_factory(d, factory_string(p), faiss.METRIC_INNER_PRODUCT)
    if p.kind in ("ivf", "ivfpq"):
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if p.kind == "ivfpq":
            ivf.do_polysemous_training = False  # index_factory turns it on; slow and unused by IP search
            ivf.pq.cp.min_points_per_centroid = 1  # only FAISS's warning reads it (see the docstring)
        ivf.cp.niter = p.kmeans_iter
        ivf.cp.seed = p.seed
        ivf.cp.max_points_per_centroid = max(1, -(-p.train_size // p.nlist))
        ivf.cp.min_points_per_centroid = 1
        note = small_training_note(p, len(sample))
        if note:
            from mmgene.progress import info

            info(note)
        index.train(sample)
    elif p.kind == "hnsw":
        index.hnsw.efConstruction = p.ef_construction
    return index


def recall_shortfall(p: IndexParams, name: str, value: int, reached: float, k: int, *, given: bool) -> str:
    """The warning for a calibration that stops below ``p.target_recall``: the recall reached, where,
    and what would reach the target, as command-line options and the Python arguments they set."""
    option = {"nprobe": "--nprobe", "ef_search": "--ef-search"}[name]
    what = f"the {p.kind} index reaches recall@{k} {reached:.3f}, below the target {p.target_recall:g}, at {name}={value}"
    if given:
        fix = f"raise {option} ({name}=), or leave it out to calibrate it"
    elif p.kind == "ivfpq":
        fix = (
            "its compressed codes limit recall: rebuild with --kind ivf (kind='ivf', exact at nprobe=nlist) or --kind flat "
            "(kind='flat', exact), or with more bytes a vector (--pq-m, pq_m=)"
        )
    elif p.kind == "hnsw":
        fix = "rebuild with a larger --hnsw-m (M=), or --kind flat (kind='flat') for exact search"
    else:
        fix = "rebuild with --kind flat (kind='flat') for exact search"
    return f"{what}; {fix}; or accept it with a lower --target-recall (target_recall=)"


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` that appears in the same row of ``found``."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=1)
    return float(hits.mean())


class CellIndex:
    """Nearest-neighbour search over cell vectors by cosine similarity.

    Build one with :meth:`build` (from an AnnData ``obsm`` key) or :meth:`from_vectors`; search with
    :meth:`search` (arrays) or :meth:`hits` (a table with cell ids, scores and obs columns); grow it
    with :meth:`add`; persist it with :meth:`save` and :meth:`load`.

    When faiss-gpu is installed and sees a GPU (``faiss.get_num_gpus() > 0``), flat and IVF indexes
    are copied to the GPU(s) for searching (HNSW stays on the CPU; ``MMGENE_FAISS_GPU=0`` turns this
    off); the CPU index remains the one saved.

    Examples
    --------
    >>> idx = CellIndex.build(adata, "X_pca", obs_columns=["cell_type"])      # doctest: +SKIP
    >>> idx.hits(adata.obsm["X_pca"][:2], k=5)                                # doctest: +SKIP
    >>> idx.save("pbmc.index"); CellIndex.load("pbmc.index")                  # doctest: +SKIP
    """

    def __init__(
        self, index: Any, cells: pd.DataFrame, params: IndexParams, meta: dict[str, Any], *, mmapped: bool = False,
        path: Path | None = None, rerank: Any = None,
    ) -> None:
        self._index = index
        self.cells = cells.reset_index(drop=True)
        self.params = params
        self.meta = meta
        self._mmapped = mmapped
        self._path = path
        self._gpu: Any = None
        self._positions: pd.Index | None = None
        #: the full vectors (a :class:`~mmgene.index.sources.VectorSource`) candidates are re-scored from, if any
        self.rerank_source = rerank

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_vectors(
        cls,
        vectors: Any,
        cell_ids: Sequence[str] | None = None,
        obs: pd.DataFrame | None = None,
        *,
        kind: str = "auto",
        embedding_key: str | None = None,
        model: str | None = None,
        source: str | None = None,
        **params: Any,
    ) -> CellIndex:
        """Index ``vectors`` (n, d); ``cell_ids`` default to ``'0'..'n-1'``; ``obs`` rows align with them.

        Extra keyword arguments are :class:`~mmgene.index.params.IndexParams` fields (``nlist``,
        ``nprobe``, ``pq_m``, ``M``, ``ef_search``, ``target_recall``, ``seed`` ...). A ``model`` whose
        joint space has another dimension than the vectors is refused (:func:`check_model`).
        """
        unknown = set(params) - set(IndexParams.__dataclass_fields__)
        if unknown:
            raise ParameterError(f"unknown index parameters: {', '.join(sorted(unknown))}", "CellIndex.from_vectors", f"use fields of IndexParams: {', '.join(IndexParams.__dataclass_fields__)}")
        n = len(vectors) if not hasattr(vectors, "shape") else vectors.shape[0]
        ids = _check_ids(cell_ids, n)
        x = as_unit_vectors(vectors, ids, f"obsm[{embedding_key!r}]" if embedding_key else "the vectors")
        if model is not None:
            check_model(model, x.shape[1], embedding_key, "CellIndex.from_vectors")
        p = resolve(IndexParams(kind=kind, **params), x.shape[0], x.shape[1])
        cells = _cells_table(ids, obs)
        faiss = _faiss()
        t0 = time.perf_counter()
        sample = None
        if p.kind in ("ivf", "ivfpq"):
            sample = x if p.train_size >= len(x) else x[training_rows(p, len(x))]
        index = new_index(p, x.shape[1], sample)
        if p.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Array)  # lets cell -> cells reconstruct stored vectors
        index.add(x)
        build_s = time.perf_counter() - t0
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "embedding_key": embedding_key,
            "model": model,
            "source": source,
            "dim": int(x.shape[1]),
            "metric": METRIC,
            "factory": factory_string(p),
            "obs_columns": [str(c) for c in cells.columns if c != CELL_ID],
            "build_seconds": round(build_s, 3),
        }
        self = cls(index, cells, p, meta)
        if p.kind != "flat":
            self._calibrate(x)
        self._apply_search_params()
        return self

    @classmethod
    def build(
        cls,
        adata: Any,
        embedding: str,
        *,
        obs_columns: Sequence[str] | None = None,
        kind: str = "auto",
        model: str | None = None,
        skip_missing: bool = False,
        **params: Any,
    ) -> CellIndex:
        """Index ``adata.obsm[embedding]``; keep ``obs_columns`` (default: all obs columns) beside the ids.

        ``model`` names the joint space the vectors live in (an aligned model folder, ``'genept-s'``,
        ``'genept-w'``); text queries use it to encode text. When not given it is taken from
        ``adata.uns['mmgene'][embedding]['model']`` where present. Cells without an embedding (rows
        with NaN/inf or all zeros, e.g. GenePT-w for cells with no known gene) are an error, or are
        left out of the index with ``skip_missing=True`` (counted in ``meta['skipped_cells']``).
        A ``model`` given whose joint space has another dimension than ``obsm[embedding]`` is refused
        before any vector is read (:func:`check_model`); a model taken from ``uns`` is not loaded to check.
        """
        if embedding not in adata.obsm:
            raise MissingColumnError(embedding, "obsm", list(adata.obsm.keys()))
        if model is not None and len(np.shape(adata.obsm[embedding])) == 2:
            check_model(model, int(np.shape(adata.obsm[embedding])[1]), embedding, "CellIndex.build")
        obs = adata.obs
        if obs_columns is None:
            obs_columns = list(obs.columns)
        for col in obs_columns:
            if col not in obs.columns:
                raise MissingColumnError(col, "obs", list(obs.columns))
        if model is None:
            model = model_hint(adata, embedding)
        source = record_of(adata, "input").get("file")
        vectors, ids, table = adata.obsm[embedding], list(map(str, adata.obs_names)), obs[list(obs_columns)]
        skipped = 0
        if skip_missing:
            x = np.asarray(vectors.toarray() if hasattr(vectors, "toarray") else vectors, dtype=np.float32)
            present = ~missing_rows(x)
            skipped = int((~present).sum())
            if skipped:
                if not present.any():
                    raise DataError(f"none of the {len(ids)} cells has an embedding in obsm[{embedding!r}]", f"obsm[{embedding!r}]", "recompute the embedding")
                from mmgene.progress import info

                info(f"index: left out {skipped:,} cells without an embedding in obsm[{embedding!r}]")
                vectors, ids, table = x[present], [i for i, keep in zip(ids, present) if keep], table[present]
        index = cls.from_vectors(  # the model is checked above (given) or trusted (from uns): recorded after
            vectors, ids, table, kind=kind, embedding_key=embedding, source=str(source) if source else None, **params,
        )
        index.meta["model"] = model
        index.meta["skipped_cells"] = skipped
        from mmgene.io.panel import GenePanel

        panel = GenePanel.of(adata)
        if panel is not None:  # what queries from another gene panel or species are compared with (mmgene.io.panel)
            index.meta["genes"] = panel.to_meta()
        return index

    # ------------------------------------------------------------------ properties
    @property
    def faiss_index(self) -> Any:
        """The underlying FAISS index (CPU)."""
        return self._index

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return self.params.kind

    @property
    def cell_ids(self) -> np.ndarray:
        return self.cells[CELL_ID].to_numpy(dtype=str)

    @property
    def embedding_key(self) -> str | None:
        return self.meta.get("embedding_key")

    @property
    def model(self) -> str | None:
        return self.meta.get("model")

    @property
    def folder(self) -> Path | None:
        """The folder the index was loaded from; None for an index built in memory and not loaded."""
        return self._path

    @property
    def gene_panel(self) -> GenePanel | None:
        """The genes of the AnnData the indexed vectors came from (``meta.json['genes']``, :mod:`mmgene.io.panel`);
        None for an index of bare vectors."""
        from mmgene.io.panel import GenePanel

        return GenePanel.from_meta(self.meta.get("genes"))

    def __repr__(self) -> str:
        return f"CellIndex({self.ntotal:,} cells, dim={self.dim}, {self.meta.get('factory')}, embedding={self.embedding_key!r}, model={self.model!r})"

    # ------------------------------------------------------------------ search
    def set_search(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the speed/recall trade-off of later searches (IVF: ``nprobe``; HNSW: ``ef_search``)."""
        if nprobe is not None:
            if self.kind not in ("ivf", "ivfpq"):
                raise ParameterError(f"nprobe applies to IVF indexes, this one is {self.kind!r}", "CellIndex.set_search", "use ef_search for hnsw; flat needs nothing")
            if not is_whole_number(nprobe, 1) or nprobe > self.params.nlist:
                raise ParameterError(
                    f"nprobe={nprobe!r} must be a whole number between 1 and nlist={self.params.nlist}", "CellIndex.set_search",
                    f"pass a whole number of lists from 1 to {self.params.nlist}",
                )
            self.params.nprobe = int(nprobe)
        if ef_search is not None:
            if self.kind != "hnsw":
                raise ParameterError(f"ef_search applies to HNSW indexes, this one is {self.kind!r}", "CellIndex.set_search", "use nprobe for IVF; flat needs nothing")
            if not is_whole_number(ef_search, 1):
                raise ParameterError(f"ef_search must be a whole number >= 1, got {ef_search!r}", "CellIndex.set_search", "use e.g. 64")
            self.params.ef_search = int(ef_search)
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        if self.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self._index).nprobe = int(self.params.nprobe or max(1, self.params.nlist // 16))
        elif self.kind == "hnsw":
            self._index.hnsw.efSearch = int(self.params.ef_search or 64)
        self._gpu = None

    def _searcher(self) -> Any:
        """The index searches run on: a GPU copy when faiss-gpu sees a GPU (not for HNSW or lists on disk), else the CPU index."""
        if self.kind == "hnsw" or self.on_disk:
            return self._index
        if self._gpu is None:
            faiss = _faiss()
            n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
            if n_gpus > 0 and os.environ.get("MMGENE_FAISS_GPU", "1") != "0":  # pragma: no cover - needs a GPU
                self._gpu = faiss.index_cpu_to_all_gpus(self._index)
            else:
                self._gpu = False
        return self._gpu if self._gpu is not False else self._index

    @property
    def device(self) -> str:
        """``'gpu'`` when searches run on faiss-gpu, else ``'cpu'``."""
        return "cpu" if self._searcher() is self._index else "gpu"

    def rerank_status(self) -> dict[str, Any] | None:
        """How searches of this folder re-rank: ``candidates`` per hit, the vector ``files`` and the
        ``problem`` that keeps them from being opened (None when they open, or are open); None for a
        folder that does not re-rank. Lets ``mmgene index info`` describe a folder whose files moved."""
        record = self.meta.get("rerank")
        if record is None:
            return None
        problem = None
        if self.rerank_source is None:
            from mmgene.index.sources import open_recorded

            try:
                open_recorded(record["source"], f"{(self._path or Path('.')) / META_FILE} field 'rerank'")
            except (InputFileError, IntegrityError) as exc:
                problem = str(exc)
        return {"candidates": int(record["candidates"]), "files": [str(f["path"]) for f in record["source"]["files"]], "problem": problem}

    @property
    def on_disk(self) -> bool:
        """Whether the inverted lists live in ``index.ivfdata`` (memory-mapped), not in memory."""
        return self.meta.get("storage") is not None

    def search(self, queries: Any, k: int = 10, *, normalize: bool = True, rerank: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine similarities and row positions for each query, best first.

        Returns ``(scores, positions)``, both (n_queries, k'); ``k' = min(k, ntotal)``. An approximate
        index may find fewer than k' cells for a query; missing slots hold position -1 and score -inf.

        With a re-ranking source (:attr:`rerank_source`, folders built by
        :func:`~mmgene.index.ondisk.build_streamed`), ``meta['rerank']['candidates'] * k`` candidates
        are re-scored exactly from the full vectors (``rerank=None`` or ``True``); ``rerank=False``
        keeps the index's own (compressed) scores.
        """
        if rerank and self.rerank_source is None:
            raise ParameterError("this index has no vectors to re-rank from", "CellIndex.search(rerank=True)", "build it with build_streamed(..., rerank=True), or pass rerank=None")
        if rerank is not False and self.rerank_source is not None:
            from mmgene.index.ondisk import reranked_search

            return reranked_search(self, queries, k, normalize=normalize)
        return self._search(queries, k, normalize=normalize)

    def _search(self, queries: Any, k: int, *, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the index's own scores."""
        check_k(k, "CellIndex.search")
        q = query_rows(
            queries, self.dim, normalize=normalize, holder="the index has", where="CellIndex.search",
            fix=f"encode queries with the index's model ({self.model or self.embedding_key or 'the same embedding'})",
        )
        k = min(int(k), self.ntotal)
        if q.shape[0] == 0:
            return np.zeros((q.shape[0], k), np.float32), np.zeros((q.shape[0], k), np.int64)
        scores, ids = self._searcher().search(q, k)
        if ids.size and (ids.min() < -1 or ids.max() >= self.ntotal):  # lists whose ids were damaged on disk
            bad = int(ids[(ids < -1) | (ids >= self.ntotal)][0])
            raise IntegrityError(
                f"the FAISS index returned position {bad}, outside its {self.ntotal:,} cells, so its inverted lists are damaged",
                str(self._path or "the index in memory"), REBUILD,
            )
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return by_score_then_position(scores, ids.astype(np.int64))

    def hits(self, queries: Any, k: int = 10, *, query_names: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Search and return a long table: ``query``, ``rank`` (1-based), ``cell_id``, ``score`` and obs columns."""
        scores, ids = self.search(queries, k)
        return self.table(scores, ids, query_names=query_names, columns=columns)

    def table(self, scores: np.ndarray, ids: np.ndarray, *, query_names: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Turn ``search`` output into the long table of :meth:`hits` (positions -1 are left out)."""
        known = [c for c in self.cells.columns if c != CELL_ID]
        return hits_table(scores, ids, lambda pos, cols: self.cells.iloc[pos][[CELL_ID, *cols]], known, query_names=query_names, columns=columns)

    # ------------------------------------------------------------------ cells
    def positions(self, cell_ids: Sequence[str]) -> np.ndarray:
        """Row positions of ``cell_ids`` in the index; unknown ids raise."""
        if self._positions is None:
            self._positions = pd.Index(self.cell_ids)
        ids = [str(c) for c in (cell_ids if not isinstance(cell_ids, str) else [cell_ids])]
        pos = self._positions.get_indexer(ids)
        if (pos < 0).any():
            missing = [c for c, p in zip(ids, pos) if p < 0]
            raise UnknownCellError(missing[0], "the index's cell ids", list(self.cell_ids[:5]))
        return pos.astype(np.int64)

    def vectors(self, cell_ids: Sequence[str] | None = None, positions: Sequence[int] | None = None) -> np.ndarray:
        """Stored unit vectors of cells (approximate for ``ivfpq``, which keeps only compressed codes)."""
        pos = self.positions(cell_ids) if cell_ids is not None else np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.ntotal):
            raise ParameterError(f"positions must be in [0, {self.ntotal})", "CellIndex.vectors", "pass row positions of indexed cells")
        if pos.size == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.rerank_source is not None:  # the exact vectors, not their codes
            return as_unit_vectors(self.rerank_source.take(pos), where="the re-ranking vectors")
        self._ensure_direct_map()
        return np.asarray(self._index.reconstruct_batch(pos), dtype=np.float32)

    def _ensure_direct_map(self) -> None:
        """Let FAISS look up stored vectors by position. A streamed folder that re-ranks keeps no such map
        (its files give the exact vectors); loaded without them (``rerank=False``), the map is made here
        from the inverted lists' ids, once (8 bytes a cell), and the vectors are those of the codes."""
        faiss = _faiss()
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None and int(ivf.direct_map.type) == int(faiss.DirectMap.NoMap):
            ivf.make_direct_map(True)

    def add(self, vectors: Any, cell_ids: Sequence[str], obs: pd.DataFrame | None = None) -> None:
        """Append cells; their ids must be new. Obs columns missing in ``obs`` are filled with NA.

        A folder built from a stream (lists on disk, re-ranking from files) does not grow: index the new
        cells as another folder and search both with :class:`~mmgene.index.shards.IndexShards`."""
        if self.on_disk or self.rerank_source is not None:
            raise ParameterError(
                "an index with inverted lists on disk or re-ranking files cannot grow in place", "CellIndex.add",
                "build the new cells into their own index folder and search both with mmgene.index.IndexShards",
            )
        ids = _check_ids(cell_ids, len(vectors) if not hasattr(vectors, "shape") else vectors.shape[0])
        x = as_unit_vectors(vectors, ids, "the vectors to add")
        if x.shape[1] != self.dim:
            raise ParameterError(f"vectors to add have dimension {x.shape[1]}, the index has {self.dim}", "CellIndex.add", "embed the new cells with the same model")
        clash = pd.Index(ids).intersection(pd.Index(self.cell_ids))
        if len(clash):
            raise ParameterError(
                f"{len(clash)} cell ids are already in the index (e.g. {clash[0]!r})", "CellIndex.add",
                "give the new cells unique ids, e.g. prefix them with their dataset name",
            )
        new = _cells_table(ids, obs)
        known = [c for c in self.cells.columns if c != CELL_ID]
        extra = [c for c in new.columns if c not in self.cells.columns]
        if extra:
            raise ParameterError(f"obs columns {extra} are not in the index's cell table", "CellIndex.add", f"pass only columns among {known}")
        if self._mmapped:  # memory-mapped data is read-only: copy it into memory before it grows
            self._into_memory()
        self._index.add(x)
        categorical = [c for c in known if isinstance(self.cells[c].dtype, pd.CategoricalDtype)]
        self.cells = pd.concat([self.cells, new.reindex(columns=self.cells.columns)], ignore_index=True)
        for col in categorical:  # concat of differing categories gives object: keep them categorical
            self.cells[col] = self.cells[col].astype("category")
        self._positions = None
        self._gpu = None

    def _into_memory(self) -> None:
        """Copy the memory-mapped index into memory, from the mapping, not from its file: the folder may have
        been rebuilt since it was loaded, and its file would hold another index's vectors. A mapped IVF index
        reads its lists from the mapped file, which FAISS can neither grow nor write to another file."""
        faiss = _faiss()
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            mapped, lists = ivf.invlists, faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
            for i in range(ivf.nlist):
                if mapped.list_size(i):
                    ids, codes = mapped.get_ids(i), mapped.get_codes(i)
                    lists.add_entries(i, mapped.list_size(i), ids, codes)
                    mapped.release_ids(i, ids)
                    mapped.release_codes(i, codes)
            ivf.replace_invlists(lists, True)
            lists.this.disown()  # the index owns its lists now
        else:
            self._index = faiss.deserialize_index(faiss.serialize_index(self._index))
        self._mmapped = False
        self._apply_search_params()

    def add_adata(self, adata: Any, embedding: str | None = None) -> None:
        """Append the cells of ``adata`` using ``obsm[embedding]`` (default: the key the index was built on)."""
        key = embedding or self.embedding_key
        if key is None or key not in adata.obsm:
            raise MissingColumnError(str(key), "obsm", list(adata.obsm.keys()))
        cols = [c for c in self.cells.columns if c != CELL_ID and c in adata.obs.columns]
        self.add(adata.obsm[key], list(map(str, adata.obs_names)), adata.obs[cols])

    # ------------------------------------------------------------------ calibration
    def _calibrate(self, x: np.ndarray) -> None:
        """Pick the smallest nprobe / efSearch whose recall@k against exact search reaches the target.

        The queries are ``calibration_queries`` indexed cells drawn with ``seed``; each query's own cell
        is removed from both result lists, so the estimate matches queries by unseen cells.
        """
        p = self.params
        faiss = _faiss()
        n = x.shape[0]
        k = min(p.calibration_k, n - 2)
        if k < 1:
            return
        qi = calibration_rows(p, n)
        q = x[qi]
        _, truth = faiss.knn(q, x, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
        self._calibrate_against(q, qi, _drop_self(truth, qi, k))

    def _calibrate_against(self, q: np.ndarray, qi: np.ndarray, truth: np.ndarray) -> None:
        """The search of :meth:`_calibrate` given the exact neighbours ``truth`` (own cell dropped) of
        the indexed cells ``qi`` (unit vectors ``q``); searches re-rank when the index can."""
        p = self.params
        faiss = _faiss()
        k = truth.shape[1]
        user_value = p.nprobe if p.kind in ("ivf", "ivfpq") else p.ef_search
        if p.kind in ("ivf", "ivfpq"):
            name = "nprobe"
            grid = sorted({min(2**i, p.nlist) for i in range(0, int(np.ceil(np.log2(p.nlist))) + 1)})
        else:
            name = "ef_search"
            grid = [max(16, k), 32, 64, 128, 256, 512, 1024]
            grid = sorted({g for g in grid if g >= k})
        if user_value is not None:
            grid = [user_value]
        curve: list[tuple[int, float]] = []
        chosen, reached = grid[-1], None
        self._gpu = False  # search the CPU index, whose parameters this loop changes (a GPU copy would not follow)
        for value in grid:
            if name == "nprobe":
                faiss.extract_index_ivf(self._index).nprobe = int(value)
            else:
                self._index.hnsw.efSearch = int(value)
            _, found = self.search(q, k + 1, normalize=False)
            r = recall_at_k(_drop_self(found, qi, k), truth)
            curve.append((int(value), round(r, 4)))
            chosen, reached = value, r
            if r >= p.target_recall:
                break
            if p.kind == "ivfpq" and len(curve) >= 3 and r - curve[-3][1] < 0.005:
                break  # compressed codes saturate below the target: stop where more probes stop helping
        if reached is not None and reached < p.target_recall:
            # short of the target, the best value tried (fewest lists among equals): with compressed codes more
            # probes can rank more far candidates above near ones, so recall need not grow with nprobe
            chosen, reached = max(curve, key=lambda point: (point[1], -point[0]))
        setattr(p, name, int(chosen))
        if reached is not None and reached < p.target_recall:
            from mmgene.progress import warn

            warn(recall_shortfall(p, name, int(chosen), reached, k, given=user_value is not None))
        p.calibrated = {
            "parameter": name, "value": int(chosen), "recall": round(float(reached), 4), "k": int(k),
            "queries": int(len(qi)), "target_recall": p.target_recall, "curve": curve,
            "given_by_user": user_value is not None,
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``index.faiss``, ``cells.parquet`` and ``meta.json`` into the folder ``path`` (atomically).

        An existing ``path`` is replaced only with ``overwrite=True`` and only if mmgene wrote it. A memory-mapped
        IVF index is first copied into memory: FAISS would write its lists as a reference to the mapped file.
        """
        from mmgene.atomic import atomic_path

        faiss = _faiss()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputFileError(f"{path} exists and is not a folder", str(path), "choose a folder path for the index")
        lists = None
        if self.on_disk:  # the lists stay in their file: copy it beside the new index.faiss
            lists = self._path / self.meta["storage"]["file"] if self._path is not None else None
            if lists is None or not lists.is_file():
                raise InputFileError("the inverted lists of this index are not in a folder it was loaded from", str(lists), "load the index from its folder before saving it elsewhere")
        if self._mmapped and not self.on_disk and self.kind in ("ivf", "ivfpq"):
            self._into_memory()  # FAISS writes mapped IVF lists as a reference to the file they were mapped from
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.mkdir()
            copied = None
            if lists is not None:  # copied and checksummed in one read; the folder's file named if it changed since
                copied = lists_checksum(lists, self.meta.get("lists_checksum"), copy_to=tmp / lists.name)
            meta = self.write_folder(tmp, cells_checksum(self.cells[CELL_ID]), lists_crc=copied)
            _parquet_safe(self.cells).to_parquet(tmp / CELLS_FILE, index=False)
        self.meta = meta
        return path

    def write_folder(self, folder: Path, checksum: dict[str, Any], lists_crc: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write ``index.faiss`` and ``meta.json`` into ``folder`` (which holds, or will hold, the cell
        table ``checksum`` describes; ``lists_crc``: the lists file's checksum entry, when already
        computed); returns the metadata written."""
        from mmgene.provenance import package_versions

        meta = dict(self.meta)
        if self.on_disk:  # a copied lists file must still be the one recorded; a new one gets its checksum
            lists = folder / meta["storage"]["file"]
            meta["storage"] = {**meta["storage"], "bytes": lists.stat().st_size}
            meta["lists_checksum"] = lists_crc or lists_checksum(lists, meta.get("lists_checksum"))
        meta.update(
            format=FORMAT,
            format_version=ONDISK_FORMAT_VERSION if (meta.get("storage") or meta.get("rerank")) else FORMAT_VERSION,
            kind=self.kind, params=self.params.to_dict(), ntotal=self.ntotal, dim=self.dim, cells_checksum=checksum,
            versions=package_versions("faiss-cpu", "faiss-gpu", "numpy", "pandas", "pyarrow"),
            saved=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        meta = _meta_to_write(meta)
        _faiss().write_index(self._index, str(folder / INDEX_FILE))
        meta["index_checksum"] = index_checksum(folder / INDEX_FILE)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return meta

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, mmap: bool = True, rerank: bool = True, verify: bool = True,
    ) -> CellIndex:
        """Open an index folder; with ``mmap`` the vectors stay on disk and are paged in on demand
        (inverted lists on disk, ``index.ivfdata``, always are).

        The folder is checked first (see :mod:`mmgene.index.folder`): a meta.json that breaks the schema
        raises :class:`~mmgene.errors.MetadataError`; an index.faiss, index.ivfdata or cells.parquet
        that disagrees with it raises :class:`~mmgene.errors.IntegrityError`. A folder that re-ranks
        from vector files opens them (refusing files that changed); ``rerank=False`` does not, and
        searches use the compressed codes only. ``index.faiss`` and inverted lists on disk are read once to
        check their crc32 (about 0.5 s a GiB); ``verify=False`` skips that pass (sizes, dimension, kind and
        layout are still checked), e.g. for a large folder on slow storage that was just verified.
        """
        path = Path(path)
        meta = _read_meta(path)
        for name in (INDEX_FILE, CELLS_FILE, *([meta["storage"]["file"]] if meta.get("storage") else [])):
            _check_inside(path, name)
        params = IndexParams.from_dict(meta["params"])
        if meta.get("storage") is not None:
            from mmgene.index.ondisk import read_ondisk

            index, mmapped = read_ondisk(path, meta, verify=verify), True
        else:
            index, mmapped = _read_faiss(path / INDEX_FILE, params, mmap)
        _check_faiss(index, meta, path / INDEX_FILE)
        if verify:
            check_index_file(path / INDEX_FILE, meta.get("index_checksum"))
        cells = _read_cells(path / CELLS_FILE, meta)
        source = None
        if rerank and meta.get("rerank") is not None:
            from mmgene.index.sources import open_recorded

            source = open_recorded(meta["rerank"]["source"], f"{path / META_FILE} field 'rerank'")
        self = cls(index, cells, params, meta, mmapped=mmapped, path=path, rerank=source)
        self._apply_search_params()
        return self


# ---------------------------------------------------------------------- helpers
def _check_ids(cell_ids: Sequence[str] | None, n: int) -> list[str]:
    if cell_ids is None:
        return [str(i) for i in range(n)]
    ids = [str(c) for c in cell_ids]
    if len(ids) != n:
        raise ParameterError(f"{len(ids)} cell ids for {n} vectors", "CellIndex", "pass one id per vector")
    from mmgene.io.read import check_unique_cells

    check_unique_cells(ids, "CellIndex")
    return ids


def _cells_table(ids: list[str], obs: pd.DataFrame | None) -> pd.DataFrame:
    cells = pd.DataFrame({CELL_ID: pd.Series(ids, dtype=object)})
    if obs is None:
        return cells
    if len(obs) != len(ids):
        raise ParameterError(f"obs has {len(obs)} rows for {len(ids)} cells", "CellIndex", "pass obs rows aligned with the vectors")
    if CELL_ID in obs.columns:
        raise ParameterError(f"obs column name {CELL_ID!r} is reserved for the cell ids", "CellIndex", "rename that column")
    obs = obs.reset_index(drop=True)
    return pd.concat([cells, obs], axis=1)


def model_hint(adata: Any, embedding: str) -> str | None:
    """The joint space an obsm key belongs to, from provenance or the key's conventional name.

    GenePT vectors live in their text encoder's space, so the hint names the encoder the record
    names (``genept-s:hf://owner/name``); none when the record cannot say which it was, and the
    default encoder's space for a conventional key without a record."""
    return hint_of_record(record_of(adata, embedding), embedding)


def hint_of_record(entry: Any, embedding: str) -> str | None:
    """:func:`model_hint` from the provenance record of ``obsm[embedding]`` itself (``{}`` without one)."""
    entry = entry if isinstance(entry, dict) else {}
    variant = {"GenePT-s": "genept-s", "GenePT-w": "genept-w"}.get(str(entry.get("method", "")))
    if variant is not None:
        from mmgene.text.encoders import spec_of_record

        spec = spec_of_record(entry)
        return None if spec is None else variant if spec == "minilm" else f"{variant}:{spec}"
    if entry.get("model"):
        return str(entry["model"])
    return {"X_genept_s": "genept-s", "X_genept_w": "genept-w"}.get(embedding)
