"""Progress bars and informational lines, on stderr only: stdout carries nothing but a command's result.

Bars are drawn only when stderr is a terminal and mmgene is not quiet (``-q``, ``settings.quiet``,
``$MMGENE_QUIET``); informational lines are printed unless quiet; warnings (a result that is usable
but worse than asked for) are printed always.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from mmgene.settings import settings

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether a progress bar would be drawn now."""
    return not settings.quiet and sys.stderr.isatty()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless progress is disabled."""
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress_enabled(), leave=False, file=sys.stderr))


def info(message: str) -> None:
    """Print an informational line to stderr unless quiet."""
    if not settings.quiet:
        print(message, file=sys.stderr)


def warn(message: str) -> None:
    """Print ``mmgene: warning: MESSAGE`` to stderr, even when quiet: the result is usable but falls short
    of what was asked (e.g. a recall below its target), which ``-q`` must not hide."""
    print(f"mmgene: warning: {message}", file=sys.stderr)
