"""Move a dataset's cells onto the training data's centre in the learned space before they meet text.

Cells of a dataset the model never saw (another lab, chemistry or species) share an offset in the omics
tower's learned space that says nothing about their cell types. Recentring removes it: every cell's
learned vector (the :class:`~mmgene.align.modules.cell_head.CellHead` projection, before the gene
channel and the final normalisation) moves by ``training mean - the dataset's mean``. The training mean
is stored with the model (``mmgene_align.json['learned_mean']``): the mean learned vector of each
training dataset's training cells, the datasets weighing equally. Recentring acts before the
normalisation, so a cell's direction moves most where its learned vector is short.

It was chosen by leaving whole datasets out of training (``docs/benchmarks.md``): the five immune
datasets' mean balanced accuracy rose at each of four training seeds. It assumes the cells are a
dataset's own mixture of types: a sorted population (only T cells) has a mean of its own, which
recentring would remove, so pass ``recentre=False`` for such data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mmgene.errors import ParameterError

#: where a model stores its training mean, in ``mmgene_align.json``
MEAN_KEY = "learned_mean"
#: an AnnData with more cells has its mean taken over this many of them, drawn with a fixed seed: the
#: estimate's error is about 0.5% of the learned vectors' spread, and a million-cell dataset is not
#: encoded twice (once for its mean, once for its vectors)
MEAN_CELLS = 50_000


def training_cells(adata: Any, names: Iterable[str]) -> Any:
    """The cells of ``adata`` that a training split names (its ``obs_name`` column), in obs order."""
    return adata[adata.obs_names.isin(set(names))]


def dataset_mean(model: Any, cells: Any) -> np.ndarray:
    """The mean learned vector (float64) of ``cells``: an AnnData (over :data:`MEAN_CELLS` of its cells
    drawn with seed 0 when it has more), or an iterable of AnnData pieces of one dataset (a dataset
    read in chunks; every cell)."""
    return dataset_means([model], cells)[0]


def dataset_means(models: Sequence[Any], cells: Any) -> list[np.ndarray]:
    """:func:`dataset_mean` of each of ``models`` that read the same inputs (an ensemble's members),
    each chunk's inputs made once for all (:mod:`mmgene.align.cell_chunks`)."""
    from mmgene.align.cell_chunks import map_models

    pieces = cells
    if hasattr(cells, "n_obs"):
        sample = np.sort(np.random.default_rng(0).choice(cells.n_obs, MEAN_CELLS, replace=False)) if cells.n_obs > MEAN_CELLS else None
        pieces = [cells if sample is None else cells[sample]]
    widths = [m._cell_head().out_dim for m in models]
    totals, count = None, 0
    for piece in pieces:
        if piece.n_obs:
            learned = map_models(models, piece, lambda m, inputs: m.learned_inputs(inputs), widths, to="all")
            summed = [np.asarray(v, dtype=np.float64).sum(axis=0) for v in learned]
            totals = summed if totals is None else [t + v for t, v in zip(totals, summed)]
            count += piece.n_obs
    if totals is None:
        raise ParameterError("no cells to take a mean of", "recentring", "give at least one cell")
    return [t / count for t in totals]


def training_mean(model: Any, datasets: Sequence[Any]) -> list[float]:
    """The mean of each dataset's mean learned vector (datasets weigh equally, not cells): what the
    model stores as its training mean. Each dataset is its training cells, as :func:`dataset_mean` takes them."""
    if not datasets:
        raise ParameterError("no training dataset to take a mean of", "training_mean", "give at least one dataset")
    return [float(v) for v in np.mean([dataset_mean(model, cells) for cells in datasets], axis=0)]


def stored_mean(meta: dict[str, Any]) -> np.ndarray | None:
    """The training mean a model's metadata stores (None: the model was saved without one)."""
    values = meta.get(MEAN_KEY)
    return None if values is None else np.asarray(values, dtype=np.float32)


def offsets(models: Sequence[Any], adata: Any) -> list[np.ndarray]:
    """What every learned vector of ``adata``'s cells moves by, in each of ``models`` (one model, or an
    ensemble's members): its training mean minus their mean."""
    for model in models:
        if model.training_mean is None:
            raise ParameterError(
                "the model stores no training mean, so its cells cannot be recentred",
                f"model {model.meta.get('path', '')!r}",
                "retrain it with this version of mmgene, or pass recentre=False (--no-recentre)",
            )
    return [(m.training_mean - mean).astype(np.float32) for m, mean in zip(models, dataset_means(models, adata))]


@contextmanager
def shifted(head: Any, by: np.ndarray) -> Iterator[None]:
    """``head`` (a :class:`~mmgene.align.modules.cell_head.CellHead`) adds ``by`` to every learned
    vector inside the block, and nothing after it."""
    import torch

    head.offset = torch.as_tensor(by, dtype=torch.float32)
    try:
        yield
    finally:
        head.offset = None
