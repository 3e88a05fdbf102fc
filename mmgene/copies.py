"""A copy of an AnnData (or a view of one) in memory, whether or not it is backed by a file.

``AnnData.copy()`` of a backed AnnData writes a new file (it asks for a file name) and ``to_memory()``
is its copy in memory; for an AnnData in memory ``copy()`` is. Every place that copies a user's data
goes through :func:`copy_in_memory`, so a backed input never fails half-way with anndata's error.
"""

from __future__ import annotations

from typing import Any


def copy_in_memory(adata: Any) -> Any:
    """An in-memory copy of ``adata``: ``to_memory()`` when it (or the AnnData it views) is backed, else ``copy()``."""
    return adata.to_memory() if getattr(adata, "isbacked", False) else adata.copy()
