"""Joint-space vectors of an AnnData's cells from one model or an ensemble's members.

The one path behind :meth:`mmgene.align.model.AlignedModel.encode_cells` and
:meth:`mmgene.align.ensemble.EnsembleModel.encode_cells`: with recentring, each model's offset is found
first (:mod:`mmgene.align.recentre`), then every chunk's inputs are made once and encoded by each model
(:mod:`mmgene.align.cell_chunks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def encode_parts(models: Sequence[Any], adata: Any, *, batch_size: int = 256, recentre: bool = False) -> list[np.ndarray] | None:
    """Each model's L2-normalised float32 vectors of the cells of ``adata`` (obs order); with
    ``recentre``, each model's cells moved onto its own training mean. None on ranks other than 0 of a
    launcher's job."""
    from contextlib import ExitStack

    from mmgene.align import recentre as recentring
    from mmgene.align.cell_chunks import map_models

    moves = recentring.offsets(models, adata) if recentre else []
    with ExitStack() as stack:
        for model, by in zip(models, moves):
            stack.enter_context(recentring.shifted(model._cell_head(), by))
        return map_models(models, adata, lambda m, cells: m.encode_inputs(cells, batch_size), [m.dim for m in models])
