"""Open a ``.zarr`` AnnData without loading its matrices: the zarr counterpart of a backed ``.h5ad``.

anndata's ``read_zarr`` reads everything into memory, and its backed mode is for ``.h5ad`` only. Here
``X``, ``.raw.X`` and the layers stay on disk when they are sparse (anndata's ``sparse_dataset``
reads only the rows sliced); ``obs``, ``var``, ``obsm`` and ``uns`` are read (they are cell- or
gene-sized). ``adata[a:b].copy()`` then reads rows ``a:b`` only, which is what streamed training does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_zarr_lazy(path: Path) -> Any:
    """The AnnData of the ``.zarr`` store ``path`` with sparse matrices left on disk (see the module docstring)."""
    import anndata as ad
    import zarr
    from anndata.io import read_elem, sparse_dataset

    group = zarr.open(str(path), mode="r")

    def matrix(node: Any) -> Any:
        sparse = dict(node.attrs).get("encoding-type") in ("csr_matrix", "csc_matrix")
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
