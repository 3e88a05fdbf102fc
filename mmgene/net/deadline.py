"""A total deadline for one HTTP attempt (connect and every read), on top of requests' timeouts.

requests' ``timeout`` bounds each socket operation, not the request: a server that sends one byte
every half second keeps a request alive for as long as it likes. Here a session made by
:func:`deadline_session` tracks, per thread, the connections the current :class:`Attempt` uses;
when the attempt's deadline passes, a timer shuts those sockets down, so the blocked read fails at
once (whatever phase it is in: status line, headers or body). The caller then asks
:attr:`Attempt.expired` to tell a deadline overrun from any other network error.

Retries live in :mod:`mmgene.net.http`, which opens one :class:`Attempt` per try; this module only
enforces the deadline of one attempt. Import it lazily: it imports requests.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from mmgene.errors import ParameterError
from mmgene.settings import settings

#: what a broken, refused, timed-out or cut-off HTTP exchange raises through requests
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)

_current = threading.local()


def resolve_deadline(value: float | None, default: float) -> float:
    """``value``, else ``settings.http_deadline`` (``$MMGENE_HTTP_DEADLINE``), else ``default``; seconds > 0."""
    seconds = value if value is not None else (settings.http_deadline or default)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise ParameterError(f"deadline must be a positive number of seconds, got {seconds!r}", "deadline",
                             "pass deadline=<seconds> or set MMGENE_HTTP_DEADLINE")
    return float(seconds)


class Attempt:
    """One attempt's deadline; a context manager that makes the thread's requests honour it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._fired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._previous: Attempt | None = None

    def __enter__(self) -> Attempt:
        self._previous = getattr(_current, "attempt", None)
        _current.attempt = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.attempt = self._previous
        with self._lock:
            self._connections.clear()

    @staticmethod
    def current() -> Attempt | None:
        """The attempt active in this thread (``None`` outside one), e.g. for code that reads a body."""
        return getattr(_current, "attempt", None)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (connections of this attempt are then shut down)."""
        return self._fired or time.monotonic() >= self.end

    def timeout(self, connect: float, read: float) -> tuple[float, float]:
        """requests' ``(connect, read)`` timeout, neither longer than the time left."""
        left = max(self.end - time.monotonic(), 0.001)
        return min(connect, left), min(read, left)

    def problem(self, exc: BaseException | None = None) -> str:
        """A short description of why the attempt failed, for the final error message."""
        if self.expired:
            return f"no complete answer within the {self.seconds:g} s deadline"
        return type(exc).__name__ if exc is not None else "no answer"

    def _track(self, connection: Any) -> None:
        # The socket is kept too: http.client drops ``connection.sock`` when the answer says
        # ``Connection: close``, while the response goes on reading from it.
        entry = (connection, getattr(connection, "sock", None))
        with self._lock:
            fired = self._fired
            if not fired:
                self._connections.append(entry)
        if fired:
            _shutdown(*entry)

    def _expire(self) -> None:
        with self._lock:
            self._fired = True
            entries = list(self._connections)
        for entry in entries:
            _shutdown(*entry)


def _shutdown(connection: Any, sock: Any) -> None:
    """Make any blocked read or write on ``connection`` fail now (plain ``socket.shutdown``, also for TLS)."""
    for candidate in {id(s): s for s in (getattr(connection, "sock", None), sock) if s is not None}.values():
        try:
            socket.socket.shutdown(candidate, socket.SHUT_RDWR)
        except OSError:
            pass


class _Tracked:
    """Mixin: a urllib3 connection that registers with the thread's :class:`Attempt` when used."""

    def _track(self) -> None:
        attempt = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt._track(self)

    def connect(self) -> None:
        self._track()  # the connection, so that its socket is found as soon as it exists
        super().connect()  # type: ignore[misc]
        self._track()  # and the socket itself

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._track()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Tracked, HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that :class:`Attempt` can shut down (proxies included)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def deadline_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` (default: a new ``requests.Session``) with adapters whose connections honour the
    :class:`Attempt` active in their thread."""
    session = session if session is not None else requests.Session()
    adapter = _DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
