"""A hostile HTTP server on 127.0.0.1 for network-safety tests: it records every request's headers,
serves fixed files with any headers (e.g. ``Content-Disposition: filename="../../evil"``), and
trickles answers one byte at a time.

Routes (any method):

- ``/files/<name>``: ``files[name]`` (bytes) with ``extra_headers.get(name, {})``; 404 if unknown.
  ``answers[name]`` queues answers to give first, one per request: ``(status, headers)`` with an
  empty body (e.g. ``(503, {"Retry-After": "7"})``); ``redirects[name]`` answers ``302`` with that
  ``Location`` instead.
- ``/trickle-body/...``: a 200 with ``Content-Length`` of ``trickle_size`` answered at once, then
  one body byte every ``interval`` seconds.
- ``/trickle-headers/...``: the status line and headers themselves, one byte every ``interval``.

Trickling stops as soon as the client hangs up or the server stops.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from .loopback import serve_http, stop_http
from .ncbi_server import _QuietServer


@dataclass
class TrickleServer:
    interval: float = 0.5
    trickle_size: int = 10_000
    files: dict[str, bytes] = field(default_factory=dict)
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    #: (method, path, headers) of every request received
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def __enter__(self) -> TrickleServer:
        server = self
        self._stop = threading.Event()
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected here
                    self.close_connection = True

            def _any(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_HEAD = do_PROPFIND = do_MKCOL = _any

        self.httpd = serve_http(Handler, _QuietServer)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        stop_http(self.httpd)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, prefix: str = "") -> int:
        return sum(1 for _, p, _ in self.requests if p.startswith(prefix))

    # -- answers ------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        with self._lock:
            self.requests.append((h.command, h.path, dict(h.headers.items())))
        if h.path.startswith("/trickle-body"):
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {self.trickle_size}\r\n"
                    "Connection: close\r\n\r\n")
            h.wfile.write(head.encode())
            h.wfile.flush()
            h.close_connection = True
            return None if h.command == "HEAD" else self._trickle(h, b"x" * self.trickle_size)
        if h.path.startswith("/trickle-headers"):
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            return self._trickle(h, head.encode())
        name = h.path.split("?", 1)[0][len("/files/"):] if h.path.startswith("/files/") else None
        with self._lock:
            queued = self.answers.get(name or "")
            answer = queued.pop(0) if queued else None
        if answer is None and name in self.redirects:
            answer = (302, {"Location": self.redirects[name]})
        if answer is not None:
            h.send_response(answer[0])
            for key, value in {"Content-Length": "0", **answer[1]}.items():
                h.send_header(key, value)
            h.end_headers()
            return None
        if name is None or name not in self.files:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        body = self.files[name]
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        for key, value in self.extra_headers.get(name, {}).items():
            h.send_header(key, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        return None

    def _trickle(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.close_connection = True
        for i in range(len(data)):
            if self._stop.wait(self.interval):
                return
            h.wfile.write(data[i : i + 1])
            h.wfile.flush()
