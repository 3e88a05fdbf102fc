"""Harness for hostile-input CLI tests: a refused command exits 2 with one line and touches nothing.

``assert_refused(args, tmp_path)`` hashes every file under the given folders before and after running
``mmgene ARGS`` and checks: exit status 2, exactly one line on stderr starting with
``mmgene: error:``, no traceback, and every pre-existing file byte-identical (sha256). Files the
command may legitimately create are not allowed either: a refused command writes nothing.

A refusal runs the CLI's entry point (:func:`mmgene.cli.main`) in the test's own process, with its own
``sys.argv``, environment, settings and captured stdout/stderr: a new interpreter would spend seconds
importing torch and sentence-transformers per refusal. :func:`run_cli` runs ``python -m mmgene`` (the
commands that do real work).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

MMGENE = [sys.executable, "-m", "mmgene"]


def snapshot(roots: Iterable[Path]) -> dict[str, str]:
    """sha256 of every file (and a marker for every folder) under ``roots``."""
    seen: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            seen[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                seen[os.path.join(dirpath, name)] = "<dir>"
            for name in filenames:
                path = os.path.join(dirpath, name)
                seen[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return seen


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "MMGENE_QUIET": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([*MMGENE, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout)


@contextlib.contextmanager
def _as_a_cli_process(args: list[str], env: dict[str, str]) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """``sys.argv``, the environment and mmgene's settings as a fresh ``mmgene ARGS`` would see them,
    restored afterwards (a ``-q`` or an environment variable must not leak into later tests)."""
    from mmgene.settings import settings

    saved_argv, saved_env, saved_settings = sys.argv, dict(os.environ), dict(settings._assigned)
    out, err = io.StringIO(), io.StringIO()
    try:
        settings._assigned.clear()  # a new process has only its environment (MMGENE_CACHE, MMGENE_HTTP_DEADLINE, ...)
        os.environ.update(env)
        sys.argv = ["mmgene", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        settings._assigned.clear()
        settings._assigned.update(saved_settings)


def run_cli_here(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """:func:`run_cli` in this process: the entry point's exit status, stdout and stderr."""
    from mmgene.cli import main

    args = [str(a) for a in args]
    code: int | str | None = 0
    with _as_a_cli_process(args, {"MMGENE_QUIET": "1", "HF_HUB_OFFLINE": "1", **(env or {})}) as (out, err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    status = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(["mmgene", *args], status, out.getvalue(), err.getvalue())


def assert_refused(
    args: Iterable[object],
    roots: Iterable[Path],
    *,
    contains: str = "",
    env: dict[str, str] | None = None,
) -> str:
    """Run the CLI, check it refused cleanly and left ``roots`` exactly as they were; return the message."""
    roots = [Path(r) for r in roots]
    before = snapshot(roots)
    out = run_cli_here(*map(str, args), env=env)
    after = snapshot(roots)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and lines[0].startswith("mmgene: error:"), out.stderr
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    if contains:
        assert contains.lower() in lines[0].lower(), lines[0]
    return lines[0]
