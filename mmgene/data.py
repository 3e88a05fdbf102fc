"""Datasets that need no network: the embedded default and the shared development data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pbmc68k() -> Any:
    """scanpy's bundled ``pbmc68k_reduced`` (700 labelled PBMCs, 765 genes, log1p data in ``.raw``).

    The embedded default for the demo and notebooks: shipped inside scanpy, so no download.
    Labels are in ``obs['bulk_labels']``.
    """
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    adata.uns.setdefault("mmgene", {})["input"] = {"file": "scanpy pbmc68k_reduced"}
    return adata


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or ``$MMGENE_SHARED_DATA``), if present."""
    env = os.environ.get("MMGENE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for path in candidates:
        if (path / "pbmc3k.h5ad").exists():
            return path
    return None
