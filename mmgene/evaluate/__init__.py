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
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.evaluate' has no attribute {name!r}")


__all__ = list(_EXPORTS)
