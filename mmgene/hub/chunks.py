"""Write an AnnData as chunk files (.h5ad or zipped .zarr), each with its sha256.

Chunks are consecutive slices of the cells in their original order and keep every part of the
AnnData (X, raw, layers, obs, var, obsm, uns), so each chunk is a complete AnnData a user can open
on its own. All chunks share one gene vocabulary (the full ``var``); its fingerprint is recorded per
chunk and checked. Backed AnnData is read one chunk at a time.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmgene.atomic import atomic_path
from mmgene.copies import copy_in_memory
from mmgene.errors import DataError, InputFileError, ParameterError, cause, is_whole_number
from mmgene.progress import progress

FORMATS = ("h5ad", "zarr")
#: fixed timestamp for zip entries, so the same chunk gives the same bytes
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ChunkFile:
    """One chunk file: which cells it holds (``start:stop``), its checksum and gene fingerprint."""

    index: int
    name: str
    path: Path
    start: int
    stop: int
    sha256: str
    size: int
    format: str
    var_sha256: str

    @property
    def n_obs(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("path")
        out["n_obs"] = self.n_obs
        return out


def sha256_file(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def var_fingerprint(var_names: Any) -> str:
    """sha256 over the gene names in order: equal fingerprints mean an identical gene vocabulary."""
    return hashlib.sha256("\n".join(map(str, var_names)).encode()).hexdigest()


def _zip_folder(folder: Path, target: Path) -> None:
    """Store ``folder`` in a zip (no compression, sorted entries, fixed times) so bytes are reproducible."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())


def _write_one(chunk: Any, target: Path, fmt: str) -> None:
    import warnings

    with atomic_path(target) as tmp:
        if fmt == "h5ad":
            chunk.write_h5ad(tmp)
        else:
            store = tmp.with_name(tmp.name + ".d")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                chunk.write_zarr(store)
            _zip_folder(store, tmp)


def _drop_timestamps(chunk: Any) -> None:
    """Remove the ``created`` times from ``uns['mmgene']`` so the same cells give the same bytes.

    Re-publishing then produces identical files, which share backends recognise and skip.
    """
    prov = chunk.uns.get("mmgene")
    if isinstance(prov, dict):
        chunk.uns["mmgene"] = {k: ({kk: vv for kk, vv in v.items() if kk != "created"} if isinstance(v, dict) else v)
                               for k, v in prov.items()}


#: hex digits of a chunk's sha256 in its file name
NAME_DIGEST = 16


def chunk_name(index: int, fmt: str, prefix: str = "chunk", sha256: str = "") -> str:
    """``chunk-00000-<sha256 prefix>.h5ad``: the content is in the name, so publishing changed cells
    to the same share folder adds files instead of replacing ones an earlier dataset links to."""
    tag = f"-{sha256[:NAME_DIGEST]}" if sha256 else ""
    return f"{prefix}-{index:05d}{tag}." + ("h5ad" if fmt == "h5ad" else "zarr.zip")


def write_chunks(
    adata: Any,
    out_dir: str | os.PathLike[str],
    chunk_size: int = 10_000,
    format: str = "h5ad",
    prefix: str = "chunk",
) -> list[ChunkFile]:
    """Write ``adata`` as files of at most ``chunk_size`` cells into ``out_dir``.

    Parameters
    ----------
    adata
        In-memory or backed AnnData.
    out_dir
        Folder for the files (``chunk-00000-<sha256 prefix>.h5ad``, ... or ``....zarr.zip``); the same
        cells give the same bytes and so the same names.
    chunk_size
        Cells per file.
    format
        ``'h5ad'`` or ``'zarr'`` (a zarr store zipped into one file; open with :func:`read_chunk`).

    Returns
    -------
    One :class:`ChunkFile` per file, in cell order, with its sha256.
    """
    if format not in FORMATS:
        raise ParameterError(f"unknown chunk format {format!r}", "format", f"use one of {', '.join(FORMATS)}")
    if not is_whole_number(chunk_size, 1):
        raise ParameterError(f"chunk_size must be a whole number of cells >= 1, got {chunk_size!r}", "chunk_size",
                             "pass a positive number")
    n = adata.n_obs
    if n == 0:
        raise DataError("the AnnData has no cells", "adata", "publish an AnnData with at least one cell")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = var_fingerprint(adata.var_names)
    starts = range(0, n, chunk_size)
    files: list[ChunkFile] = []
    for index, start in enumerate(progress(starts, total=len(starts), desc="chunks", unit="file")):
        stop = min(start + chunk_size, n)
        view = adata[start:stop]
        chunk = copy_in_memory(view)
        _drop_timestamps(chunk)
        if var_fingerprint(chunk.var_names) != fingerprint:  # pragma: no cover - slicing keeps var
            raise DataError("a chunk has a different gene vocabulary", f"cells {start}:{stop}", "report this as a bug")
        written = out / chunk_name(index, format, prefix)
        _write_one(chunk, written, format)
        digest = sha256_file(written)
        target = written.rename(out / chunk_name(index, format, prefix, digest))
        files.append(ChunkFile(index, target.name, target, start, stop, digest, target.stat().st_size, format, fingerprint))
    return files


def read_chunk(path: str | os.PathLike[str]) -> Any:
    """Open a chunk file written by :func:`write_chunks` (.h5ad or .zarr.zip, told apart by content) in memory."""
    import anndata as ad

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"PK\x03\x04":  # a zipped zarr store (links may hide the file name)
            from zarr.storage import ZipStore

            store = ZipStore(path, mode="r")
            try:
                return ad.read_zarr(store)
            finally:
                store.close()
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputFileError(
            f"cannot open the chunk file ({cause(exc)})",
            str(path),
            "delete it and download it again (mmgene.hub.fetch verifies the sha256)",
        ) from exc
