"""Training examples for text-cell alignment: cell <-> caption pairs, negatives and leak-free splits.

Captions, label cleaning and ontology text come from :mod:`mmgene.text`. Functions are looked up
lazily so that importing this package loads neither datasets nor the ontology.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "make_pairs": "mmgene.pairs.build",
    "specific_genes": "mmgene.pairs.build",
    "mine_hard_negatives": "mmgene.pairs.hard_negatives",
    "split_cells": "mmgene.pairs.splits",
    "TrainingPairs": "mmgene.pairs.result",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
