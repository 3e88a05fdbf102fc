"""What a command prints on stdout: its result, as text for people or, with ``--json``, as exactly one
JSON object for scripts. Progress and informational lines go to stderr (:mod:`mmgene.progress`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import typer


def emit(result: Mapping[str, Any], text: str | Callable[[], str], *, as_json: bool) -> None:
    """Print ``result`` as strict JSON (NaN as ``null``, numpy values as plain ones) with ``as_json``,
    else ``text`` (a string, or a function making it from nothing, so JSON runs skip the formatting)."""
    if as_json:
        from mmgene.evaluate.report import report_json

        typer.echo(report_json(dict(result)))
    else:
        typer.echo(text if isinstance(text, str) else text())


#: the widest a text cell of a printed table gets; longer values end in "..." (``--json`` keeps them whole)
TABLE_TEXT_WIDTH = 60


def table_text(table: Any, digits: int) -> str:
    """A pandas table as aligned text for the terminal: no index, floats to ``digits``, long text cut."""
    return str(table.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}", max_colwidth=TABLE_TEXT_WIDTH))


def counts_text(counts: Any) -> str:
    """Label counts (``value_counts()``) as a label/cells table for the terminal (:func:`table_text`)."""
    return table_text(counts.rename("cells").rename_axis("label").reset_index(), 0)
