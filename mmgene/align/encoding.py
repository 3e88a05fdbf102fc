"""Joint-space vectors of an AnnData's cells from one model or an ensemble's members.

The one path behind :meth:`mmgene.align.model.AlignedModel.encode_cells` and
:meth:`mmgene.align.ensemble.EnsembleModel.encode_cells`: with recentring, each model's offset is found
first (:mod:`mmgene.align.recentre`), then every chunk's inputs are made once and encoded by each model
(:mod:`mmgene.align.cell_chunks`); :func:`keep_vectors` returns them or writes them to ``obsm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import ParameterError


def check_copy(copy: bool, key_added: str | None) -> None:
    """``copy=True`` writes into a copy of the AnnData, so it needs an obsm key to write."""
    if key_added is not None:
        from mmgene.config import check_key

        check_key(key_added, "encode_cells(key_added=...)", "X_mmgene")
    if copy and not key_added:
        raise ParameterError("copy=True needs key_added (the obsm key to write)", "encode_cells(copy=True)", "pass e.g. key_added='X_mmgene'")


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


def keep_vectors(adata: Any, vectors: np.ndarray, *, key_added: str | None, copy: bool, recentre: bool, **provenance: Any) -> Any:
    """What ``encode_cells`` returns: the ``vectors``; with ``key_added`` also written to
    ``adata.obsm[key_added]`` with how they were made (``provenance``, recorded in ``uns['mmgene']``);
    with ``copy`` as well, into a copy of ``adata``, which is returned instead."""
    if not key_added:
        return vectors
    from mmgene.provenance import record

    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = vectors
    record(adata, key_added, packages=("sentence-transformers", "torch"), **provenance, **({"recentred": True} if recentre else {}))
    return adata if copy else vectors
