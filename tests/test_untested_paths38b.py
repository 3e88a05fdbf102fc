"""Paths the suite never ran in hub/share.py, hub/download.py, io/tables.py, harmonise/similarity.py,
corpus/soma_rows.py and cells/dictionaries.py, each driven and its exact behaviour asserted. Remote
services are servers on 127.0.0.1 (the loopback Hub, wsgidav + Nextcloud OCS, a plain folder, and a
small scripted HTTP server for answers the others never give)."""

from __future__ import annotations

import hashlib
import pickle
import struct
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmgene.cells import load_dictionaries
from mmgene.cells.dictionaries import UnsafePickleError, safe_load_pickle
from mmgene.corpus import CensusQuery
from mmgene.corpus.soma_rows import SomaRows
from mmgene.errors import CorpusError, InputFileError, IntegrityError, ParameterError, RemoteError
from mmgene.hub.chunks import sha256_file
from mmgene.hub.download import fetch, fetch_anndata
from mmgene.hub.share import HttpFolderShare, HubShare, NextcloudShare, _Slice, make_share
from mmgene.io.tables import read_text_table
from servers.http_folder_server import FolderServer
from servers.loopback import serve_http, stop_http
from test_hub_share import PASSWORD, dav, hub  # noqa: F401 - dav and hub are fixtures
from test_hub_share import _file as _chunk

def _messages(monkeypatch, module) -> list[str]:
    """What ``module`` prints through ``info`` (the suite runs quiet, so it is caught here)."""
    said: list[str] = []
    monkeypatch.setattr(module, "info", said.append)
    return said


# -- the Hub share -----------------------------------------------------------------------------------


def _hub_paths(hub, repo_id: str) -> list[str]:
    repo = hub.app.repos[("dataset", repo_id)]
    return sorted(repo.resolve("main").files)


def test_hub_share_has_put_remove_and_the_shared_file_as_a_dict(hub, tmp_path, monkeypatch):
    """has/put/remove of the Hub backend (the base class's share loop uses them; HubShare.share does not):
    absent -> uploaded -> present with that sha256 only -> removed in one commit; removing it again says so."""
    import mmgene.hub.share as share_module

    f = _chunk(tmp_path, "chunk-00000.h5ad", 3000, 1)
    share = HubShare(f"{hub.user}/cells")
    assert share.has(f.name, f.sha256, f.size) is False  # no repository yet
    share.put(Path(f.path), f.name, f.sha256, f.size)
    assert _hub_paths(hub, f"{hub.user}/cells") == [".gitattributes", "chunks/chunk-00000.h5ad"]
    assert share.has(f.name, f.sha256, f.size) is True
    assert share.has(f.name, "0" * 64, f.size) is False and share.has(f.name, f.sha256, f.size + 1) is False
    (again,) = share.share([f])  # present with the same sha256: not uploaded again
    link = f"{hub.url}/datasets/{hub.user}/cells/resolve/main/chunks/chunk-00000.h5ad"
    assert again.to_dict() == {"name": f.name, "sha256": f.sha256, "size": 3000, "link": link, "uploaded": False}
    said = _messages(monkeypatch, share_module)
    requests_before = len(hub.app.log)
    share.withdraw([])  # what publish passes when this run uploaded nothing: no commit at all
    assert len(hub.app.log) == requests_before
    share.remove(f.name)
    assert _hub_paths(hub, f"{hub.user}/cells") == [".gitattributes"] and said == []
    assert share.has(f.name, f.sha256, f.size) is False
    share.remove(f.name)  # nothing left to delete: reported, not raised
    assert len(said) == 1 and said[0].startswith(f"mmgene: could not remove 1 chunk file(s) from {hub.user}/cells: ")
    assert hub.token not in said[0]


def test_hub_share_errors_are_remote_errors_without_the_token(hub, tmp_path, monkeypatch):

    f = _chunk(tmp_path, "chunk-00000.h5ad", 500, 2)
    HubShare(f"{hub.user}/cells").share([f])
    with pytest.raises(RemoteError) as listing:  # a branch the repository lacks
        HubShare(f"{hub.user}/cells", revision="no-such-branch").has(f.name, f.sha256, f.size)
    assert str(listing.value).startswith(f"the Hub refused to list {hub.user}/cells: ")
    assert "Invalid rev id: no-such-branch" in str(listing.value)
    assert str(listing.value).endswith(f"Where: {hub.user}/cells. What to do: check HF_TOKEN and the repo id.")
    wrong = "hf_not_the_right_token_9876543210"
    monkeypatch.setenv("HF_TOKEN", wrong)
    before = _hub_paths(hub, f"{hub.user}/cells")
    with pytest.raises(RemoteError) as upload:
        HubShare(f"{hub.user}/other").share([f])
    text = str(upload.value)
    assert text.startswith("upload to the Hub failed: ") and "401" in text
    assert text.endswith(f"Where: {hub.user}/other. What to do: check HF_TOKEN (write access) and the repo id.")
    assert wrong not in text and hub.token not in text
    assert _hub_paths(hub, f"{hub.user}/cells") == before and ("dataset", f"{hub.user}/other") not in hub.app.repos


@pytest.mark.parametrize("repo_id", ["cells", "me/cells/extra", "me/", "/cells", "me/../cells", "me/ce lls"])
def test_hub_share_refuses_a_repo_id_the_hub_would_refuse(repo_id):
    """A repo id without a namespace was refused; one with an empty part, a third part, '..' or a blank
    passed and failed at the first request as huggingface_hub's own HFValidationError."""

    with pytest.raises(ParameterError) as refused:
        HubShare(repo_id)
    assert str(refused.value).startswith(f"repo id {repo_id!r} ")
    assert "Where: repo_id." in str(refused.value)
    with pytest.raises(ParameterError):
        make_share("hub", repo_id=repo_id)


def test_make_share_hub_needs_a_repo_id():

    for missing in (None, ""):
        with pytest.raises(ParameterError) as refused:
            make_share("hub", repo_id=missing)
        assert str(refused.value) == ("the hub share needs the repo id. Where: repo_id. "
                                      "What to do: pass repo_id='user/name'.")


# -- WebDAV and Nextcloud ------------------------------------------------------------------------------


def _empty(start_response, status: str) -> list[bytes]:
    start_response(status, [("Content-Length", "0")])
    return [b""]


@pytest.mark.parametrize(("name", "value"), [("chunk_bytes", 0), ("chunk_limit", -1), ("chunk_bytes", 1.5),
                                             ("chunk_limit", "100"), ("chunk_bytes", True)])
def test_nextcloud_chunk_sizes_must_be_whole_byte_counts(name, value):
    """0 or -1 were refused naming chunk_limit whatever was wrong; 1.5 was taken (range() then failed on a
    float at the first big upload) and '100' failed at once with a raw TypeError."""

    with pytest.raises(ParameterError) as refused:
        NextcloudShare("http://127.0.0.1:9/remote.php/dav/files/alice", **{name: value})
    assert str(refused.value) == (f"{name} must be a whole number of bytes >= 1, got {value!r}. Where: {name}. "
                                  f"What to do: pass {name}=<bytes>, e.g. 104857600.")


def test_nextcloud_link_is_asked_for_once_per_file(dav, tmp_path):

    f = _chunk(tmp_path, "c.h5ad", 300, 3)
    share = NextcloudShare(dav.dav_url, folder="pub")
    (shared,) = share.share([f])
    ocs = [entry for entry in dav.app.log if entry[1].startswith("/ocs/")]
    assert [m for m, _ in ocs] == ["GET", "POST"]  # no link yet: one made
    assert share.link("c.h5ad") == shared.link and shared.link.startswith(dav.url + "/index.php/s/")
    assert [entry for entry in dav.app.log if entry[1].startswith("/ocs/")] == ocs  # remembered, not asked again


def test_nextcloud_chunked_upload_when_the_upload_folder_cannot_be_listed(dav, tmp_path):
    """A PROPFIND of the upload folder answered 404: no chunk counts as sent, all are PUT, the file is whole."""
    real = dav.app.dav

    def no_listing(environ, start_response):
        if environ["REQUEST_METHOD"] == "PROPFIND" and environ["PATH_INFO"].startswith(dav.app.uploads_prefix):
            return _empty(start_response, "404 Not Found")
        return real(environ, start_response)

    dav.app.dav = no_listing
    f = _chunk(tmp_path, "big.h5ad", 2500, 4)
    (shared,) = NextcloudShare(dav.dav_url, chunk_limit=1000, chunk_bytes=1000).share([f])
    assert shared.uploaded and (dav.app.files / "mmgene" / "big.h5ad").read_bytes() == Path(f.path).read_bytes()
    chunks = [p.rsplit("/", 1)[1] for m, p in dav.app.log if m == "PUT" and p.startswith(dav.app.uploads_prefix)]
    assert chunks == ["00001", "00002", "00003"]


def test_nextcloud_move_that_failed_is_raised_and_the_file_withdrawn(dav, tmp_path):
    """A MOVE answered 409 while the upload folder is still there did not assemble the file: the error is
    raised, not taken for a lost answer, and the destination is withdrawn."""
    dav.app.assemble = lambda environ, start_response, path: _empty(start_response, "409 Conflict")
    f = _chunk(tmp_path, "big.h5ad", 2500, 5)
    with pytest.raises(RemoteError) as failed:
        NextcloudShare(dav.dav_url, chunk_limit=1000, chunk_bytes=1000).share([f])
    folder = f"{dav.app.uploads_prefix}/mmgene-{f.sha256[:32]}"
    assert str(failed.value) == (f"MOVE answered HTTP 409. Where: {dav.url}{folder}/.file. What to do: check the share URL.")
    after = dav.app.log[[m for m, _ in dav.app.log].index("MOVE") + 1:]
    assert after[:2] == [("PROPFIND", folder + "/"), ("DELETE", f"{dav.app.files_prefix}/mmgene/big.h5ad")]
    assert not (dav.app.files / "mmgene" / "big.h5ad").exists()


def _ocs_answer(start_response, status: str, body: bytes, kind: str = "application/json") -> list[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # OCS v2 sends a refusal with its HTTP status: it was "POST answered HTTP 403 ... check MMGENE_SHARE_USER"
        ("403 Forbidden", {"statuscode": 403, "message": "Public link sharing is disabled by the administrator"},
         "the Nextcloud share API refused the POST (HTTP 403, OCS status 403: Public link sharing is disabled by the "
         "administrator)"),
        # OCS v1 style, HTTP 200 and a failing status: it was "unexpected answer ... ('Public link ...')"
        ("200 OK", {"statuscode": 404, "message": "Wrong path, file/folder does not exist"},
         "the Nextcloud share API refused the POST (HTTP 200, OCS status 404: Wrong path, file/folder does not exist)"),
        ("200 OK", b"<html>please log in</html>",
         "unexpected answer from the Nextcloud share API (HTTP 200, JSONDecodeError: Expecting value: line 1 column 1 "
         "(char 0))"),
        ("200 OK", {"statuscode": 200, "message": "OK", "data_only": []},
         "the Nextcloud share API made no public link URL for /mmgene/c.h5ad"),
    ],
)
def test_nextcloud_share_api_refusals_say_what_the_server_said(dav, tmp_path, status, body, expected):
    import json

    real = dav.app.ocs

    def ocs(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return real(environ, start_response)
        if isinstance(body, bytes):
            return _ocs_answer(start_response, status, body, "text/html")
        meta = {k: v for k, v in body.items() if k != "data_only"}
        data = body.get("data_only", [])
        return _ocs_answer(start_response, status, json.dumps({"ocs": {"meta": meta, "data": data}}).encode())

    dav.app.ocs = ocs
    f = _chunk(tmp_path, "c.h5ad", 300, 6)
    with pytest.raises(RemoteError) as refused:
        NextcloudShare(dav.dav_url).share([f])
    text = str(refused.value)
    assert text.startswith(expected + ". Where: ") and PASSWORD not in text
    assert not (dav.app.files / "mmgene" / "c.h5ad").exists()  # the upload was withdrawn


def test_nextcloud_refused_link_for_a_missing_file_names_the_servers_reason(dav):
    """The real OCS v2 answer to a link for a path that is not there: HTTP 404 with its message."""
    with pytest.raises(RemoteError) as refused:
        NextcloudShare(dav.dav_url).link("never-uploaded.h5ad")
    assert str(refused.value) == (
        "the Nextcloud share API refused the POST (HTTP 404, OCS status 404: Wrong path, file/folder does not exist). "
        f"Where: {dav.url}/ocs/v2.php/apps/files_sharing/api/v1/shares. "
        "What to do: check that the file is on the share and that the account may make public links."
    )


@pytest.mark.parametrize("kind", ["webdav", "nextcloud"])
def test_a_chunk_file_that_shrank_after_hashing_is_refused_before_upload(dav, tmp_path, kind):
    """The plain PUT sent the shorter file under the old sha256 (a link to other bytes); the chunked
    upload promised the old size and stalled until the read timeout."""

    f = _chunk(tmp_path, "c.h5ad", 2500, 7)
    Path(f.path).write_bytes(Path(f.path).read_bytes()[:1800])
    share = make_share(kind, url=dav.dav_url, timeout=3.0, retries=0, **({"chunk_limit": 1000, "chunk_bytes": 1000}
                                                                          if kind == "nextcloud" else {}))
    with pytest.raises(IntegrityError) as refused:
        share.share([f])
    assert str(refused.value) == (
        f"c.h5ad holds 1800 bytes, not the 2500 it had: it changed after it was hashed. Where: {f.path}. What to do: "
        "write the chunk files again (publish again), and leave them unchanged while they are shared."
    )
    assert [m for m, _ in dav.app.log if m in ("PUT", "MOVE")] == [] and not list(dav.app.files.rglob("c.h5ad*"))


def test_an_upload_slice_that_ends_early_is_refused(tmp_path):
    """A chunk that ran out of bytes ended its body early, after a Content-Length that promised more."""

    path = tmp_path / "c.h5ad"
    path.write_bytes(bytes(range(50)))
    assert b"".join(_Slice(path, 10, 30)) == bytes(range(10, 40)) and len(_Slice(path, 10, 30)) == 30
    with pytest.raises(IntegrityError) as refused:
        list(_Slice(path, 40, 20))
    assert str(refused.value).startswith("c.h5ad ends before byte 60: it changed after it was hashed. Where: ")


# -- a folder a web server publishes ---------------------------------------------------------------------


def _folder_share(tmp_path):

    return HttpFolderShare(tmp_path / "www", "http://127.0.0.1:9/files")


def test_http_folder_without_a_sidecar_is_hashed(tmp_path):
    f = _chunk(tmp_path, "c.h5ad", 4000, 8)
    share = _folder_share(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "c.h5ad").write_bytes(Path(f.path).read_bytes())  # copied by hand: no .sha256
    assert share.has("c.h5ad", f.sha256, f.size) is True
    (same,) = share.share([f])
    assert same.to_dict() == {"name": "c.h5ad", "sha256": f.sha256, "size": 4000,
                              "link": "http://127.0.0.1:9/files/c.h5ad", "uploaded": False}
    other = bytearray(Path(f.path).read_bytes())
    other[100] ^= 0xFF
    (tmp_path / "www" / "c.h5ad").write_bytes(bytes(other))  # same size, other bytes, still no sidecar
    assert share.has("c.h5ad", f.sha256, f.size) is False
    assert share.share([f])[0].uploaded is True
    assert (tmp_path / "www" / "c.h5ad").read_bytes() == Path(f.path).read_bytes()
    assert (tmp_path / "www" / "c.h5ad.sha256").read_text() == f"{f.sha256}  c.h5ad\n"


@pytest.mark.parametrize("part", ["longer", "other-prefix"])
def test_http_folder_partial_copy_that_cannot_be_resumed_is_copied_again(tmp_path, part):
    f = _chunk(tmp_path, "c.h5ad", 4000, 9)
    (tmp_path / "www").mkdir()
    stale = b"x" * 5000 if part == "longer" else b"y" * 1000
    (tmp_path / "www" / "c.h5ad.part").write_bytes(stale)
    (shared,) = _folder_share(tmp_path).share([f])
    assert shared.uploaded and (tmp_path / "www" / "c.h5ad").read_bytes() == Path(f.path).read_bytes()
    assert sorted(p.name for p in (tmp_path / "www").iterdir()) == ["c.h5ad", "c.h5ad.sha256"]


def test_http_folder_refuses_a_source_that_changed_after_hashing(tmp_path):
    """The copy was renamed into place beside a sidecar naming a sha256 it did not have."""
    f = _chunk(tmp_path, "c.h5ad", 4000, 10)
    Path(f.path).write_bytes(b"z" * 4000)
    with pytest.raises(IntegrityError) as refused:
        _folder_share(tmp_path).share([f])
    assert str(refused.value).startswith("c.h5ad does not match its sha256: it changed after it was hashed. Where: ")
    assert list((tmp_path / "www").iterdir()) == []


# -- the downloader ----------------------------------------------------------------------------------

BODY = bytes(range(256)) * 4  # 1,024 bytes
BODY_SHA = hashlib.sha256(BODY).hexdigest()


class _Scripted:
    """A loopback HTTP server whose answers the test writes: ``routes[path](handler, range_start)``;
    every request is logged as ``(path, Range header)``."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.log: list[tuple[str, str]] = []
        self.release = threading.Event()

    def __enter__(self) -> _Scripted:

        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                rng = self.headers.get("Range", "")
                owner.log.append((self.path, rng))
                start = int(rng[len("bytes="):].rstrip("-")) if rng else 0
                owner.routes[self.path](self, start)

        self.httpd = serve_http(Handler)
        return self

    def __exit__(self, *exc) -> None:

        self.release.set()
        stop_http(self.httpd)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


def _partial(h, start: int, stop: int) -> None:
    h.send_response(206)
    h.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(BODY)}")
    h.send_header("Content-Length", str(stop - start))
    h.end_headers()
    h.wfile.write(BODY[start:stop])


@pytest.fixture
def scripted():
    with _Scripted() as server:
        yield server


def test_download_a_short_range_answer_is_resumed(scripted, tmp_path):
    """A 206 that holds less than the Content-Range total ends cleanly; the rest is asked for with Range."""

    scripted.routes["/short/x.h5ad"] = lambda h, start: _partial(h, start, min(start + 400, len(BODY)))
    got = fetch(f"{scripted.url}/short/x.h5ad", BODY_SHA, cache_dir=tmp_path, backoff=0)
    assert got == tmp_path / BODY_SHA / "x.h5ad" and got.read_bytes() == BODY
    assert scripted.log == [("/short/x.h5ad", ""), ("/short/x.h5ad", "bytes=400-"), ("/short/x.h5ad", "bytes=800-")]


def test_download_without_a_stated_size_is_checked_by_its_sha256(scripted, tmp_path):
    """A chunked answer states no size: nothing to compare the bytes with but the sha256."""

    def chunked(h, start):
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in (BODY[:300], BODY[300:]):
            h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    scripted.routes["/chunked/y.h5ad"] = chunked
    assert fetch(f"{scripted.url}/chunked/y.h5ad", BODY_SHA, cache_dir=tmp_path).read_bytes() == BODY
    assert scripted.log == [("/chunked/y.h5ad", "")]


def test_download_cut_by_the_deadline_keeps_what_arrived_and_resumes(scripted, tmp_path):
    """An answer without a length that stalls ends at the deadline like a finished one; the bytes kept
    are not taken for the file, and the next attempt asks for the rest."""

    def stall_then_rest(h, start):
        if start:
            return _partial(h, start, len(BODY))
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(BODY[:100])
        h.wfile.flush()
        h.close_connection = True
        scripted.release.wait(20)
        return None

    scripted.routes["/stall/z.h5ad"] = stall_then_rest
    got = fetch(f"{scripted.url}/stall/z.h5ad", BODY_SHA, cache_dir=tmp_path, deadline=1.5, backoff=0)
    assert got.read_bytes() == BODY
    assert scripted.log == [("/stall/z.h5ad", ""), ("/stall/z.h5ad", "bytes=100-")]


def test_download_a_partial_file_longer_than_the_remote_one_is_dropped(tmp_path):
    """HTTP 416 to the resume: the partial file is not a prefix of this one, so it starts again."""


    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "w.h5ad").write_bytes(BODY)
    (tmp_path / "cache" / BODY_SHA).mkdir(parents=True)
    (tmp_path / "cache" / BODY_SHA / "w.h5ad.part").write_bytes(b"q" * 2000)
    with FolderServer(tmp_path / "www") as folder:
        got = fetch(f"{folder.url}/w.h5ad", BODY_SHA, cache_dir=tmp_path / "cache", backoff=0)
        assert folder.app.log == [("GET", "/w.h5ad", "bytes=2000-"), ("GET", "/w.h5ad", "")]
    assert got.read_bytes() == BODY and sorted(p.name for p in got.parent.iterdir()) == ["w.h5ad"]


def test_file_links_missing_or_changed(tmp_path):

    missing = tmp_path / "gone.h5ad"
    with pytest.raises(RemoteError) as absent:
        fetch(missing.as_uri(), BODY_SHA, cache_dir=tmp_path / "cache", allow_file=True)
    assert str(absent.value) == (f"the linked file does not exist: {missing}. Where: {missing.as_uri()}. "
                                 "What to do: check the link.")
    changed = tmp_path / "changed.h5ad"
    changed.write_bytes(BODY[:-1])
    with pytest.raises(IntegrityError) as differs:
        fetch(changed.as_uri(), BODY_SHA, cache_dir=tmp_path / "cache", allow_file=True)
    assert str(differs.value) == (f"changed.h5ad does not match its sha256. Where: {changed.as_uri()}. "
                                  "What to do: the file changed after publishing; publish again.")
    assert list((tmp_path / "cache" / BODY_SHA).iterdir()) == []  # neither the copy nor its .part is kept


@pytest.fixture
def chunk_file(tmp_path) -> tuple[Path, str]:
    import anndata as ad

    a = ad.AnnData(np.arange(6, dtype=np.float32).reshape(3, 2))
    a.obs_names = ["c1", "c2", "c3"]
    a.var_names = ["G1", "G2"]
    path = tmp_path / "chunk-00000.h5ad"
    a.write_h5ad(path)
    return path, sha256_file(path)


def test_fetch_anndata_rows_and_links(chunk_file, tmp_path):

    path, sha = chunk_file
    link = path.as_uri()
    got = fetch_anndata(link, sha, cache_dir=tmp_path / "cache", allow_file=True)
    assert list(got.obs_names) == ["c1", "c2", "c3"] and got.X.tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ParameterError) as no_sha:
        fetch_anndata(link)
    assert str(no_sha.value) == ("a link needs its sha256. Where: sha256. "
                                 "What to do: pass sha256=... (the chunk_sha256 column).")
    with pytest.raises(ParameterError) as one:
        fetch_anndata({"share_link": link})
    assert str(one.value).startswith("the row has no chunk_sha256 column. Where: row. ")
    with pytest.raises(ParameterError) as both:
        fetch_anndata({"cell_id": "c1"})
    assert str(both.value).startswith("the row has no share_link or chunk_sha256 column. Where: row. ")


def test_fetch_anndata_takes_a_pandas_row(chunk_file, tmp_path):
    """``table.iloc[i]`` is a Series, not a Mapping: it was read as a link and refused with 'a link needs
    its sha256' (or, given one, failed inside urlsplit)."""

    path, sha = chunk_file
    table = pd.DataFrame({"cell_id": ["c2"], "share_link": [path.as_uri()], "chunk_sha256": [sha]})
    got = fetch_anndata(table.iloc[0], cache_dir=tmp_path / "cache", allow_file=True)
    assert list(got.obs_names) == ["c1", "c2", "c3"]
    with pytest.raises(ParameterError) as neither:
        fetch_anndata(42)
    assert str(neither.value) == ("fetch_anndata takes a dataset row or a share link, not a int. Where: row_or_url. "
                                  "What to do: pass a row of a dataset made by mmgene.hub.publish, or a link and its "
                                  "sha256.")


# -- hand-written tables ----------------------------------------------------------------------------


def _read_table(path: Path, **options):

    return read_text_table(path, what="manifest", error=CorpusError, missing_fix="pass a manifest",
                           unreadable_fix="save it as UTF-8 CSV", **options)


def test_table_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"path,dataset\na.h5ad,caf\xe9\n")
    with pytest.raises(CorpusError) as refused:
        _read_table(path)
    assert str(refused.value) == (
        "cannot read the manifest (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 23: "
        f"invalid continuation byte). Where: {path}. What to do: save it as UTF-8 CSV."
    )
    assert isinstance(refused.value.__cause__, UnicodeDecodeError)


def test_table_with_a_field_longer_than_the_csv_limit(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,dataset\n" + "a" * 131_073 + ",one\n")
    with pytest.raises(CorpusError) as refused:
        _read_table(path)
    assert str(refused.value) == (f"cannot read the manifest (Error: field larger than field limit (131072)). "
                                  f"Where: {path}. What to do: save it as UTF-8 CSV.")


def test_table_with_an_unclosed_quote_is_refused_by_pandas(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('path,dataset\na.h5ad,"one\nb.h5ad,two\n')
    with pytest.raises(CorpusError) as refused:
        _read_table(path)
    assert str(refused.value) == (
        "cannot read the manifest (ParserError: Error tokenizing data. C error: EOF inside string starting at row 1). "
        f"Where: {path}. What to do: save it as UTF-8 CSV."
    )


def test_table_with_a_separator_of_several_characters(tmp_path):
    """A multi-character separator (a regular expression to pandas) is not checked row by row here, and
    pandas only warned and dropped a row's extra fields: the table lost data silently."""
    path = tmp_path / "m.txt"
    path.write_text("path::dataset\na.h5ad::one\nb.h5ad::two::\n")  # a trailing separator: a blank extra field
    table = _read_table(path, sep="::", engine="python")
    assert table.to_dict("list") == {"path": ["a.h5ad", "b.h5ad"], "dataset": ["one", "two"]}
    path.write_text("path::dataset\na.h5ad::one\nb.h5ad::two::three\n")
    with pytest.raises(CorpusError) as refused:
        _read_table(path, sep="::", engine="python")
    assert str(refused.value) == (
        "a row of the manifest has more fields than its header has names ('path', 'dataset'), so its last fields "
        f"would be dropped. Where: {path}. What to do: give every row the header's 2 fields."
    )


# -- the text model's similarity score -----------------------------------------------------------------


def test_text_model_scores_map_the_best_cosine_onto_0_to_1(monkeypatch):
    """Cosine of the best query text with each ontology name (filler words left out), 0.4..1 mapped to 0..1."""
    import mmgene.text.encoders as encoders
    from mmgene.harmonise.similarity import TEXT_MODEL_FLOOR, text_model_scores
    from mmgene.harmonise.vocabulary import Name, Vocabulary

    names = [Name("CL:1", "alpha cell", True, ("alpha", "cell"), "alpha"),
             Name("CL:2", "beta cell", True, ("beta", "cell"), "beta"),
             Name("CL:3", "gamma cell", False, ("gamma", "cell"), "gamma")]
    vocab = Vocabulary("test", {"CL:1": "alpha cell", "CL:2": "beta cell", "CL:3": "gamma cell"}, {}, names, {},
                       frozenset({"alpha", "beta", "gamma", "cell"}), None)
    vectors = {"alpha": [1.0, 0.0], "beta": [0.0, 1.0], "gamma": [0.6, 0.8], "q1": [1.0, 0.0], "q2": [0.8, 0.6]}
    asked: list[tuple] = []

    class Encoder:
        def encode(self, texts):
            asked.append(tuple(texts))
            return np.array([vectors[t] for t in texts], dtype=np.float32)

    monkeypatch.setattr(encoders, "text_encoder", lambda spec: asked.append(spec) or Encoder())
    scores = text_model_scores(vocab, ["q1", "q2"])
    assert asked == ["minilm", ("alpha", "beta", "gamma"), ("q1", "q2")]
    # best cosines 1.0 (q1), 0.6 (q2) and 0.96 (q2); a cosine at or below the floor is 0
    expected = [(c - TEXT_MODEL_FLOOR) / (1 - TEXT_MODEL_FLOOR) for c in (1.0, 0.6, 0.96)]
    assert scores.shape == (3,) and scores.tolist() == pytest.approx(expected, abs=1e-6)
    assert text_model_scores(vocab, ["beta"]).tolist() == pytest.approx([0.0, 1.0, 0.6666667], abs=1e-6)


# -- Census rows read on demand ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def soma_uri(tmp_path_factory) -> str:
    """A 12-cell x 5-gene SOMA experiment with Census's obs and var columns."""
    pytest.importorskip("tiledbsoma")
    import anndata as ad
    import scipy.sparse as sp
    import tiledbsoma.io

    counts = np.arange(60, dtype=np.float32).reshape(12, 5) % 7
    obs = pd.DataFrame({"dataset_id": "d1", "assay": "10x", "cell_type": ["B cell", "T cell", "NK cell"] * 4,
                        "cell_type_ontology_term_id": ["CL:0000236", "CL:0000084", "CL:0000623"] * 4,
                        "tissue_general": "blood", "donor_id": "x"}, index=[f"cell{i}" for i in range(12)])
    var = pd.DataFrame({"feature_name": [f"G{i}" for i in range(5)]}, index=[f"G{i}" for i in range(5)])
    uri = str(tmp_path_factory.mktemp("soma") / "experiment")
    tiledbsoma.io.from_anndata(uri, ad.AnnData(sp.csr_matrix(counts), obs=obs, var=var), measurement_name="RNA")
    return uri


def test_soma_rows_shape_names_len_and_repr(soma_uri):

    query = CensusQuery("cell_type != 'NK cell'", uri=soma_uri)
    rows = SomaRows(query)
    try:
        assert rows.X.shape == rows.shape == (8, 5) and len(rows) == 8
        assert list(rows.var_names) == ["G0", "G1", "G2", "G3", "G4"]
        assert list(rows.obs_names) == [f"cell{i}" for i in (0, 1, 3, 4, 6, 7, 9, 10)]
        assert repr(rows) == f"SomaRows(8 cells x 5 genes of SOMA experiment {soma_uri}, obs_value_filter \"cell_type != 'NK cell'\")"
        whole = rows[0:3, :]  # all genes, as AnnData's own [rows, :]
        assert whole.shape == (3, 5) and (whole.X != rows[0:3].X).nnz == 0
        assert (rows.X[1:2, :] != rows[1:2].X).nnz == 0
        assert rows[(slice(2, 4),)].n_obs == 2
    finally:
        rows.close()


@pytest.mark.parametrize("key", [3, slice(0, 8, 2), slice(None, None, -1), [0, 1]])
def test_soma_rows_read_only_consecutive_rows(soma_uri, key):

    rows = SomaRows(CensusQuery("", uri=soma_uri))
    try:
        with pytest.raises(ParameterError) as refused:
            rows[key]
        assert str(refused.value) == ("a SOMA source reads consecutive rows. Where: SomaRows[...]. "
                                      "What to do: slice it as rows[start:stop].")
    finally:
        rows.close()


@pytest.mark.parametrize("genes", [slice(0, 2), [0, 3], "G1", slice(None, None, 2)])
def test_soma_rows_refuse_a_gene_selection_they_would_ignore(soma_uri, genes):
    """``rows[0:3, 0:2]`` gave all five genes: the gene part of the key was dropped without a word."""

    rows = SomaRows(CensusQuery("", uri=soma_uri))
    try:
        for read in (lambda: rows[0:3, genes], lambda: rows.X[0:3, genes]):
            with pytest.raises(ParameterError) as refused:
                read()
            assert str(refused.value) == (
                "a SOMA source reads whole rows (every gene). Where: SomaRows[...]. "
                "What to do: select genes on what it returns, e.g. rows[a:b][:, genes].")
        with pytest.raises(ParameterError):
            rows[0:3, :, 0]
    finally:
        rows.close()


@pytest.mark.parametrize(("value_filter", "match"), [("celltype == 'B cell'", "the query failed"),
                                                      ("cell_type == 'b cell'", "no cell matches the query")])
def test_soma_rows_that_fail_to_start_close_their_experiment(soma_uri, monkeypatch, value_filter, match):
    import mmgene.corpus.soma_rows as soma_rows

    opened = []
    real = soma_rows.open_source
    monkeypatch.setattr(soma_rows, "open_source", lambda query, census=None: opened.append(real(query, census)) or opened[-1])
    with pytest.raises(CorpusError, match=match):
        soma_rows.SomaRows(CensusQuery(value_filter, uri=soma_uri))
    assert len(opened) == 1 and opened[0].experiment.closed


# -- Geneformer's dictionaries --------------------------------------------------------------------------


def _s(data: bytes) -> bytes:
    """SHORT_BINSTRING: an 8-bit string as Python 2 pickled its ``str``."""
    return b"U" + bytes([len(data)]) + data


_I8 = (b"cnumpy\ndtype\n" + _s(b"i8") + b"K\x00K\x01\x87R"
       + b"(K\x03" + _s(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
_SCALAR = b"cnumpy.core.multiarray\nscalar\n"


def _py2_pickle(items: dict[str, bytes]) -> bytes:
    """A protocol-2 dict pickle of ``key -> pickled value`` with 8-bit string keys, as Python 2 wrote it."""
    return b"\x80\x02}(" + b"".join(_s(k.encode()) + v for k, v in items.items()) + b"u."


def _int64(value: int, data: bytes | None = None) -> bytes:
    return _SCALAR + _I8 + _s(struct.pack("<q", value) if data is None else data) + b"\x86R"


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def test_python2_pickle_with_numpy_scalars_loads(tmp_path):
    """Python 2 stored a scalar's bytes as an 8-bit string; read as ASCII, a byte over 127 (id 200) failed
    with UnicodeDecodeError and the file was called 'not a valid dictionary pickle'."""

    path = _write(tmp_path / "token_dictionary.pkl", _py2_pickle({"<pad>": _int64(0), "ENSG1": _int64(200)}))
    out = safe_load_pickle(path)
    assert out == {"<pad>": 0, "ENSG1": 200} and type(out["ENSG1"]) is np.int64


def test_pickles_that_name_more_than_plain_data_are_unsafe(tmp_path):
    """A text-dtype scalar or another codec than latin-1 was an InputFileError telling the user to download
    the file again; it is the refusal of something that is not plain data."""

    text = _write(tmp_path / "text.pkl", pickle.dumps({"a": np.str_("x")}))
    with pytest.raises(UnsafePickleError) as dtype:
        safe_load_pickle(text)
    assert str(dtype.value).startswith(
        "refused to load text.pkl: the pickle asks for \"numpy.dtype('U1')\", which is not plain data")
    codec = _write(tmp_path / "codec.pkl", b"\x80\x02}(" + _s(b"a") + b"c_codecs\nencode\n" + _s(b"x") + _s(b"zlib")
                   + b"\x86Ru.")
    with pytest.raises(UnsafePickleError) as encode:
        safe_load_pickle(codec)
    assert "asks for \"_codecs.encode with the codec 'zlib'\", which is not plain data" in str(encode.value)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (_py2_pickle({"a": _SCALAR + _s(b"i8") + _s(b"\x01" * 8) + b"\x86R"}),
         "UnpicklingError: numpy scalar of dtype 'i8' is not a plain number"),
        (_py2_pickle({"a": _int64(0, b"\x01\x02\x03")}), "UnpicklingError: malformed numpy scalar"),
        (b"\x80\x02}(" + _s(b"a") + b"c_codecs\nencode\nK\x05" + _s(b"latin1") + b"\x86Ru.",
         "UnpicklingError: only latin-1 text may be encoded"),
    ],
)
def test_malformed_scalars_are_invalid_pickles(tmp_path, raw, problem):

    path = _write(tmp_path / "bad.pkl", raw)
    with pytest.raises(InputFileError) as refused:
        safe_load_pickle(path)
    assert not isinstance(refused.value, UnsafePickleError)
    assert str(refused.value) == (f"bad.pkl is not a valid dictionary pickle ({problem}). Where: {path}. "
                                  "What to do: download the file again (it may be truncated or not a pickle).")


def test_a_dictionary_file_that_cannot_be_read(tmp_path):

    with pytest.raises(InputFileError) as refused:
        safe_load_pickle(tmp_path)
    assert str(refused.value) == (f"cannot read {tmp_path.name} (Is a directory). Where: {tmp_path}. "
                                  "What to do: check the path and its permissions.")


def _dictionaries(folder: Path, tokens, medians, names=None, version: str = "V1") -> Path:
    """Write the dictionaries under their ``version`` names in ``folder``."""
    suffix = "gc30M" if version == "V1" else "gc104M"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"token_dictionary_{suffix}.pkl").write_bytes(pickle.dumps(tokens))
    (folder / f"gene_median_dictionary_{suffix}.pkl").write_bytes(pickle.dumps(medians))
    if names is not None:
        (folder / f"gene_name_id_dict_{suffix}.pkl").write_bytes(pickle.dumps(names))
    return folder


V1_TOKENS = {"<pad>": 0, "<mask>": 1, "ENSG1": 2, "ENSG2": 3}
MEDIANS = {"ENSG1": 1.5, "ENSG2": 2.0}


@pytest.mark.parametrize(
    ("tokens", "medians", "names", "problem"),
    [
        (["<pad>"], MEDIANS, None, "token_dictionary_gc30M.pkl holds a list, not a dictionary"),
        ({**V1_TOKENS, 7: 4}, MEDIANS, None, "token_dictionary_gc30M.pkl has a non-text key 7"),
        (V1_TOKENS, {"ENSG1": 0.0}, None, "gene_median_dictionary_gc30M.pkl: median of 'ENSG1' is 0.0, not a positive number"),
        (V1_TOKENS, {"ENSG1": float("nan")}, None,
         "gene_median_dictionary_gc30M.pkl: median of 'ENSG1' is nan, not a positive number"),
        # a bool passed as the median 1.0; an int too large for a float raised a raw OverflowError
        (V1_TOKENS, {"ENSG1": True}, None, "gene_median_dictionary_gc30M.pkl: median of 'ENSG1' is True, not a positive number"),
        (V1_TOKENS, {"ENSG1": 10**400}, None,
         "gene_median_dictionary_gc30M.pkl: median of 'ENSG1' is 100000000000000000...0000000000000000000, "
         "not a positive number"),
        (V1_TOKENS, MEDIANS, {"TP53": 7}, "gene_name_id_dict_gc30M.pkl: value of 'TP53' is 7, not text"),
        ({"<mask>": 0, "ENSG1": 1}, MEDIANS, None, "the token dictionary has no '<pad>' token"),
        # an id past int64 raised a raw OverflowError in numpy
        ({**V1_TOKENS, "ENSG3": 2**70}, MEDIANS, None, "1 token ids lie outside 0..4 ('ENSG3=1180591620717411303424')"),
    ],
)
def test_dictionaries_with_values_of_the_wrong_kind(tmp_path, tokens, medians, names, problem):

    folder = _dictionaries(tmp_path / "dicts", tokens, medians, names)
    with pytest.raises(InputFileError) as refused:
        load_dictionaries(folder)
    assert str(refused.value).startswith(problem + ". Where: ")


def test_dictionaries_of_the_other_generation_or_a_file_as_the_folder(tmp_path):

    v1_as_v2 = _dictionaries(tmp_path / "v1", V1_TOKENS, MEDIANS, version="V2")
    with pytest.raises(ParameterError) as v2:
        load_dictionaries(v1_as_v2, "V2")
    assert str(v2.value) == (f"these are V1 dictionaries (no <cls>/<eos> tokens) but version='V2' was asked. "
                             f"Where: {v1_as_v2}. What to do: pass version='V1' or the V2 (gc104M) files.")
    v2_as_v1 = _dictionaries(tmp_path / "v2", {**V1_TOKENS, "<cls>": 4, "<eos>": 5}, MEDIANS)
    with pytest.raises(ParameterError) as v1:
        load_dictionaries(v2_as_v1, "V1")
    assert str(v1.value) == (f"these are V2 dictionaries (they have <cls>/<eos> tokens) but version='V1' was asked. "
                             f"Where: {v2_as_v1}. What to do: pass version='V2' or the V1 (gc30M) files.")
    loaded = load_dictionaries(_dictionaries(tmp_path / "ok", V1_TOKENS, MEDIANS, {"TP53": "ENSG1"}))
    assert loaded.token_ids == V1_TOKENS and loaded.medians == MEDIANS and loaded.name_to_id == {"TP53": "ENSG1"}
    a_file = v1_as_v2 / "token_dictionary_gc104M.pkl"
    with pytest.raises(InputFileError) as not_folder:
        load_dictionaries(a_file)
    assert str(not_folder.value) == (f"{a_file} is a file, not a folder. Where: {a_file}. "
                                     "What to do: pass the folder that holds the .pkl dictionaries.")


def test_dictionaries_from_a_hub_repository_that_does_not_exist(hub):

    with pytest.raises(RemoteError) as refused:
        load_dictionaries(f"hf://{hub.user}/no-such-repo", "V1")
    text = str(refused.value)
    assert text.startswith("could not download geneformer/gene_dictionaries_30m/token_dictionary_gc30M.pkl from the hub "
                           f"repository {hub.user}/no-such-repo (RepositoryNotFoundError: ")
    assert text.endswith(f"Where: {hub.user}/no-such-repo@main. What to do: check the network and the repository id, "
                         "or pass a local folder holding the .pkl files.")
    assert hub.token not in text
