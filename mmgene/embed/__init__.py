"""Cell embeddings written to ``adata.obsm``: GenePT-w, GenePT-s, Geneformer; and text encoders.

Functions are looked up lazily so that importing this package loads no model code.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "genept_w": "mmgene.embed.genept",
    "genept_s": "mmgene.embed.genept",
    "geneformer": "mmgene.embed.geneformer",
    "text_encoder": "mmgene.embed.text",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.embed' has no attribute {name!r}")


__all__ = list(_EXPORTS)
