"""Small text tables users write by hand (manifests, orthology tables, label mappings), read as text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmgene.errors import InputFileError, MMGeneError, cause


def read_text_table(
    path: str | os.PathLike[str], *, what: str, error: type[MMGeneError], missing_fix: str, unreadable_fix: str, **read_options: Any
) -> Any:
    """``path`` as a DataFrame of strings (no NaN; header names stripped).

    A missing file is an :class:`InputFileError`; a file pandas cannot parse is ``error`` naming
    ``what``; ``read_options`` go to :func:`pandas.read_csv` (separator, encoding).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} not found: {path}", str(path), missing_fix)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, **read_options)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise error(f"cannot read the {what} ({cause(exc)})", str(path), unreadable_fix) from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table
