"""FAISS retrieval over cell vectors: :class:`CellIndex` with a Parquet cell table and JSON metadata.

At atlas scale, :func:`build_streamed` indexes vectors read in chunks from disk (:class:`NpyShards`,
:class:`AnnDataObsm`) with inverted lists on disk and exact re-ranking, and :class:`IndexShards`
searches several index folders as one.

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
    "build_streamed": "mmgene.index.ondisk",
    "StreamBuild": "mmgene.index.ondisk",
    "IndexShards": "mmgene.index.shards",
    "NpyShards": "mmgene.index.sources",
    "AnnDataObsm": "mmgene.index.sources",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
