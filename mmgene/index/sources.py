"""Vectors read from disk in chunks, never all at once: sharded ``.npy`` files or an AnnData's ``obsm``.

A :class:`VectorSource` knows how many vectors it holds and their dimension without reading them,
yields them in chunks of consecutive rows (:meth:`VectorSource.chunks`) and reads chosen rows
(:meth:`VectorSource.take`, for training samples and exact re-ranking). ``.npy`` shards are
memory-mapped; an ``.h5ad`` file or ``.zarr`` store is opened with h5py / zarr and only the rows asked
for are read (anndata's backed mode would load all of ``obsm`` into memory).

:meth:`VectorSource.record` describes the source for ``meta.json`` (files, rows, dimension, and a
sha256 over a few fixed rows of each file) so that a folder that re-ranks from these files can refuse
files that were replaced: see :func:`open_recorded`.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmgene.errors import InputFileError, IntegrityError, MissingColumnError, ParameterError, cause

if TYPE_CHECKING:
    from mmgene.io.panel import GenePanel

#: rows per chunk when none is given (256-d float32: 64 MiB).
DEFAULT_CHUNK = 65_536
#: rows of each file hashed into its fingerprint (evenly spaced, first and last included).
FINGERPRINT_ROWS = 16


@dataclass(frozen=True)
class _Part:
    """One file of a source: where it starts in the global row order and how many rows it has."""

    path: Path
    start: int
    rows: int


class RowIds:
    """Ids of some global rows of a :class:`VectorSource`, read one at a time when indexed."""

    def __init__(self, source: VectorSource, rows: np.ndarray) -> None:
        self.source, self.rows = source, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> str:
        row = int(self.rows[i])
        part = int(np.searchsorted([p.start for p in self.source.parts], row, side="right")) - 1
        local = row - self.source.parts[part].start
        return self.source._ids(part, local, local + 1)[0]


class VectorSource(ABC):
    """Vectors on disk, read in chunks of rows (see the module docstring); subclasses open the files."""

    kind: str = ""
    parts: list[_Part]
    dim: int

    @property
    def n(self) -> int:
        return self.parts[-1].start + self.parts[-1].rows if self.parts else 0

    def __len__(self) -> int:
        return self.n

    def describe(self) -> str:
        names = ", ".join(p.path.name for p in self.parts[:3]) + (f" and {len(self.parts) - 3} more" if len(self.parts) > 3 else "")
        return f"{self.n:,} vectors of dimension {self.dim} in {len(self.parts)} {self.kind} file(s) ({names})"

    def gene_panel(self) -> GenePanel | None:
        """The genes the vectors were made from, when the files say (AnnData files); None for bare vectors."""
        return None

    def recorded_model(self) -> str | None:
        """The joint space the files record for their vectors (AnnData files); None for bare vectors."""
        return None

    # ---------------------------------------------------------------- reading
    @abstractmethod
    def _array(self, part: int) -> Any:
        """The 2-D array of one file (memory-mapped or an h5py/zarr dataset): slicing reads rows."""

    @abstractmethod
    def _ids(self, part: int, start: int, stop: int) -> list[str]:
        """Ids of rows ``start:stop`` of one file."""

    def chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[int, np.ndarray, list[str]]]:
        """Yield ``(first_row, vectors, ids)`` for consecutive rows, at most ``chunk_size`` at a time
        (a chunk never spans two files), vectors as float32."""
        if chunk_size < 1:
            raise ParameterError(f"chunk_size must be at least 1, got {chunk_size}", "VectorSource.chunks", "pass a positive chunk size")
        for i, part in enumerate(self.parts):
            for a in range(0, part.rows, chunk_size):
                b = min(a + chunk_size, part.rows)
                yield part.start + a, self._block(i, a, b), self._ids(i, a, b)

    def _block(self, part: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of one file as float32."""
        return np.asarray(self._array(part)[start:stop], dtype=np.float32)

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of global ``rows`` (any order, repeats allowed) as float32, reading only those rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), np.float32)
        if rows.size == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.n:
            raise ParameterError(f"rows must lie in [0, {self.n})", "VectorSource.take", "pass positions of stored vectors")
        starts = np.array([p.start for p in self.parts])
        which = np.searchsorted(starts, rows, side="right") - 1
        for i in np.unique(which):
            sel = np.flatnonzero(which == i)
            local = rows[sel] - self.parts[i].start
            order = np.argsort(local, kind="stable")
            uniq, inverse = np.unique(local[order], return_inverse=True)
            block = self._read_rows(i, uniq)
            out[sel[order]] = block[inverse]
        return out

    def ids_of(self, rows: Sequence[int] | np.ndarray) -> RowIds:
        """The ids of global ``rows``, each read when asked (an error names the one bad cell of a sample)."""
        return RowIds(self, np.asarray(rows, dtype=np.int64))

    def _read_rows(self, part: int, rows: np.ndarray) -> np.ndarray:
        """Sorted, distinct local ``rows`` of one file."""
        return np.asarray(self._array(part)[rows], dtype=np.float32)

    # ---------------------------------------------------------------- provenance
    def fingerprint(self, part: int) -> str:
        """sha256 of :data:`FINGERPRINT_ROWS` fixed rows of one file (as little-endian float32)."""
        rows = self.parts[part].rows
        picks = np.unique(np.linspace(0, rows - 1, min(FINGERPRINT_ROWS, rows)).astype(np.int64))
        block = np.ascontiguousarray(self._read_rows(part, picks), dtype="<f4")
        digest = hashlib.sha256(np.array([rows, self.dim], dtype="<i8").tobytes())
        digest.update(block.tobytes())
        return digest.hexdigest()

    def record(self) -> dict[str, Any]:
        """What ``meta.json`` keeps to reopen these files later and recognise them."""
        return {
            "format": self.kind,
            "dim": int(self.dim),
            "key": getattr(self, "key", None),
            "files": [
                {"path": str(p.path), "rows": int(p.rows), "fingerprint": self.fingerprint(i)} for i, p in enumerate(self.parts)
            ],
        }


# ---------------------------------------------------------------------- .npy shards
class NpyShards(VectorSource):
    """Vectors in ``.npy`` files (one 2-D float array each, concatenated in the order given). Chunks
    and chosen rows are read from the file (a memory map would keep every page read resident and
    counted in the process's memory). Ids are the global row numbers
    ``'0'..'n-1'`` unless ``ids`` (one text file per shard, one id a line) are given."""

    kind = "npy"

    def __init__(self, paths: Sequence[str | os.PathLike[str]], ids: Sequence[str | os.PathLike[str]] | None = None) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ParameterError("no .npy file given", "NpyShards", "pass one or more .npy files of vectors")
        self._arrays: list[Any] = []
        self.parts = []
        start, dims = 0, set()
        for path in map(Path, paths):
            array = _open_npy(path)
            self._arrays.append(array)
            dims.add(int(array.shape[1]))
            self.parts.append(_Part(path.resolve(), start, int(array.shape[0])))
            start += int(array.shape[0])
        if len(dims) != 1:
            raise ParameterError(
                f"the .npy files hold vectors of different dimensions {sorted(dims)}", ", ".join(map(str, paths)),
                "pass files of one embedding",
            )
        self.dim = dims.pop()
        self._id_files = None
        if ids is not None:
            if isinstance(ids, (str, os.PathLike)):
                ids = [ids]
            if len(ids) != len(self.parts):
                raise ParameterError(f"{len(ids)} id files for {len(self.parts)} vector files", "NpyShards(ids=...)", "pass one id file per .npy file")
            self._id_files = [_read_id_file(Path(f), p) for f, p in zip(ids, self.parts)]

    def _array(self, part: int) -> Any:
        return self._arrays[part]

    def _block(self, part: int, start: int, stop: int) -> np.ndarray:
        array = self._arrays[part]
        if not isinstance(array, np.memmap) or array.flags.f_contiguous and not array.flags.c_contiguous:
            return super()._block(part, start, stop)
        row = array.shape[1] * array.dtype.itemsize
        with open(array.filename, "rb") as fh:
            fh.seek(array.offset + start * row)
            block = np.fromfile(fh, dtype=array.dtype, count=(stop - start) * array.shape[1])
        return block.reshape(stop - start, array.shape[1]).astype(np.float32, copy=False)

    def _read_rows(self, part: int, rows: np.ndarray) -> np.ndarray:
        """Sorted, distinct rows read with ``pread``, one read per run of consecutive rows: touching
        them through the memory map would keep (with read-ahead) far more of the file resident."""
        array = self._arrays[part]
        if not isinstance(array, np.memmap) or not array.flags.c_contiguous:
            return super()._read_rows(part, rows)
        width = array.shape[1] * array.dtype.itemsize
        out = np.empty((len(rows), width), np.uint8)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(rows) != 1) + 1, [len(rows)]])
        fd = os.open(array.filename, os.O_RDONLY)
        try:
            for a, b in zip(starts[:-1], starts[1:]):
                data = os.pread(fd, int(b - a) * width, array.offset + int(rows[a]) * width)
                out[a:b] = np.frombuffer(data, np.uint8).reshape(int(b - a), width)
        finally:
            os.close(fd)
        return out.view(array.dtype).reshape(len(rows), array.shape[1]).astype(np.float32, copy=False)

    def _ids(self, part: int, start: int, stop: int) -> list[str]:
        if self._id_files is not None:
            return self._id_files[part][start:stop]
        offset = self.parts[part].start
        return [str(i) for i in range(offset + start, offset + stop)]


def _open_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputFileError(f"file not found: {path}", str(path), "check the path of the .npy file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        raise InputFileError(f"not a .npy array ({cause(exc)})", str(path), "write the vectors with numpy.save") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive of arrays, whatever its name
        array.close()
        raise InputFileError(
            "an .npz archive, not a .npy array", str(path), "save each array of vectors with numpy.save",
        )
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0 or array.dtype.kind not in "fiu":
        raise InputFileError(
            f"expected a non-empty 2-D numeric array, got shape {array.shape} of {array.dtype}", str(path),
            "save an (n_cells, dim) float array",
        )
    return array


def _read_id_file(path: Path, part: _Part) -> list[str]:
    if not path.is_file():
        raise InputFileError(f"file not found: {path}", str(path), "pass a text file with one cell id a line")
    try:
        ids = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"the id file is not UTF-8 text ({cause(exc)})", str(path), "write one cell id a line, as UTF-8",
        ) from exc
    if len(ids) != part.rows:
        raise ParameterError(f"{len(ids)} ids for {part.rows} vectors of {part.path.name}", str(path), "write one id a line, one per row")
    return ids


# ---------------------------------------------------------------------- AnnData obsm on disk
class AnnDataObsm(VectorSource):
    """``obsm[key]`` of ``.h5ad`` files or ``.zarr`` stores (concatenated in the order given), read
    row by row from disk; ids are the obs names. ``obs_columns`` are read whole (obs-sized); ``None``
    means every column of the first file."""

    kind = "anndata"

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], key: str, obs_columns: Sequence[str] | None = ()) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.key = key
        self._roots: list[Any] = []  # each file's root group, opened once for every read below
        self._groups: list[Any] = []
        self._names: list[Any] = []
        self.parts = []
        start, dims = 0, set()
        for path in map(Path, paths):
            group = _open_group(path)
            obsm = group.get("obsm")
            if obsm is None or key not in obsm:
                raise MissingColumnError(key, "obsm", list(obsm.keys()) if obsm is not None else [], str(path))
            array = obsm[key]
            _check_dense(array, key, path)
            if "obs" not in group:
                raise InputFileError(
                    "not an AnnData file: it has no obs table of cell names", str(path),
                    "pass an .h5ad file or a .zarr store",
                )
            obs = group["obs"]
            index = obs.attrs.get("_index", "_index")
            self._roots.append(group)
            self._groups.append(array)
            self._names.append(obs[index])
            dims.add(int(array.shape[1]))
            self.parts.append(_Part(path.resolve(), start, int(array.shape[0])))
            start += int(array.shape[0])
        if len(dims) != 1:
            raise ParameterError(f"obsm[{key!r}] has different widths {sorted(dims)} in these files", ", ".join(map(str, paths)), "pass files of one embedding")
        self.dim = dims.pop()
        if obs_columns is None:
            obs_columns = [str(c) for c in self._roots[0]["obs"].attrs.get("column-order", [])]
        self.obs_columns = list(obs_columns)

    def _array(self, part: int) -> Any:
        return self._groups[part]

    def _read_rows(self, part: int, rows: np.ndarray) -> np.ndarray:
        array = self._groups[part]
        if hasattr(array, "oindex"):  # zarr
            return np.asarray(array.oindex[rows, :], dtype=np.float32)
        return np.asarray(array[rows], dtype=np.float32)  # h5py: increasing indices

    def _ids(self, part: int, start: int, stop: int) -> list[str]:
        values = self._names[part][start:stop]
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]

    def obs(self) -> pd.DataFrame | None:
        """The chosen obs columns of all files, one row per vector (``None`` when none was asked for)."""
        if not self.obs_columns:
            return None
        from anndata.io import read_elem

        frames = []
        for part, root in zip(self.parts, self._roots):
            group = root["obs"]
            missing = [c for c in self.obs_columns if c not in group]
            if missing:
                raise MissingColumnError(missing[0], "obs", [c for c in group.keys() if not c.startswith("_")], str(part.path))
            frames.append(pd.DataFrame({c: read_elem(group[c]) for c in self.obs_columns}))
        return pd.concat(frames, ignore_index=True)

    def recorded_model(self) -> str | None:
        """The joint space every file records for ``obsm[key]`` (its provenance, or the key's usual name:
        :func:`mmgene.index.faiss_index.model_hint`), read from that record alone, so that a streamed index
        names the model an in-memory build of the same file names; None when the files disagree, or when
        that space has another dimension than the vectors (a guess from the key's name, not a model asked for)."""
        from mmgene.index.faiss_index import hint_of_record
        from mmgene.query.space import check_model_dim

        hints = {hint_of_record(_provenance(root, self.key), self.key) for root in self._roots}
        model = hints.pop() if len(hints) == 1 else None
        try:
            if model is not None:
                check_model_dim(model, self.dim, f"obsm[{self.key!r}] of {self.parts[0].path}")
        except ParameterError:
            return None
        return model

    def gene_panel(self) -> GenePanel | None:
        """The genes the files measured (their union), read without the expression matrix: the panel the
        vectors were made from, which the index records (:mod:`mmgene.io.panel`); None when no file has genes."""
        from anndata.io import read_elem

        from mmgene.io.panel import GenePanel

        found: GenePanel | None = None
        for part, group in zip(self.parts, self._roots):
            if "var" not in group:
                continue
            panel = GenePanel.of_var(pd.DataFrame(read_elem(group["var"])), origin=str(part.path))
            if panel is not None:
                found = panel if found is None else found.union(panel)
        return found


def _provenance(group: Any, key: str) -> Any:
    """``uns['mmgene'][key]`` of an AnnData file opened as a group (``{}`` when absent), read alone: the
    file's obs, which :func:`mmgene.io.read` would load, can hold millions of cells."""
    from anndata.io import read_elem

    records = group["uns"]["mmgene"] if "uns" in group and "mmgene" in group["uns"] else None
    return read_elem(records[key]) if records is not None and key in records else {}


def _check_dense(array: Any, key: str, path: Path) -> None:
    """Refuse ``obsm[key]`` unless it is a dense, non-empty 2-D array (a sparse matrix or a data frame is
    stored as a group of arrays, which has no rows to read one at a time)."""
    fix = "store the embedding as a dense (cells, dim) array"
    if not hasattr(array, "shape"):
        kind = array.attrs.get("encoding-type", "group")
        raise InputFileError(f"obsm[{key!r}] is a {kind} stored as a group, not a dense 2-D array", str(path), fix)
    if len(array.shape) != 2 or array.shape[0] == 0:
        raise InputFileError(f"obsm[{key!r}] is not a non-empty 2-D array (shape {array.shape})", str(path), fix)


def _open_group(path: Path) -> Any:
    """The root group of an ``.h5ad`` (h5py) or ``.zarr`` (zarr) AnnData, opened read-only."""
    if not path.exists():
        raise InputFileError(f"file not found: {path}", str(path), "check the path of the AnnData file")
    try:
        if path.is_dir():
            import zarr

            return zarr.open(str(path), mode="r")
        import h5py

        return h5py.File(path, "r")
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"not an AnnData file ({cause(exc)})", str(path), "pass an .h5ad file or a .zarr store") from exc


# ---------------------------------------------------------------------- reopening a recorded source
#: how to search a folder without its re-ranking files, on the command line and in Python
NO_RERANK = "`mmgene query --no-rerank` (or `mmgene transfer --no-rerank`); CellIndex.load(path, rerank=False) in Python"


def open_recorded(record: dict[str, Any], where: str) -> VectorSource:
    """Reopen the source :meth:`VectorSource.record` described, refusing files that changed.

    A missing file is an :class:`~mmgene.errors.InputFileError`; a file with other rows, dimension or
    fingerprint an :class:`~mmgene.errors.IntegrityError` (re-ranking from it would mislabel hits).
    """
    paths = [Path(f["path"]) for f in record["files"]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputFileError(
            f"the vectors used for exact re-ranking are missing: {missing[0]}", where,
            f"restore the files, or search with the index's compressed codes only: {NO_RERANK}",
        )
    source: VectorSource = NpyShards(paths) if record["format"] == "npy" else AnnDataObsm(paths, record["key"])
    if source.dim != record["dim"]:
        raise IntegrityError(f"the re-ranking vectors have dimension {source.dim}, the index records {record['dim']}", where, "rebuild the index")
    for i, (part, rec) in enumerate(zip(source.parts, record["files"])):
        if part.rows != rec["rows"] or source.fingerprint(i) != rec["fingerprint"]:
            raise IntegrityError(
                f"the re-ranking vectors in {part.path} changed since the index was built ({part.rows:,} rows, "
                f"recorded {rec['rows']:,}, or other values)", where,
                f"rebuild the index from the current files, or search with its compressed codes only: {NO_RERANK}",
            )
    return source
