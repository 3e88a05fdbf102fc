"""Start and stop the test servers on 127.0.0.1 in background threads (one way for all of them)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_http(handler: type[BaseHTTPRequestHandler], server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> ThreadingHTTPServer:
    """A stdlib HTTP server on a free loopback port, serving in a daemon thread."""
    httpd = server_class(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def stop_http(httpd: ThreadingHTTPServer) -> None:
    httpd.shutdown()
    httpd.server_close()


class CherootLoopback:
    """A WSGI ``self.app`` served by cheroot on a free loopback port; a context manager.

    Subclasses set ``numthreads`` and learn their address in :meth:`_serving`.
    """

    numthreads = 4
    app: Any
    _server: Any = None

    def _serving(self, base_url: str) -> None:
        """Called with ``http://127.0.0.1:<port>`` once the port is bound."""

    def start(self) -> Any:
        from cheroot import wsgi

        self._server = wsgi.Server(("127.0.0.1", 0), self.app, numthreads=self.numthreads)
        self._server.prepare()
        self._serving(f"http://127.0.0.1:{self._server.bind_addr[1]}")
        threading.Thread(target=self._server.serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
