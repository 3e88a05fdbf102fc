"""Contrastive text-cell alignment: one sentence-transformers model with an omics and a text tower.

``train`` fits it, ``load`` reads a saved model directory, ``AlignedModel`` encodes text and cells into
the joint space. Looked up lazily so that ``import mmgene.align`` loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "load": "mmgene.align.model",
    "AlignedModel": "mmgene.align.model",
    "build_model": "mmgene.align.model",
    "train": "mmgene.align.train",
    "cell_inputs": "mmgene.align.inputs",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.align' has no attribute {name!r}")


__all__ = list(_EXPORTS)
