"""Evaluation of embeddings: kNN classification and k-means agreement with labels, alignment metrics.

Functions are looked up lazily so that importing this package loads no heavy code.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "knn_classify": "mmgene.evaluate.clustering",
    "kmeans_scores": "mmgene.evaluate.clustering",
    "evaluate": "mmgene.evaluate.report",
    "markdown_report": "mmgene.evaluate.report",
    "genept_s_zero_shot": "mmgene.evaluate.report",
    "zero_shot": "mmgene.evaluate.classify",
    "classification_metrics": "mmgene.evaluate.classify",
    "retrieval_metrics": "mmgene.evaluate.retrieval",
    "class_prompts": "mmgene.evaluate.prompts",
    "clean_label": "mmgene.pairs.labels",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.evaluate' has no attribute {name!r}")


__all__ = list(_EXPORTS)
