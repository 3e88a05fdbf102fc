"""Record how a result was made in ``adata.uns['mmgene'][key]``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
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


def records(adata: Any) -> Mapping[str, Any]:
    """``adata.uns['mmgene']``, mmgene's records; empty when there are none or when the slot holds something
    else (reading never fails on it; writing is refused by :func:`check_record_slot`)."""
    slot = adata.uns.get("mmgene") if hasattr(adata, "uns") else None
    return slot if isinstance(slot, Mapping) else {}


def record_of(adata: Any, key: str) -> Mapping[str, Any]:
    """The record mmgene keeps under ``key`` (``{}`` when there is none, or when it is not a mapping)."""
    entry = records(adata).get(key)
    return entry if isinstance(entry, Mapping) else {}


def input_file(adata: Any, default: str) -> str:
    """The file ``adata`` was read from, as :func:`mmgene.io.read` records it, to name the data in
    messages; ``default`` for data made in memory."""
    return str(record_of(adata, "input").get("file", default))


def check_own_columns(adata: Any, columns: Sequence[str], key: str, where: str, slot: str = "obs") -> None:
    """Refuse to write ``columns`` of ``adata.obs`` (or another ``slot``, e.g. ``'obsm'``) over existing
    ones that mmgene did not write: one that exists is replaced only when ``uns['mmgene'][key]`` records
    an earlier run of the same step (the author labels passed as ``--key``, say, would otherwise be lost
    without a word)."""
    table = getattr(adata, slot)
    taken = [c for c in columns if c in (table.columns if slot == "obs" else table)]
    if taken and key not in records(adata):
        from mmgene.errors import ParameterError

        raise ParameterError(
            f"{slot}[{taken[0]!r}] exists and mmgene did not write it, so it is not replaced", where,
            f"pass another key (--key), or drop that {'column' if slot == 'obs' else 'entry'} yourself",
        )


def check_record_slot(adata: Any, where: str) -> None:
    """Refuse an AnnData whose ``uns['mmgene']`` is not a mapping: something else put a value there, which
    mmgene can neither read its records from nor write over."""
    slot = adata.uns.get("mmgene") if hasattr(adata, "uns") else None
    if slot is not None and not isinstance(slot, Mapping):
        from mmgene.errors import DataError

        raise DataError(
            f"uns['mmgene'] holds a {type(slot).__name__}, not mmgene's records (a mapping)", where,
            "rename or delete uns['mmgene'] (e.g. adata.uns['my_note'] = adata.uns.pop('mmgene')); mmgene keeps its records there",
        )


def record(adata: Any, key: str, *, packages: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    """Store ``params`` plus versions and a timestamp under ``adata.uns['mmgene'][key]``."""
    check_record_slot(adata, f"uns['mmgene'], recording {key!r}")
    entry = _plain(params)
    entry["versions"] = package_versions(*packages)
    entry["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    adata.uns.setdefault("mmgene", {})[key] = entry
    return entry
