"""Progress bars that stay silent in quiet mode or when stderr is not a terminal."""

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

    return iter(tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress_enabled(), leave=False))


def info(message: str) -> None:
    """Print an informational line to stderr unless quiet."""
    if not settings.quiet:
        print(message, file=sys.stderr)
