"""A plain HTTP folder on 127.0.0.1 (GET/HEAD with Range) for tests of the ``http`` share backend.

``faults`` injects download failures per file name, as in :mod:`tests.servers.webdav_server`; a
``"retry-after"`` fault answers ``503`` with ``Retry-After: 0`` once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import unquote

from .loopback import CherootLoopback
from .webdav_server import serve_file


class FolderApp:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", ""))
        self.log.append((method, path, environ.get("HTTP_RANGE", "")))
        target = (self.root / path.lstrip("/")).resolve()
        if method not in ("GET", "HEAD") or not target.is_file() or self.root not in target.parents:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        with self.lock:
            queue = self.faults.get(target.name)
            fault = queue.pop(0) if queue else None
        if fault == "retry-after":
            start_response("503 Service Unavailable", [("Retry-After", "0"), ("Content-Length", "0")])
            return [b""]
        return serve_file(target, environ, start_response, fault)


class FolderServer(CherootLoopback):
    def __init__(self, root: Path) -> None:
        self.app = FolderApp(root)
        self.url = ""
        self._server = None

    @property
    def faults(self) -> dict[str, list[str]]:
        return self.app.faults

    def _serving(self, base_url: str) -> None:
        self.url = base_url
