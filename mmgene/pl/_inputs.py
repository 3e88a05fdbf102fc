"""What the plots read from an AnnData: an embedding's coordinates, and labels given as an obs key or as values."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import ParameterError
from mmgene.text.labels import missing_labels


def check_anndata(adata: Any) -> None:
    """Refuse what is no AnnData with cells: a plot draws the cells of one in memory."""
    if not all(hasattr(adata, name) for name in ("obs", "obsm", "n_obs")):
        raise ParameterError(
            f"expected an AnnData, got {type(adata).__name__}", "argument adata",
            "read the file first, e.g. adata = mmgene.io.read(path)" if isinstance(adata, (str, os.PathLike)) else "pass an AnnData",
        )
    if adata.n_obs == 0:
        raise ParameterError("the AnnData has no cells to draw", "argument adata", "pass an AnnData with cells")


def basis_key(adata: Any, basis: str) -> str:
    """The obsm key holding ``basis`` (``'umap'`` finds ``obsm['X_umap']``, as in scanpy), checked to be 2-D."""
    check_anndata(adata)
    if not isinstance(basis, str) or not basis:
        raise ParameterError(f"basis must be an obsm key such as 'umap', got {basis!r}", "argument basis", "pass e.g. basis='umap'")
    key = next((k for k in (basis, f"X_{basis}") if k in adata.obsm), None)
    if key is None:
        found = ", ".join(repr(k) for k in adata.obsm.keys()) or "none"
        raise ParameterError(
            f"no embedding {basis!r} in obsm (obsm keys: {found})", "argument basis",
            "pass one of those keys, or compute a UMAP first, e.g. sc.pp.neighbors(adata, use_rep='X_mmgene'); sc.tl.umap(adata)",
        )
    stored = adata.obsm[key]
    coords = np.asarray(stored)
    if coords.ndim != 2 or coords.dtype.kind not in "biuf" or coords.shape[1] < 2 or not np.isfinite(coords[:, :2]).all():
        shape, dtype = getattr(stored, "shape", coords.shape), getattr(stored, "dtype", coords.dtype)
        got = f"{type(stored).__name__} of shape {shape}, dtype {dtype}"
        raise ParameterError(
            f"obsm[{key!r}] must be a dense array of finite numbers with at least 2 columns, got {got}", f"obsm[{key!r}]",
            "pass the key of a 2-D embedding such as a UMAP",
        )
    return key


def label_values(adata: Any, labels: str | Sequence[Any] | np.ndarray | pd.Series, name: str) -> np.ndarray:
    """Labels of every cell as strings: ``obs[labels]`` for a column name, else one value per cell in obs order
    (a Series indexed by cell ids is aligned to obs by id). A missing label (None, NaN, empty or blank) is refused."""
    check_anndata(adata)
    if isinstance(labels, str):
        from mmgene.io import obs_column

        values = obs_column(adata, labels)
        where = f"obs[{labels!r}]"
    else:
        values = _by_cell(adata, labels, name) if isinstance(labels, pd.Series) else np.asarray(labels, dtype=object)
        where = f"argument {name}"
        if values.ndim != 1 or len(values) != adata.n_obs:
            raise ParameterError(
                f"{name} has shape {values.shape} for {adata.n_obs} cells", where, "pass an obs column name or one label per cell, in obs order"
            )
    missing = missing_labels(np.asarray(values, dtype=object))
    if missing.any():
        raise ParameterError(
            f"{int(missing.sum())} cells have no label, first at cell {str(adata.obs_names[np.flatnonzero(missing)[0]])!r}", where,
            "fill the missing labels (e.g. 'unknown') or plot the labelled cells only",
        )
    return np.asarray([str(v) for v in values], dtype=object)


def _by_cell(adata: Any, labels: pd.Series, name: str) -> np.ndarray:
    """A Series' values in obs order: by position when its index is the default 0..n-1, else by cell id;
    an index that is neither is refused rather than read in the wrong order."""
    index, names = pd.Index([str(i) for i in labels.index]), pd.Index([str(c) for c in adata.obs_names])
    positional = isinstance(labels.index, pd.RangeIndex) and labels.index.equals(pd.RangeIndex(len(labels)))
    if positional or index.equals(names):
        return labels.to_numpy()
    if index.is_unique and names.is_unique and len(index) == len(names) and index.isin(names).all():
        return labels.to_numpy()[index.get_indexer(names)]
    absent = index[~index.isin(names)]
    example = f" ({absent[0]!r} is not one of them)" if len(absent) else ""
    raise ParameterError(
        f"{name} is a Series whose index does not match the AnnData's {len(names)} cell ids{example}", f"argument {name}",
        "pass a Series indexed by adata.obs_names (it is aligned by id), or a list or array in obs order",
    )


def class_order(true: np.ndarray, predicted: np.ndarray) -> tuple[list[str], list[str]]:
    """``(rows, columns)``: the true classes sorted, then the same followed by classes only predicted (such as 'unknown')."""
    rows = sorted(set(true))
    return rows, rows + sorted(set(predicted) - set(rows))


def single_text(text: Any) -> str:
    """One non-empty text query."""
    if not isinstance(text, str) or not text.strip():
        raise ParameterError(f"the query must be one non-empty text, got {text!r}", "argument text", "pass e.g. 'cytotoxic T cells'")
    return text


def light_anndata(adata: Any, key: str, obs: Mapping[str, Any]) -> tuple[Any, str]:
    """A new AnnData with ``adata``'s cells, its ``obsm[key]`` and the given obs columns only (``adata`` is
    left as it is), and the basis name to give scanpy (``'umap'`` for ``'X_umap'``, so axes read UMAP1, UMAP2)."""
    import anndata as ad

    frame = pd.DataFrame(dict(obs), index=pd.Index(list(map(str, adata.obs_names))))
    light = ad.AnnData(obs=frame, obsm={key: np.asarray(adata.obsm[key])})
    return light, key[2:] if key.startswith("X_") and len(key) > 2 else key
