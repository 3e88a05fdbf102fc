"""Contrastive text-cell alignment: one sentence-transformers model with an omics and a text tower.

``train`` fits it, ``load`` reads a saved model directory, ``AlignedModel`` encodes text and cells into
the joint space. Looked up lazily so that ``import mmgene.align`` loads no torch.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "load": "mmgene.align.model",
    "AlignedModel": "mmgene.align.model",
    "build_model": "mmgene.align.model",
    "train": "mmgene.align.train",
    "cell_inputs": "mmgene.align.inputs",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
