"""The one HTTP layer (mmgene/net/http.py) against servers on 127.0.0.1: Retry-After in both forms,
bounded retries, no wait after the last try, a deadline per try, credentials kept to their origin.

Waits are recorded through the client's injected ``sleep``, never slept, and the clock urllib3 reads
an HTTP date against is fixed, so no assertion depends on timing (the deadline test only bounds the
wall time by far more than it needs).
"""

from __future__ import annotations

import email.utils
import time
import types

import pytest
import urllib3.util.retry
from servers.trickle_server import TrickleServer

from mmgene.errors import ParameterError, RemoteError
from mmgene.net.credentials import register_secret
from mmgene.net.http import GaveUp, HttpClient, RetryPolicy, ScopedAuth, TryAgain

TOKEN = "hf_http_layer_token_0042"


@pytest.fixture
def server():
    with TrickleServer() as srv:
        yield srv


def _client(**kw) -> tuple[HttpClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("policy", RetryPolicy(retries=3, backoff=0.5))
    kw.setdefault("deadline", 10.0)
    return HttpClient(sleep=sleeps.append, timeout=10.0, **kw), sleeps


def _get(client: HttpClient, url: str, **kw):
    return client.request("GET", url, what="GET", **kw)


# -- Retry-After -----------------------------------------------------------------------------------
def test_retry_after_seconds_is_honoured(server):
    server.files["a"] = b"ok"
    server.answers["a"] = [(503, {"Retry-After": "7"}), (429, {"Retry-After": "0"})]
    client, sleeps = _client()
    assert _get(client, f"{server.url}/files/a").content == b"ok"
    # 7 s as asked (not the 0.5 s backoff); "0" means at once, so no wait at all before the third try
    assert sleeps == [7] and server.count("/files/a") == 3


def test_retry_after_http_date_is_honoured(server, monkeypatch):
    now = 1_700_000_000
    monkeypatch.setattr(urllib3.util.retry, "time", types.SimpleNamespace(time=lambda: now, sleep=time.sleep))
    server.files["d"] = b"ok"
    server.answers["d"] = [(503, {"Retry-After": email.utils.formatdate(now + 42, usegmt=True)})]
    client, sleeps = _client()
    assert _get(client, f"{server.url}/files/d").content == b"ok"
    assert sleeps == [42]
    # a date further ahead than max_wait is waited for max_wait only
    server.answers["d"] = [(429, {"Retry-After": email.utils.formatdate(now + 3600, usegmt=True)})]
    client, sleeps = _client(policy=RetryPolicy(retries=1, backoff=0.5, max_wait=30))
    assert _get(client, f"{server.url}/files/d").content == b"ok"
    assert sleeps == [30]


@pytest.mark.parametrize("header", ["soon", "1.5", ""])
def test_unreadable_retry_after_falls_back_to_backoff(server, header):
    server.files["u"] = b"ok"
    server.answers["u"] = [(503, {"Retry-After": header})] * 2
    client, sleeps = _client(policy=RetryPolicy(retries=2, backoff=0.25))
    assert _get(client, f"{server.url}/files/u").content == b"ok"
    assert sleeps == [0.25, 0.5]


# -- bounded retries, no wait after the last --------------------------------------------------------
def test_retries_are_bounded_and_no_wait_follows_the_last(server):
    server.answers["x"] = [(503, {})] * 10
    client, sleeps = _client(policy=RetryPolicy(retries=2, backoff=0.1))
    with pytest.raises(GaveUp) as err:
        _get(client, f"{server.url}/files/x")
    assert server.count("/files/x") == 3 and err.value.attempts == 3 and err.value.problem == "HTTP 503"
    assert sleeps == [0.1, 0.2]  # between the tries only
    assert isinstance(err.value, RemoteError) and "GET failed after 3 attempts (last: HTTP 503)" in str(err.value)
    assert f"{server.url}/files/x" in str(err.value)
    server.answers["y"] = [(500, {})] * 10
    client, sleeps = _client(policy=RetryPolicy(retries=3, backoff=10, max_wait=15))
    with pytest.raises(GaveUp):
        _get(client, f"{server.url}/files/y")
    assert sleeps == [10, 15, 15]  # the backoff never waits longer than max_wait
    client, sleeps = _client(policy=RetryPolicy(retries=0))
    with pytest.raises(GaveUp, match=r"GET failed after 1 attempt \(last: HTTP 500\)"):
        _get(client, f"{server.url}/files/y")
    assert sleeps == []


def test_other_answers_are_not_retried(server):
    client, sleeps = _client()
    response = _get(client, f"{server.url}/files/missing")
    assert response.status_code == 404 and server.count("/files/missing") == 1 and sleeps == []


def test_body_failures_share_the_budget(server):
    """``accept`` may ask for another try (backing off, or at once); any other error stops at once."""
    server.files["b"] = b"payload"
    verdicts = [TryAgain("unparsable JSON"), TryAgain("truncated", wait=0.0), None]

    def accept(response):
        verdict = verdicts.pop(0)
        if verdict is not None:
            raise verdict
        return response.content

    client, sleeps = _client(policy=RetryPolicy(retries=2, backoff=0.5))
    assert _get(client, f"{server.url}/files/b", accept=accept) == b"payload"
    assert sleeps == [0.5] and server.count("/files/b") == 3
    verdicts = [TryAgain("bad")] * 3
    client, sleeps = _client(policy=RetryPolicy(retries=1, backoff=0.5))
    with pytest.raises(GaveUp, match=r"after 2 attempts \(last: bad\)"):
        _get(client, f"{server.url}/files/b", accept=accept)
    assert sleeps == [0.5] and len(verdicts) == 1

    def refuse(response):
        raise ParameterError("not this one")

    n = server.count("/files/b")
    with pytest.raises(ParameterError, match="not this one"):
        _get(client, f"{server.url}/files/b", accept=refuse)
    assert server.count("/files/b") == n + 1


def test_prepare_runs_before_each_try(server):
    server.files["p"] = b"ok"
    server.answers["p"] = [(503, {"Retry-After": "0"})]
    calls = []

    def prepare():
        calls.append(len(calls))
        return {"headers": {"X-Try": str(len(calls))}}

    client, _ = _client()
    _get(client, f"{server.url}/files/p", prepare=prepare)
    assert [r[2].get("X-Try") for r in server.requests] == ["1", "2"]


# -- one deadline per try --------------------------------------------------------------------------
def test_deadline_per_try_is_enforced(server):
    """The server trickles its headers for about a minute; each try is cut at its 0.5 s deadline,
    although the read timeout (30 s) would wait for every byte."""
    client, sleeps = _client(policy=RetryPolicy(retries=1, backoff=0.05), deadline=0.5)
    client.timeout = (30.0, 30.0)
    start = time.monotonic()
    with pytest.raises(GaveUp, match="deadline") as err:
        _get(client, f"{server.url}/trickle-headers/x")
    assert time.monotonic() - start < 20
    assert server.count("/trickle-headers") == 2 and sleeps == [0.05]
    assert "within the 0.5 s deadline" in err.value.problem and "MMGENE_HTTP_DEADLINE" in str(err.value)
    # the same deadline while a streamed body is read by accept
    client, _ = _client(policy=RetryPolicy(retries=0), deadline=0.5)
    with pytest.raises(GaveUp, match="deadline"):
        _get(client, f"{server.url}/trickle-body/x", stream=True, accept=lambda r: b"".join(r.iter_content(1)))


def test_deadline_comes_from_the_setting(monkeypatch):
    from mmgene.settings import settings

    assert HttpClient(default_deadline=12.0).deadline == 12.0
    monkeypatch.setattr(settings, "http_deadline", 3.0)
    assert HttpClient(default_deadline=12.0).deadline == 3.0 and HttpClient(deadline=1.5).deadline == 1.5
    with pytest.raises(ParameterError, match="deadline"):
        HttpClient(deadline=0)


# -- credentials stay with their origin ------------------------------------------------------------
def test_token_not_sent_to_another_origin_on_redirect(server):
    with TrickleServer() as other:
        asked = []
        auth = ScopedAuth(server.url, bearer=lambda: asked.append(1) or TOKEN)
        client, _ = _client(auth=auth)
        port = server.httpd.server_address[1]
        other.files["x"] = b"elsewhere"
        server.files["z"] = b"at home"
        server.redirects["to-other"] = f"{other.url}/files/x"
        server.redirects["to-alias"] = f"http://localhost:{port}/files/z"  # same port, another host name
        server.redirects["to-home"] = f"{server.url}/files/z"
        assert _get(client, f"{server.url}/files/to-other").content == b"elsewhere"
        assert _get(client, f"{server.url}/files/to-alias").content == b"at home"
        assert _get(client, f"{server.url}/files/to-home").content == b"at home"
        seen = [(path, headers.get("Authorization")) for _, path, headers in server.requests]
        assert seen == [("/files/to-other", f"Bearer {TOKEN}"), ("/files/to-alias", f"Bearer {TOKEN}"), ("/files/z", None),
                        ("/files/to-home", f"Bearer {TOKEN}"), ("/files/z", f"Bearer {TOKEN}")]
        assert [h.get("Authorization") for _, _, h in other.requests] == [None]
        # a request that never goes to the token's origin never even reads the token
        asked.clear()
        _get(client, f"{other.url}/files/x")
        assert asked == [] and other.requests[-1][2].get("Authorization") is None
        # a password likewise
        client, _ = _client(auth=ScopedAuth(server.url, basic=("alice", "pw-not-for-others")))
        _get(client, f"{server.url}/files/to-other")
        assert server.requests[-1][2]["Authorization"].startswith("Basic ")
        assert other.requests[-1][2].get("Authorization") is None


def test_redirect_rule_is_the_origin_rule():
    """requests alone keeps the header on an http -> https redirect on the same host; the origin rule
    (scheme, host and port) drops it, as it does for every other origin."""
    import requests

    from mmgene.net.http import make_session

    def redirected(session, url):
        prepared = requests.Request("GET", url, headers={"Authorization": f"Bearer {TOKEN}"}).prepare()
        response = requests.Response()
        response.request = requests.Request("GET", "http://127.0.0.1/x").prepare()
        session.rebuild_auth(prepared, response)
        return prepared.headers.get("Authorization")

    assert redirected(requests.Session(), "https://127.0.0.1/y") == f"Bearer {TOKEN}"  # what requests does
    session = make_session(ScopedAuth("http://127.0.0.1", bearer=lambda: TOKEN))
    assert redirected(session, "https://127.0.0.1/y") is None
    assert redirected(session, "http://127.0.0.1:80/y") == f"Bearer {TOKEN}"  # the same origin
    assert redirected(make_session(), "http://127.0.0.1/y") is None  # no credential: nothing is kept


def test_gave_up_message_is_redacted(server):
    secret = "qs-secret-998877"
    register_secret(secret)
    server.answers["s"] = [(503, {})] * 3
    client, _ = _client(policy=RetryPolicy(retries=1, backoff=0))
    with pytest.raises(GaveUp) as err:
        _get(client, f"{server.url}/files/s?key={secret}")
    assert secret not in str(err.value) and "***" in str(err.value)


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"retries": 1.5}, {"backoff": -1}, {"max_wait": "soon"}, {"backoff": True}])
def test_policy_validation(kwargs):
    with pytest.raises(ParameterError):
        RetryPolicy(**kwargs)


def test_a_request_to_this_machine_never_goes_through_a_proxy(server, monkeypatch):
    """A plain-http credential for a loopback server would travel in clear text to an HTTP proxy set in the
    environment (and the proxy would reach its own machine): loopback requests, redirects too, bypass it."""
    with TrickleServer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        server.files["z"] = b"at home"
        server.redirects["again"] = f"{server.url}/files/z"
        client, _ = _client(auth=ScopedAuth(server.url, bearer=lambda: TOKEN))
        assert _get(client, f"{server.url}/files/z").content == b"at home"
        assert _get(client, f"{server.url}/files/again").content == b"at home"
        assert proxy.requests == []
        assert [h.get("Authorization") for _, _, h in server.requests] == [f"Bearer {TOKEN}"] * 3
