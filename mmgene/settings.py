"""Process-wide settings: quiet mode, thread counts, the cache folder and the HTTP deadline.

Each setting is read from its environment variable when it is used, not when ``mmgene`` is imported,
so a malformed value (``MMGENE_N_JOBS=four``) is a clear :class:`~mmgene.errors.ParameterError` at the
first use instead of a crash of ``import mmgene``. Assigning a setting (``settings.quiet = True``)
overrides the environment for this process. Kept tiny and import-free so that ``import mmgene`` stays
fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mmgene.errors import ParameterError

#: the spellings of a yes/no environment variable (compared case-insensitively, spaces stripped)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def _bad(name: str, text: str, expected: str, values: str | None = None) -> ParameterError:
    return ParameterError(
        f"environment variable {name}={text!r} is not {expected}",
        f"environment variable {name}",
        f"set it to {values or expected}, or unset it",
    )


def parse_flag(name: str, text: str) -> bool:
    """A yes/no environment value: 1/true/yes/on, or 0/false/no/off/empty."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad(name, text, "a yes/no value", "1, true, yes or on (yes), or 0, false, no, off or empty (no)")


def parse_threads(name: str, text: str) -> int:
    """A thread count: a whole number >= 1, or -1 for every core."""
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1 and value != -1:
        raise _bad(name, text, "a whole number of threads >= 1, or -1 (every core)")
    return value


def parse_torch_threads(name: str, text: str) -> int:
    """A torch thread count: a whole number >= 1."""
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise _bad(name, text, "a whole number of threads >= 1")
    return value


def parse_seconds(name: str, text: str) -> float | None:
    """A positive number of seconds; empty: not set."""
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise _bad(name, text, "a positive number of seconds")
    return value


class _EnvSetting:
    """A setting read from ``$env`` at every use (``parse(env, text)``) unless assigned in this process."""

    def __init__(self, env: str, default: Callable[[], Any], parse: Callable[[str, str], Any], doc: str) -> None:
        self.env, self.default, self.parse, self.__doc__ = env, default, parse, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if self.name in obj._assigned:
            return obj._assigned[self.name]
        text = os.environ.get(self.env)
        return self.default() if text is None else self.parse(self.env, text)

    def __set__(self, obj: Any, value: Any) -> None:
        obj._assigned[self.name] = value


class Settings:
    """Mutable settings shared by the API and the CLI (``mmgene.settings``)."""

    quiet = _EnvSetting(
        "MMGENE_QUIET", lambda: False, parse_flag,
        "Silence progress bars and informational messages ($MMGENE_QUIET: 1/true/yes/on or 0/false/no/off).",
    )
    torch_threads = _EnvSetting(
        "MMGENE_TORCH_THREADS", lambda: 1, parse_torch_threads,
        "Threads torch may use while mmgene trains or embeds ($MMGENE_TORCH_THREADS); one is often fastest "
        "on small machines. Loading an aligned model leaves torch's thread count alone.",
    )
    n_jobs = _EnvSetting(
        "MMGENE_N_JOBS", lambda: -1, parse_threads,
        "Threads for cell sentences and rank encoding when a call leaves ``n_jobs=None`` ($MMGENE_N_JOBS; "
        "``-1``: every core this process may use). Results are the same for any value.",
    )
    cache_dir = _EnvSetting(
        "MMGENE_CACHE", lambda: os.path.join(os.path.expanduser("~"), ".cache", "mmgene"), lambda _name, text: text,
        "Where downloads, gene text and embedding caches live ($MMGENE_CACHE).",
    )
    http_deadline = _EnvSetting(
        "MMGENE_HTTP_DEADLINE", lambda: None, parse_seconds,
        "Seconds one HTTP attempt (connect and all reads) may take before it is abandoned, for the "
        "downloader, the share backends and NCBI ($MMGENE_HTTP_DEADLINE); ``None``: each client's own default.",
    )

    def __init__(self) -> None:
        self._assigned: dict[str, Any] = {}

    def __repr__(self) -> str:
        names = ("quiet", "torch_threads", "n_jobs", "cache_dir", "http_deadline")
        return "Settings(" + ", ".join(f"{n}={self._assigned.get(n, '$' + type(self).__dict__[n].env)!r}" for n in names) + ")"


settings = Settings()
