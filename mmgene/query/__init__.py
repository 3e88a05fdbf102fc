"""Questions to an index: text -> cells, cell -> cells, zero-shot labels with "unknown", kNN label transfer.

Names are resolved lazily, so importing this package loads neither faiss nor a text model.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "JointSpace": "mmgene.query.space",
    "GenePTSpace": "mmgene.query.space",
    "load_space": "mmgene.query.space",
    "text_to_cells": "mmgene.query.search",
    "cells_to_cells": "mmgene.query.search",
    "annotate": "mmgene.query.labelling",
    "assign_labels": "mmgene.query.labelling",
    "calibrate": "mmgene.query.labelling",
    "centroid_scores": "mmgene.query.labelling",
    "label_vectors": "mmgene.query.labelling",
    "PROMPTS": "mmgene.query.labelling",
    "transfer_labels": "mmgene.query.transfer",
    "gene_contributions": "mmgene.query.genes",
    "explain_hits": "mmgene.query.genes",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.query' has no attribute {name!r}")


__all__ = list(_EXPORTS)
