"""Seeded train/test splits of cells, by cell or by a group column (donor, batch, dataset).

A group split never puts one group's cells on both sides: groups are shuffled with the seed and given
to the test side until it holds at least ``test_size`` of the cells. A split is drawn by position, so a
model records fingerprints of its training file's cell ids (:func:`cell_ids_record`) for the held-out
cells to be found again only in that file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from mmgene.errors import ParameterError
from mmgene.io import obs_column

_CHUNK = 1 << 16  # names encoded per hash update: bounded memory, few update calls


def obs_fingerprint(names: Iterable[Any]) -> str:
    """SHA-256 hex digest of cell ids in order.

    Each id is hashed as its UTF-8 bytes after their 8-byte length, so no two sequences of ids give the
    same byte stream (no separator that an id could contain); fed in chunks, never as one giant string.
    """
    digest = hashlib.sha256()
    chunk: list[bytes] = []
    for name in names:
        raw = str(name).encode("utf-8")
        chunk.append(len(raw).to_bytes(8, "little") + raw)
        if len(chunk) == _CHUNK:
            digest.update(b"".join(chunk))
            chunk.clear()
    digest.update(b"".join(chunk))
    return digest.hexdigest()


def cell_ids_record(obs_names: Iterable[Any]) -> dict[str, str]:
    """What ``meta['split']`` records of the training file's cell ids: their fingerprint in order, and
    of them sorted (so a refusal can say whether the same cells are merely in another order)."""
    names = [str(n) for n in obs_names]
    return {"obs_sha256": obs_fingerprint(names), "obs_set_sha256": obs_fingerprint(sorted(names))}


def split_cells(
    adata: Any, test_size: float = 0.2, seed: int = 0, group_col: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of train and test cells.

    By cell: a seeded permutation, the first ``round((1 - test_size) * n)`` cells train. By group:
    whole groups go to test in seeded order until the test side reaches ``test_size`` of the cells.
    """
    n = adata.n_obs
    if not 0.0 <= test_size < 1.0:
        raise ParameterError(f"test_size must be in [0, 1), got {test_size}", "argument test_size", "use e.g. 0.2")
    rng = np.random.default_rng(seed)
    if group_col is None:
        perm = rng.permutation(n)
        n_train = int(round((1.0 - test_size) * n))
        return np.sort(perm[:n_train]), np.sort(perm[n_train:])
    groups = obs_column(adata, group_col).astype(str).to_numpy()
    uniq = np.unique(groups)
    if test_size > 0 and len(uniq) < 2:
        raise ParameterError(
            f"column {group_col!r} has a single group ({uniq[0]!r}), so no group can be held out",
            f"obs[{group_col!r}]",
            "split by cell (group_col=None) or use a column with several groups",
        )
    test_groups: list[str] = []
    n_test = 0
    for g in rng.permutation(uniq):
        if n_test >= test_size * n:
            break
        if len(test_groups) == len(uniq) - 1:
            break  # keep at least one group for training
        test_groups.append(g)
        n_test += int((groups == g).sum())
    is_test = np.isin(groups, test_groups)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
