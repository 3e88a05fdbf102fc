"""A Hugging Face Hub stand-in on 127.0.0.1 for tests (no internet).

Speaks the subset of the Hub's HTTP API that ``huggingface_hub`` 2.x and ``datasets`` use to create
repositories, upload (preupload, git-LFS batch + PUT + verify, NDJSON commit) and read (repo info,
tree, paths-info, resolve with ``X-Repo-Commit``/``ETag``/``Range``). Clients must run with
``HF_HUB_DISABLE_XET=1`` (xet uploads have no HTTP fallback). File contents are stored
content-addressed in a temporary folder; repositories, commits and branches live in memory.

Private repositories answer 401 + ``X-Error-Code: RepoNotFound`` without the server's token, like the
real Hub; every write needs the token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote

from .loopback import CherootLoopback

LFS_SUFFIXES = (".parquet", ".h5ad", ".zip", ".arrow", ".bin", ".safetensors", ".h5", ".npy", ".pt", ".pkl", ".gz")
LFS_MIN_SIZE = 10 * 1024 * 1024
TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class Entry:
    """One file of a commit: its content (sha256, size), whether it is LFS, and its git blob id if not."""

    sha256: str
    size: int
    lfs: bool
    regular_oid: str = ""

    @property
    def git_oid(self) -> str:
        return git_blob_oid(lfs_pointer(self.sha256, self.size)) if self.lfs else self.regular_oid

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.regular_oid


@dataclass
class Commit:
    oid: str
    title: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        if rev in self.branches:
            return self.commits[self.branches[rev]]
        return self.commits.get(rev)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_STATUS = {200: "OK", 201: "Created", 206: "Partial Content", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
           416: "Range Not Satisfiable", 422: "Unprocessable Entity"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubApp:
    """The WSGI application: routes, repository state and blob storage."""

    def __init__(self, root: Path, token: str, user: str) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self.base_url = ""
        self.log: list[tuple[str, str, int]] = []
        self._counter = 0

    # ---- storage -------------------------------------------------------------------------
    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blobs / sha
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def _has_blob(self, sha: str, size: int) -> bool:
        path = self.blobs / sha
        return path.exists() and path.stat().st_size == size

    def blob_path(self, sha: str) -> Path:
        return self.blobs / sha

    def _new_commit(self, repo: Repo, files: dict[str, Entry], title: str) -> Commit:
        self._counter += 1
        seed = json.dumps([repo.repo_id, self._counter, title, sorted((p, e.sha256) for p, e in files.items())])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), title, _now(), files)
        repo.commits[commit.oid] = commit
        return commit

    # ---- helpers -------------------------------------------------------------------------
    def _authorized(self, environ) -> bool:
        return environ.get("HTTP_AUTHORIZATION", "") == f"Bearer {self.token}"

    def _repo(self, environ, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        authorized = self._authorized(environ)
        if write and not authorized:
            raise HttpError(401, "Invalid credentials in Authorization header", "RepoNotFound" if repo is None else None)
        if repo is None or (repo.private and not authorized):
            status = 401 if not authorized else 404
            raise HttpError(status, f"Repository Not Found for url: {repo_type}s/{repo_id}.", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(unquote(rev))
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _file_json(self, path: str, entry: Entry) -> dict:
        out = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": path}
        if entry.lfs:
            out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
        return out

    @staticmethod
    def _folders(commit: Commit) -> set[str]:
        out: set[str] = set()
        for path in commit.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out

    def _folder_json(self, commit: Commit, path: str) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(f"{commit.oid}:{path}".encode()).hexdigest(), "size": 0, "path": path}

    def _info(self, repo: Repo, commit: Commit) -> dict:
        card = {}
        if "README.md" in commit.files:
            card = _front_matter(self.blob_path(commit.files["README.md"].sha256).read_bytes().decode())
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags", []) or []),
            "cardData": card,
            "createdAt": repo.created,
            "lastModified": commit.date,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }

    # ---- WSGI ----------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        raw = environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))
        raw_path = raw.split("?", 1)[0]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        try:
            status, headers, body = self.route(method, segments, query, environ)
        except HttpError as err:
            status = err.status
            headers = [("Content-Type", "application/json")]
            if err.code:
                headers.append(("X-Error-Code", err.code))
            headers.append(("X-Error-Message", err.message))
            body = json.dumps({"error": err.message}).encode()
        self.log.append((method, raw, status))
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_STATUS.get(status, 'Unknown')}", headers)
        return [b""] if method == "HEAD" else [body]

    @staticmethod
    def _read_body(environ) -> bytes:
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        return stream.read(int(length)) if length else stream.read()

    def _json(self, payload, status: int = 200, extra=()):
        return status, [("Content-Type", "application/json"), *extra], json.dumps(payload).encode()

    def route(self, method: str, seg: list[str], query: dict, environ):
        with self.lock:
            if seg[:1] == ["api"]:
                return self.api(method, seg[1:], query, environ)
            if seg[:1] == ["lfs-upload"] and method == "PUT":
                data = self._read_body(environ)
                if hashlib.sha256(data).hexdigest() != seg[1]:
                    raise HttpError(400, "uploaded content does not match its oid")
                self._store(data)
                return 200, [("ETag", f'"{seg[1]}"')], b""
            if seg[:1] == ["lfs-verify"] and method == "POST":
                body = json.loads(self._read_body(environ) or b"{}")
                if not self._has_blob(body.get("oid", ""), int(body.get("size", -1))):
                    raise HttpError(404, "object not uploaded")
                return self._json({"ok": True})
            repo_type = "model"
            if seg and seg[0] in ("datasets", "spaces"):
                repo_type, seg = seg[0][:-1], seg[1:]
            if len(seg) >= 2 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
                return self.lfs_batch(repo_type, f"{seg[0]}/{seg[1][:-4]}", environ)
            if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                return self.resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]), environ)
        raise HttpError(404, f"no route for {method} /{'/'.join(seg)}")

    # ---- /api ----------------------------------------------------------------------------
    def api(self, method: str, seg: list[str], query: dict, environ):
        if seg == ["whoami-v2"]:
            if not self._authorized(environ):
                raise HttpError(401, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "id": "1", "name": self.user, "fullname": self.user, "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})
        if seg == ["repos", "create"] and method == "POST":
            return self.create_repo(environ)
        if seg == ["validate-yaml"] and method == "POST":
            body = json.loads(self._read_body(environ))
            try:
                _front_matter(body.get("content", ""), strict=True)
            except ValueError as exc:
                return self._json({"errors": [{"message": str(exc)}], "warnings": []}, status=400)
            return self._json({"errors": [], "warnings": []})
        if len(seg) < 3 or seg[0] not in ("models", "datasets", "spaces"):
            raise HttpError(404, f"no route for /api/{'/'.join(seg)}")
        repo_type, repo_id, rest = seg[0][:-1], f"{seg[1]}/{seg[2]}", seg[3:]
        if not rest and method == "GET":
            repo = self._repo(environ, repo_type, repo_id)
            return self._json(self._info(repo, self._commit(repo, "main")))
        if rest[:1] == ["revision"] and method == "GET":
            repo = self._repo(environ, repo_type, repo_id)
            return self._json(self._info(repo, self._commit(repo, "/".join(rest[1:]))))
        if rest[:1] == ["tree"] and method == "GET":
            return self.tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), query, environ)
        if rest[:1] == ["paths-info"] and method == "POST":
            return self.paths_info(repo_type, repo_id, "/".join(rest[1:]), environ)
        if rest[:1] == ["preupload"] and method == "POST":
            return self.preupload(repo_type, repo_id, "/".join(rest[1:]), environ)
        if rest[:1] == ["commit"] and method == "POST":
            return self.commit(repo_type, repo_id, "/".join(rest[1:]), environ)
        if rest == ["refs"] and method == "GET":
            repo = self._repo(environ, repo_type, repo_id)
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()]
            return self._json({"branches": branches, "converts": [], "tags": []})
        raise HttpError(404, f"no route for {method} /api/{'/'.join(seg)}")

    def create_repo(self, environ):
        if not self._authorized(environ):
            raise HttpError(401, "Invalid credentials in Authorization header")
        body = json.loads(self._read_body(environ))
        repo_type = body.get("type") or "model"
        name, org = body["name"], body.get("organization") or self.user
        repo_id = f"{org}/{name}"
        url = f"{self.base_url}/{TYPE_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return self._json({"error": "You already created this repo", "url": url}, status=409)
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        repo = Repo(repo_type, repo_id, private, _now())
        gitattributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.h5ad filter=lfs diff=lfs merge=lfs -text\n"
        entry = Entry(self._store(gitattributes), len(gitattributes), False, git_blob_oid(gitattributes))
        commit = self._new_commit(repo, {".gitattributes": entry}, "initial commit")
        repo.branches["main"] = commit.oid
        self.repos[(repo_type, repo_id)] = repo
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def tree(self, repo_type, repo_id, rev, path, query, environ):
        repo = self._repo(environ, repo_type, repo_id)
        commit = self._commit(repo, rev)
        recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
        folders = self._folders(commit)
        path = path.strip("/")
        if path and path not in folders:
            raise HttpError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        out = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                out.append(self._folder_json(commit, folder))
        for file, entry in sorted(commit.files.items()):
            if file.startswith(prefix) and (recursive or "/" not in file[len(prefix):]):
                out.append(self._file_json(file, entry))
        return self._json(out)

    def paths_info(self, repo_type, repo_id, rev, environ):
        repo = self._repo(environ, repo_type, repo_id)
        commit = self._commit(repo, rev)
        body = self._read_body(environ).decode()
        ctype = environ.get("CONTENT_TYPE", "")
        if "json" in ctype:
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        folders = self._folders(commit)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files:
                out.append(self._file_json(p, commit.files[p]))
            elif p in folders:
                out.append(self._folder_json(commit, p))
        return self._json(out)

    def preupload(self, repo_type, repo_id, rev, environ):
        repo = self._repo(environ, repo_type, repo_id, write=True)
        commit = self._commit(repo, rev)
        body = json.loads(self._read_body(environ))
        files = []
        for f in body.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["path"].lower().endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_SIZE or b"\0" in sample
            existing = commit.files.get(f["path"])
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._json({"files": files, "commitOid": commit.oid})

    def lfs_batch(self, repo_type, repo_id, environ):
        self._repo(environ, repo_type, repo_id, write=True)
        body = json.loads(self._read_body(environ))
        if body.get("operation") != "upload":
            raise HttpError(400, "only the upload operation is supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            item = {"oid": oid, "size": size, "authenticated": True}
            if not self._has_blob(oid, size):
                item["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{oid}", "header": {}},
                    "verify": {"href": f"{self.base_url}/lfs-verify/{oid}", "header": {}},
                }
            objects.append(item)
        return 200, [("Content-Type", "application/vnd.git-lfs+json")], json.dumps(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()

    def commit(self, repo_type, repo_id, rev, environ):
        repo = self._repo(environ, repo_type, repo_id, write=True)
        branch = unquote(rev)
        head = self._commit(repo, branch)
        lines = [json.loads(line) for line in self._read_body(environ).splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            raise HttpError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value.get("path", "").strip("/")
            if key == "file":
                data = base64.b64decode(value["content"])
                files[path] = Entry(self._store(data), len(data), False, git_blob_oid(data))
            elif key == "lfsFile":
                size = value.get("size")
                if size is None or not self._has_blob(value["oid"], int(size)):
                    raise HttpError(422, f"LFS object {value['oid']} for {path} was not uploaded")
                files[path] = Entry(value["oid"], int(size), True)
            elif key == "deletedFile":
                if path not in files:
                    raise HttpError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                files = {p: e for p, e in files.items() if not p.startswith(path + "/")}
            else:
                raise HttpError(400, f"unsupported commit operation {key!r}")
        commit = self._new_commit(repo, files, header.get("summary", ""))
        if branch in repo.branches or branch == "main":
            repo.branches[branch] = commit.oid
        prefix = TYPE_PREFIX[repo_type]
        return self._json({"commitUrl": f"{self.base_url}/{prefix}{repo_id}/commit/{commit.oid}",
                           "commitOid": commit.oid, "pullRequestUrl": None, "success": True})

    # ---- file downloads -----------------------------------------------------------------
    def resolve(self, repo_type, repo_id, rev, path, environ):
        repo = self._repo(environ, repo_type, repo_id)
        commit = self._commit(repo, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        data_path = self.blob_path(entry.sha256)
        size = entry.size
        headers = [("X-Repo-Commit", commit.oid), ("ETag", f'"{entry.etag}"'), ("Accept-Ranges", "bytes"),
                   ("Content-Type", "application/octet-stream")]
        if entry.lfs:
            headers += [("X-Linked-Etag", f'"{entry.sha256}"'), ("X-Linked-Size", str(size))]
        start, stop, status = 0, size, 200
        rng = environ.get("HTTP_RANGE")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].split(",")[0].partition("-")
            if first == "":
                start = max(size - int(last), 0)
            else:
                start = int(first)
                stop = min(int(last) + 1, size) if last else size
            if start >= size and size > 0:
                raise HttpError(416, "requested range not satisfiable")
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
        headers.append(("Content-Length", str(stop - start)))
        if environ["REQUEST_METHOD"] == "HEAD":
            return status, headers, b""
        with open(data_path, "rb") as fh:
            fh.seek(start)
            return status, headers, fh.read(stop - start)


def _front_matter(text: str, strict: bool = False) -> dict:
    """The YAML block at the top of a README (empty when there is none)."""
    import yaml

    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        if strict:
            raise ValueError("the YAML front matter is not closed by '---'")
        return {}
    try:
        data = yaml.safe_load(parts[0][3:]) or {}
    except yaml.YAMLError as exc:
        if strict:
            raise ValueError(f"invalid YAML: {exc}") from exc
        return {}
    if strict and not isinstance(data, dict):
        raise ValueError("the YAML front matter must be a mapping")
    return data if isinstance(data, dict) else {}


class HubServer(CherootLoopback):
    """Start :class:`HubApp` with cheroot on a free port of 127.0.0.1 in a background thread."""

    numthreads = 8

    def __init__(self, root: Path, token: str = "hf_mmgene_test_token_0123456789", user: str = "mmgene-tester") -> None:
        self.app = HubApp(root, token, user)
        self.token, self.user = token, user
        self._server = None

    @property
    def url(self) -> str:
        return self.app.base_url

    def _serving(self, base_url: str) -> None:
        self.app.base_url = base_url


if __name__ == "__main__":  # pragma: no cover - manual use, from tests/: python -m servers.hub_server DIR
    import sys
    import time

    server = HubServer(Path(sys.argv[1] if len(sys.argv) > 1 else "hub-data")).start()
    print(f"HF_ENDPOINT={server.url} HF_TOKEN={server.token}", flush=True)
    while True:
        time.sleep(3600)


@contextmanager
def hub_for_this_process(root: Path, cache: Path, monkeypatch: Any) -> Iterator[HubServer]:
    """A loopback Hub that ``huggingface_hub`` in this process talks to: xet off, online, its own
    cache; ``monkeypatch`` undoes the settings after the test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    with HubServer(root) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield server
