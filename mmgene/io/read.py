"""Read an AnnData from .h5ad, .zarr, Cell Ranger output or .loom; find its expression matrix and gene identifiers."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmgene.errors import InputFileError, MissingColumnError, MMGeneError, ParameterError, cause
from mmgene.genes.ids import LOOKED_UP, resolve_gene_ids, settle_repeats, split_joined
from mmgene.io.expression import Kind, expression
from mmgene.io.tenx import check_h5_matrix, is_mtx_folder, read_mtx_folder
from mmgene.lazy import require as require_package
from mmgene.provenance import check_record_slot, input_file, record


def _load(path: Path, backed: bool) -> Any:
    import anndata as ad

    _check_openable(path)
    suffix = path.suffix.lower()
    if is_foreign(path):
        return _load_foreign(path, backed)
    try:
        if suffix == ".zarr" or (path.is_dir() and (path / ".zattrs").exists() or (path / "zarr.json").exists()):
            from mmgene.io.lazy_zarr import check_chunks, read_zarr_lazy

            check_chunks(path)  # zarr reads a lost chunk file as zeros
            if backed:  # matrices stay on disk, as a backed .h5ad's X does
                return read_zarr_lazy(path)
            return ad.read_zarr(path)
        if suffix in (".h5ad", ".h5", ".hdf5") or path.is_file():
            adata = ad.read_h5ad(path, backed="r" if backed else None)
            if backed:  # anndata opens a backed X only when it is used: a missing or unknown one fails here, not mid-command
                if "X" not in adata.file:  # no matrix to leave on disk (anndata's backed mode needs X)
                    adata.file.close()
                    return ad.read_h5ad(path)
                adata.X  # noqa: B018
            return adata
    except (MMGeneError, MemoryError):
        raise
    except Exception as exc:  # anything a library raises on a damaged file (AttributeError: a group where obsm needs an array; anndata's IORegistryError: an unknown encoding)
        readable = "pass an .h5ad, a .zarr store, a Cell Ranger .h5 or matrix folder, or a .loom file"
        named = suffix in (".h5ad", ".zarr")  # named as one: more likely damaged than of another kind
        raise InputFileError(
            f"not an AnnData file ({cause(exc)})",
            str(path),
            f"if it was written as one, it is damaged or incomplete: copy it again from its source ({readable})" if named else readable,
        ) from exc
    raise InputFileError(
        f"cannot read a folder that is neither a .zarr store nor a Cell Ranger matrix folder: {path}", str(path),
        "pass an .h5ad file, a .zarr folder, or a folder with matrix.mtx(.gz), features.tsv(.gz) and barcodes.tsv(.gz)",
    )


def _check_openable(path: Path) -> None:
    """Refuse a path that is missing, that its user may not read, or that is gzip-compressed, with what
    to do about it (the readers would call any of them "not an AnnData file")."""
    if not path.exists():
        raise InputFileError(
            f"file not found: {path}", str(path), "check the path (relative paths start from the current folder)"
        )
    if not os.access(path, os.R_OK):
        raise InputFileError(
            "permission denied: this user may not read it", str(path),
            "make it readable (chmod u+r) or copy it somewhere readable",
        )
    if path.is_file() and path.suffix.lower() == ".gz":
        raise InputFileError(
            "the file is gzip-compressed; mmgene reads .h5ad, .h5 and .loom files unpacked", str(path),
            f"unpack it first (gunzip -k {path.name}); a Cell Ranger folder's .gz files are read as they are",
        )


def is_foreign(path: Path) -> bool:
    """A Cell Ranger .h5 or matrix folder, or a .loom file: mmgene reads it, but writes AnnData, so such
    a file is never replaced by a result (``--in-place``)."""
    return _is_10x(path) or path.suffix.lower() == ".loom"


def _is_10x(path: Path) -> bool:
    """A Cell Ranger output: a ``filtered_feature_bc_matrix``-style folder, or an HDF5 file with a
    ``matrix`` group (Cell Ranger 3+; one that lacks a dataset is then refused as an incomplete Cell
    Ranger file) or a genome group holding ``barcodes`` (Cell Ranger 2)."""
    if path.is_dir():
        return is_mtx_folder(path)
    if path.suffix.lower() != ".h5":
        return False
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if isinstance(handle.get("matrix"), h5py.Group):
                return True
            return any(isinstance(group, h5py.Group) and "barcodes" in group for group in handle.values())
    except OSError:
        return False


def _load_foreign(path: Path, backed: bool) -> Any:
    """A Cell Ranger .h5 (scanpy's reader) or matrix folder (:mod:`mmgene.io.tenx`, each file gzipped or
    not), gene expression only, or a .loom file (anndata's reader) as an AnnData with counts in X; gene
    symbols are the var names."""
    import scanpy as sc

    if backed:
        raise InputFileError(
            "a Cell Ranger or .loom file cannot be opened backed", str(path), "convert it to .h5ad first (mmgene.io.read(...).write_h5ad)"
        )
    try:
        if path.suffix.lower() == ".loom":
            require_package("loompy", "reading .loom files")
            import anndata as ad

            adata = ad.read_loom(path, sparse=True)  # loompy's attribute names: Gene, CellID
            for frame, column in ((adata.var, "var_names"), (adata.obs, "obs_names")):  # anndata's write_loom
                if column in frame.columns:
                    frame.index = frame.pop(column).astype(str).to_numpy()
        elif path.is_dir():
            adata = read_mtx_folder(path)
        else:
            check_h5_matrix(path)  # scanpy slices the matrix before anything checks it
            adata = sc.read_10x_h5(path, gex_only=True)
    except (MMGeneError, MemoryError):
        raise
    except Exception as exc:  # EOFError: a truncated .gz; scanpy raises a bare Exception for a .h5 missing a dataset
        raise InputFileError(f"not a readable Cell Ranger or .loom file ({cause(exc)})", str(path), "check that the file is complete") from exc
    adata.var_names_make_unique()
    if "gene_ids" in adata.var.columns and "ensembl_id" not in adata.var.columns:
        adata.var["ensembl_id"] = adata.var["gene_ids"].astype(str)
    return adata


def read(
    path_or_adata: str | os.PathLike[str] | Any,
    backed: bool = False,
    *,
    require: Kind | None = None,
    expression_needed: bool = True,
) -> Any:
    """Read an AnnData and record what mmgene will use from it.

    Parameters
    ----------
    path_or_adata
        An ``.h5ad`` file, a ``.zarr`` store, Cell Ranger output (a ``.h5`` file or a
        ``filtered_feature_bc_matrix/`` folder, its files gzipped or not; gene expression features only),
        a ``.loom`` file (``pip install "mmgene[io]"``), or an AnnData already in memory.
    backed
        Open an ``.h5ad`` read-only on disk, or a ``.zarr`` with its sparse matrices left on disk
        (:mod:`mmgene.io.lazy_zarr`), for files larger than memory; rows are then streamed.
    require
        ``'counts'`` to insist on raw integer counts (Geneformer), ``None`` to accept log1p data.
    expression_needed
        ``False`` when only ``obs``/``obsm`` will be used (e.g. to index an embedding): the matrix and
        gene ids are then not looked at, and a file without them reads fine.

    A matrix in memory is checked whole (index arrays, then every value); a bad value anywhere raises
    the error naming its cell. A backed matrix is checked chunk by chunk as it is used
    (:meth:`mmgene.io.Expression.validate` checks it whole).

    Returns
    -------
    The AnnData. ``var['gene_symbol']`` and ``var['ensembl_id']`` of the expression matrix's gene table
    are filled where missing (a name joining a symbol and an Ensembl id, ``PTPRC_ENSG00000081237``,
    counts as both: :func:`mmgene.genes.ids.split_joined`; a symbol several genes carry goes to the one GENCODE
    names so: :func:`mmgene.genes.ids.settle_repeats`), and ``uns['mmgene']['input']`` records the file, the matrix used
    (``X``, ``layers['counts']`` or ``raw.X``), what it holds, and how many genes mapped.
    """
    if isinstance(path_or_adata, (str, os.PathLike)):
        path = Path(path_or_adata)
        with warnings.catch_warnings():  # repeated names: mmgene's own error names them where they matter
            warnings.filterwarnings("ignore", r"(Observation|Variable) names are not unique", UserWarning)
            adata = _load(path, backed)
        origin = str(path)
        check_record_slot(adata, origin)
    else:
        adata = path_or_adata
        if not hasattr(adata, "obs") or not hasattr(adata, "var"):
            raise InputFileError(
                f"expected an AnnData or a path, got {type(adata).__name__}", "argument path_or_adata", "pass an AnnData or an .h5ad/.zarr path"
            )
        check_record_slot(adata, "the AnnData in memory")
        origin = input_file(adata, "the AnnData in memory")
    # an .h5ad without X is read whole even when asked for backed (anndata's backed mode needs X)
    is_backed = bool(backed and (origin.endswith(".zarr") or (origin.endswith((".h5ad", ".h5", ".hdf5")) and getattr(adata, "isbacked", False))))
    if not expression_needed:
        record(adata, "input", file=origin, backed=is_backed, matrix="not read", n_obs=int(adata.n_obs))
        return adata
    view = expression(adata, require=require, origin=origin)
    if view.in_memory:  # every row now, in one vectorised pass; a backed file is checked as it is read
        view.validate()
    ids = resolve_gene_ids(view.var, source=f"{origin} ({view.source})")
    if "gene_symbol" not in view.var.columns:
        view.var["gene_symbol"] = ids.symbols
    else:  # a name joining a symbol and an Ensembl id reads as the symbol; a repeated one goes to its gene
        split, joined_ids = split_joined(view.var["gene_symbol"])
        data_ids = ids.ensembl if ids.ensembl_source != LOOKED_UP else joined_ids  # never ids looked up by these symbols
        settled, n_settled = settle_repeats(split, data_ids)
        if (joined_ids != "").any() or n_settled:
            view.var["gene_symbol"] = settled
    if "ensembl_id" not in view.var.columns:
        view.var["ensembl_id"] = ids.ensembl
    record(
        adata,
        "input",
        file=origin,
        backed=is_backed,
        matrix=view.source,
        kind=view.kind,
        n_obs=int(adata.n_obs),
        n_vars=int(view.shape[1]),
        **ids.summary(),
    )
    return adata


def check_unique_cells(ids: Sequence[str] | pd.Index, where: str) -> None:
    """Refuse cell ids that repeat: an output that names cells by them (an index, a published dataset)
    could not tell two such cells apart."""
    index = pd.Index(ids)
    if not index.is_unique:
        repeated = index[index.duplicated()][0]
        raise ParameterError(
            f"cell ids are not unique (e.g. {repeated!r})", where, "make them unique first (AnnData.obs_names_make_unique())"
        )


def obs_column(adata: Any, column: str) -> Any:
    """``adata.obs[column]``, or a :class:`MissingColumnError` listing the columns that exist."""
    if column not in adata.obs.columns:
        origin = input_file(adata, "")
        raise MissingColumnError(column, "obs", list(adata.obs.columns), origin)
    return adata.obs[column]
