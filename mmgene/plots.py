"""PNG plots for reports: UMAP of an embedding coloured by labels or scores, confusion matrices.

matplotlib (Agg backend) and umap-learn are imported inside the functions (extra ``plots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmgene.atomic import atomic_path
from mmgene.errors import ParameterError, require


def _pyplot():
    mpl = require("matplotlib", "plots", "plotting")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def umap_coords(X: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, metric: str = "cosine") -> np.ndarray:
    """2-D UMAP of the rows of ``X`` (deterministic for a given ``seed``)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 3:
        raise ParameterError(f"UMAP needs a 2-D array with at least 3 rows, got shape {X.shape}", fix="pass more cells")
    umap = require("umap", "plots", "UMAP plots")
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(X) - 1), metric=metric, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(X), dtype=np.float32)


def _save(fig, path: str | Path, overwrite: bool) -> Path:
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def umap_by_label(coords: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "", overwrite: bool = False) -> Path:
    """Scatter ``coords`` coloured by a categorical label, legend outside the axes."""
    plt = _pyplot()
    labels = np.asarray([str(x) for x in labels])
    cats = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(cats), 1))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for i, cat in enumerate(cats):
        sel = labels == cat
        ax.scatter(coords[sel, 0], coords[sel, 1], s=6, color=cmap(i), label=f"{cat} ({sel.sum()})", linewidths=0)
    ax.set(title=title, xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2, frameon=False)
    return _save(fig, path, overwrite)


def umap_by_score(
    coords: np.ndarray, scores: np.ndarray, path: str | Path, *, title: str = "", label: str = "score", overwrite: bool = False
) -> Path:
    """Scatter ``coords`` coloured by a continuous score (highest drawn on top)."""
    plt = _pyplot()
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, kind="stable")
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(coords[order, 0], coords[order, 1], c=scores[order], s=6, cmap="viridis", linewidths=0)
    fig.colorbar(sc, ax=ax, label=label)
    ax.set(title=title, xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
    return _save(fig, path, overwrite)


def confusion(y_true: Sequence[str], y_pred: Sequence[str], path: str | Path, *, title: str = "", overwrite: bool = False) -> Path:
    """Row-normalised confusion matrix (true label rows, predicted label columns) with counts."""
    plt = _pyplot()
    true = [str(x) for x in y_true]
    pred = [str(x) for x in y_pred]
    rows = sorted(set(true))
    cols = rows + sorted(set(pred) - set(rows))
    counts = np.zeros((len(rows), len(cols)), dtype=int)
    r_index = {c: i for i, c in enumerate(rows)}
    c_index = {c: i for i, c in enumerate(cols)}
    np.add.at(counts, ([r_index[t] for t in true], [c_index[p] for p in pred]), 1)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.0 + 0.5 * len(rows)))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path, overwrite)
