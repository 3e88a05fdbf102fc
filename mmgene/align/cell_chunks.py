"""Cells read by several models at once: each chunk's inputs made once and given to every model.

An ensemble's members read the same cell inputs (:func:`mmgene.cells.inputs.cell_inputs` of the same
genes, ``max_genes`` and obsm keys). Making a chunk's inputs (ranking each cell's genes) takes about as
long as one model's forward pass, so making them once for all members, instead of once per member and
pass, nearly halves an ensemble's encoding time (``benchmarks/bench_ensemble_encode.py``); the vectors are
the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmgene.errors import ParameterError


def shared_inputs(models: Sequence[Any]) -> tuple[list[str], int]:
    """The cell inputs and ``max_genes`` that every model of ``models`` reads; models that read
    different ones cannot share a chunk's inputs."""
    reads = {(tuple(m.inputs), int(m.max_genes)) for m in models}
    if len(reads) != 1:
        raise ParameterError(f"the models read different cell inputs (inputs, max_genes): {sorted(reads)}", "the ensemble's members",
                             "train every member with the same inputs and max_genes")
    inputs, max_genes = reads.pop()
    return list(inputs), max_genes


def map_models(
    models: Sequence[Any], adata: Any, per_model: Callable[[Any, list[Any]], np.ndarray], widths: Sequence[int], *, to: str = "main"
) -> list[np.ndarray] | None:
    """``per_model(model, inputs)`` (one row of ``widths[i]`` values per cell) of every model over the
    cells of ``adata``, in chunks (:func:`mmgene.distributed.map_rows`, so split across the ranks of a
    launcher), each chunk's inputs made once; returns each model's rows in obs order (None on ranks
    other than 0 with ``to='main'``)."""
    from mmgene.cells.inputs import cell_inputs
    from mmgene.distributed import map_rows

    inputs, max_genes = shared_inputs(models)

    def chunk(start: int, stop: int) -> np.ndarray:
        cells = cell_inputs(adata[start:stop], inputs, max_genes=max_genes, as_arrays=True)
        if not cells:
            return np.zeros((stop - start, int(sum(widths))), dtype=np.float32)
        parts = [np.asarray(per_model(m, cells), dtype=np.float32) for m in models]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    rows = map_rows(adata.n_obs, chunk, to=to)
    if rows is None:
        return None
    return np.split(rows, np.cumsum(widths)[:-1], axis=1)
