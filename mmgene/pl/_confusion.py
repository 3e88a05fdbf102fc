"""A confusion matrix of predicted against true labels: rows true classes, columns predicted ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import ParameterError
from mmgene.pl._figure import axes, check_ax, check_save, finish
from mmgene.pl._inputs import class_order, label_values
from mmgene.pl._options import check_cmap
from mmgene.text.labels import missing_labels

NORMALIZE = (None, "true", "pred", "all")


def confusion_table(y_true: Sequence[str], y_pred: Sequence[str], *, normalize: str | None = None) -> pd.DataFrame:
    """Counts (or fractions) of cells per true class (rows, sorted) and predicted class (columns: the true
    classes, then classes only predicted, such as 'unknown'). ``normalize`` as in
    :func:`sklearn.metrics.confusion_matrix`: ``'true'`` rows sum to 1, ``'pred'`` columns, ``'all'`` the table."""
    from sklearn.metrics import confusion_matrix

    if normalize not in NORMALIZE:
        raise ParameterError(f"normalize={normalize!r} is not one of {NORMALIZE}", "argument normalize", "pass None (counts), 'true', 'pred' or 'all'")
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ParameterError(f"{len(y_true)} true labels for {len(y_pred)} predicted ones", "arguments y_true, y_pred", "pass one label of each per cell")
    rows, cols = class_order(y_true, y_pred)
    counts = confusion_matrix(y_true, y_pred, labels=cols)[: len(rows)]
    values = counts.astype(float)
    if normalize is not None:
        total = {"true": counts.sum(axis=1, keepdims=True), "pred": counts.sum(axis=0, keepdims=True), "all": counts.sum()}[normalize]
        values = np.divide(counts, total, out=np.zeros_like(values), where=np.asarray(total) > 0)
    table = pd.DataFrame(values if normalize else counts, index=pd.Index(rows, name="true"), columns=pd.Index(cols, name="predicted"))
    return table


def _labels(values: Sequence[str], name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D array of label texts; a missing label (None, NaN, empty or blank) is refused."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values, dtype=object)
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"{name} must hold one label per cell, got shape {arr.shape}", f"argument {name}", "pass a non-empty list of labels")
    missing = missing_labels(arr)
    if missing.any():
        raise ParameterError(
            f"{int(missing.sum())} cells have no label in {name}, first at position {int(np.flatnonzero(missing)[0])}", f"argument {name}",
            "fill the missing labels (e.g. 'unknown') or leave those cells out",
        )
    return np.asarray([str(v) for v in arr], dtype=object)


def confusion(
    adata: Any,
    true: str | Sequence[Any] | np.ndarray | pd.Series,
    predicted: str | Sequence[Any] | np.ndarray | pd.Series,
    *,
    normalize: str | None = "true",
    cmap: str = "Blues",
    title: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    overwrite: bool = False,
) -> Any:
    """Heat map of :func:`confusion_table` with each cell's value written in it.

    ``true`` and ``predicted`` are obs column names or one label per cell (obs order). With
    ``normalize`` (default ``'true'``: the fraction of each true class given each prediction) colours
    run from 0 to 1; ``None`` shows counts. ``cmap`` is a name in :data:`matplotlib.colormaps` or a
    Colormap. Returns the Axes, the Figure (``return_fig=True``) or
    ``None`` (shown), as scanpy's plots do; ``save`` replaces a file only with ``overwrite=True``.
    """
    check_ax(ax)
    check_save(save, "mmgene_confusion", overwrite)
    check_cmap(cmap)
    table = confusion_table(label_values(adata, true, "true"), label_values(adata, predicted, "predicted"), normalize=normalize)
    values = table.to_numpy()
    n_rows, n_cols = values.shape
    made = ax is None
    fig, ax = axes(ax, figsize=(max(3.0, 1.6 + 0.5 * n_cols), max(2.5, 1.2 + 0.42 * n_rows)))
    top = 1.0 if normalize else max(float(values.max()), 1.0)
    ax.imshow(values, cmap=cmap, vmin=0, vmax=top, aspect="auto")
    fmt = "{:.2f}" if normalize else "{:.0f}"
    for i, j in zip(*np.nonzero(values)):
        ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=7, color="white" if values[i, j] > top / 2 else "black")
    ax.set_xticks(range(n_cols), list(table.columns), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), list(table.index), fontsize=8)
    ax.set(xlabel=f"predicted: {predicted}" if isinstance(predicted, str) else "predicted",
           ylabel=f"true: {true}" if isinstance(true, str) else "true", title=title or "")
    return finish(fig, ax, "mmgene_confusion", show=show, save=save, return_fig=return_fig, overwrite=overwrite,
                  made=made)
