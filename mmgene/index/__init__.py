"""FAISS retrieval over cell vectors: :class:`CellIndex` with a Parquet cell table and JSON metadata.

Names are resolved lazily, so ``import mmgene.index`` does not import faiss.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "CellIndex": "mmgene.index.faiss_index",
    "IndexParams": "mmgene.index.params",
    "build": "mmgene.index.api",
    "load": "mmgene.index.api",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.index' has no attribute {name!r}")


__all__ = list(_EXPORTS)
