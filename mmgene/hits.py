"""Rows of nearest-neighbour hits: which entry to drop when a query searches the index it belongs to.

A base module, so that the index (:mod:`mmgene.index`) and the queries built on it (:mod:`mmgene.query`)
share the rule without importing each other.
"""

from __future__ import annotations

import numpy as np


def own_hit_mask(ids: np.ndarray, self_ids: np.ndarray) -> np.ndarray:
    """Per result row, the one entry to drop when a query searches its own index: its own id, else the
    last hit (the row then holds one more hit than asked for)."""
    mask = ids == self_ids[:, None]
    mask[~mask.any(axis=1), -1] = True
    mask &= np.cumsum(mask, axis=1) == 1  # drop one entry per row only
    return mask
