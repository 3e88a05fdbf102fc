"""FAISS retrieval over cell vectors: :class:`CellIndex` with a Parquet cell table and JSON metadata.

Names are resolved lazily, so ``import mmgene.index`` does not import faiss.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "CellIndex": "mmgene.index.faiss_index",
    "IndexParams": "mmgene.index.params",
    "build": "mmgene.index.api",
    "load": "mmgene.index.api",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
