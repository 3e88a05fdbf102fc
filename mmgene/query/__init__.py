"""Questions to an index: text -> cells, cell -> cells, zero-shot labels with "unknown", kNN label transfer.

Names are resolved lazily, so importing this package loads neither faiss nor a text model.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "JointSpace": "mmgene.query.space",
    "GenePTSpace": "mmgene.query.space",
    "load_space": "mmgene.query.space",
    "text_to_cells": "mmgene.query.search",
    "cells_to_cells": "mmgene.query.search",
    "annotate": "mmgene.query.labelling",
    "AnnotateConfig": "mmgene.query.config",
    "assign_labels": "mmgene.query.labelling",
    "calibrate": "mmgene.query.labelling",
    "centroid_scores": "mmgene.query.labelling",
    "refine_scores": "mmgene.query.refine",
    "expression_pcs": "mmgene.query.refine",
    "transfer_labels": "mmgene.query.transfer",
    "gene_contributions": "mmgene.query.genes",
    "explain_hits": "mmgene.query.genes",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
