"""The folder a :class:`~mmgene.index.CellIndex` is saved as: its files, the schema of ``meta.json``, the
cell-id checksum, and the checks made when a folder is read or written.

A folder holds three plain files that FAISS, pandas and any JSON reader open::

    index.faiss    the FAISS index (faiss.read_index); row i of the index is row i of cells.parquet
    cells.parquet  column ``cell_id`` plus the obs columns chosen at build time
    meta.json      embedding key, model, index kind and parameters, calibration, versions

and, when built from a stream (format version 3), ``index.ivfdata``: the inverted lists on disk.
Reading checks ``meta.json`` against :data:`META_RULES`, the FAISS file against ``meta.json``,
``cells.parquet`` against ``meta.json['cells_checksum']`` (:func:`cell_ids_sha256`), so a shuffled,
truncated, duplicated or renamed sidecar is refused, and ``index.ivfdata`` against
``meta.json['lists_checksum']`` (:func:`file_crc32`), so lists of another index of the same size are
refused too, and ``index.faiss`` against ``meta.json['index_checksum']`` (:func:`check_index_file`), so
damaged vectors, or the index of other vectors of the same shape, are refused. Folders of format version 1
(before the cell checksum) are refused with a request to rebuild them; folders written before the lists or
index checksum lack ``lists_checksum`` / ``index_checksum`` and open without that check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import InputFileError, IntegrityError, MetadataError, ParameterError, is_whole_number
from mmgene.index.params import RESOLVED_KINDS, IndexParams, Rule, factory_string, first_problem, stored_params_problem

FORMAT = "mmgene-cell-index"
#: 2: meta.json carries ``cells_checksum``; version 1 folders are refused (rebuild them).
FORMAT_VERSION = 2
#: 3: inverted lists on disk (``index.ivfdata``) and/or exact re-ranking from recorded vector files.
ONDISK_FORMAT_VERSION = 3
INDEX_FILE, CELLS_FILE, META_FILE = "index.faiss", "cells.parquet", "meta.json"
CELL_ID = "cell_id"
METRIC = "inner product of L2-normalised vectors (cosine)"
CHECKSUM_ALGORITHM = "sha256 of cell ids (count, lengths, utf-8 text)"
LISTS_CHECKSUM_ALGORITHM = "crc32 (zlib) of the lists file's bytes"
INDEX_CHECKSUM_ALGORITHM = "crc32 (zlib) of index.faiss's bytes"
REBUILD = "rebuild the index with `mmgene index build` (or CellIndex.save); do not edit the files of an index folder"

#: the schema of meta.json: field -> rule. Other top-level fields are allowed (free provenance).
META_RULES: dict[str, Rule] = {
    "format": Rule(str, choices=(FORMAT,)),
    "format_version": Rule(int, low=1, high=ONDISK_FORMAT_VERSION),
    "kind": Rule(str, choices=RESOLVED_KINDS),
    "params": Rule(dict),
    "factory": Rule(str),
    "metric": Rule(str, choices=(METRIC,)),
    "dim": Rule(int, low=1),
    "ntotal": Rule(int, low=1),
    "obs_columns": Rule(list, items=str),
    "cells_checksum": Rule(dict),
    #: format 3 with ``storage``: binds index.ivfdata's bytes to the index; absent in folders written before it
    "lists_checksum": Rule(dict, required=False),
    #: binds index.faiss's bytes to the folder; absent in folders written before it
    "index_checksum": Rule(dict, required=False),
    "embedding_key": Rule(str, nullable=True),
    "model": Rule(str, nullable=True),
    "source": Rule(str, nullable=True, required=False),
    "build_seconds": Rule(float, low=0, required=False),
    "skipped_cells": Rule(int, low=0, required=False),
    "versions": Rule(dict, required=False),
    "saved": Rule(str, required=False),
    "storage": Rule(dict, required=False),
    "rerank": Rule(dict, required=False),
    #: the genes of the AnnData the vectors came from (:mod:`mmgene.io.panel`); absent for bare vectors
    "genes": Rule(dict, required=False),
}
#: the schema of meta.json['storage']: inverted lists kept in a file of the folder (format version 3).
STORAGE_RULES: dict[str, Rule] = {
    "lists": Rule(str, choices=("ondisk",)),
    "file": Rule(str, pattern=r"[A-Za-z0-9_.-]+\.ivfdata"),
    "bytes": Rule(int, low=0),
}
#: the schema of meta.json['lists_checksum']: the crc32 of the inverted lists file, checked when it is opened.
LISTS_CHECKSUM_RULES: dict[str, Rule] = {
    "algorithm": Rule(str, choices=(LISTS_CHECKSUM_ALGORITHM,)),
    "crc32": Rule(str, pattern="[0-9a-f]{8}"),
}
#: the schema of meta.json['index_checksum']: the crc32 of index.faiss, checked when it is opened.
INDEX_CHECKSUM_RULES: dict[str, Rule] = {
    "algorithm": Rule(str, choices=(INDEX_CHECKSUM_ALGORITHM,)),
    "crc32": Rule(str, pattern="[0-9a-f]{8}"),
}
#: the schema of meta.json['rerank']: candidates re-scored exactly from the recorded vector files.
RERANK_RULES: dict[str, Rule] = {
    "candidates": Rule(int, low=1),
    "source": Rule(dict),
}
SOURCE_RULES: dict[str, Rule] = {
    "format": Rule(str, choices=("npy", "anndata")),
    "dim": Rule(int, low=1),
    "key": Rule(str, nullable=True),
    "files": Rule(list, items=dict),
}
SOURCE_FILE_RULES: dict[str, Rule] = {
    "path": Rule(str),
    "rows": Rule(int, low=1),
    "fingerprint": Rule(str, pattern="[0-9a-f]{64}"),
}
#: the schema of meta.json['genes']: the gene panel of the indexed cells (:meth:`mmgene.io.panel.GenePanel.to_meta`).
GENES_RULES: dict[str, Rule] = {
    "symbols": Rule(list, items=str),
    "looks_mouse": Rule(bool),
}
#: the schema of meta.json['cells_checksum'], which binds cells.parquet to the index.
CHECKSUM_RULES: dict[str, Rule] = {
    "algorithm": Rule(str, choices=(CHECKSUM_ALGORITHM,)),
    "rows": Rule(int, low=1),
    "sha256": Rule(str, pattern="[0-9a-f]{64}"),
}


def _faiss():
    from mmgene.lazy import require

    return require("faiss", "The cell index")


# ---------------------------------------------------------------------- cell ids
def cell_ids_sha256(ids: Sequence[object]) -> str:
    """sha256 over the ordered cell ids: their count and lengths (int64, little-endian), then their UTF-8 text.

    The lengths make the digest unambiguous (no separator that an id could contain); a reordered,
    truncated, duplicated or renamed list of ids gives another digest.
    """
    import pyarrow as pa

    if isinstance(ids, pd.Series):
        try:
            ids = pa.chunked_array([pa.array(ids, from_pandas=True)])
        except (pa.ArrowException, UnicodeError):
            ids = ids.tolist()  # mixed types or unpaired surrogates: the text path below
    if isinstance(ids, (pa.Array, pa.ChunkedArray)):
        if (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)) and not ids.null_count:
            return _arrow_ids_sha256(ids if isinstance(ids, pa.ChunkedArray) else pa.chunked_array([ids]))
        ids = ids.to_pylist()
    ids = [str(i) for i in ids]
    digest = hashlib.sha256(np.array([len(ids)], dtype="<i8").tobytes())
    digest.update(np.fromiter(map(len, ids), dtype="<i8", count=len(ids)).tobytes())
    digest.update("".join(ids).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _arrow_ids_sha256(ids: Any) -> str:
    """:func:`cell_ids_sha256` of an Arrow string column without making Python strings (for millions of
    ids): Arrow keeps the UTF-8 text of all ids back to back, and ``utf8_length`` counts characters as
    ``len`` does."""
    import pyarrow.compute as pc

    digest = hashlib.sha256(np.array([len(ids)], dtype="<i8").tobytes())
    for chunk in ids.chunks:
        digest.update(pc.utf8_length(chunk).to_numpy(zero_copy_only=False).astype("<i8").tobytes())
    for chunk in ids.chunks:
        if len(chunk):
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if chunk.type == "large_string" else np.int32)
            lo, hi = int(offsets[chunk.offset]), int(offsets[chunk.offset + len(chunk)])
            digest.update(memoryview(chunk.buffers()[2])[lo:hi])
    return digest.hexdigest()


def cells_checksum(ids: Any) -> dict[str, Any]:
    """The ``meta.json['cells_checksum']`` entry that binds a cell table to its FAISS index (``ids``: a
    list, a pandas Series or an Arrow string column)."""
    return {"algorithm": CHECKSUM_ALGORITHM, "rows": len(ids), "sha256": cell_ids_sha256(ids)}


#: ids turned into Python strings at once while hashing (bounds the memory of the uniqueness check)
_HASH_SLICE = 1 << 18


def first_repeat(ids: Any) -> tuple[int, int] | None:
    """Rows ``(first, repeat)`` of the first id that repeats (in row order) among ``ids`` (an Arrow
    string column or a sequence); None when all differ.

    Every id is hashed to 64 bits (``pandas.util.hash_array``, a slice of ids at a time), the hashes are
    sorted, and only rows whose hashes meet are compared as text, so millions of ids cost 24 bytes a row
    (hash, order, sorted copy) rather than a dictionary of all of them.
    """
    import pyarrow as pa

    ids = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array([str(i) for i in ids], pa.string())
    if len(ids) < 2:
        return None
    chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    hashes = np.concatenate([
        pd.util.hash_array(np.asarray(chunk.slice(a, _HASH_SLICE).to_numpy(zero_copy_only=False), dtype=object), categorize=False)
        for chunk in chunks for a in range(0, len(chunk), _HASH_SLICE)
    ])
    order = np.argsort(hashes, kind="stable")  # rows of equal hashes stay in row order
    sorted_hashes = hashes[order]
    del hashes
    starts = np.flatnonzero(np.concatenate([[True], sorted_hashes[1:] != sorted_hashes[:-1]]))
    sizes = np.diff(np.append(starts, len(order)))
    shared = sizes > 1  # groups of rows whose hashes meet
    if not shared.any():
        return None
    starts, sizes = starts[shared], sizes[shared]
    found: tuple[int, int] | None = None
    for g in np.argsort(order[starts + 1], kind="stable"):  # by the row of each group's second member
        if found is not None and order[starts[g] + 1] > found[1]:
            break  # no later group can repeat earlier
        rows = order[starts[g] : starts[g] + sizes[g]]
        first_row: dict[str, int] = {}
        for row, text in zip(rows.tolist(), ids.take(pa.array(rows)).to_pylist()):
            if text in first_row:
                if found is None or row < found[1]:
                    found = (first_row[text], row)
                break
            first_row[text] = row
    return found


# ---------------------------------------------------------------------- meta.json
def meta_problem(meta: Any) -> tuple[str, str] | None:
    """The first field of index metadata that breaks :data:`META_RULES` or disagrees with another field,
    as ``(field, problem)``; None when the metadata is sound."""
    if not isinstance(meta, dict):
        return "(top level)", f"must be a JSON object, got {type(meta).__name__}"
    found = (
        first_problem(meta, META_RULES)
        or stored_params_problem(meta["params"])
        or first_problem(meta["cells_checksum"], CHECKSUM_RULES, prefix="cells_checksum.", strict=True)
        or _index_checksum_problem(meta.get("index_checksum"))
        or _optional_problem(meta.get("genes"), GENES_RULES, "genes.")
    )
    if found:
        return found
    params = meta["params"]
    if params["kind"] != meta["kind"]:
        return "params.kind", f"is {params['kind']!r} but field 'kind' is {meta['kind']!r}"
    factory = factory_string(IndexParams.from_dict(params))
    if meta["factory"] != factory:
        return "factory", f"is {meta['factory']!r} but params describe {factory!r}"
    if meta["cells_checksum"]["rows"] != meta["ntotal"]:
        return "cells_checksum.rows", f"is {meta['cells_checksum']['rows']} but field 'ntotal' is {meta['ntotal']}"
    return _ondisk_problem(meta)


def _index_checksum_problem(entry: Any) -> tuple[str, str] | None:
    """The first problem of ``meta.json['index_checksum']`` (absent in folders written before it: none)."""
    return _optional_problem(entry, INDEX_CHECKSUM_RULES, "index_checksum.")


def _optional_problem(entry: Any, rules: dict[str, Rule], prefix: str) -> tuple[str, str] | None:
    """The first problem of an optional entry of meta.json, checked strictly (absent: none)."""
    return None if entry is None else first_problem(entry, rules, prefix=prefix, strict=True)


def _ondisk_problem(meta: dict[str, Any]) -> tuple[str, str] | None:
    """Problems of the format-3 fields (``storage``, ``lists_checksum``, ``rerank``): their schemas, and the
    version they need."""
    storage, rerank, lists_sum = meta.get("storage"), meta.get("rerank"), meta.get("lists_checksum")
    parts = (("storage", storage, STORAGE_RULES), ("rerank", rerank, RERANK_RULES), ("lists_checksum", lists_sum, LISTS_CHECKSUM_RULES))
    for name, value, rules in parts:
        found = first_problem(value, rules, prefix=f"{name}.", strict=True) if value is not None else None
        if found:
            return found
    if lists_sum is not None and storage is None:
        return "lists_checksum", "describes inverted lists on disk, but there is no field 'storage'"
    if rerank is not None:
        source = rerank["source"]
        found = first_problem(source, SOURCE_RULES, prefix="rerank.source.", strict=True)
        for i, item in enumerate(source["files"] if not found else []):
            found = found or first_problem(item, SOURCE_FILE_RULES, prefix=f"rerank.source.files[{i}].", strict=True)
        if found:
            return found
        if not source["files"]:
            return "rerank.source.files", "must list at least one file, got []"
        if source["dim"] != meta["dim"]:
            return "rerank.source.dim", f"is {source['dim']} but field 'dim' is {meta['dim']}"
        if sum(f["rows"] for f in source["files"]) != meta["ntotal"]:
            return "rerank.source.files", f"hold {sum(f['rows'] for f in source['files'])} rows but field 'ntotal' is {meta['ntotal']}"
    if storage is not None and meta["kind"] not in ("ivf", "ivfpq"):
        return "storage", f"inverted lists on disk need an IVF index, but field 'kind' is {meta['kind']!r}"
    wanted = ONDISK_FORMAT_VERSION if (storage is not None or rerank is not None) else FORMAT_VERSION
    if meta["format_version"] != wanted:
        return "format_version", f"must be {wanted} {'with' if wanted == ONDISK_FORMAT_VERSION else 'without'} 'storage' or 'rerank', got {meta['format_version']}"
    return None


def _meta_to_write(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as it will read back from JSON, checked so that ``save`` never writes a folder ``load`` refuses."""
    meta = json.loads(json.dumps(meta, default=str))
    found = meta_problem(meta)
    if found:
        raise ParameterError(f"CellIndex.meta field {found[0]!r} {found[1]}", "CellIndex.save", "correct CellIndex.meta before saving")
    return meta


# ---------------------------------------------------------------------- the lists file
#: bytes read at once while checksumming a lists file (bounds memory at any size of file)
_CRC_BLOCK = 1 << 24


def file_crc32(path: Path, copy_to: Path | None = None) -> str:
    """zlib crc32 of a file as 8 hex digits, read a block at a time (and written to ``copy_to`` in the same
    pass, when given). It costs about 0.5 s a GiB on a 2-core machine (blake2b: 2 s, sha256: 0.8 s), cheap
    enough to check the lists file at every open."""
    crc = 0
    with open(path, "rb") as fh, (open(copy_to, "wb") if copy_to is not None else contextlib.nullcontext()) as out:
        while block := fh.read(_CRC_BLOCK):
            crc = zlib.crc32(block, crc)
            if out is not None:
                out.write(block)
    return f"{crc:08x}"


def lists_checksum(lists: Path, recorded: dict[str, Any] | None = None, *, copy_to: Path | None = None) -> dict[str, Any]:
    """The ``meta.json['lists_checksum']`` entry of the lists file ``lists``, refused (as by :func:`check_lists`)
    when it differs from ``recorded``, the entry of the folder the file was copied from; ``copy_to`` copies
    the file in the same read."""
    found = file_crc32(lists, copy_to)
    if recorded is not None and found != recorded["crc32"]:
        raise _file_changed(lists, found, recorded["crc32"], "lists_checksum")
    return {"algorithm": LISTS_CHECKSUM_ALGORITHM, "crc32": found}


def check_lists(lists: Path, recorded: dict[str, Any] | None) -> None:
    """Refuse a lists file whose crc32 is not the one ``meta.json['lists_checksum']`` records (``recorded``):
    lists of another index, or damaged bytes, of the same size would answer searches with wrong cells.
    Folders written before the entry existed (``recorded`` None) are not read."""
    if recorded is not None:
        lists_checksum(lists, recorded)


def _file_changed(file: Path, found: str, recorded: str, field: str) -> IntegrityError:
    return IntegrityError(
        f"{file.name} has crc32 {found} but {META_FILE} field '{field}.crc32' records {recorded}: "
        "its bytes were replaced or damaged since the index was written, so searches would return wrong cells",
        str(file), REBUILD,
    )


def index_checksum(index_file: Path) -> dict[str, Any]:
    """The ``meta.json['index_checksum']`` entry of a written ``index.faiss``."""
    return {"algorithm": INDEX_CHECKSUM_ALGORITHM, "crc32": file_crc32(index_file)}


def check_index_file(index_file: Path, recorded: dict[str, Any] | None) -> None:
    """Refuse an ``index.faiss`` whose crc32 is not the one ``meta.json['index_checksum']`` records: a damaged
    vector, or the index of other vectors of the same size, dimension and kind, passes every other check and
    answers searches with wrong cells. Folders written before the entry existed (``recorded`` None) are not read."""
    if recorded is not None:
        found = file_crc32(index_file)
        if found != recorded["crc32"]:
            raise _file_changed(index_file, found, recorded["crc32"], "index_checksum")


# ---------------------------------------------------------------------- reading a folder
def _check_inside(folder: Path, name: str) -> None:
    """Refuse a file of an index folder that is a link leading out of the folder, or no plain file (a pipe
    or device would block or feed FAISS endless bytes): an index folder is read from itself only."""
    item = folder / name
    if item.is_symlink() and not item.resolve().is_relative_to(folder.resolve()):
        raise IntegrityError(
            f"{name} is a link to {item.resolve()}, outside the index folder", str(item), f"copy the file into the folder, or {REBUILD}",
        )
    if item.exists() and not item.is_file():
        raise InputFileError(f"{name} is not a plain file", str(item), REBUILD)


def _read_meta(path: Path) -> dict[str, Any]:
    """Read ``meta.json`` of an index folder and check it against the schema."""
    meta_file = path / META_FILE
    _check_inside(path, META_FILE)
    if not meta_file.is_file():
        raise InputFileError(f"no {META_FILE} in {path}", str(path), "pass a folder written by `mmgene index build` or CellIndex.save")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{META_FILE} is not valid JSON ({exc})", str(meta_file), REBUILD) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputFileError(
            f"not a {FORMAT} folder ({META_FILE} field 'format' is {found!r})", str(meta_file),
            "pass a folder written by `mmgene index build` or CellIndex.save",
        )
    version = meta.get("format_version")
    if is_whole_number(version, ONDISK_FORMAT_VERSION + 1):
        raise MetadataError(
            f"{META_FILE} field 'format_version' is {version}: written by a newer mmgene (this one reads up to {ONDISK_FORMAT_VERSION})",
            str(meta_file), "upgrade mmgene, or rebuild the index with `mmgene index build`",
        )
    if is_whole_number(version) and version == 1:
        raise MetadataError(
            f"{META_FILE} field 'cells_checksum' is missing: format_version 1 was written before cells.parquet was bound to "
            "the index by a checksum, so its cell ids cannot be verified", str(meta_file), REBUILD,
        )
    found = meta_problem(meta)
    if found:
        raise MetadataError(f"{META_FILE} field {found[0]!r} {found[1]}", str(meta_file), REBUILD)
    return meta


def _read_faiss(index_file: Path, params: IndexParams, mmap: bool) -> tuple[Any, bool]:
    """Read ``index.faiss``, memory-mapped where FAISS can; returns ``(index, mmapped)``."""
    faiss = _faiss()
    if mmap:
        flag = faiss.IO_FLAG_MMAP if params.kind in ("ivf", "ivfpq") else getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
        try:
            return faiss.read_index(str(index_file), flag), True
        except RuntimeError:
            pass  # this index type cannot be mapped: read it into memory below
    try:
        return faiss.read_index(str(index_file)), False
    except RuntimeError as exc:
        raise InputFileError(f"cannot read the FAISS index ({str(exc).splitlines()[-1][:200]})", str(index_file), REBUILD) from exc


def _faiss_kind(index: Any) -> tuple[str, int | None]:
    """The mmgene kind of a FAISS index, and its number of inverted lists (IVF kinds)."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return ("ivfpq" if isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ) else "ivf"), int(ivf.nlist)
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw", None
    if isinstance(index, faiss.IndexFlat):
        return "flat", None
    return type(index).__name__, None


def _check_faiss(index: Any, meta: dict[str, Any], index_file: Path) -> None:
    """Refuse a FAISS index whose size, dimension, metric or kind disagrees with ``meta.json``."""
    faiss = _faiss()
    kind, nlist = _faiss_kind(index)
    found = [
        ("ntotal", int(index.ntotal), meta["ntotal"]),
        ("dim", int(index.d), meta["dim"]),
        ("metric", "inner product" if index.metric_type == faiss.METRIC_INNER_PRODUCT else f"FAISS metric {index.metric_type}", "inner product"),
        ("kind", kind, meta["kind"]),
        ("params.nlist", nlist, meta["params"]["nlist"] if kind in ("ivf", "ivfpq") else None),
    ]
    for field, actual, recorded in found:
        if actual != recorded:
            raise IntegrityError(
                f"{INDEX_FILE} has {field}={actual} but {META_FILE} field {field!r} records {recorded}", str(index_file), REBUILD,
            )


def _read_cells(cells_file: Path, meta: dict[str, Any]) -> pd.DataFrame:
    """Read ``cells.parquet`` and refuse it unless its rows, columns and cell ids are those ``meta.json`` records."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(cells_file)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the cell table ({exc})", str(cells_file), REBUILD) from exc
    large = meta["format_version"] == ONDISK_FORMAT_VERSION  # millions of cells: keep strings in Arrow, not Python objects
    cells = table.to_pandas(types_mapper=_arrow_strings if large else None)
    if CELL_ID not in cells.columns:
        raise IntegrityError(f"{CELLS_FILE} has no column {CELL_ID!r}", str(cells_file), REBUILD)
    if len(cells) != meta["ntotal"]:
        raise IntegrityError(
            f"{CELLS_FILE} has {len(cells)} rows but the index holds {meta['ntotal']} vectors ({META_FILE} field 'cells_checksum.rows')",
            str(cells_file), REBUILD,
        )
    columns, recorded = [str(c) for c in cells.columns], [CELL_ID, *meta["obs_columns"]]
    if columns != recorded:
        raise IntegrityError(f"{CELLS_FILE} has columns {columns} but {META_FILE} field 'obs_columns' records {recorded[1:]}", str(cells_file), REBUILD)
    if cell_ids_sha256(table.column(CELL_ID)) != meta["cells_checksum"]["sha256"]:
        dup = pd.Index([str(i) for i in cells[CELL_ID].tolist()])
        dup = dup[dup.duplicated()]
        detail = f"cell id {dup[0]!r} appears more than once" if len(dup) else "rows were reordered, replaced or renamed"
        raise IntegrityError(
            f"the cell ids of {CELLS_FILE} do not match {META_FILE} field 'cells_checksum' ({detail}), so hits would get wrong labels",
            str(cells_file), REBUILD,
        )
    return cells


def _arrow_strings(kind: Any) -> Any:
    """pandas dtype for Arrow string columns of a large cell table (Arrow-backed, no Python objects)."""
    import pyarrow as pa

    return pd.StringDtype("pyarrow") if kind in (pa.string(), pa.large_string()) else None


# ---------------------------------------------------------------------- writing a folder
def _parquet_safe(cells: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed types become strings so that pyarrow can store them."""
    out = cells.copy()
    for col in out.columns:
        if out[col].dtype == object:
            values = out[col]
            if not values.map(lambda v: isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v))).all():
                out[col] = values.astype(str)
    out.columns = [str(c) for c in out.columns]
    return out
