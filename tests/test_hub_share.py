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


# -- chunks stored on the Hub: hf_hub_download, verified once -------------------------------------
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback Hub that this process's huggingface_hub and mmgene's downloader both talk to."""
    from servers.hub_server import hub_for_this_process

    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", server.token)
        yield server


def _hub_chunk(hub, tmp_path: Path, size: int = 30_000) -> tuple[ChunkFile, str]:
    """A chunk file shared into a private dataset repository of the loopback Hub, and its link."""
    from mmgene.hub.share import HubShare

    f = _file(tmp_path, "chunk-00000.h5ad", size, 11)
    (shared,) = HubShare(f"{hub.user}/cells").share([f])
    return f, shared.link


def _count_hashing(monkeypatch) -> list[Path]:
    import mmgene.hub.hub_files as hub_files

    hashed: list[Path] = []
    real = hub_files.sha256_file

    def counting(path, *args, **kwargs):
        hashed.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hub_files, "sha256_file", counting)
    return hashed


def _resolve_gets(hub) -> list[str]:
    return [raw for method, raw, _ in hub.app.log if method == "GET" and "/resolve/" in raw]


def test_hub_chunks_download_through_hf_hub_download_and_are_hashed_once(hub, tmp_path, monkeypatch):
    import json

    f, link = _hub_chunk(hub, tmp_path)
    assert link == f"{hub.url}/datasets/{hub.user}/cells/resolve/main/chunks/chunk-00000.h5ad"
    hashed = _count_hashing(monkeypatch)
    cache = tmp_path / "cache"
    path = fetch(link, f.sha256, cache_dir=cache)
    assert path == cache / f.sha256 / "chunks" / "chunk-00000.h5ad"
    assert path.read_bytes() == Path(f.path).read_bytes()
    assert hashed == [path] and len(_resolve_gets(hub)) == 1
    stamp = json.loads(path.with_name(path.name + ".verified").read_text())
    commit = hub.app.repos[("dataset", f"{hub.user}/cells")].branches["main"]
    assert stamp["sha256"] == f.sha256 and stamp["etag"] == f.sha256 and stamp["commit"] == commit  # LFS: the etag is the sha256
    assert (cache / f.sha256 / ".cache" / "huggingface").is_dir()  # huggingface_hub's own record (etag, commit, resume)
    # a second use: no request at all, and the verified file is not hashed again
    n = len(hub.app.log)
    assert fetch(link, f.sha256, cache_dir=cache) == path
    assert hashed == [path] and len(hub.app.log) == n
    # a file that changed is hashed again; one that no longer matches is fetched again
    with open(path, "ab") as fh:
        fh.write(b"x")
    assert fetch(link, f.sha256, cache_dir=cache) == path
    assert sha256_file(path) == f.sha256 and len(hashed) == 3 and len(_resolve_gets(hub)) == 2



def test_hub_chunk_with_another_sha256_is_refused_before_downloading(hub, tmp_path, monkeypatch):
    from mmgene.hub.hub_files import STAMP_SUFFIX

    f, link = _hub_chunk(hub, tmp_path)
    wrong = "ab" * 32
    with pytest.raises(IntegrityError, match=f"has sha256 {f.sha256}, not {wrong}"):
        fetch(link, wrong, cache_dir=tmp_path / "cache")
    assert _resolve_gets(hub) == [] and not list((tmp_path / "cache").rglob("chunk-00000.h5ad*"))
    # offline, a cached file that lost its stamp is hashed once and used; one that is not cached is an error
    path = fetch(link, f.sha256, cache_dir=tmp_path / "cache")
    path.with_name(path.name + STAMP_SUFFIX).unlink()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    n, hashed = len(hub.app.log), _count_hashing(monkeypatch)
    assert fetch(link, f.sha256, cache_dir=tmp_path / "cache") == path and hashed == [path] and len(hub.app.log) == n
    assert path.with_name(path.name + STAMP_SUFFIX).is_file()
    with pytest.raises(RemoteError, match="not cached") as err:
        fetch(link, f.sha256, cache_dir=tmp_path / "other-cache")
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_hub_chunk_errors_name_no_token(hub, tmp_path, monkeypatch):
    f, link = _hub_chunk(hub, tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_for_this_hub_31337")
    with pytest.raises(RemoteError, match="not found or is private") as err:
        fetch(link, f.sha256, cache_dir=tmp_path / "cache")
    assert "HF_TOKEN" in str(err.value) and "hf_wrong_token" not in str(err.value) and hub.token not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    missing = link.replace("chunk-00000", "chunk-00009")
    with pytest.raises(RemoteError, match="not in the Hub repository"):
        fetch(missing, f.sha256, cache_dir=tmp_path / "cache")
    with pytest.raises(ParameterError, match="keeps its path"):
        fetch(link, f.sha256, cache_dir=tmp_path / "cache", filename="mine.h5ad")
    assert not (tmp_path / "cache").exists()


def test_hub_links_are_parsed_and_unsafe_paths_refused(tmp_path, monkeypatch):
    from mmgene.hub.hub_files import HubFile, hub_file

    end = "https://hub.example.org"
    url = f"{end}/datasets/me/cells/resolve/refs%2Fpr%2F1/chunks/chunk%2000.h5ad"
    assert hub_file(url, end) == HubFile(url, end, "dataset", "me/cells", "refs/pr/1", "chunks/chunk 00.h5ad")
    assert hub_file(f"{end}/me/model/resolve/main/w.bin", end).repo_type == "model"
    assert hub_file(f"{end}/spaces/me/app/resolve/main/x.h5ad", end).repo_type == "space"
    for other in (f"{end}/datasets/me/cells/blob/main/x.h5ad", "https://other.example.org/datasets/me/cells/resolve/main/x.h5ad",
                  "http://hub.example.org/datasets/me/cells/resolve/main/x.h5ad", f"{end}:8443/datasets/me/cells/resolve/main/x.h5ad",
                  f"{end}/files/x.h5ad"):
        assert hub_file(other, end) is None, other
    monkeypatch.setenv("HF_ENDPOINT", end)
    for bad in ("chunks/%2E%2E/%2E%2E/evil", "..%2F..%2Fevil", "chunks/..%5Cevil", "a/b%3Aevil", "../../evil", "x%00y"):
        with pytest.raises(ParameterError, match="could leave the cache folder"):
            fetch(f"{end}/datasets/me/cells/resolve/main/{bad}", "0" * 64, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_size_the_webdav_server_does_not_state_means_upload_again(dav, tmp_path, monkeypatch):
    """A HEAD whose Content-Length is not a number (a proxy's, say) is no proof the file is there."""
    f = _file(tmp_path, "c.h5ad", 300, 6)
    share = make_share("webdav", url=dav.dav_url, folder="ds", public_url=dav.url + "/public")
    (first,) = share.share([f])
    assert first.uploaded and share.has(f.name, f.sha256, f.size)
    real = share._request

    def garbled(method, url, **kw):
        response = real(method, url, **kw)
        if method == "HEAD":
            response.headers["Content-Length"] = "unknown"
        return response

    monkeypatch.setattr(share, "_request", garbled)
    assert share.has(f.name, f.sha256, f.size) is False  # was a raw ValueError
    (again,) = share.share([f])
    assert again.uploaded and (dav.app.files / "ds" / "c.h5ad").read_bytes() == Path(f.path).read_bytes()
