"""Run an operation on a sqlite cache that other processes share, waiting out 'database is locked'.

sqlite waits for another connection's lock only as long as the connection's busy timeout, and not at all
where waiting could deadlock: e.g. when several processes switch a fresh file to WAL or create its tables
together (every rank of a torchrun job on a fresh cache), one of them is told 'database is locked' at
once. :func:`retry_locked` rolls back and runs the operation again, with a short growing pause, for a
bounded time, then raises :class:`CacheLockedError` naming the file.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from mmgene.errors import InputFileError, cause

T = TypeVar("T")

#: seconds a process waits, by default, for another one holding a sqlite cache
LOCK_WAIT = 60.0
#: first and longest pause between two tries (each pause is drawn between half and all of its bound, so
#: processes that collided do not retry in step)
FIRST_PAUSE = 0.02
MAX_PAUSE = 0.25
def locked_fix(elsewhere: str = "another cache folder ($MMGENE_CACHE)") -> str:
    """What to do about a cache another process holds: wait, or give this run ``elsewhere`` to keep it."""
    return (
        "wait for the other process using it (e.g. another mmgene run) to finish and run again, "
        f"or give this run {elsewhere}"
    )


DEFAULT_FIX = locked_fix()


class CacheLockedError(InputFileError):
    """A sqlite cache stayed locked by another process for longer than mmgene waits."""


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is sqlite's 'database is locked' (or 'database table is locked'): it passes with time."""
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def retry_locked(
    db: sqlite3.Connection,
    op: Callable[[], T],
    path: str | os.PathLike[str],
    *,
    wait: float = LOCK_WAIT,
    what: str = "sqlite cache",
    fix: str = DEFAULT_FIX,
) -> T:
    """``op()``, run again after a rollback of ``db`` while it fails with 'database is locked', for at most
    ``wait`` seconds; then :class:`CacheLockedError` naming ``path``. Other errors pass through at once.

    ``op`` must be one whole transaction (or read): it is run from its start on every try.
    """
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    while True:
        try:
            return op()
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            db.rollback()
            left = deadline - time.monotonic()
            if left <= 0:
                raise CacheLockedError(
                    f"the {what} stayed locked by another process for more than {wait:g} s ({cause(exc)})",
                    os.fspath(path),
                    fix,
                ) from None
            time.sleep(min(left, random.uniform(pause / 2, pause)))
            pause = min(2 * pause, MAX_PAUSE)


__all__ = ["LOCK_WAIT", "CacheLockedError", "is_locked", "locked_fix", "retry_locked"]
