"""The held-out cells of a trained model: the test side of the same seeded split ``mmgene train`` made.

A model trained with ``test_size > 0`` records how it split its training file (``meta['split']``:
number of cells, test share, seed, group column, and fingerprints of the cell ids). Re-running
:func:`mmgene.pairs.splits.split_cells` with those settings on the same file gives exactly the cells
the model never saw, so an evaluation can be restricted to them (``mmgene evaluate MODEL FILE
--held-out``). The split is drawn by position, so the file must hold the same cells in the same order:
the fingerprints check that (models saved before they were recorded get the cell-count check only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgene.errors import ParameterError

def held_out(adata: Any, meta: dict[str, Any]) -> Any:
    """The cells of ``adata`` (the model's training file) that the model's split held out, as a copy
    (:func:`held_out_mask`)."""
    return adata[held_out_mask(adata, meta, instead="evaluate without --held-out")].copy()


def held_out_mask(adata: Any, meta: dict[str, Any], *, instead: str) -> np.ndarray:
    """Which cells of ``adata`` (the model's training file) the model's split held out.

    Raises :class:`~mmgene.errors.ParameterError` when the model records no split (trained before
    splits were recorded, or with ``test_size=0``), when ``adata`` has another number of cells than
    the file it was trained on, or (where the model records their fingerprint) other cell ids or the
    same ones in another order: the split is drawn by position, so either would score training cells.
    ``instead`` is the caller's way out ("evaluate without --held-out"), named in each error's fix.
    """
    from mmgene.pairs.splits import obs_fingerprint, split_cells

    split = meta.get("split")
    if not split:
        raise ParameterError(
            "the model does not record how its training cells were split",
            "the model's mmgene_align.json",
            f"retrain it with this version of mmgene, or {instead}",
        )
    if float(split.get("test_size", 0.0)) <= 0:
        raise ParameterError(
            "the model was trained on all cells (test_size 0), so none are held out",
            "the model's mmgene_align.json",
            f"{instead}, or retrain with test_size > 0",
        )
    if int(split["n_obs"]) != adata.n_obs:
        raise ParameterError(
            f"the model was trained on a file of {split['n_obs']} cells, this one has {adata.n_obs}",
            "the evaluated file",
            f"give the file the model was trained on, or {instead}",
        )
    if "obs_sha256" in split and obs_fingerprint(adata.obs_names) != split["obs_sha256"]:
        reordered = obs_fingerprint(sorted(str(n) for n in adata.obs_names)) == split.get("obs_set_sha256")
        what = "the model's training cells in another order" if reordered else "other cells (obs names) than the model's training file"
        raise ParameterError(
            f"the file has {what}, so the recorded split would pick training cells as held out",
            "the evaluated file's obs names",
            f"pass the model's training file, with its cells in the order it was trained on, or {instead}",
        )
    _, test = split_cells(adata, test_size=float(split["test_size"]), seed=int(split["seed"]), group_col=split.get("group_col"))
    mask = np.zeros(adata.n_obs, dtype=bool)
    mask[np.asarray(test)] = True
    return mask
