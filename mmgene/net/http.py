"""One HTTP layer for the clients mmgene writes on requests: NCBI E-utilities, the WebDAV/Nextcloud
share backends and the share-link downloader.

- :class:`RetryPolicy`: bounded retries driven by urllib3's :class:`~urllib3.util.Retry`: its retry
  budget, its status list, exponential backoff capped at ``max_wait``, and its ``Retry-After`` parser,
  which reads both the delay-seconds and the HTTP-date form (also capped at ``max_wait``).
- :class:`HttpClient`: one ``requests.Session`` (:func:`make_session`) and the one retry loop. Every
  try runs under its own total deadline (connect, headers and body: :class:`mmgene.net.deadline.Attempt`,
  default ``$MMGENE_HTTP_DEADLINE``); waits happen only between tries, never after the last; the
  caller may inject the sleep.
- :class:`ScopedAuth`: the one place that decides which request carries a credential: only requests
  to the credential's own origin (:func:`mmgene.net.credentials.may_receive_secret`: scheme, host and
  port; https, or plain http on loopback), decided again on every redirect, so a token never follows
  a redirect to another origin; a request to this machine never goes through a proxy (which would
  read a plain-http credential). Every message goes through :func:`mmgene.net.credentials.redact`.
- A request that is not idempotent (``idempotent=False``: a ``MOVE``, a ``POST`` that makes something)
  is sent again only when the failed try certainly left the server unchanged: no connection was made,
  or the server refused it (429, 503). After a lost answer (a gateway's 502/504, a dropped connection,
  a deadline) the server may have carried it out, so the caller is told instead and checks.

Why the loop is here rather than in the adapter (``HTTPAdapter(max_retries=Retry(...))``): urllib3
retries only what it sees inside one ``session.request`` call (connect errors, status codes). The
clients also retry what happens after it (a body cut short, a download resumed with ``Range``,
unparsable JSON, a sha256 mismatch, a deadline passing while the body is read), and these must draw
on the same budget and the same backoff, each try with a fresh deadline. So the session's adapter
does not retry, and one urllib3 ``Retry`` object is carried through all tries of a request here.

Import this module lazily: it imports requests.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from mmgene.errors import ParameterError, RemoteError, cause, is_whole_number
from mmgene.net.credentials import is_loopback, may_receive_secret, origin, redact
from mmgene.net.deadline import NETWORK_ERRORS, Attempt, deadline_session, resolve_deadline

#: answers worth another try (``Retry-After`` is honoured on them)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: answers saying the server did not act on the request (so one that is not idempotent may be sent again)
REFUSED_STATUS = frozenset({429, 503})
T = TypeVar("T")


class _Retry(Retry):
    """urllib3's ``Retry``, except that the first retry waits too: ``backoff * 2**k`` seconds before
    retry ``k + 1`` (urllib3 sends the first retry at once), so a 429 or 503 without ``Retry-After`` is
    never answered with an immediate second request."""

    def get_backoff_time(self) -> float:
        failures = len(self.history)  # no redirect ever enters the history here
        if failures == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)))


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ParameterError(f"{name} must be a number of seconds >= 0, got {value!r}", name, f"pass {name}=<seconds>")
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is tried.

    ``retries`` further tries after the first; the wait before retry ``k + 1`` is ``backoff * 2**k``
    seconds, or what the server's ``Retry-After`` says (seconds or an HTTP date); no wait is longer
    than ``max_wait``. Answers with a status in ``statuses`` are retried; any method may be retried
    (queries and uploads of fixed bytes), except that a request marked not idempotent is repeated only
    when the server certainly did not act on it (:meth:`HttpClient.request`).
    """

    retries: int = 4
    backoff: float = 0.5
    max_wait: float = 60.0
    statuses: frozenset[int] = RETRY_STATUS

    def __post_init__(self) -> None:
        if not is_whole_number(self.retries):
            raise ParameterError(f"retries must be a whole number >= 0, got {self.retries!r}", "retries", "pass retries=<n>")
        _seconds(self.backoff, "backoff")
        _seconds(self.max_wait, "max_wait")

    def start(self) -> Retry:
        """A fresh urllib3 ``Retry`` carrying this policy (one per request, through all its tries)."""
        return _Retry(
            total=self.retries, allowed_methods=None, status_forcelist=self.statuses, backoff_factor=self.backoff,
            backoff_max=self.max_wait, retry_after_max=self.max_wait, raise_on_status=False,
        )


class TryAgain(Exception):
    """Raised by an ``accept`` callback: this try failed in a way another try may fix (a truncated
    body, unparsable JSON, a checksum mismatch). ``wait``: seconds before the next try; ``None``: back off."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.wait = problem, wait


class GaveUp(RemoteError):
    """Every try of a request failed; ``problem`` says why the last one did."""

    def __init__(self, what: str, url: str, problem: str, attempts: int, hint: str, deadline: float | None) -> None:
        self.problem, self.attempts = problem, attempts
        fix = hint
        if deadline is not None:  # the last try ran out of time
            fix = (f"the server is too slow or stalls: allow more time per attempt with deadline= (now {deadline:g} s) "
                   f"or MMGENE_HTTP_DEADLINE" + (f"; {hint}" if hint else ""))
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        super().__init__(f"{what} failed after {tries} (last: {problem})", redact(url), fix)


class ScopedAuth:
    """A credential that goes only to its own origin: a requests ``auth`` hook, also applied again by
    the session of :func:`make_session` on every redirect.

    ``bearer`` is called for the token only when a request may carry it (so a token is read only when
    needed); ``basic`` is a ``(user, password)`` pair.
    """

    def __init__(self, home: str, *, bearer: Callable[[], str | None] | None = None, basic: tuple[str, str] | None = None) -> None:
        self.home, self._bearer, self._basic = home, bearer, basic

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may carry the credential (same scheme, host and port; https or loopback http)."""
        return may_receive_secret(url, self.home)

    def headers(self, url: str) -> dict[str, str]:
        """``{"Authorization": ...}`` for a request to ``url``, or ``{}`` when it must not carry the credential."""
        if not self.allows(url):
            return {}
        if self._basic is not None:
            pair = f"{self._basic[0]}:{self._basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        token = self._bearer() if self._bearer is not None else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def __call__(self, request: Any) -> Any:
        request.headers.pop("Authorization", None)
        request.headers.update(self.headers(request.url))
        return request


class _ScopedSession(requests.Session):
    """A session that decides again, for each redirect, whether the next request may carry its credential
    (requests alone keeps it on some cross-origin redirects, e.g. http to https on the same host)."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        prepared_request.headers.pop("Authorization", None)
        if isinstance(self.auth, ScopedAuth):
            self.auth(prepared_request)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send ``request`` (redirects too), never through a proxy when it goes to this machine: a plain-http
        request to a loopback origin may carry a credential in clear text (see :func:`may_receive_secret`),
        and a proxy would read it, then reach its own machine rather than this one."""
        if is_loopback(origin(str(request.url))[1]):
            kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def make_session(auth: ScopedAuth | None = None, headers: Mapping[str, str] | None = None) -> requests.Session:
    """A ``requests.Session`` whose connections honour the :class:`Attempt` of their thread and whose
    credential (``auth``) goes only to its own origin, redirects included. Its adapter does not retry:
    :meth:`HttpClient.request` does (see the module docstring)."""
    session = deadline_session(_ScopedSession())
    session.auth = auth
    session.headers.update(headers or {})
    return session


@dataclass
class _Failure:
    problem: str
    wait: float | None = None
    response: Any = None
    error: BaseException | None = None
    expired: bool = False


class HttpClient:
    """One session and the retry loop around it.

    Parameters
    ----------
    policy
        Retries, backoff and the longest wait (:class:`RetryPolicy`).
    timeout
        Seconds any one connect or read may wait: one number or ``(connect, read)``.
    deadline, default_deadline
        Seconds one try may take in all (connect, headers and body); ``None``: ``$MMGENE_HTTP_DEADLINE``,
        else ``default_deadline``.
    auth
        The credential and the origin it belongs to (:class:`ScopedAuth`).
    headers
        Sent with every request (e.g. ``User-Agent``).
    sleep
        Called with the seconds to wait between tries (default ``time.sleep``, looked up at each wait).
    """

    def __init__(self, *, policy: RetryPolicy | None = None, timeout: float | tuple[float, float] = 60.0,
                 deadline: float | None = None, default_deadline: float = 60.0, auth: ScopedAuth | None = None,
                 headers: Mapping[str, str] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        from mmgene.config import check_range

        self.policy = policy if policy is not None else RetryPolicy()
        self.timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        for seconds in self.timeout:  # requests refuses a timeout <= 0 only at the first request, as its own error
            check_range(seconds, "timeout", "HttpClient(timeout=...)", 0.0, None, strict=True, fix="pass seconds, e.g. 60")
        self.deadline = resolve_deadline(deadline, default_deadline)
        self.session = make_session(auth, headers)
        self._sleep = sleep

    def request(self, method: str, url: str, *, what: str, hint: str = "try again later",
                accept: Callable[[requests.Response], T] | None = None,
                prepare: Callable[[], Mapping[str, Any]] | None = None, deadline: float | None = None,
                idempotent: bool = True, **kwargs: Any) -> T:
        """Send ``method url`` until an answer is accepted or the policy's tries are spent.

        Each try: ``prepare()`` (if given) returns extra keyword arguments for that try (a ``Range``
        header, say); the request runs under the deadline (``deadline`` seconds, default the client's);
        an answer with a retry status is retried (honouring ``Retry-After``); any other answer goes to
        ``accept(response)``, whose result is returned (default: the response itself). ``accept`` may
        raise :class:`TryAgain` to retry, or any error to stop at once; it runs under the try's deadline,
        so it may stream the body (``stream=True``). The response is closed once ``accept`` returns.
        With ``idempotent=False`` a try is repeated only when the server certainly did not act on it
        (see the module docstring).

        Raises :class:`GaveUp` (a ``RemoteError`` naming ``what``, the URL, the attempts and the last
        problem, with ``hint`` as the fix) when every try failed.
        """
        retry = self.policy.start()
        seconds = deadline if deadline is not None else self.deadline
        attempts = 0
        while True:
            attempts += 1
            extra = dict(prepare()) if prepare is not None else {}
            done, outcome = self._try(retry, method, url, seconds, accept, {**kwargs, **extra})
            if done:
                return outcome
            try:
                if not (idempotent or _left_unchanged(outcome)):  # the server may have carried it out: never sent twice
                    raise MaxRetryError(None, url)
                retry = retry.increment(method, url, response=outcome.response, error=outcome.error)
            except MaxRetryError:
                raise GaveUp(what, url, outcome.problem, attempts, hint, seconds if outcome.expired else None) from None
            wait = outcome.wait if outcome.wait is not None else retry.get_backoff_time()
            if wait > 0:  # only between tries: the loop has ended before a wait after the last one
                (self._sleep or time.sleep)(wait)

    def _try(self, retry: Retry, method: str, url: str, seconds: float, accept: Callable[[requests.Response], Any] | None,
             kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """One try under its deadline: ``(True, result)`` or ``(False, _Failure)``."""
        with Attempt(seconds) as clock:
            try:
                response = self.session.request(method, url, timeout=clock.timeout(*self.timeout), **kwargs)
            except NETWORK_ERRORS as exc:
                return False, _broken(clock, exc)
            with response:
                if clock.expired:  # the body may have been cut short when the deadline passed
                    return False, _Failure(clock.problem(), expired=True)
                status = response.status_code
                if retry.is_retry(method, status, "Retry-After" in response.headers):
                    return False, _Failure(f"HTTP {status}", wait=_retry_after(retry, response), response=response.raw)
                try:
                    return True, (accept(response) if accept is not None else response)
                except TryAgain as again:
                    return False, _Failure(again.problem, wait=again.wait, error=again, expired=clock.expired)
                except NETWORK_ERRORS as exc:
                    return False, _broken(clock, exc)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _left_unchanged(failure: _Failure) -> bool:
    """Whether a failed try certainly did not reach or change the server: it refused the request
    (429, 503), no connection was made, or ``accept`` asked for another try (:class:`TryAgain`)."""
    if failure.response is not None:
        return getattr(failure.response, "status", None) in REFUSED_STATUS
    error = failure.error
    if isinstance(error, (TryAgain, requests.ConnectTimeout)):
        return True
    reason = getattr(error.args[0], "reason", None) if error is not None and error.args else None
    return isinstance(reason, ConnectTimeoutError)  # urllib3's NewConnectionError (refused, no such host) is one


def _broken(clock: Attempt, exc: BaseException) -> _Failure:
    """A try that ended in a network error: the deadline, when it had passed, else the error itself."""
    if clock.expired:
        return _Failure(clock.problem(exc), error=exc, expired=True)
    return _Failure(redact(cause(exc)), error=exc)


def _retry_after(retry: Retry, response: requests.Response) -> float | None:
    """Seconds the answer's ``Retry-After`` asks for (capped at the policy's ``max_wait``); ``None`` when
    it has none or an unreadable one (the policy's backoff applies then)."""
    try:
        return retry.get_retry_after(response.raw)
    except InvalidHeader:
        return None
