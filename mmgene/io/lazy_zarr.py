"""Open a ``.zarr`` AnnData without loading its matrices: the zarr counterpart of a backed ``.h5ad``.

anndata's ``read_zarr`` reads everything into memory, and its backed mode is for ``.h5ad`` only. Here
``X``, ``.raw.X`` and the layers stay on disk when they are sparse (anndata's ``sparse_dataset``
reads only the rows sliced); ``obs``, ``var``, ``obsm`` and ``uns`` are read (they are cell- or
gene-sized). ``adata[a:b].copy()`` then reads rows ``a:b`` only, which is what streamed training does.

:func:`check_chunks` refuses a store whose expression matrices lack chunk files: zarr reads a missing
chunk as the array's fill value (0) without a word, so a store copied in part would give wrong counts.
zarr does not write a chunk whose values all equal the fill value (``write_empty_chunks`` is False by
default, and anndata keeps that default), so an absent chunk is not always damage:

- a sparse matrix's ``indptr`` legitimately lacks its leading chunks when the first cells hold no
  entry: absent chunks there are accepted (a lost one cannot be told from them), any other absent
  chunk is refused (found by reading ``indptr``, only when one of its chunks is absent);
- its ``indices`` and ``data`` are refused with any chunk absent: a legitimate one would need a whole
  chunk (tens of thousands of entries at zarr's default chunking) stored in the first gene, or stored
  as explicit zeros;
- a dense matrix is not checked: an absent chunk there is as likely a block of zeros never written
  as a lost file, and nothing in the store tells the two apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.errors import InputFileError

SPARSE = ("csr_matrix", "csc_matrix")


def read_zarr_lazy(path: Path) -> Any:
    """The AnnData of the ``.zarr`` store ``path`` with sparse matrices left on disk (see the module docstring)."""
    import anndata as ad
    import zarr
    from anndata.io import read_elem, sparse_dataset

    group = zarr.open(str(path), mode="r")

    def matrix(node: Any) -> Any:
        sparse = dict(node.attrs).get("encoding-type") in SPARSE
        return sparse_dataset(node) if sparse else read_elem(node)

    def elem(name: str) -> Any:
        return read_elem(group[name]) if name in group else None

    obs, var = elem("obs"), elem("var")
    layers = {k: matrix(group["layers"][k]) for k in group["layers"].keys()} if "layers" in group else None
    adata = ad.AnnData(
        X=matrix(group["X"]) if "X" in group else None, obs=obs, var=var, uns=elem("uns") or {}, obsm=elem("obsm"), layers=layers,
    )
    if "raw" in group and "X" in group["raw"]:
        adata.raw = ad.AnnData(X=matrix(group["raw"]["X"]), var=read_elem(group["raw"]["var"]), obs=obs)
    return adata


def _sparse_matrices(group: Any) -> Iterator[tuple[str, Any]]:
    """(name, group) of each sparse matrix that may hold expression: ``X``, ``raw/X`` and the layers."""
    import zarr

    names = ["X", "raw/X"] + (["layers/" + k for k in group["layers"].keys()] if "layers" in group else [])
    for name in names:
        node = group.get(name)
        if isinstance(node, zarr.Group) and dict(node.attrs).get("encoding-type") in SPARSE:
            yield name, node


def _absent(array: Any) -> int:
    """How many chunks of ``array`` have no object in the store (one listing of its keys)."""
    return int(array.nchunks) - int(array.nchunks_initialized)


def _zero_indptr_chunks(indptr: Any, n_entries: int) -> int:
    """How many chunks of ``indptr`` may hold only zeros, so may be absent from an intact store: the
    leading ones before the first stored entry (its last value is ``n_entries`` whatever is read)."""
    values = np.asarray(indptr[...])
    if not n_entries:
        return int(indptr.nchunks)
    values[-1] = n_entries
    return int(np.argmax(values > 0)) // int(indptr.chunks[0])


def _refuse(path: Path, name: str, array: str, absent: int, total: int, least: bool = False) -> None:
    count = f"{'at least ' if least else ''}{absent:,} of the {total:,} chunks"
    raise InputFileError(
        f"{count} of {name}/{array} are missing from the .zarr store (zarr would read them as zeros, so the counts would be wrong)",
        f"{path}/{name}/{array}",
        "the store is incomplete: copy it again from its source",
    )


def check_chunks(path: Path) -> None:
    """Raise :class:`InputFileError` when a sparse expression matrix of the ``.zarr`` store ``path`` lacks
    chunk files that an intact store has (see the module docstring). Lists chunk keys; reads ``indptr``
    only when one of its chunks is absent."""
    import zarr

    group = zarr.open(str(path), mode="r")
    if not isinstance(group, zarr.Group):
        return  # not an AnnData store: the reader says so
    for name, node in _sparse_matrices(group):
        for array in ("data", "indices"):
            absent = _absent(node[array]) if array in node else 0
            if absent:
                _refuse(path, name, array, absent, node[array].nchunks)
        if "indptr" in node and "data" in node:
            indptr = node["indptr"]
            absent = _absent(indptr)
            lost = absent - _zero_indptr_chunks(indptr, int(node["data"].shape[0])) if absent else 0
            if lost > 0:
                _refuse(path, name, "indptr", lost, indptr.nchunks, least=True)
