"""Evaluation of embeddings: kNN classification and k-means agreement with labels, alignment metrics.

Functions are looked up lazily so that importing this package loads no heavy code.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "knn_classify": "mmgene.evaluate.clustering",
    "kmeans_scores": "mmgene.evaluate.clustering",
    "evaluate": "mmgene.evaluate.report",
    "EvaluateConfig": "mmgene.evaluate.config",
    "markdown_report": "mmgene.evaluate.report",
    "genept_s_zero_shot": "mmgene.evaluate.report",
    "marker_zero_shot": "mmgene.evaluate.marker_baseline",
    "zero_shot": "mmgene.evaluate.classify",
    "retrieval_metrics": "mmgene.evaluate.retrieval",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
