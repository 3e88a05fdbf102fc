"""A WebDAV + Nextcloud stand-in on 127.0.0.1 for tests: wsgidav behind a small WSGI dispatcher.

Routes (the paths Nextcloud uses):

- ``/remote.php/dav/files/<user>/...``: WebDAV (wsgidav, Basic auth) over ``root/files``.
- ``/remote.php/dav/uploads/<user>/<upload-id>/<chunk>``: Nextcloud chunked upload v2 (wsgidav over
  ``root/uploads``); ``MOVE .../<upload-id>/.file`` with a ``Destination`` header assembles the chunks
  (in name order) into the destination file and removes the upload folder.
- ``POST|GET /ocs/v2.php/apps/files_sharing/api/v1/shares``: the OCS share API (Basic auth and
  ``OCS-APIRequest: true``); a public link (``shareType=3``) answers ``url = <base>/index.php/s/<token>``.
- ``GET|HEAD /index.php/s/<token>/download``: the shared file, with ``Range``.
- ``GET|HEAD /public/...``: the same files without authentication (a web server exposing the folder).

``faults`` injects failures into downloads: ``server.faults["chunk-00000.h5ad"] = ["truncate", "corrupt"]``
makes the next two downloads of that file send half of it (then drop the connection), then a copy with
one flipped byte. ``put_faults = n`` answers the next ``n`` PUTs with ``503`` and ``Retry-After: 0``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .loopback import CherootLoopback


def serve_file(path: Path, environ, start_response, fault: str | None = None):
    """Answer GET/HEAD for one file with ``Range`` support and optional injected faults."""
    data = path.read_bytes()
    size = len(data)
    start, stop, status = 0, size, "200 OK"
    headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"),
               ("ETag", f'"{hashlib.md5(data).hexdigest()}"')]
    rng = environ.get("HTTP_RANGE", "")
    if rng.startswith("bytes="):
        first, _, last = rng[6:].split(",")[0].partition("-")
        start = int(first) if first else max(size - int(last), 0)
        stop = min(int(last) + 1, size) if (first and last) else size
        if start >= size:
            start_response("416 Range Not Satisfiable", [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
            return [b""]
        status = "206 Partial Content"
        headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
    body = data[start:stop]
    if fault == "corrupt" and body:
        mid = len(body) // 2
        body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1:]
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    if environ["REQUEST_METHOD"] == "HEAD":
        return [b""]
    if fault == "truncate":
        # promise the whole body, send half, then let the server drop the connection
        def partial():
            yield body[: len(body) // 2]
            raise ConnectionAbortedError("injected truncation")

        return partial()
    return [body]


class NextcloudApp:
    """The dispatcher in front of wsgidav (see the module docstring)."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        from wsgidav.wsgidav_app import WsgiDAVApp

        self.root = Path(root)
        self.files = self.root / "files"
        self.uploads = self.root / "uploads"
        self.files.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.user, self.password = user, password
        self.files_prefix = f"/remote.php/dav/files/{user}"
        self.uploads_prefix = f"/remote.php/dav/uploads/{user}"
        users = {user: {"password": password, "description": "", "roles": []}}
        self.dav = WsgiDAVApp({
            "provider_mapping": {self.files_prefix: str(self.files), self.uploads_prefix: str(self.uploads)},
            "simple_dc": {"user_mapping": {self.files_prefix: users, self.uploads_prefix: users}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
            "verbose": 0,
            "logging": {"enable": False},
            "lock_storage": True,
            "property_manager": True,
        })
        self.shares: dict[str, str] = {}  # token -> path relative to the user's files
        self.share_ids: dict[str, int] = {}
        self.faults: dict[str, list[str]] = {}
        self.put_faults = 0  # answer this many PUTs with 503 + Retry-After: 0 before accepting any
        self.log: list[tuple[str, str]] = []
        self.base_url = ""
        self.lock = threading.Lock()

    def _authorized(self, environ) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.user and password == self.password

    def _fault(self, name: str) -> str | None:
        with self.lock:
            queue = self.faults.get(name)
            return queue.pop(0) if queue else None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        self.log.append((method, path))
        if path.startswith("/ocs/v2.php/apps/files_sharing/api/v1/shares"):
            return self.ocs(environ, start_response)
        if path.startswith("/index.php/s/") and path.endswith("/download") and method in ("GET", "HEAD"):
            token = path[len("/index.php/s/"):-len("/download")]
            rel = self.shares.get(token)
            target = self.files / rel if rel else None
            if target is None or not target.is_file():
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            return serve_file(target, environ, start_response, self._fault(target.name))
        if path.startswith("/public/") and method in ("GET", "HEAD"):
            target = (self.files / unquote(path[len("/public/"):])).resolve()
            if not target.is_file() or self.files.resolve() not in target.parents:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            return serve_file(target, environ, start_response, self._fault(target.name))
        if method == "PUT" and self.put_faults > 0:
            with self.lock:
                self.put_faults -= 1
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("503 Service Unavailable", [("Retry-After", "0"), ("Content-Length", "0")])
            return [b""]
        if method == "MOVE" and path.startswith(self.uploads_prefix + "/") and path.endswith("/.file"):
            return self.assemble(environ, start_response, path)
        return self.dav(environ, start_response)

    def assemble(self, environ, start_response, path: str):
        """Nextcloud chunking v2: concatenate the upload folder's chunks into the destination."""
        if not self._authorized(environ):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="nextcloud"'), ("Content-Length", "0")])
            return [b""]
        folder = self.uploads / unquote(path[len(self.uploads_prefix) + 1: -len("/.file")])
        dest = unquote(urlsplit(environ.get("HTTP_DESTINATION", "")).path)
        if not folder.is_dir() or not dest.startswith(self.files_prefix + "/"):
            start_response("400 Bad Request", [("Content-Length", "0")])
            return [b""]
        target = self.files / dest[len(self.files_prefix) + 1:]
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".assembling")
        with open(tmp, "wb") as out:
            for chunk in sorted(p for p in folder.iterdir() if p.is_file()):
                out.write(chunk.read_bytes())
        expected = environ.get("HTTP_OC_TOTAL_LENGTH")
        if expected is not None and tmp.stat().st_size != int(expected):
            tmp.unlink()
            start_response("400 Bad Request", [("Content-Length", "0")])
            return [b""]
        tmp.replace(target)
        shutil.rmtree(folder)
        start_response("204 No Content" if existed else "201 Created", [("Content-Length", "0")])
        return [b""]

    def ocs(self, environ, start_response):
        def answer(status: str, code: int, data, message: str = "OK"):
            meta = {"status": "ok" if code in (100, 200) else "failure", "statuscode": code, "message": message}
            body = json.dumps({"ocs": {"meta": meta, "data": data}}).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        if not self._authorized(environ):
            return answer("401 Unauthorized", 997, [], "Current user is not logged in")
        if environ.get("HTTP_OCS_APIREQUEST", "").lower() != "true":
            return answer("401 Unauthorized", 997, [], "OCS-APIRequest header missing (CSRF check failed)")
        if environ["REQUEST_METHOD"] == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            wanted = query.get("path", [None])[0]
            rows = [self._share_json(t, p) for t, p in self.shares.items() if wanted is None or "/" + p == "/" + wanted.lstrip("/")]
            return answer("200 OK", 200, rows)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        rel = form.get("path", [""])[0].lstrip("/")
        if form.get("shareType", [""])[0] != "3":
            return answer("400 Bad Request", 400, [], "only public links (shareType=3) are supported here")
        if not rel or not (self.files / rel).exists():
            return answer("404 Not Found", 404, [], "Wrong path, file/folder does not exist")
        token = hashlib.sha256(f"{rel}:{len(self.shares)}".encode()).hexdigest()[:15]
        with self.lock:
            self.shares[token] = rel
            self.share_ids[token] = len(self.share_ids) + 1
        return answer("200 OK", 200, self._share_json(token, rel))

    def _share_json(self, token: str, rel: str) -> dict:
        return {"id": str(self.share_ids[token]), "share_type": 3, "path": "/" + rel, "token": token,
                "url": f"{self.base_url}/index.php/s/{token}", "permissions": 1, "item_type": "file"}


class WebDavServer(CherootLoopback):
    """Start :class:`NextcloudApp` with cheroot on a free port of 127.0.0.1 in a background thread."""

    numthreads = 8

    def __init__(self, root: Path, user: str = "alice", password: str = "nc-secret-pw-4711") -> None:
        self.app = NextcloudApp(root, user, password)
        self.user, self.password = user, password
        self._server = None

    @property
    def url(self) -> str:
        return self.app.base_url

    @property
    def dav_url(self) -> str:
        return self.app.base_url + self.app.files_prefix

    @property
    def faults(self) -> dict[str, list[str]]:
        return self.app.faults


    def _serving(self, base_url: str) -> None:
        self.app.base_url = base_url
