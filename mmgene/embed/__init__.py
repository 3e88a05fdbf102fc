"""Cell embeddings written to ``adata.obsm``: GenePT-w, GenePT-s, Geneformer (text encoders: :mod:`mmgene.text`).

Functions are looked up lazily so that importing this package loads no model code.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "genept_w": "mmgene.embed.genept",
    "genept_s": "mmgene.embed.genept",
    "geneformer": "mmgene.embed.geneformer",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
