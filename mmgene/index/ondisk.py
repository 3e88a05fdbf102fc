"""Build a :class:`~mmgene.index.CellIndex` from vectors streamed in chunks, with inverted lists on disk.

:func:`build_streamed` never holds all vectors: an IVF (or IVF-PQ) index is trained on a seeded sample
(read row by row from the source), the vectors are added chunk by chunk into block indexes of at most
``block_size`` vectors written to a scratch folder, and FAISS merges the blocks' lists into one
``index.ivfdata`` file (``faiss.contrib.ondisk.merge_ondisk``), memory-mapped when the folder is
loaded. The cell table is written to Parquet chunk by chunk; ids are checked unique with 64-bit hashes
(a clash is confirmed on the ids themselves).

With ``rerank`` the folder records the source files (:meth:`~mmgene.index.sources.VectorSource.record`)
and searches re-score ``rerank_candidates * k`` candidates with exact cosine similarity from the
memory-mapped full vectors (:func:`reranked_search`), which lifts the recall of compressed codes
without storing the vectors twice. nprobe is calibrated as for an index built in memory, against
exact neighbours that the add pass computes on the fly for the calibration queries.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgene.config import check_whole
from mmgene.errors import IntegrityError, ParameterError
from mmgene.index.faiss_index import (
    CellIndex, _drop_self, calibration_rows, check_k, check_model, new_index, training_rows,
)
from mmgene.index.folder import (
    CELL_ID, CELLS_FILE, FORMAT, INDEX_FILE, METRIC, REBUILD, _faiss, _parquet_safe, cells_checksum, check_lists,
    first_repeat,
)
from mmgene.index.params import IndexParams, factory_string, resolve
from mmgene.index.sources import DEFAULT_CHUNK, VectorSource
from mmgene.vectors import as_unit_vectors

LISTS_FILE = "index.ivfdata"
STREAM_KINDS = ("ivf", "ivfpq")


@dataclass(frozen=True)
class StreamBuild:
    """How :func:`build_streamed` reads and writes (the index itself is set by :class:`IndexParams`)."""

    #: vectors read and added at once (bounds the memory of the add pass).
    chunk_size: int = DEFAULT_CHUNK
    #: vectors per temporary block index before the blocks are merged into the on-disk lists.
    block_size: int = 1_000_000
    #: re-score candidates exactly from the source's full vectors at search time.
    rerank: bool = True
    #: candidates re-scored per requested neighbour (``rerank_candidates * k``).
    rerank_candidates: int = 10

    def __post_init__(self) -> None:
        for name in ("chunk_size", "block_size", "rerank_candidates"):
            check_whole(getattr(self, name), name, f"StreamBuild.{name}", "pass a whole number >= 1", minimum=1)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence what FAISS's C++ code prints to stdout about on-disk files (it would break ``--json``)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def read_ondisk(path: Path, meta: dict[str, Any], *, verify: bool = True) -> Any:
    """Open ``index.faiss`` whose lists are in ``index.ivfdata`` of the same folder (memory-mapped),
    after checking that file's size against ``meta.json['storage']``, where ``index.faiss`` places the
    lists in it, and (``verify``) its crc32 against ``meta.json['lists_checksum']`` where recorded."""
    from mmgene.errors import InputFileError

    faiss = _faiss()
    lists = path / meta["storage"]["file"]
    if not lists.is_file():
        raise InputFileError(f"the inverted lists file {lists.name} is missing", str(path), REBUILD)
    if lists.stat().st_size != meta["storage"]["bytes"]:
        raise IntegrityError(
            f"{lists.name} has {lists.stat().st_size:,} bytes but meta.json field 'storage.bytes' records {meta['storage']['bytes']:,}",
            str(lists), REBUILD,
        )
    try:
        with _quiet_stdout():
            index = faiss.read_index(str(path / INDEX_FILE), faiss.IO_FLAG_ONDISK_SAME_DIR)
    except RuntimeError as exc:
        raise InputFileError(f"cannot read the FAISS index ({str(exc).splitlines()[-1][:200]})", str(path / INDEX_FILE), REBUILD) from exc
    _check_lists(index, lists, meta)
    if verify:
        check_lists(lists, meta.get("lists_checksum"))
    return index


def _check_lists(index: Any, lists: Path, meta: dict[str, Any]) -> None:
    """Refuse on-disk lists that ``index.faiss`` places outside ``lists`` (another file, past its end) or
    that hold another number of vectors than ``meta.json`` records: FAISS memory-maps the file and would
    read past its end (a crash, SIGBUS) or return positions of no cell."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    invlists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    if not isinstance(invlists, faiss.OnDiskInvertedLists):
        raise IntegrityError(f"{INDEX_FILE} keeps no inverted lists on disk, but meta.json field 'storage' says it does", str(lists.parent / INDEX_FILE), REBUILD)
    size, entry = lists.stat().st_size, int(invlists.code_size) + 8  # a code and its int64 id
    spans = [(one.size, one.capacity, one.offset) for one in map(invlists.lists.at, range(invlists.nlist))]
    problem = None
    if Path(invlists.filename).name != lists.name:
        problem = f"names the lists file {Path(invlists.filename).name!r}, not {lists.name!r}"
    elif int(invlists.totsize) != size:
        problem = f"expects {int(invlists.totsize):,} bytes of lists, but {lists.name} has {size:,}"
    elif any(n > cap or offset + cap * entry > size for n, cap, offset in spans):
        problem = f"places inverted lists past the end of {lists.name} ({size:,} bytes)"
    elif sum(n for n, _, _ in spans) != meta["ntotal"]:
        problem = f"lists hold {sum(n for n, _, _ in spans):,} vectors but meta.json field 'ntotal' records {meta['ntotal']:,}"
    if problem:
        raise IntegrityError(f"{INDEX_FILE} {problem}", str(lists), REBUILD)


def reranked_search(index: CellIndex, queries: Any, k: int, *, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`CellIndex.search` re-scored exactly: the index's top ``candidates * k`` per query, their full
    vectors read from :attr:`CellIndex.rerank_source` (unit-normalised), ordered by cosine similarity
    (ties by position), the best ``k`` kept."""
    check_k(k, "CellIndex.search")
    q = as_unit_vectors(queries, where="the query vectors") if normalize else np.ascontiguousarray(queries, dtype=np.float32)
    k = min(int(k), index.ntotal)
    wide = min(index.ntotal, k * int(index.meta["rerank"]["candidates"]))
    _, cand = index._search(q, wide, normalize=False)
    if q.shape[0] == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    valid = cand >= 0
    rows, inverse = np.unique(cand[valid], return_inverse=True)
    full = as_unit_vectors(index.rerank_source.take(rows), where="the re-ranking vectors")
    scores = np.full(cand.shape, -np.inf, np.float32)
    qi = np.nonzero(valid)[0]
    scores[valid] = np.einsum("ij,ij->i", q[qi], full[inverse])
    order = np.lexsort((np.where(valid, cand, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.where(
        np.isfinite(np.take_along_axis(scores, order, axis=1)), np.take_along_axis(cand, order, axis=1), -1
    )


class _ExactNeighbours:
    """Exact top-``k`` inner products of a few query vectors over the vectors seen, chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        faiss = _faiss()
        self.queries, self.k = queries, k
        self.heap = faiss.ResultHeap(len(queries), k, keep_max=True)

    def add(self, start: int, x: np.ndarray) -> None:
        faiss = _faiss()
        d, i = faiss.knn(self.queries, x, min(self.k, len(x)), metric=faiss.METRIC_INNER_PRODUCT)
        if d.shape[1] < self.k:  # a chunk smaller than k: pad with empty slots
            pad = self.k - d.shape[1]
            d = np.hstack([d, np.full((len(d), pad), -np.inf, np.float32)])
            i = np.hstack([i, np.full((len(i), pad), -1, np.int64)])
        self.heap.add_result(np.ascontiguousarray(d, np.float32), np.ascontiguousarray(np.where(i >= 0, i + start, -1), np.int64))

    def result(self) -> np.ndarray:
        self.heap.finalize()
        return self.heap.I


def build_streamed(
    source: VectorSource,
    out: str | os.PathLike[str],
    *,
    kind: str = "ivfpq",
    obs: pd.DataFrame | None = None,
    embedding_key: str | None = None,
    model: str | None = None,
    config: StreamBuild | None = None,
    overwrite: bool = False,
    **params: Any,
) -> CellIndex:
    """Index the vectors of ``source`` (:class:`~mmgene.index.sources.NpyShards`,
    :class:`~mmgene.index.sources.AnnDataObsm`) into the folder ``out`` without holding them in
    memory, and return the folder loaded (see the module docstring).

    ``kind`` is ``'ivfpq'`` (compressed codes: ``pq_m`` bytes a vector) or ``'ivf'`` (full vectors in
    the lists); other keyword arguments are :class:`~mmgene.index.params.IndexParams` fields. ``obs``
    (one row per vector, in source order) is kept beside the ids; an
    :class:`~mmgene.index.sources.AnnDataObsm` source gives its ``obs_columns`` itself, and, without a
    ``model``, the one its files record for the vectors (:meth:`~mmgene.index.sources.AnnDataObsm.recorded_model`).
    A ``model`` whose joint space has another dimension than the vectors is refused before anything is written.
    """
    from mmgene.atomic import atomic_path, check_output
    from mmgene.progress import info, progress

    config = config or StreamBuild()
    faiss = _faiss()
    if kind not in STREAM_KINDS:
        raise ParameterError(
            f"a streamed build makes an IVF index, got kind={kind!r}", "build_streamed(kind=...)",
            "use kind='ivfpq' (compressed) or 'ivf'; build flat or hnsw indexes in memory with CellIndex.from_vectors",
        )
    unknown = set(params) - set(IndexParams.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown index parameters: {', '.join(sorted(unknown))}", "build_streamed", f"use fields of IndexParams: {', '.join(IndexParams.__dataclass_fields__)}")
    n, d = source.n, source.dim
    if model is not None:  # before anything is written
        check_model(model, d, embedding_key, "build_streamed")
    else:  # as CellIndex.build does: the joint space AnnData files record for the vectors (text queries, transfer)
        model = source.recorded_model()
    p = resolve(IndexParams(kind=kind, **params), n, d)
    if obs is None and hasattr(source, "obs"):
        obs = source.obs()
    if obs is not None:
        if len(obs) != n:
            raise ParameterError(f"obs has {len(obs)} rows for {n} vectors", "build_streamed(obs=...)", "pass one obs row per vector, in source order")
        if CELL_ID in obs.columns:
            raise ParameterError(f"obs column name {CELL_ID!r} is reserved for the cell ids", "build_streamed", "rename that column")
        obs = _parquet_safe(obs.reset_index(drop=True))
    check_output(out, overwrite=overwrite, inputs=[part.path for part in source.parts])
    t0 = time.perf_counter()
    info(f"index: training {factory_string(p)} on {p.train_size:,} of {source.describe()}")
    rows = training_rows(p, n)
    sample = as_unit_vectors(source.take(rows), source.ids_of(rows), f"{source.describe()}, in the training sample of {len(rows):,}")
    trained = new_index(p, d, sample)
    del sample
    k = min(p.calibration_k, n - 2)
    qi = calibration_rows(p, n)
    checked = as_unit_vectors(source.take(qi), source.ids_of(qi), f"{source.describe()}, in the calibration sample") if k >= 1 else None
    exact = _ExactNeighbours(checked, k + 1) if checked is not None else None
    with atomic_path(Path(out), overwrite=overwrite) as tmp:
        tmp.mkdir()
        scratch = tmp / ".blocks"
        scratch.mkdir()
        blocks, block = [], faiss.clone_index(trained)
        writer = None
        try:
            for start, vectors, ids in progress(source.chunks(config.chunk_size), desc="indexing", unit="chunk", total=-(-n // config.chunk_size)):
                x = as_unit_vectors(vectors, ids, source.describe())
                block.add_with_ids(x, np.arange(start, start + len(x), dtype=np.int64))
                if exact is not None:
                    exact.add(start, x)
                writer = _write_cells(writer, tmp / CELLS_FILE, ids, obs.iloc[start : start + len(ids)] if obs is not None else None)
                if block.ntotal >= config.block_size:
                    blocks.append(_write_block(block, scratch, len(blocks)))
                    block = faiss.clone_index(trained)
            if block.ntotal:
                blocks.append(_write_block(block, scratch, len(blocks)))
        finally:
            if writer is not None:
                writer.close()
        del block
        _check_unique(tmp / CELLS_FILE)
        index = faiss.clone_index(trained)
        with _quiet_stdout():
            from faiss.contrib.ondisk import merge_ondisk

            merge_ondisk(index, blocks, str(tmp / LISTS_FILE))
        shutil.rmtree(scratch)
        if not config.rerank:  # cell -> cells queries reconstruct stored vectors
            faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Array)
        build_s = time.perf_counter() - t0
        meta = {
            "format": FORMAT, "embedding_key": embedding_key, "model": model, "source": source.describe(), "dim": int(d),
            "metric": METRIC, "factory": factory_string(p), "obs_columns": [] if obs is None else [str(c) for c in obs.columns],
            "build_seconds": round(build_s, 3), "storage": {"lists": "ondisk", "file": LISTS_FILE, "bytes": 0},
        }
        if config.rerank:
            meta["rerank"] = {"candidates": config.rerank_candidates, "source": source.record()}
        panel = source.gene_panel()
        if panel is not None:  # AnnData files: what queries from another gene panel are compared with (mmgene.io.panel)
            meta["genes"] = panel.to_meta()
        built = CellIndex(index, pd.DataFrame({CELL_ID: []}), p, meta, path=tmp, rerank=source if config.rerank else None)
        if exact is not None:
            built._calibrate_against(exact.queries, qi, _drop_self(exact.result(), qi, k))
        built.write_folder(tmp, _checksum_of(tmp / CELLS_FILE))
        del built, index
    info(f"index: {n:,} vectors in {time.perf_counter() - t0:.0f} s -> {out}")
    return CellIndex.load(out)


def _write_block(block: Any, scratch: Path, number: int) -> str:
    path = str(scratch / f"block{number:05d}.index")
    _faiss().write_index(block, path)
    return path


def _write_cells(writer: Any, path: Path, ids: list[str], obs: pd.DataFrame | None) -> Any:
    """Append rows to the Parquet cell table (opening the writer on the first chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame({CELL_ID: pd.Series(ids, dtype=object)})
    if obs is not None:
        frame = pd.concat([frame, obs.reset_index(drop=True)], axis=1)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    elif table.schema != writer.schema:
        table = table.cast(writer.schema)
    writer.write_table(table)
    return writer


def _check_unique(cells_file: Path) -> None:
    """Refuse a cell table whose ids repeat (read back from Parquet as one Arrow column)."""
    import pyarrow.parquet as pq

    ids = pq.read_table(cells_file, columns=[CELL_ID]).column(CELL_ID)
    found = first_repeat(ids)
    if found is not None:
        raise ParameterError(
            f"cell ids are not unique (e.g. {ids[found[0]].as_py()!r}, rows {found[0]} and {found[1]})", "build_streamed",
            "make them unique first (AnnData.obs_names_make_unique(), or prefix ids by their file)",
        )


def _checksum_of(cells_file: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return cells_checksum(pq.read_table(cells_file, columns=[CELL_ID]).column(CELL_ID))
