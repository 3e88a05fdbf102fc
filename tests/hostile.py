"""Harness for hostile-input CLI tests: a refused command exits 2 with one line and touches nothing.

``assert_refused(args, tmp_path)`` hashes every file under the given folders before and after running
``python -m mmgene ARGS`` and checks: exit status 2, exactly one line on stderr starting with
``mmgene: error:``, no traceback, and every pre-existing file byte-identical (sha256). Files the
command may legitimately create are not allowed either: a refused command writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
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
    out = run_cli(*map(str, args), env=env)
    after = snapshot(roots)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and lines[0].startswith("mmgene: error:"), out.stderr
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    if contains:
        assert contains.lower() in lines[0].lower(), lines[0]
    return lines[0]
