"""mmgene: single-cell transcriptomes and text in one embedding space.

Submodules are imported on first use, so ``import mmgene`` stays fast and never loads torch, faiss,
datasets or scanpy::

    import mmgene
    adata = mmgene.io.read("pbmc.h5ad")
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mmgene.errors import MMGeneError
from mmgene.settings import settings

try:
    __version__ = version("mmgene")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_SUBMODULES = (
    "text", "io", "genes", "cells", "embed", "corpus", "harmonise", "pairs", "align", "pretrain", "evaluate", "index", "query",
    "hub", "data", "demo", "pl", "distributed",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"mmgene.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'mmgene' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])


__all__ = ["MMGeneError", "settings", "__version__", *_SUBMODULES]
