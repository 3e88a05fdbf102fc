"""Shared fixtures: real data (PBMC 3k from ../shared, scanpy's pbmc68k_reduced) and offline settings."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MMGENE_QUIET", "1")
# the suite runs in two worker processes on two cores: one OpenMP/BLAS thread each (also in subprocesses)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# One cache for the whole run, never the user's: made by the first process that loads this file (pytest
# itself, or xdist's controller before it starts its workers) and removed when that process exits; the
# workers, their subprocesses and notebook kernels inherit it, so no text is embedded once per worker.
_CACHE = os.environ.get("MMGENE_TEST_CACHE", "")
if not _CACHE:
    _CACHE = tempfile.mkdtemp(prefix="mmgene-test-cache-")
    os.environ["MMGENE_TEST_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, True)
os.environ["MMGENE_CACHE"] = _CACHE

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mmgene.data import shared_data_dir  # noqa: E402

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="../shared/data is not beside this checkout (CI has it; a fresh clone does not)"
)


@pytest.fixture(autouse=True)
def _cache_in_tmp(monkeypatch):
    """Keep mmgene's caches out of the user's home during tests (a test may point it elsewhere)."""
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "cache_dir", _CACHE)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if SHARED is None:
        pytest.skip("../shared/data is not beside this checkout (CI has it; a fresh clone does not)")
    return SHARED


@pytest.fixture(scope="session")
def pbmc3k_path(shared_dir) -> Path:
    return shared_dir / "pbmc3k.h5ad"


@pytest.fixture(scope="session")
def _pbmc3k_cached(pbmc3k_path):
    import mmgene.io

    return mmgene.io.read(pbmc3k_path)


@pytest.fixture
def pbmc3k(_pbmc3k_cached):
    """PBMC 3k raw counts (2,638 cells x 32,738 genes), labels in obs['cell_type']; a fresh copy."""
    return _pbmc3k_cached.copy()


@pytest.fixture(scope="session")
def geneformer_v1_dir(shared_dir) -> Path:
    return shared_dir / "geneformer_v1"


@pytest.fixture(scope="session")
def _pbmc68k_cached():
    import mmgene.data
    import mmgene.io

    return mmgene.io.read(mmgene.data.pbmc68k())


@pytest.fixture
def pbmc68k(_pbmc68k_cached):
    """scanpy's pbmc68k_reduced (700 cells, log1p data in .raw), labels in obs['bulk_labels']; a copy."""
    return _pbmc68k_cached.copy()
