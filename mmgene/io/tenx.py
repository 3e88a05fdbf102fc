"""Read a Cell Ranger matrix folder (``matrix.mtx``, ``features.tsv`` or ``genes.tsv``, ``barcodes.tsv``),
each file gzipped or not.

scanpy 1.11's ``read_10x_mtx`` reads a Cell Ranger 3 folder only when all three files are gzipped and a
Cell Ranger 2 folder only when none is, so a folder someone unpacked (``gunzip *.gz``) is refused. This
reads every layout the same way, with scanpy's own ``read_mtx`` (scipy's Matrix Market reader, which
opens ``.gz`` itself) and pandas for the two tables, and builds the AnnData exactly as
``read_10x_mtx(path, var_names="gene_symbols", gex_only=True)`` does: cells x genes, float32, symbols
as ``var_names`` (made unique), Ensembl ids in ``var['gene_ids']``, ``var['feature_types']`` for a
Cell Ranger 3 folder, which keeps its ``Gene Expression`` features only.

:func:`check_h5_matrix` checks a Cell Ranger ``.h5`` before scanpy's ``read_10x_h5`` reads it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from mmgene.errors import InputFileError

#: the three files of a matrix folder; the first name found is used (features.tsv is Cell Ranger 3's genes.tsv)
_PARTS = {"matrix": ("matrix.mtx",), "features": ("features.tsv", "genes.tsv"), "barcodes": ("barcodes.tsv",)}


def is_mtx_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``matrix.mtx`` or ``matrix.mtx.gz``."""
    return path.is_dir() and any((path / name).is_file() for name in ("matrix.mtx", "matrix.mtx.gz"))


def _part(folder: Path, part: str) -> Path:
    """The one file of ``folder`` holding ``part``, plain or gzipped; refuses a folder with none or two."""
    candidates = [folder / f"{name}{gz}" for name in _PARTS[part] for gz in ("", ".gz")]
    found = [path for path in candidates if path.is_file()]
    names = " or ".join(f"{name}(.gz)" for name in _PARTS[part])
    if not found:
        raise InputFileError(
            f"the Cell Ranger matrix folder has no {names}", str(folder),
            f"add {names} (Cell Ranger writes it beside matrix.mtx)",
        )
    if len(found) > 1:
        raise InputFileError(
            f"the Cell Ranger matrix folder holds both {found[0].name} and {found[1].name}; "
            "mmgene cannot tell which to read",
            str(folder), "keep one of them (a gzipped copy and its unpacked file hold the same table)",
        )
    return found[0]


def check_h5_matrix(path: Path) -> None:
    """Check the index arrays of a Cell Ranger 3+ ``.h5`` before scanpy reads it: scanpy builds the
    matrix without checking its indices and slices out the gene expression features in compiled code,
    where an index out of range reads outside an array (garbage values, or a crash). A file that lacks
    an array, or whose barcodes or features disagree with its shape, is left to scanpy, which refuses it
    before slicing."""
    import h5py
    import numpy as np

    from mmgene.io.structure import check_indptr, check_on_disk_indices

    with h5py.File(path, "r") as handle:
        group = handle.get("matrix")
        features = group.get("features") if isinstance(group, h5py.Group) else None
        arrays = ("data", "indices", "indptr", "shape", "barcodes")
        if not isinstance(features, h5py.Group) or "name" not in features or any(a not in group for a in arrays):
            return
        n_genes, n_cells = (int(n) for n in group["shape"][:2])
        if len(group["barcodes"]) != n_cells or len(features["name"]) != n_genes:
            return
        view = SimpleNamespace(
            origin=str(path), source="matrix", obs_names=pd.Index(group["barcodes"][...].astype(str)),
            var_names=pd.Index(features["name"][...].astype(str)),
        )  # stored genes x cells by column: cells x genes by row (CSR)
        indptr = np.asarray(group["indptr"][...])
        check_indptr(indptr, group["indices"].shape[0], group["data"].shape[0], view, "csr")
        check_on_disk_indices(group["indices"], indptr, view, "csr")


def _table(path: Path) -> pd.DataFrame:
    """A headerless tab-separated table, every field a string as written (no ``NA`` -> NaN, no quoting)."""
    return pd.read_csv(
        path, sep="\t", header=None, dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
    )


def read_mtx_folder(folder: Path) -> Any:
    """A Cell Ranger 2 or 3 matrix folder, each file gzipped or not, as scanpy's ``read_10x_mtx`` reads it.

    A table whose length does not match the matrix is an :class:`InputFileError` naming both files;
    a file scanpy or pandas cannot parse raises the library's error (:func:`mmgene.io.read` turns it
    into an :class:`InputFileError`).
    """
    import anndata as ad
    import scanpy as sc

    matrix_file, features_file, barcodes_file = (_part(folder, part) for part in ("matrix", "features", "barcodes"))
    adata = sc.read_mtx(matrix_file).T  # Matrix Market holds genes x cells
    genes, barcodes = _table(features_file), _table(barcodes_file)
    tables = ((genes, features_file, "genes", adata.n_vars), (barcodes, barcodes_file, "cells", adata.n_obs))
    for table, file, axis, n in tables:
        if len(table) != n:
            raise InputFileError(
                f"not a readable Cell Ranger matrix folder: {file.name} has {len(table)} rows "
                f"but {matrix_file.name} has {n} {axis}",
                str(folder), "check that the three files come from the same Cell Ranger run and are complete",
            )
    if genes.shape[1] < 2:
        raise InputFileError(
            f"not a readable Cell Ranger matrix folder: {features_file.name} has {genes.shape[1]} column, "
            "not a gene id and a symbol",
            str(features_file), "pass the file Cell Ranger wrote (gene id, gene symbol[, feature type] per line)",
        )
    adata.var_names = ad.utils.make_index_unique(pd.Index(genes[1].to_numpy()))
    adata.var["gene_ids"] = genes[0].to_numpy()
    adata.obs_names = barcodes[0].to_numpy()
    if features_file.name.startswith("genes.tsv") or genes.shape[1] < 3:  # Cell Ranger 2: gene expression only
        return adata
    adata.var["feature_types"] = genes[2].to_numpy()
    return adata[:, (adata.var["feature_types"] == "Gene Expression").to_numpy()].copy()
