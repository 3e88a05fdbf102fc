"""Function-style entry points: ``mmgene.index.build(adata, key)`` and ``mmgene.index.load(path)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mmgene.index.faiss_index import CellIndex


def build(adata: Any, embedding: str, *, obs_columns: Sequence[str] | None = None, kind: str = "auto", model: str | None = None, **params: Any) -> CellIndex:
    """Build a :class:`CellIndex` over ``adata.obsm[embedding]`` (see :meth:`CellIndex.build`)."""
    return CellIndex.build(adata, embedding, obs_columns=obs_columns, kind=kind, model=model, **params)


def load(path: str | os.PathLike[str], *, mmap: bool = True) -> CellIndex:
    """Open an index folder written by :meth:`CellIndex.save` (memory-mapped where FAISS allows)."""
    return CellIndex.load(path, mmap=mmap)
