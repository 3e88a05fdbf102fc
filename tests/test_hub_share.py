"""Share backends and the downloader against real servers on 127.0.0.1 (wsgidav + Nextcloud OCS, HTTP folder)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mmgene.errors import IntegrityError, ParameterError, RemoteError
from mmgene.hub.chunks import ChunkFile, sha256_file
from mmgene.hub.download import fetch
from mmgene.hub.share import HttpFolderShare, NextcloudShare, WebDavShare, make_share
from servers.http_folder_server import FolderServer
from servers.webdav_server import WebDavServer

PASSWORD = "nc-secret-pw-4711"


def _file(tmp_path: Path, name: str, size: int, seed: int = 0) -> ChunkFile:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:size])
    return ChunkFile(0, name, path, 0, 1, sha256_file(path), size, "h5ad", "0" * 64)


@pytest.fixture
def dav(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGENE_SHARE_USER", "alice")
    monkeypatch.setenv("MMGENE_SHARE_PASSWORD", PASSWORD)
    with WebDavServer(tmp_path / "dav", "alice", PASSWORD) as server:
        yield server


@pytest.fixture
def folder(tmp_path):
    with FolderServer(tmp_path / "www") as server:
        yield server


def test_nextcloud_upload_link_download_and_skip(dav, tmp_path):
    files = [_file(tmp_path, "chunk-00000.h5ad", 5000, 1), _file(tmp_path, "chunk-00001.h5ad", 300, 2)]
    share = NextcloudShare(dav.dav_url, folder="pub/data", chunk_limit=4096, chunk_bytes=1000)
    shared = share.share(files)
    assert [s.uploaded for s in shared] == [True, True]
    for f, s in zip(files, shared):
        assert s.link.startswith(dav.url + "/index.php/s/") and s.link.endswith("/download")
        assert PASSWORD not in s.link and "alice" not in s.link
        assert (dav.app.files / "pub/data" / f.name).read_bytes() == Path(f.path).read_bytes()
        got = fetch(s.link, f.sha256, cache_dir=tmp_path / "cache")
        assert got.read_bytes() == Path(f.path).read_bytes()
    # the big file went through chunked upload: 5 chunks PUT under uploads/, then MOVE .file
    puts = [p for m, p in dav.app.log if m == "PUT" and "/remote.php/dav/uploads/alice/" in p]
    assert len(puts) == 5
    assert ("MOVE", f"/remote.php/dav/uploads/alice/mmgene-{files[0].sha256[:32]}/.file") in dav.app.log
    assert not any(dav.app.uploads.iterdir())  # upload folder removed after assembly
    # sharing again uploads nothing and reuses the same public links
    n_puts = sum(1 for m, _ in dav.app.log if m == "PUT")
    again = NextcloudShare(dav.dav_url, folder="pub/data", chunk_limit=4096, chunk_bytes=1000).share(files)
    assert [s.uploaded for s in again] == [False, False]
    assert [s.link for s in again] == [s.link for s in shared]
    assert sum(1 for m, _ in dav.app.log if m == "PUT") == n_puts
    assert len(dav.app.shares) == 2


def test_nextcloud_chunked_upload_resumes(dav, tmp_path):
    f = _file(tmp_path, "big.h5ad", 3500, 3)
    data = Path(f.path).read_bytes()
    # an earlier, interrupted upload left the first two chunks (and a short third one)
    folder = dav.app.uploads / f"mmgene-{f.sha256[:32]}"
    folder.mkdir(parents=True)
    (folder / "00001").write_bytes(data[:1000])
    (folder / "00002").write_bytes(data[1000:2000])
    (folder / "00003").write_bytes(data[2000:2100])
    NextcloudShare(dav.dav_url, folder="x", chunk_limit=1024, chunk_bytes=1000).share([f])
    puts = sorted(p.rsplit("/", 1)[1] for m, p in dav.app.log if m == "PUT" and "/uploads/" in p)
    assert puts == ["00003", "00004"]
    assert (dav.app.files / "x" / "big.h5ad").read_bytes() == data


def test_webdav_share_public_links_and_sidecar(dav, tmp_path):
    f = _file(tmp_path, "c.h5ad", 777, 4)
    share = make_share("webdav", url=dav.dav_url, folder="ds", public_url=dav.url + "/public")
    (s,) = share.share([f])
    assert s.link == f"{dav.url}/public/ds/c.h5ad"
    assert (dav.app.files / "ds" / "c.h5ad.sha256").read_text().split()[0] == f.sha256
    assert fetch(s.link, f.sha256, cache_dir=tmp_path / "cache").read_bytes() == Path(f.path).read_bytes()
    # a changed file with the same name is uploaded again
    g = _file(tmp_path, "c.h5ad", 777, 5)
    (s2,) = share.share([g])
    assert s2.uploaded and (dav.app.files / "ds" / "c.h5ad").read_bytes() == Path(g.path).read_bytes()


def test_wrong_password_error_names_no_secret(tmp_path, monkeypatch):
    with WebDavServer(tmp_path / "dav", "alice", PASSWORD) as server:
        monkeypatch.setenv("MMGENE_SHARE_USER", "alice")
        monkeypatch.setenv("MMGENE_SHARE_PASSWORD", "wrong-pass-31337")
        share = NextcloudShare(server.dav_url, retries=0)
        with pytest.raises(RemoteError) as err:
            share.share([_file(tmp_path, "a.h5ad", 10)])
        assert "wrong-pass-31337" not in str(err.value) and "401" in str(err.value)
        assert "MMGENE_SHARE_PASSWORD" in str(err.value)


def test_credentials_in_url_are_refused_without_echo(monkeypatch):
    monkeypatch.setenv("MMGENE_SHARE_USER", "alice")
    monkeypatch.setenv("MMGENE_SHARE_PASSWORD", PASSWORD)
    with pytest.raises(ParameterError) as err:
        WebDavShare("https://alice:hunter2-secret@cloud.example.org/remote.php/dav/files/alice")
    assert "hunter2-secret" not in str(err.value)
    monkeypatch.delenv("MMGENE_SHARE_PASSWORD")
    with pytest.raises(ParameterError, match="MMGENE_SHARE_PASSWORD"):
        WebDavShare("https://cloud.example.org/remote.php/dav/files/alice")
    monkeypatch.setenv("MMGENE_SHARE_PASSWORD", PASSWORD)
    with pytest.raises(ParameterError, match="WebDAV root"):
        NextcloudShare("https://cloud.example.org/dav")
    with pytest.raises(ParameterError, match="unknown share backend"):
        make_share("ftp", url="https://x")


def test_http_folder_share_skip_and_resume(folder, tmp_path):
    f = _file(tmp_path, "chunk-00000.h5ad", 4000, 6)
    share = HttpFolderShare(folder.app.root, folder.url)
    # a partial copy from an interrupted run is completed, not restarted
    (folder.app.root).mkdir(parents=True, exist_ok=True)
    (folder.app.root / "chunk-00000.h5ad.part").write_bytes(Path(f.path).read_bytes()[:1500])
    (s,) = share.share([f])
    assert s.uploaded and s.link == f"{folder.url}/chunk-00000.h5ad"
    assert sha256_file(folder.app.root / "chunk-00000.h5ad") == f.sha256
    (s2,) = share.share([f])
    assert not s2.uploaded


def test_fetch_refetches_truncated_and_corrupted_downloads(folder, tmp_path):
    f = _file(tmp_path, "d.h5ad", 200_000, 7)
    HttpFolderShare(folder.app.root, folder.url).share([f])
    url = f"{folder.url}/d.h5ad"
    folder.faults["d.h5ad"] = ["truncate", "corrupt", "retry-after"]
    path = fetch(url, f.sha256, cache_dir=tmp_path / "cache", backoff=0.01)
    assert path.read_bytes() == Path(f.path).read_bytes()
    ranges = [r for m, p, r in folder.app.log if p == "/d.h5ad"]
    # 1: truncated -> 2: resumed with Range from the received half, but corrupted -> deleted
    # 3: 503 Retry-After -> 4: full clean download
    assert ranges[0] == "" and ranges[2:] == ["", ""]
    assert ranges[1].startswith("bytes=") and 0 < int(ranges[1][6:-1]) < 200_000
    assert not path.with_name(path.name + ".part").exists()
    # the cache is used while intact ...
    n = len(folder.app.log)
    assert fetch(url, f.sha256, cache_dir=tmp_path / "cache") == path and len(folder.app.log) == n
    # ... and a damaged cached file (truncated) is detected and fetched again, never returned
    path.write_bytes(path.read_bytes()[:1000])
    assert sha256_file(fetch(url, f.sha256, cache_dir=tmp_path / "cache")) == f.sha256
    assert len(folder.app.log) == n + 1


def test_fetch_gives_up_on_persistent_corruption_and_bad_links(folder, tmp_path):
    f = _file(tmp_path, "e.h5ad", 5000, 8)
    HttpFolderShare(folder.app.root, folder.url).share([f])
    folder.faults["e.h5ad"] = ["corrupt"] * 3
    with pytest.raises(IntegrityError, match="sha256"):
        fetch(f"{folder.url}/e.h5ad", f.sha256, cache_dir=tmp_path / "cache", retries=2, backoff=0)
    assert not list((tmp_path / "cache").rglob("e.h5ad*"))  # nothing corrupted is left behind
    with pytest.raises(RemoteError, match="HTTP 404"):
        fetch(f"{folder.url}/missing.h5ad", f.sha256, cache_dir=tmp_path / "cache")
    with pytest.raises(ParameterError, match="sha256"):
        fetch(f"{folder.url}/e.h5ad", "abc", cache_dir=tmp_path / "cache")
    with pytest.raises(ParameterError, match="scheme"):
        fetch("ftp://example.org/e.h5ad", f.sha256, cache_dir=tmp_path / "cache")


def test_hub_token_is_sent_only_to_the_hub_host(monkeypatch):
    from mmgene.hub.download import _auth_headers

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_only_for_the_hub_0000")
    assert _auth_headers("http://127.0.0.1:9/datasets/a/b/resolve/main/x.h5ad") == {"Authorization": "Bearer hf_only_for_the_hub_0000"}
    assert _auth_headers("http://127.0.0.1:10/x.h5ad") == {}
    assert _auth_headers("https://cloud.example.org/index.php/s/abc/download") == {}
    assert os.environ["HF_TOKEN"] not in "https://cloud.example.org/index.php/s/abc/download"


def test_uploads_retry_on_503_with_retry_after(dav, tmp_path):
    f = _file(tmp_path, "r.h5ad", 2048, 9)
    dav.app.put_faults = 2
    (s,) = WebDavShare(dav.dav_url, folder="retry", public_url=dav.url + "/public", backoff=30).share([f])
    puts = [p for m, p in dav.app.log if m == "PUT" and p.endswith("/r.h5ad")]
    assert len(puts) == 3 and dav.app.put_faults == 0  # Retry-After: 0 was honoured (no 30 s backoff)
    assert (dav.app.files / "retry" / "r.h5ad").read_bytes() == Path(f.path).read_bytes()
    with pytest.raises(RemoteError, match="after 2 attempts"):
        dav.app.put_faults = 5
        WebDavShare(dav.dav_url, folder="retry2", retries=1, backoff=0).share([_file(tmp_path, "q.h5ad", 10, 10)])
