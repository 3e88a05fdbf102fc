"""A short description of an AnnData: what ``mmgene info`` prints."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mmgene.io.labels import MIN_CLASSES
from mmgene.provenance import record_of
from mmgene.text.labels import label_text, missing_labels

#: a label column has at least 2 and at most this many distinct values.
MAX_LABELS = 500


def _is_text(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col)


def label_columns(obs: pd.DataFrame) -> dict[str, int]:
    """obs columns that look like labels (categorical or text, few distinct values) -> #classes
    (missing labels, see :mod:`mmgene.io.labels`, are not a class)."""
    out: dict[str, int] = {}
    n = len(obs)
    for name in obs.columns:
        col = obs[name]
        if not _is_text(col):
            continue
        text = label_text(col)
        k = len(set(text[text != ""].tolist()))
        if MIN_CLASSES <= k <= min(MAX_LABELS, max(2, n // 2)):
            out[str(name)] = k
    return out


def unlabelled_cells(obs: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """For each of ``columns`` with missing labels, how many cells have none (they are dropped when
    the column is used as labels)."""
    counts = {name: int(missing_labels(obs[name]).sum()) for name in columns}
    return {name: n for name, n in counts.items() if n}


def describe(adata: Any) -> dict[str, Any]:
    """Cells, genes, the matrix used, gene id types and mapping, label-like obs columns (and how many
    cells have no label in each), obsm keys.

    ``adata`` should come from :func:`mmgene.io.read` (which fills ``uns['mmgene']['input']``). Every
    row of the expression matrix is checked (chunk by chunk when backed), so a bad value or a corrupt
    index anywhere raises the error that names its cell.
    """
    from mmgene.io.expression import expression

    info = dict(record_of(adata, "input"))
    info.pop("versions", None)
    info.pop("created", None)
    if info.get("matrix", "not read") != "not read":
        expression(adata, origin=info.get("file")).validate()
    info["label_columns"] = label_columns(adata.obs)
    info["unlabelled_cells"] = unlabelled_cells(adata.obs, list(info["label_columns"]))
    info["obsm"] = {k: list(map(int, v.shape[1:])) for k, v in adata.obsm.items()}
    info["layers"] = list(adata.layers.keys())
    info["has_raw"] = adata.raw is not None
    return info
