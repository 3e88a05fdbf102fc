"""Network safety (issue #16 items 3, 12, 13) against hostile loopback servers.

- secrets go only to their own origin (scheme, host and port; https, or plain http on loopback when
  that is the origin itself) and are redacted raw, percent-encoded and base64;
- the downloader and the share backends never write outside their folder and never read file://
  links unless asked;
- every attempt has a total deadline, and no client sleeps after its last attempt.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hostile import assert_refused, snapshot
from servers.ncbi_server import Fault, NCBIServer
from servers.trickle_server import TrickleServer

from mmgene.errors import MMGeneError, ParameterError, RemoteError
from mmgene.hub.chunks import ChunkFile, sha256_file
from mmgene.net.credentials import may_receive_secret, redact, register_secret, secret_forms
from mmgene.hub.download import _auth_headers, fetch
from mmgene.hub.share import HttpFolderShare, WebDavShare

TOKEN = "hf_secret_token_for_tests_0001"
NCBI_KEY = "ncbi+Key/4711=x y&z"  # differs raw, quote()d, quote_plus()d and base64-encoded


def _forms(secret: str) -> list[str]:
    """Every form a leaked ``secret`` could take in a message."""
    plain = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret)]
    b64 = [base64.b64encode(p + secret.encode()).decode()[4:-4] for p in (b"abc", b"abcd", b"abcde")]
    return plain + b64


def _assert_no_secret(text: str, secret: str) -> None:
    for form in _forms(secret):
        assert form not in text, (form, text)


def _record_sleeps(monkeypatch) -> list[float]:
    """``time.sleep`` calls made by the test's own thread (servers keep sleeping for real)."""
    calls: list[float] = []
    real = time.sleep
    main = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is main:
            calls.append(seconds)
        else:
            real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return calls


@pytest.fixture
def server():
    with TrickleServer() as srv:
        yield srv


# -- item 3: where a token may go ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "home", "allowed"),
    [
        ("https://huggingface.co/datasets/a/b/resolve/main/x", "https://huggingface.co", True),
        ("https://HuggingFace.co:443/x", "https://huggingface.co", True),
        ("http://huggingface.co/x", "https://huggingface.co", False),  # same host and port 443? no: scheme differs
        ("http://huggingface.co:443/x", "https://huggingface.co", False),
        ("https://huggingface.co:8443/x", "https://huggingface.co", False),
        ("https://huggingface.co.evil.example/x", "https://huggingface.co", False),
        ("https://huggingface.co@evil.example/x", "https://huggingface.co", False),
        ("https://evil.example/huggingface.co", "https://huggingface.co", False),
        ("https://huggingface.co:notaport/x", "https://huggingface.co", False),
        ("http://hub.example.org/x", "http://hub.example.org", False),  # http off loopback: never
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080", True),  # the loopback origin itself
        ("http://[::1]:8080/x", "http://[::1]:8080", True),
        ("http://127.0.0.1:8081/x", "http://127.0.0.1:8080", False),
        ("http://localhost:8080/x", "http://127.0.0.1:8080", False),
        ("https://127.0.0.1:8080/x", "http://127.0.0.1:8080", False),
        ("http://127.0.0.1:8080/x", "https://127.0.0.1:8080", False),
        ("http://127.0.0.1:8080/x", "", False),
    ],
)
def test_origin_rule(url, home, allowed):
    assert may_receive_secret(url, home) is allowed


def test_hub_token_only_to_its_exact_origin(server, tmp_path, monkeypatch):
    """http:// on the Hub's host and port, another port, another host: no Authorization header."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    port = server.httpd.server_address[1]
    data = b"chunk bytes"
    sha = hashlib.sha256(data).hexdigest()
    cases = [
        (f"https://127.0.0.1:{port}", False),  # the token's origin is https: the http link gets nothing
        (f"http://127.0.0.1:{port + 1}", False),
        (f"http://localhost:{port}", False),
        ("https://huggingface.co", False),
        (f"http://127.0.0.1:{port}", True),  # the origin itself is http on loopback: exact match
    ]
    for i, (endpoint, sent) in enumerate(cases):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        server.files[f"c{i}.h5ad"] = data
        fetch(f"{server.url}/files/c{i}.h5ad", sha, cache_dir=tmp_path / f"cache{i}")
        headers = server.requests[-1][2]
        assert ("Authorization" in headers) is sent, endpoint
        if sent:
            assert headers["Authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example.org")
    assert _auth_headers("http://hub.example.org/datasets/a/b/resolve/main/x.h5ad") == {}


def test_hub_token_does_not_follow_a_redirect_to_another_origin(server, tmp_path, monkeypatch):
    """A link on the Hub's origin that redirects elsewhere (as the Hub does to its CDN): the file comes
    from the other origin, the token does not go there."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    data = b"chunk stored elsewhere"
    with TrickleServer() as cdn:
        cdn.files["c.h5ad"] = data
        server.redirects["c.h5ad"] = f"{cdn.url}/files/c.h5ad"
        got = fetch(f"{server.url}/files/c.h5ad", hashlib.sha256(data).hexdigest(), cache_dir=tmp_path / "cache")
        assert got.read_bytes() == data
        assert server.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
        assert [h.get("Authorization") for _, _, h in cdn.requests] == [None]


def test_share_password_only_to_its_origin(monkeypatch):
    monkeypatch.setenv("MMGENE_SHARE_USER", "alice")
    monkeypatch.setenv("MMGENE_SHARE_PASSWORD", "dav-pass+/=word 9")
    with pytest.raises(ParameterError, match="https") as err:
        WebDavShare("http://cloud.example.org/remote.php/dav/files/alice")
    _assert_no_secret(str(err.value), "dav-pass+/=word 9")
    share = WebDavShare("http://127.0.0.1:8080/remote.php/dav/files/alice")
    assert share._auth_for("http://127.0.0.1:8080/remote.php/dav/files/alice/x") == ("alice", "dav-pass+/=word 9")
    assert share._auth_for("https://127.0.0.1:8080/remote.php/dav/files/alice/x") is None
    assert share._auth_for("http://127.0.0.1:8081/x") is None
    assert share._auth_for("http://example.org:8080/x") is None
    basic = base64.b64encode(b"alice:dav-pass+/=word 9").decode()
    _assert_no_secret(redact(f"Authorization: Basic {basic}"), "dav-pass+/=word 9")


def test_api_keys_refused_over_remote_http():
    from mmgene.text.encoders import OpenAIEncoder
    from mmgene.genes.ncbi import NCBIClient

    with pytest.raises(ParameterError, match="https") as err:
        NCBIClient(base_url="http://eutils.example.org/entrez/eutils", api_key=NCBI_KEY, email="a@b.c")
    _assert_no_secret(str(err.value), NCBI_KEY)
    with pytest.raises(ParameterError, match="https") as err:
        OpenAIEncoder("tiny-embed", api_key="sk-remote+http/key=1", base_url="http://api.example.org/v1", cache=False)
    _assert_no_secret(str(err.value), "sk-remote+http/key=1")


def test_redact_every_encoding():
    secret = "s3cr+t/with=odd chars&é"
    register_secret(secret)
    raw = secret.encode()
    texts = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), quote(secret).lower()]
    for prefix in (b"", b"a", b"ab", b"abc", b"Basic user:"):
        texts.append(base64.b64encode(prefix + raw + b"tail").decode())
        texts.append(base64.urlsafe_b64encode(prefix + raw).decode())
    for text in texts:
        out = redact(f"error: {text} (end)")
        assert "***" in out
        _assert_no_secret(out, secret)
    assert secret in secret_forms(secret) and quote_plus(secret) in secret_forms(secret)
    assert redact("nothing secret here") == "nothing secret here"


def test_openai_key_redacted_in_every_form():
    from servers.openai_server import OpenAIServer

    from mmgene.text.encoders import OpenAIEncoder

    key = "sk-open+ai/key=42 z"
    with OpenAIServer(api_key=key) as server:
        enc = OpenAIEncoder("tiny-embed", api_key=key, base_url=server.base_url, cache=False)
        encoded = [base64.b64encode(prefix + key.encode() + b"!").decode() for prefix in (b"", b"a", b"ab", b"Bearer ")]
        leaked = " ".join([key, quote(key, safe=""), quote(key), quote_plus(key), *encoded])
        _assert_no_secret(enc._redact(leaked), key)
        assert enc.encode(["lysozyme"]).shape == (1, 12)  # the key still goes to its own (loopback) server


@pytest.mark.parametrize("fault", ["echo", "echo-rate"])
def test_ncbi_key_redacted_in_every_form(tmp_path, fault):
    with NCBIServer(faults=[Fault(fault)] * 3) as server:
        from mmgene.genes.ncbi import NCBIClient

        c = NCBIClient(base_url=server.url, email="t@e.st", api_key=NCBI_KEY, cache_path=tmp_path / "n.sqlite",
                       rate=1000, max_retries=1, sleep=lambda s: None)
        with pytest.raises(RemoteError) as err:
            c.fetch(["TP53"])
        assert server.requests[0][1]["api_key"] == NCBI_KEY  # the key did go to its own server
        message = str(err.value)
        assert "***" in message and ("HTTP 400" if fault == "echo" else "failed after 2 attempts") in message
        _assert_no_secret(message, NCBI_KEY)
        assert err.value.__cause__ is None or NCBI_KEY not in str(err.value.__cause__)


# -- item 12: nothing outside the target folder, no file:// by default ------------------------------
@pytest.mark.parametrize("name", ["../x", "/abs", "/abs/x.h5ad", "..\\x", "..", "a/../../x", "C:evil", "x\x00y"])
def test_fetch_refuses_unsafe_file_names(server, tmp_path, name):
    server.files["ok.h5ad"] = b"data"
    sha = hashlib.sha256(b"data").hexdigest()
    before = snapshot([tmp_path])
    with pytest.raises(ParameterError, match="refusing to save") as err:
        fetch(f"{server.url}/files/ok.h5ad", sha, filename=name, cache_dir=tmp_path / "cache")
    assert repr(name) in str(err.value)
    assert snapshot([tmp_path]) == before and not server.requests


@pytest.mark.parametrize("segment", ["%2E%2E%2Fx", "%2E%2E", "..%5Cx", "%2Fabs", "%2E%2E%5C%2E%2E%5Cevil", "x%00y"])
def test_fetch_refuses_links_whose_name_leaves_the_cache(server, tmp_path, segment):
    sha = "0" * 64
    before = snapshot([tmp_path])
    with pytest.raises(MMGeneError, match="refusing to save"):
        fetch(f"{server.url}/files/{segment}", sha, cache_dir=tmp_path / "cache")
    assert snapshot([tmp_path]) == before and not server.requests


def test_content_disposition_is_ignored(server, tmp_path):
    data = b"not evil at all"
    server.files["data.h5ad"] = data
    server.extra_headers["data.h5ad"] = {"Content-Disposition": 'attachment; filename="../../evil"'}
    (tmp_path / "keep.txt").write_text("untouched")
    before = snapshot([tmp_path])
    got = fetch(f"{server.url}/files/data.h5ad", hashlib.sha256(data).hexdigest(), cache_dir=tmp_path / "cache")
    assert got == tmp_path / "cache" / hashlib.sha256(data).hexdigest() / "data.h5ad" and got.read_bytes() == data
    after = snapshot([tmp_path])
    new = set(after) - set(before)
    assert all(Path(p).is_relative_to(tmp_path / "cache") for p in new)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not list(tmp_path.parent.glob("evil*")) and not list(tmp_path.rglob("evil*"))


def test_file_links_need_allow_file(tmp_path):
    secret_file = tmp_path / "local" / "private.h5ad"
    secret_file.parent.mkdir()
    secret_file.write_bytes(b"local bytes")
    sha = sha256_file(secret_file)
    link = secret_file.as_uri()
    with pytest.raises(ParameterError, match="file://") as err:
        fetch(link, sha, cache_dir=tmp_path / "cache")
    assert "allow_file=True" in str(err.value) and not (tmp_path / "cache").exists()
    got = fetch(link, sha, cache_dir=tmp_path / "cache", allow_file=True)
    assert got.read_bytes() == b"local bytes"


@pytest.mark.parametrize(
    ("host", "shown"),
    [("fileserver.example.org", "fileserver.example.org"), ("127.0.0.1", "127.0.0.1"), ("localhost:8080", "localhost:8080"),
     ("alice:pw-4711@nas", "nas")],
)
def test_file_links_naming_another_host_are_refused(tmp_path, host, shown):
    """``file://host/path`` names a file on ``host``; urllib would read the local ``/path`` instead."""
    local = tmp_path / "local" / "private.h5ad"
    local.parent.mkdir()
    local.write_bytes(b"local bytes")
    sha = sha256_file(local)
    before = snapshot([tmp_path])
    for allow_file in (True, False):
        with pytest.raises(ParameterError) as err:
            fetch(f"file://{host}{local}", sha, cache_dir=tmp_path / "cache", allow_file=allow_file)
        assert str(err.value) == (
            f"a file:// link naming the host {shown!r} points at a file on another machine; mmgene reads file:// links "
            f"on this machine only. Where: file://{shown}{local}. What to do: use file:///<absolute path> "
            "(or file://localhost/<path>) for a file on this machine, or an http(s):// link for a remote one."
        )
        assert "pw-4711" not in str(err.value)
    assert snapshot([tmp_path]) == before


@pytest.mark.parametrize("host", ["", "localhost", "LocalHost"])
def test_file_links_to_this_machine_read_the_local_file(tmp_path, host):
    local = tmp_path / "local" / "private.h5ad"
    local.parent.mkdir()
    local.write_bytes(b"local bytes")
    got = fetch(f"file://{host}{local}", sha256_file(local), cache_dir=tmp_path / "cache", allow_file=True)
    assert got.read_bytes() == b"local bytes" and got.parent.parent == tmp_path / "cache"


def test_share_backends_refuse_names_that_leave_the_folder(tmp_path):
    src = tmp_path / "src.h5ad"
    src.write_bytes(b"payload")
    root = tmp_path / "www" / "root"
    root.mkdir(parents=True)
    before = snapshot([tmp_path])
    share = HttpFolderShare(root, "https://files.example.org/data")
    for name in ("../evil.h5ad", "/tmp/evil.h5ad", "..\\evil.h5ad", "sub/../../evil.h5ad"):
        chunk = ChunkFile(0, name, src, 0, 1, sha256_file(src), 7, "h5ad", "0" * 64)
        with pytest.raises(ParameterError, match="refusing to share"):
            share.share([chunk])
        with pytest.raises(ParameterError, match="refusing to share"):
            share.put(src, name, chunk.sha256, 7)
    assert snapshot([tmp_path]) == before


# -- item 13: a total deadline per attempt, no sleep after the last ---------------------------------
def test_fetch_deadline_on_a_trickling_body(server, tmp_path, monkeypatch):
    sleeps = _record_sleeps(monkeypatch)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="deadline") as err:
        fetch(f"{server.url}/trickle-body/slow.h5ad", "0" * 64, cache_dir=tmp_path / "cache", retries=2,
              deadline=1.0, timeout=30.0, backoff=0.05)
    assert time.monotonic() - start < 10  # three 1 s attempts; the 30 s read timeout never fires
    assert server.count("/trickle-body") == 3 and "after 3 attempts" in str(err.value)
    assert sleeps == [0.05, 0.1]  # between attempts only, none after the last
    assert server.url in str(err.value) and "MMGENE_HTTP_DEADLINE" in str(err.value)


def test_ncbi_deadline_on_trickling_headers(server, tmp_path):
    from mmgene.genes.ncbi import NCBIClient

    sleeps: list[float] = []
    c = NCBIClient(base_url=f"{server.url}/trickle-headers/eutils", email="t@e.st", cache_path=tmp_path / "n.sqlite",
                   rate=1000, timeout=(5.0, 30.0), deadline=1.0, max_retries=1, backoff=0.05, sleep=sleeps.append)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="deadline") as err:
        c.fetch(["TP53"])
    assert time.monotonic() - start < 10
    assert server.count("/trickle-headers") == 2 and c.requests_made == 2
    assert sleeps == [0.05]  # one wait between the two attempts, none after the last
    assert "trickle-headers/eutils/esearch.fcgi" in str(err.value)


def test_share_deadline_on_a_trickling_server(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MMGENE_SHARE_USER", raising=False)
    monkeypatch.delenv("MMGENE_SHARE_PASSWORD", raising=False)
    sleeps = _record_sleeps(monkeypatch)
    share = WebDavShare(f"{server.url}/trickle-body/dav", folder="f", retries=1, backoff=0.05, deadline=1.0, timeout=30.0)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="deadline") as err:
        share.has("x.h5ad", "0" * 64, server.trickle_size)  # HEAD answers at once; the sidecar GET trickles
    assert time.monotonic() - start < 10
    assert [m for m, p, _ in server.requests] == ["HEAD", "GET", "GET"] and "after 2 attempts" in str(err.value)
    assert sleeps == [0.05]


def test_deadline_setting_and_validation(monkeypatch):
    from mmgene.net.deadline import resolve_deadline
    from mmgene.settings import settings

    assert resolve_deadline(None, 60.0) == 60.0 and resolve_deadline(2, 60.0) == 2.0
    monkeypatch.setattr(settings, "http_deadline", 5.0)
    assert resolve_deadline(None, 60.0) == 5.0
    for bad in (0, -1, "soon"):
        with pytest.raises(ParameterError, match="deadline"):
            resolve_deadline(bad, 60.0)


# -- the CLI that exposes a network fetch (`mmgene genes fetch`) ------------------------------------
def _cli_setup(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    (work / "texts.json").write_text('{"OLD": "previous output"}\n')
    (work / "genes.txt").write_text("TP53\n")
    return work, tmp_path / "cache.sqlite"


def test_cli_ncbi_error_names_no_key(tmp_path):
    work, cache = _cli_setup(tmp_path)
    with NCBIServer(faults=[Fault("echo")]) as server:
        line = assert_refused(
            ["genes", "fetch", "--genes-from", work / "genes.txt", "--source", "ncbi", "--base-url", server.url,
             "--email", "t@e.st", "--cache", cache, "--rate", "1000", "--retries", "0", "--out", work / "new.json"],
            [work], contains="HTTP 400", env={"NCBI_API_KEY": NCBI_KEY},
        )
        assert server.requests[0][1]["api_key"] == NCBI_KEY
    _assert_no_secret(line, NCBI_KEY)


def test_cli_ncbi_deadline_is_one_line(server, tmp_path):
    work, cache = _cli_setup(tmp_path)
    start = time.monotonic()
    assert_refused(
        ["genes", "fetch", "TP53", "--source", "ncbi", "--base-url", f"{server.url}/trickle-body/eutils", "--email", "t@e.st",
         "--cache", cache, "--rate", "1000", "--retries", "1", "--out", work / "new.json"],
        [work], contains="deadline", env={"MMGENE_HTTP_DEADLINE": "1"},
    )
    assert time.monotonic() - start < 120  # two 1 s attempts plus interpreter start-up, not minutes
    assert server.count("/trickle-body") == 2


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), (10.0, 0)])
def test_a_client_refuses_a_timeout_not_above_zero_before_any_request(timeout):
    from mmgene.errors import ParameterError
    from mmgene.net.http import HttpClient

    with pytest.raises(ParameterError, match="timeout must be a number above 0.0") as err:
        HttpClient(timeout=timeout)
    assert err.value.where == "HttpClient(timeout=...)"


def test_an_ncbi_client_with_no_search_batch_says_what_to_pass(tmp_path):
    from mmgene.errors import ParameterError
    from mmgene.genes.ncbi import NCBIClient

    with pytest.raises(ParameterError, match="search_batch must be >= 1") as err:
        NCBIClient(search_batch=0, cache_path=tmp_path / "c.sqlite", email="a@b.c")
    assert "--batch-size" in err.value.fix and not (tmp_path / "c.sqlite").exists()
