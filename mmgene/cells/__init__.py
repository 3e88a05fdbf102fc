"""Cells as text, tokens and model inputs: cell sentences (Cell2Sentence), their inverse, Geneformer's
rank-value encoding, and the cell inputs of the omics tower.

Functions are looked up lazily so that ``import mmgene.cells`` stays cheap.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

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
    "cell_inputs": "mmgene.cells.inputs",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
