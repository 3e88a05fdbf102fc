"""Record how a result was made in ``adata.uns['mmgene'][key]``."""

from __future__ import annotations

import datetime as _dt
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``mmgene`` and the named packages (missing ones are skipped)."""
    out: dict[str, str] = {}
    for name in ("mmgene", *names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _plain(value: Any) -> Any:
    """Turn values into types h5ad can store (no None, no tuples, no numpy scalars)."""
    import numpy as np

    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def record(adata: Any, key: str, *, packages: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    """Store ``params`` plus versions and a timestamp under ``adata.uns['mmgene'][key]``."""
    entry = _plain(params)
    entry["versions"] = package_versions(*packages)
    entry["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    adata.uns.setdefault("mmgene", {})[key] = entry
    return entry
