"""A short description of an AnnData: what ``mmgene info`` prints."""

from __future__ import annotations

from typing import Any

import pandas as pd

#: a label column has at least 2 and at most this many distinct values.
MAX_LABELS = 500


def label_columns(obs: pd.DataFrame) -> dict[str, int]:
    """obs columns that look like labels (categorical or text, few distinct values) -> #values."""
    out: dict[str, int] = {}
    n = len(obs)
    for name in obs.columns:
        col = obs[name]
        if not (isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col)):
            continue
        k = int(col.nunique(dropna=True))
        if 2 <= k <= min(MAX_LABELS, max(2, n // 2)):
            out[str(name)] = k
    return out


def describe(adata: Any) -> dict[str, Any]:
    """Cells, genes, the matrix used, gene id types and mapping, label-like obs columns, obsm keys.

    ``adata`` should come from :func:`mmgene.io.read` (which fills ``uns['mmgene']['input']``).
    """
    info = dict(adata.uns.get("mmgene", {}).get("input", {}))
    info.pop("versions", None)
    info.pop("created", None)
    info["label_columns"] = label_columns(adata.obs)
    info["obsm"] = {k: list(map(int, v.shape[1:])) for k, v in adata.obsm.items()}
    info["layers"] = list(adata.layers.keys())
    info["has_raw"] = adata.raw is not None
    return info
