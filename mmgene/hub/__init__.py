"""Publish AnnData as a Hugging Face dataset: layouts, chunk files with sha256, share links, cards.

Everything is looked up lazily so that ``import mmgene.hub`` loads neither ``datasets`` nor
``huggingface_hub``. (The flow lives in :mod:`mmgene.hub.publishing`, not ``publish.py``, so that the
function ``mmgene.hub.publish`` is never shadowed by a submodule of the same name.)

Typical use::

    import mmgene.hub
    result = mmgene.hub.publish("pbmc.h5ad", "me/pbmc-cells", layout="pairs", label_key="cell_type",
                                share="hub", dry_run=True, out="pbmc-dataset")
    adata = mmgene.hub.fetch_anndata(result.dataset["train"][0])
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "publish": "mmgene.hub.publishing",
    "PublishResult": "mmgene.hub.publishing",
    "build_dataset": "mmgene.hub.layouts",
    "assign_splits": "mmgene.hub.layouts",
    "LAYOUTS": "mmgene.hub.config",
    "PublishConfig": "mmgene.hub.config",
    "LayoutConfig": "mmgene.hub.config",
    "ChunkConfig": "mmgene.hub.config",
    "CardConfig": "mmgene.hub.config",
    "ShareConfig": "mmgene.hub.config",
    "write_chunks": "mmgene.hub.chunks",
    "read_chunk": "mmgene.hub.chunks",
    "ChunkFile": "mmgene.hub.chunks",
    "sha256_file": "mmgene.hub.chunks",
    "fetch": "mmgene.hub.download",
    "fetch_anndata": "mmgene.hub.download",
    "ShareBackend": "mmgene.hub.share",
    "SharedFile": "mmgene.hub.share",
    "HubShare": "mmgene.hub.share",
    "WebDavShare": "mmgene.hub.share",
    "NextcloudShare": "mmgene.hub.share",
    "HttpFolderShare": "mmgene.hub.share",
    "make_share": "mmgene.hub.share",
    "render_dataset_card": "mmgene.cards",
    "render_model_card": "mmgene.cards",
    "render_template": "mmgene.cards",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
