"""Process-wide settings: quiet mode, thread counts and the cache folder.

Kept tiny and import-free so that ``import mmgene`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Settings:
    """Mutable settings shared by the API and the CLI (``mmgene.settings``)."""

    quiet: bool = bool(os.environ.get("MMGENE_QUIET"))
    """Silence progress bars and informational messages."""

    torch_threads: int = int(os.environ.get("MMGENE_TORCH_THREADS", "1"))
    """Threads torch may use; one is often fastest on small machines."""

    n_jobs: int = int(os.environ.get("MMGENE_N_JOBS", "-1"))
    """Threads for cell sentences and rank encoding when a call leaves ``n_jobs=None``
    (``-1``: every core this process may use). Results are the same for any value."""

    cache_dir: str = os.environ.get(
        "MMGENE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mmgene")
    )
    """Where downloads, gene text and embedding caches live."""

    http_deadline: float | None = float(os.environ["MMGENE_HTTP_DEADLINE"]) if os.environ.get("MMGENE_HTTP_DEADLINE") else None
    """Seconds one HTTP attempt (connect and all reads) may take before it is abandoned, for the
    downloader, the share backends and NCBI; ``None``: each client's own default."""


settings = Settings()
