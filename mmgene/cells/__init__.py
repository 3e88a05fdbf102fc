"""Cells as text and tokens: cell sentences (Cell2Sentence), their inverse, and Geneformer's
rank-value encoding.

Functions are looked up lazily so that ``import mmgene.cells`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "sentences": "mmgene.cells.sentences",
    "iter_sentences": "mmgene.cells.sentences",
    "build_vocabulary": "mmgene.cells.vocabulary",
    "load_dictionaries": "mmgene.cells.dictionaries",
    "GeneformerDictionaries": "mmgene.cells.dictionaries",
    "rank_encode": "mmgene.cells.rank_encoding",
    "RankEncoding": "mmgene.cells.rank_encoding",
    "fit_rank_expression": "mmgene.cells.inverse",
    "reconstruct": "mmgene.cells.inverse",
    "RankExpressionFit": "mmgene.cells.inverse",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.cells' has no attribute {name!r}")


__all__ = list(_EXPORTS)
