"""Audit of publishing, share links and downloads, against servers on 127.0.0.1 (no internet).

Each test pins one finding:

- the Hub token never travels over plain http to a remote ``HF_ENDPOINT`` (seen by a loopback proxy),
  and an ``HF_ENDPOINT`` holding a user name or password, which every share link would repeat, is refused;
- a request the server may have carried out (Nextcloud's ``MOVE .file``, the OCS ``POST`` that makes a
  public link) is never sent twice because its answer was lost;
- an upload the server redirects is refused, not re-sent without its body and reported as done; a
  PROPFIND answer that is not XML is a clear error;
- text from the user's data (source name, obs column names, embedding provenance) stays inside code
  spans or escaped in the dataset card: it adds no HTML, heading or link;
- counts (chunk size, negatives) must be whole numbers, so the card's figures are those of the files.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from hostile import snapshot
from servers.loopback import serve_http, stop_http
from test_hub_share import PASSWORD, _file, dav  # noqa: F401 - the share tests' WebDAV server and files

from mmgene.errors import ParameterError, RemoteError

TOKEN = "hf_audit_token_only_for_the_hub_8642"
REMOTE_HUB = "http://hub.example.test"


# -- the Hub token and plain http ------------------------------------------------------------------
class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy on loopback that records what it is asked (and answers 404 to everything)."""

    seen: list[tuple[str, str, str | None]] = []

    def _any(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = _any

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def remote_http_hub(monkeypatch):
    """``HF_ENDPOINT`` is a remote host over plain http; every request to it goes through a loopback
    proxy, which sees what an eavesdropper on the way would see."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    _Proxy.seen = []
    httpd = serve_http(_Proxy)
    proxy = f"http://127.0.0.1:{httpd.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", REMOTE_HUB)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", REMOTE_HUB)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", REMOTE_HUB + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    close_session()  # huggingface_hub's client reads the proxy settings when it is made
    try:
        yield _Proxy.seen
    finally:
        close_session()
        stop_http(httpd)


def test_hub_token_is_not_sent_over_plain_http_to_a_remote_hub(remote_http_hub, tmp_path):
    from mmgene.hub.download import fetch

    link = f"{REMOTE_HUB}/datasets/me/cells/resolve/main/chunks/chunk-00000.h5ad"
    with pytest.raises(RemoteError):
        fetch(link, "0" * 64, cache_dir=tmp_path / "cache")
    assert remote_http_hub, "the request did not go through the proxy"
    assert [auth for _, _, auth in remote_http_hub if auth] == []


def test_writing_to_a_remote_hub_over_plain_http_is_refused(remote_http_hub, pbmc68k, tmp_path):
    import mmgene.hub
    from mmgene.hub.share import HubShare

    with pytest.raises(ParameterError, match="https") as err:
        HubShare("me/cells").share([_file(tmp_path, "chunk-00000.h5ad", 100)])
    assert "HF_ENDPOINT" in str(err.value) and TOKEN not in str(err.value)
    (tmp_path / "keep.txt").write_text("mine\n")
    before = snapshot([tmp_path])
    with pytest.raises(ParameterError, match="https"):
        mmgene.hub.publish(pbmc68k[:40].copy(), "me/cells", out=tmp_path / "out", top_k=10)
    assert snapshot([tmp_path]) == before and not (tmp_path / "out").exists()
    assert remote_http_hub == []  # refused before any request: nothing reached the wire


def test_a_hub_endpoint_with_a_password_is_refused_before_links_are_made(tmp_path, monkeypatch):
    """Share links are ``<HF_ENDPOINT>/datasets/...``: a user name and password in it would be in every row."""
    from servers.hub_server import hub_for_this_process

    from mmgene.hub.share import HubShare

    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as hub:
        from huggingface_hub import constants

        with_password = hub.url.replace("http://", "http://mirror:mirror-pass-2468@")
        monkeypatch.setattr(constants, "ENDPOINT", with_password)
        monkeypatch.setenv("HF_TOKEN", hub.token)
        with pytest.raises(ParameterError, match="user name or password") as err:
            HubShare(f"{hub.user}/cells").share([_file(tmp_path, "chunk-00000.h5ad", 100)])
        assert "mirror-pass-2468" not in str(err.value)
        assert hub.app.log == []


# -- requests the server may already have carried out ----------------------------------------------
def test_a_move_whose_answer_is_lost_is_not_sent_again(dav, tmp_path):
    """The gateway answers 504 while Nextcloud has assembled the chunks: the file is in place, and a
    second MOVE (its upload folder gone) can only fail."""
    from mmgene.hub.share import NextcloudShare

    real, moves = dav.app.assemble, []

    def assemble_then_time_out(environ, start_response, path):
        moves.append(path)
        if len(moves) > 1:
            return real(environ, start_response, path)
        real(environ, lambda *args, **kwargs: None, path)
        start_response("504 Gateway Timeout", [("Content-Length", "0")])
        return [b""]

    dav.app.assemble = assemble_then_time_out
    f = _file(tmp_path, "big.h5ad", 5000, 3)
    (shared,) = NextcloudShare(dav.dav_url, folder="pub", chunk_limit=4096, chunk_bytes=1000, backoff=0).share([f])
    assert len(moves) == 1
    assert (dav.app.files / "pub" / "big.h5ad").read_bytes() == Path(f.path).read_bytes()
    assert (dav.app.files / "pub" / "big.h5ad.sha256").read_text().split()[0] == f.sha256
    assert shared.uploaded and shared.link.endswith("/download")


def test_a_public_link_whose_answer_is_lost_is_made_once(dav, tmp_path):
    from mmgene.hub.share import NextcloudShare

    real, posts = dav.app.ocs, []

    def make_link_then_fail(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return real(environ, start_response)
        posts.append(1)
        body = real(environ, lambda *args, **kwargs: None)
        if len(posts) > 1:
            start_response("200 OK", [("Content-Type", "application/json")])
            return body
        start_response("502 Bad Gateway", [("Content-Length", "0")])
        return [b""]

    dav.app.ocs = make_link_then_fail
    f = _file(tmp_path, "c.h5ad", 300, 4)
    (shared,) = NextcloudShare(dav.dav_url, folder="pub", backoff=0).share([f])
    assert len(posts) == 1 and len(dav.app.shares) == 1
    assert shared.link == f"{dav.url}/index.php/s/{next(iter(dav.app.shares))}/download"


def test_an_answer_to_propfind_that_is_not_xml_is_a_clear_error(dav, tmp_path):
    from mmgene.hub.share import NextcloudShare

    real = dav.app.dav

    def garbage_propfind(environ, start_response):
        if environ["REQUEST_METHOD"] != "PROPFIND":
            return real(environ, start_response)
        start_response("207 Multi-Status", [("Content-Type", "application/xml"), ("Content-Length", "9")])
        return [b"<d:multi>"]

    dav.app.dav = garbage_propfind
    with pytest.raises(RemoteError, match="not WebDAV XML") as err:
        NextcloudShare(dav.dav_url, folder="pub", chunk_limit=4096, chunk_bytes=1000).share([_file(tmp_path, "big.h5ad", 5000)])
    assert PASSWORD not in str(err.value)
    assert not (dav.app.files / "pub" / "big.h5ad").exists()


class _Redirecting(BaseHTTPRequestHandler):
    """A WebDAV-ish server that answers every request under /old/ with a 301 to /new/."""

    stored: dict[str, int] = {}

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/old/"):
            self.send_response(301)
            self.send_header("Location", "/new/" + self.path[len("/old/"):])
        elif self.command in ("HEAD", "GET"):
            self.send_response(404)
        else:
            if self.command == "PUT":
                self.stored[self.path] = len(body)
            self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_MKCOL = do_HEAD = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_an_upload_the_server_redirects_is_refused_not_sent_empty(tmp_path):
    from mmgene.hub.share import WebDavShare

    _Redirecting.stored = {}
    httpd = serve_http(_Redirecting)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/old"
        f = _file(tmp_path, "c.h5ad", 5000, 5)
        with pytest.raises(RemoteError, match="redirect") as err:
            WebDavShare(url, folder="f", retries=0).share([f])
        assert "/new/" in str(err.value)
        assert _Redirecting.stored == {}  # no empty file was stored at the new address
    finally:
        stop_http(httpd)


# -- the dataset card and text from the data -------------------------------------------------------
HOSTILE = "x`\n\n<img src=x onerror=alert(1)>\n\n# Injected [link](https://evil.example)"


def _markdown(card: str) -> list:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").parse(card)


def _shape(tokens: list) -> tuple[list[str], list[str]]:
    """The headings of a card and the kinds of token that only injected text could add."""
    headings, odd = [], []
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            headings.append(tokens[i + 1].content)
        if token.type in ("html_block", "html_inline", "link_open", "image"):
            odd.append(token.type)
        for child in token.children or []:
            if child.type in ("html_inline", "link_open", "image"):
                odd.append(child.type)
    return headings, odd


def test_card_keeps_text_from_the_data_inside_code_spans(pbmc68k, tmp_path):
    import mmgene.hub

    adata = pbmc68k[:60].copy()
    adata.obs["donor"] = [f"d{i % 6}" for i in range(adata.n_obs)]
    clean = mmgene.hub.publish(adata.copy(), "me/cells", dry_run=True, out=tmp_path / "clean", layout="single",
                               top_k=10, split_by="donor", label_key="bulk_labels")
    hostile = adata.copy()
    hostile.uns["mmgene"] = {"input": {"file": HOSTILE},
                             "X_pca": {"method": "<img src=x onerror=alert(2)>", "model": "[m](https://evil.example)"}}
    hostile.obs = hostile.obs.rename(columns={"donor": HOSTILE, "bulk_labels": "lab`\n\n<b>el</b>"})
    result = mmgene.hub.publish(hostile, "me/cells", dry_run=True, out=tmp_path / "hostile", layout="single", top_k=10,
                                split_by=HOSTILE, label_key="lab`\n\n<b>el</b>", obsm_keys=[])
    clean_headings, clean_odd = _shape(_markdown(clean.card))
    headings, odd = _shape(_markdown(result.card))
    assert odd == clean_odd == []
    assert headings == clean_headings
    spans = {child.content for token in _markdown(result.card) for child in token.children or [] if child.type == "code_inline"}
    one_line = " ".join(HOSTILE.splitlines())
    assert one_line in spans and f"obs['{one_line}']" in spans and "obs['lab`  <b>el</b>']" in spans


# -- counts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", [{"chunk_size": True}, {"chunk_size": 2.5}, {"n_negatives": 1.5}, {"n_negatives": True},
                                     {"n_cell_negatives": 0.5}])
def test_counts_must_be_whole_numbers(pbmc68k, tmp_path, setting):
    import mmgene.hub

    (tmp_path / "keep.txt").write_text("mine\n")
    before = snapshot([tmp_path])
    with pytest.raises(ParameterError, match=next(iter(setting))):
        mmgene.hub.publish(pbmc68k[:40].copy(), "me/cells", dry_run=True, out=tmp_path / "out", layout="multiplets",
                           label_key="bulk_labels", top_k=10, **setting)
    assert snapshot([tmp_path]) == before


def test_write_chunks_refuses_a_chunk_size_that_is_not_a_whole_number(pbmc68k, tmp_path):
    from mmgene.hub.chunks import write_chunks

    for size in (2.5, True):
        with pytest.raises(ParameterError, match="chunk_size"):
            write_chunks(pbmc68k[:10].copy(), tmp_path / "chunks", chunk_size=size)
    assert not (tmp_path / "chunks").exists()
