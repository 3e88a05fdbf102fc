"""Share links for chunk files behind one interface, with three backends.

- :class:`HubShare`: the chunk files go into the dataset repository itself (``chunks/``) and are
  linked by their ``resolve`` URL.
- :class:`WebDavShare` / :class:`NextcloudShare`: WebDAV ``PUT`` (Nextcloud: chunked upload v2 above
  ``chunk_limit``), then a public link (Nextcloud: the OCS share API; the link is ``<share url>/download``).
- :class:`HttpFolderShare`: files are copied into a local folder that a web server publishes at
  ``base_url``.

Every backend skips files already present with the same sha256 (the Hub from its LFS metadata,
WebDAV and HTTP folders from a ``<file>.sha256`` sidecar written after the file), so an interrupted
share resumes where it stopped; Nextcloud chunked uploads also keep chunks already sent. Passwords
and tokens come from the environment (:mod:`mmgene.net.credentials`) and never appear in links or
messages (raw, percent-encoded or base64).

The WebDAV/Nextcloud password is sent only to the share URL's own origin (scheme, host and port), and
only over https or to a server on this machine, redirects included (:class:`mmgene.net.http.ScopedAuth`).
Requests go through :class:`mmgene.net.http.HttpClient`: bounded retries on network errors, deadline
overruns and 429/5xx (honouring ``Retry-After``), waits only between attempts, and a total deadline per
attempt of ``deadline`` seconds plus one second per ``UPLOAD_FLOOR`` bytes it uploads. Only ``GET`` and
``HEAD`` follow redirects (requests would re-send an upload to the new address without its body); the
``MOVE`` that assembles a Nextcloud upload and the ``POST`` that makes a public link are never sent twice
after a lost answer: what the server did is looked up instead. The Hub token goes only to an https
``HF_ENDPOINT`` (or one on this machine).
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from mmgene.errors import IntegrityError, ParameterError, RemoteError, cause, is_whole_number
from mmgene.hub.chunks import ChunkFile, sha256_file
from mmgene.net.credentials import (
    PASSWORD_ENV,
    USER_ENV,
    clean_url,
    hub_token,
    redact,
    require_secure_origin,
    share_credentials,
)
from mmgene.hub.download import is_plain_name
from mmgene.progress import info, progress

SHARE_KINDS = ("hub", "webdav", "nextcloud", "http")
GB = 1024**3
#: seconds one WebDAV/Nextcloud request may take in all (connect, upload, answer), before upload time
DEFAULT_DEADLINE = 600.0
#: the slowest upload rate (bytes/s) the deadline allows for: an upload of n bytes gets n / UPLOAD_FLOOR more seconds
UPLOAD_FLOOR = 256 * 1024


@dataclass(frozen=True)
class SharedFile:
    """A shared chunk file: its public link and whether this call uploaded it (``False``: already there)."""

    name: str
    sha256: str
    size: int
    link: str
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Hub repository names: ASCII letters, digits, '-', '_' and '.', not starting or ending with '-' or '.'
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")


def check_repo_id(repo_id: str) -> None:
    """Refuse a repo id the Hub would refuse (huggingface_hub's rules), before anything is read, written
    or uploaded: a dry run's card must name a repository that can exist, and a real run must not fail
    at the Hub after the chunk files were shared."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    problem = (
        "is not 'namespace/name'" if len(parts) != 2 or not all(parts)
        else "may hold only ASCII letters, digits, '-', '_' and '.', neither start nor end with '-' or '.', "
        "and have at most 96 characters per part" if not all(_REPO_PART.fullmatch(p) for p in parts)
        else "may not hold '--' or '..'" if "--" in repo_id or ".." in repo_id
        else "may not end in '.git'" if repo_id.endswith(".git")
        else None
    )
    if problem:
        raise ParameterError(f"repo id {repo_id!r} {problem}", "repo_id", "pass e.g. 'me/pbmc-cells'")


def check_name(name: str, where: str) -> str:
    """``name`` if it is one plain file name; a name with ``..``, ``/``, ``\\`` or ``:`` could land
    outside the share's folder, so it is refused."""
    if not is_plain_name(name):
        raise ParameterError(f"refusing to share a file named {name!r}: the name could leave the share folder", where,
                             "give chunk files plain names (no '..', '/', '\\', ':' or control characters)")
    return name


def _changed(path: Path, problem: str) -> IntegrityError:
    """The error for a chunk file that is no longer what was hashed: its link would serve other bytes."""
    return IntegrityError(f"{path.name} {problem}: it changed after it was hashed", str(path),
                          "write the chunk files again (publish again), and leave them unchanged while they are shared")


def share_url(url: str, what: str) -> str:
    """``url`` as the base of share requests and links: http(s), no credentials (:func:`clean_url`), and no
    query or fragment, since file names are appended to its path (a ``?token=...`` would end up, with the
    file name after it, in every public link)."""
    url = clean_url(url, what)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(f"{what} must be an http:// or https:// URL with a host", what, "pass e.g. https://cloud.example.org/...")
    if parts.query or parts.fragment:
        bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        raise ParameterError(
            f"{what} {bare} must not carry a query or fragment ('?...' or '#...'): file names are appended to its path",
            what, f"pass the folder's URL without them; credentials go in {USER_ENV} and {PASSWORD_ENV}, never in a URL",
        )
    return url


def check_folder(folder: str, where: str) -> str:
    """``folder`` without outer slashes, if every part of it is a plain name: a ``..`` part would put the
    files outside the share (``<share url>/../other-user``)."""
    folder = folder.strip("/")
    if folder and not all(is_plain_name(part) for part in folder.split("/")):
        raise ParameterError(f"refusing the share folder {folder!r}: it could leave the share", where,
                             "give a folder of plain names below the share URL, e.g. 'mmgene/pbmc' (no '..', '\\', ':' or empty parts)")
    return folder


class ShareBackend(ABC):
    """Upload files once (same name and sha256 are skipped) and give each a link anyone can download."""

    kind: str = ""

    def share(self, files: Sequence[ChunkFile]) -> list[SharedFile]:
        """Upload what is missing and return one :class:`SharedFile` per file, in order.

        When an upload fails, the files this call already uploaded are withdrawn before the error
        is raised, so a failed run leaves nothing new on the share: also the file being uploaded when
        it failed (its checksum sidecar or its public link could not be made after the file went up).
        """
        for f in files:
            check_name(f.name, f"{self.kind} share")
        out: list[SharedFile] = []
        sending: str | None = None  # the file whose upload has begun and whose link is not made yet
        try:
            for f in progress(files, total=len(files), desc=f"share ({self.kind})", unit="file"):
                present = self.has(f.name, f.sha256, f.size)
                if not present:
                    sending = f.name
                    self.put(Path(f.path), f.name, f.sha256, f.size)
                info(f"mmgene: {f.name} {'already shared' if present else 'uploaded'} ({self.kind})")
                out.append(SharedFile(f.name, f.sha256, f.size, self.link(f.name), not present))
                sending = None
        except BaseException:
            self.withdraw([s.name for s in out if s.uploaded] + ([sending] if sending else []))
            raise
        return out

    def withdraw(self, names: Sequence[str]) -> None:
        """Remove files this run uploaded, after a failure; a file that cannot be removed is reported."""
        for name in names:
            try:
                self.remove(name)
            except Exception as exc:  # noqa: BLE001 - keep the original error; say what is left behind
                info(f"mmgene: could not remove {name} from the {self.kind} share: {redact(exc)}")

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete one shared file (and its checksum sidecar, where there is one)."""

    @abstractmethod
    def has(self, name: str, sha256: str, size: int) -> bool:
        """Whether ``name`` is already there with this content."""

    @abstractmethod
    def put(self, path: Path, name: str, sha256: str, size: int) -> None:
        """Upload one file."""

    @abstractmethod
    def link(self, name: str) -> str:
        """The public download link of ``name`` (no credentials in it)."""


def check_hub_endpoint() -> str:
    """The Hub's endpoint that writes go to (huggingface_hub's ``HF_ENDPOINT``), refused when it is neither
    https nor this machine (the token sent with every write would travel in clear text), or when it
    carries a user name or password (every share link of the dataset is made from it)."""
    from mmgene.lazy import require

    constants = require("huggingface_hub.constants", "writing to the Hub")
    parts = urlsplit(constants.ENDPOINT)
    if parts.username or parts.password:
        raise ParameterError("HF_ENDPOINT must not contain a user name or password: the dataset's share links are "
                             "made from it", "HF_ENDPOINT",
                             "remove them from HF_ENDPOINT (the Hub's token comes from HF_TOKEN or `hf auth login`)")
    require_secure_origin(constants.ENDPOINT, "HF_ENDPOINT", "the Hugging Face token")
    return constants.ENDPOINT


def hub_api(token: str | None = None) -> Any:
    """``huggingface_hub.HfApi`` with the token, for an endpoint that may receive it (:func:`check_hub_endpoint`)."""
    from huggingface_hub import HfApi

    check_hub_endpoint()
    return HfApi(token=hub_token(token))


# ---------------------------------------------------------------------------------------------
class HubShare(ShareBackend):
    """Chunk files in the Hub dataset repository, linked by ``<endpoint>/datasets/<repo>/resolve/<rev>/chunks/<name>``.

    The repository is created (private by default) when missing. Files already in the repository
    with the same sha256 (LFS) are not uploaded again; all missing files go in one commit.
    """

    kind = "hub"

    def __init__(self, repo_id: str, *, folder: str = "chunks", revision: str = "main", private: bool = True,
                 token: str | None = None, repo_type: str = "dataset") -> None:
        check_repo_id(repo_id)  # before any request: huggingface_hub would refuse it with its own error
        self.repo_id, self.folder, self.revision = repo_id, check_folder(folder, "share folder"), revision
        self.private, self.repo_type = private, repo_type
        self._token = token

    def _api(self) -> Any:
        return hub_api(self._token)

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    def _remote(self, names: Sequence[str]) -> dict[str, tuple[str | None, int]]:
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        try:
            infos = self._api().get_paths_info(
                self.repo_id, [self._path(n) for n in names], repo_type=self.repo_type, revision=self.revision
            )
        except RepositoryNotFoundError:
            return {}
        except HfHubHTTPError as exc:
            raise RemoteError(f"the Hub refused to list {self.repo_id}: {redact(exc)}", self.repo_id, "check HF_TOKEN and the repo id") from None
        return {i.path: (i.lfs.sha256 if getattr(i, "lfs", None) else None, getattr(i, "size", -1)) for i in infos}

    def has(self, name: str, sha256: str, size: int) -> bool:
        return self._remote([name]).get(self._path(name), (None, -1)) == (sha256, size)

    def put(self, path: Path, name: str, sha256: str, size: int) -> None:
        self._commit([(path, name)])

    def _commit(self, items: Sequence[tuple[Path, str]]) -> None:
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import HfHubHTTPError

        api = self._api()
        try:
            api.create_repo(self.repo_id, repo_type=self.repo_type, private=self.private, exist_ok=True)
            ops = [CommitOperationAdd(path_in_repo=self._path(n), path_or_fileobj=str(p)) for p, n in items]
            api.create_commit(self.repo_id, ops, commit_message=f"mmgene: add {len(ops)} chunk file(s)",
                              repo_type=self.repo_type, revision=self.revision)
        except HfHubHTTPError as exc:
            raise RemoteError(f"upload to the Hub failed: {redact(exc)}", self.repo_id, "check HF_TOKEN (write access) and the repo id") from None

    def remove(self, name: str) -> None:
        self.withdraw([name])

    def withdraw(self, names: Sequence[str]) -> None:
        """Delete the files in one commit."""
        from huggingface_hub import CommitOperationDelete
        from huggingface_hub.errors import HfHubHTTPError

        if not names:
            return
        try:
            ops = [CommitOperationDelete(path_in_repo=self._path(check_name(n, self.repo_id))) for n in names]
            self._api().create_commit(self.repo_id, ops, commit_message=f"mmgene: withdraw {len(ops)} chunk file(s) of a failed publish",
                                      repo_type=self.repo_type, revision=self.revision)
        except HfHubHTTPError as exc:
            info(f"mmgene: could not remove {len(names)} chunk file(s) from {self.repo_id}: {redact(exc)}")

    def share(self, files: Sequence[ChunkFile]) -> list[SharedFile]:
        remote = self._remote([check_name(f.name, self.repo_id) for f in files])
        missing = [f for f in files if remote.get(self._path(f.name)) != (f.sha256, f.size)]
        if missing:
            self._commit([(Path(f.path), f.name) for f in missing])
        info(f"mmgene: {len(missing)} chunk file(s) uploaded to {self.repo_id}, {len(files) - len(missing)} already there")
        missing_names = {f.name for f in missing}
        return [SharedFile(f.name, f.sha256, f.size, self.link(f.name), f.name in missing_names) for f in files]

    def link(self, name: str) -> str:
        from huggingface_hub import constants

        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(self.repo_type, "")
        return f"{constants.ENDPOINT}/{prefix}{self.repo_id}/resolve/{quote(self.revision, safe='')}/{quote(self._path(name))}"


# ---------------------------------------------------------------------------------------------
class WebDavShare(ShareBackend):
    """Files uploaded to a WebDAV folder; links are ``<public_url or url>/<folder>/<name>``.

    Parameters
    ----------
    url
        The WebDAV root of the account, e.g. ``https://cloud.example.org/remote.php/dav/files/alice``.
    folder
        Folder under ``url`` for the files (created with ``MKCOL``).
    public_url
        Where the same folder is readable without credentials (a web server over it); defaults to ``url``.
    user
        Account name (default ``$MMGENE_SHARE_USER``); the password comes only from ``$MMGENE_SHARE_PASSWORD``
        and is sent only to ``url``'s origin over https (or plain http to a server on this machine).
    timeout, deadline
        Seconds any one connect or read may wait, and one attempt may take in all (default
        ``$MMGENE_HTTP_DEADLINE`` or 600, plus upload time at ``UPLOAD_FLOOR`` bytes/s).
    retries, backoff
        Further attempts after the first, and the base of the exponential wait between them.
    """

    kind = "webdav"

    def __init__(self, url: str, *, folder: str = "mmgene", public_url: str | None = None, user: str | None = None,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 0.5, deadline: float | None = None) -> None:
        from mmgene.net.http import HttpClient, RetryPolicy, ScopedAuth

        self.url = share_url(url, "share URL")
        self.public_url = share_url(public_url, "public URL") if public_url else None
        self.folder = check_folder(folder, "share folder")
        self.auth = share_credentials(user)
        if self.auth:
            require_secure_origin(self.url, "share URL", "the share password")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._scope = ScopedAuth(self.url, basic=self.auth) if self.auth else None
        self.http = HttpClient(policy=RetryPolicy(retries=retries, backoff=backoff), timeout=timeout, deadline=deadline,
                               default_deadline=DEFAULT_DEADLINE, auth=self._scope)
        self.deadline = self.http.deadline
        self._made: set[str] = set()

    # -- HTTP plumbing -------------------------------------------------------------------------
    def _auth_for(self, url: str) -> tuple[str, str] | None:
        """The credentials, only for a request to the share URL's own origin (https or loopback)."""
        return self.auth if self._scope is not None and self._scope.allows(url) else None

    def _request(self, method: str, url: str, ok: Sequence[int], *, upload: int = 0, idempotent: bool = True,
                 **kwargs: Any) -> Any:
        """One request (retried as the module docstring says) whose answer must have a status in ``ok``;
        ``upload`` is the body size in bytes, which lengthens the deadline. Only ``GET`` and ``HEAD``
        follow a redirect; any other request answered with one fails."""
        kwargs.setdefault("allow_redirects", method in ("GET", "HEAD"))
        data = kwargs.get("data")
        position = data.tell() if hasattr(data, "seek") else None

        def prepare() -> dict[str, Any]:
            if position is not None:
                data.seek(position)  # a retry sends the whole body again
            return {}

        def accept(response: Any) -> Any:
            if response.status_code in ok:
                return response
            if response.is_redirect:  # requests would send an upload on without its body
                target = redact(urljoin(url, response.headers["Location"]))
                raise RemoteError(f"{method} answered HTTP {response.status_code}, a redirect to {target}, which mmgene "
                                  "does not follow for a request that changes something", redact(url),
                                  "pass the address the server redirects to as the share URL")
            hint = "check MMGENE_SHARE_USER / MMGENE_SHARE_PASSWORD" if response.status_code in (401, 403) else "check the share URL"
            raise RemoteError(f"{method} answered HTTP {response.status_code}", redact(url), hint)

        return self.http.request(method, url, what=method, deadline=self.deadline + upload / UPLOAD_FLOOR,
                                 prepare=prepare, accept=accept, idempotent=idempotent, **kwargs)

    def _dav(self, *parts: str) -> str:
        path = "/".join(p.strip("/") for p in (self.folder, *parts) if p)
        return f"{self.url}/{quote(path)}"

    def _mkcols(self, base: str, rel: str) -> None:
        """``MKCOL`` every level of ``rel`` under ``base`` (405: it exists already)."""
        acc = ""
        for part in [p for p in rel.strip("/").split("/") if p]:
            acc = f"{acc}/{quote(part)}"
            if base + acc in self._made:
                continue
            self._request("MKCOL", base + acc, ok=(201, 405, 301))
            self._made.add(base + acc)

    # -- the interface -----------------------------------------------------------------------
    def has(self, name: str, sha256: str, size: int) -> bool:
        head = self._request("HEAD", self._dav(name), ok=(200, 404))
        length = str(head.headers.get("Content-Length", "")).strip()
        if head.status_code != 200 or not length.isdigit() or int(length) != size:
            return False  # absent, or a size the server does not say: upload it again
        sidecar = self._request("GET", self._dav(name + ".sha256"), ok=(200, 404))
        return sidecar.status_code == 200 and sidecar.text.split()[:1] == [sha256]

    def put(self, path: Path, name: str, sha256: str, size: int) -> None:
        check_name(name, redact(self.url))
        actual = path.stat().st_size
        if actual != size:  # requests would send the file as it is now, under the old sha256
            raise _changed(path, f"holds {actual} bytes, not the {size} it had")
        self._mkcols(self.url, self.folder)
        self._upload(path, name, sha256, size)
        self._request("PUT", self._dav(name + ".sha256"), ok=(200, 201, 204), data=f"{sha256}  {name}\n".encode())

    def remove(self, name: str) -> None:
        for target in (name, name + ".sha256"):
            self._request("DELETE", self._dav(check_name(target, redact(self.url))), ok=(200, 204, 404))

    def _upload(self, path: Path, name: str, sha256: str, size: int) -> None:
        with open(path, "rb") as fh:
            self._request("PUT", self._dav(name), ok=(200, 201, 204), upload=size, data=fh, headers={"Content-Length": str(size)})

    def link(self, name: str) -> str:
        base = self.public_url or self.url
        return f"{base}/{quote('/'.join(p for p in (self.folder, name) if p))}"


class _Slice:
    """A read-only window ``[start, start+length)`` of a file, for streaming one upload chunk."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self.path, self.start, self.length = path, start, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            left = self.length
            while left > 0:
                data = fh.read(min(left, 1 << 20))
                if not data:  # the server would wait for the bytes its Content-Length promised
                    raise _changed(self.path, f"ends before byte {self.start + self.length}")
                left -= len(data)
                yield data


class NextcloudShare(WebDavShare):
    """Nextcloud: WebDAV upload (chunked above ``chunk_limit``) and an OCS public link ending in ``/download``.

    ``url`` is the account's WebDAV root (``https://host/remote.php/dav/files/<user>``) or a folder below
    it; public links are made for the file's path from the account's root. Files of
    ``chunk_limit`` bytes or more are sent with chunked upload v2 (``MKCOL`` an upload folder under
    ``/remote.php/dav/uploads/<user>/``, ``PUT`` numbered chunks of ``chunk_bytes``, ``MOVE .file``);
    chunks already in the upload folder with the right size are not sent again. The public link is
    made once per file (an existing link for the path is reused).
    """

    kind = "nextcloud"

    def __init__(self, url: str, *, folder: str = "mmgene", user: str | None = None, chunk_limit: int = GB,
                 chunk_bytes: int = 100 * 1024**2, **kwargs: Any) -> None:
        for name, value in (("chunk_limit", chunk_limit), ("chunk_bytes", chunk_bytes)):
            if not is_whole_number(value, 1):  # a float or a text would fail only at the first big upload
                raise ParameterError(f"{name} must be a whole number of bytes >= 1, got {value!r}", name,
                                     f"pass {name}=<bytes>, e.g. {100 * 1024**2}")
        super().__init__(url, folder=folder, user=user, **kwargs)
        marker = "/remote.php/dav/files/"
        if marker not in self.url:
            raise ParameterError(
                "a Nextcloud share URL must be the account's WebDAV root", "share URL",
                "pass https://<host>/remote.php/dav/files/<user>",
            )
        self.base, rest = self.url.split(marker, 1)
        account, _, below = rest.partition("/")
        self.account = unquote(account)
        #: the share URL's folder below the account's root, which the OCS API counts paths from
        self.root_folder = unquote(below)
        self.chunk_limit, self.chunk_bytes = chunk_limit, chunk_bytes
        self._links: dict[str, str] = {}

    def _upload(self, path: Path, name: str, sha256: str, size: int) -> None:
        if size < self.chunk_limit:
            return super()._upload(path, name, sha256, size)
        uploads = f"{self.base}/remote.php/dav/uploads/{quote(self.account)}"
        folder = f"{uploads}/mmgene-{sha256[:32]}"  # same file -> same folder, so a retry resumes
        destination = self._dav(name)
        self._request("MKCOL", folder, ok=(201, 405), headers={"Destination": destination})
        present = self._chunks_present(folder)
        n_chunks = -(-size // self.chunk_bytes)
        for i in range(n_chunks):
            start = i * self.chunk_bytes
            length = min(self.chunk_bytes, size - start)
            chunk = f"{i + 1:05d}"
            if present.get(chunk) == length:
                continue
            self._request("PUT", f"{folder}/{chunk}", ok=(200, 201, 204), upload=length, data=_Slice(path, start, length),
                          headers={"Destination": destination, "OC-Total-Length": str(size)})
        try:
            self._request("MOVE", f"{folder}/.file", ok=(200, 201, 204), idempotent=False,
                          headers={"Destination": destination, "OC-Total-Length": str(size), "Overwrite": "T"})
        except RemoteError:
            if not self._assembled(folder, destination, size):
                raise

    def _assembled(self, folder: str, destination: str, size: int) -> bool:
        """Whether a ``MOVE`` whose answer was lost did its work: the upload folder is gone and the
        destination holds ``size`` bytes (a second ``MOVE`` could only fail)."""
        if self._request("PROPFIND", folder + "/", ok=(207, 404), headers={"Depth": "0"}).status_code != 404:
            return False
        head = self._request("HEAD", destination, ok=(200, 404))
        return head.status_code == 200 and head.headers.get("Content-Length") == str(size)

    def _chunks_present(self, folder: str) -> dict[str, int]:
        body = ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getcontentlength/></d:prop></d:propfind>')
        response = self._request("PROPFIND", folder + "/", ok=(207, 404), data=body.encode(),
                                 headers={"Depth": "1", "Content-Type": "application/xml"})
        if response.status_code != 207:
            return {}
        try:
            tree = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise RemoteError(f"the answer to PROPFIND is not WebDAV XML ({exc})", redact(folder),
                              "check that the share URL is a Nextcloud WebDAV root") from None
        out = {}
        for resp in tree.iter("{DAV:}response"):
            href = unquote(resp.findtext("{DAV:}href", "")).rstrip("/").rsplit("/", 1)[-1]
            length = resp.findtext(".//{DAV:}getcontentlength")
            if length and length.isdigit():
                out[href] = int(length)
        return out

    def _ocs(self, method: str, **kwargs: Any) -> Any:
        """The ``data`` of an OCS answer; a refusal (an OCS status other than 100/200, which the v2 API also
        sends as HTTP 400/403/404) is raised with the server's own message."""
        url = f"{self.base}/ocs/v2.php/apps/files_sharing/api/v1/shares"
        response = self._request(method, url, ok=(200, 400, 403, 404),
                                 headers={"OCS-APIRequest": "true", "Accept": "application/json"}, **kwargs)
        try:
            payload = response.json()["ocs"]
            meta, data = payload["meta"], payload["data"]
            code = int(meta["statuscode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteError(f"unexpected answer from the Nextcloud share API (HTTP {response.status_code}, "
                              f"{redact(cause(exc))})", redact(url), "check the server is Nextcloud") from None
        if code not in (100, 200) or response.status_code != 200:
            raise RemoteError(f"the Nextcloud share API refused the {method} (HTTP {response.status_code}, OCS status "
                              f"{code}: {redact(meta.get('message') or 'no message')})", redact(url),
                              "check that the file is on the share and that the account may make public links")
        return data

    def _public_share(self, path: str) -> dict[str, Any] | None:
        """The first public link (share type 3) of ``path``, if it has one."""
        existing = self._ocs("GET", params={"path": path, "format": "json"})
        rows = [s for s in existing if isinstance(s, dict)] if isinstance(existing, list) else []
        return next((s for s in rows if str(s.get("share_type")) == "3" and s.get("url")), None)

    def link(self, name: str) -> str:
        if name in self._links:
            return self._links[name]
        path = "/" + "/".join(p for p in (self.root_folder, self.folder, name) if p)
        share = self._public_share(path)
        if share is None:
            try:
                share = self._ocs("POST", idempotent=False, params={"format": "json"},
                                  data={"path": path, "shareType": 3, "permissions": 1})
            except RemoteError:
                share = self._public_share(path)  # made by a POST whose answer was lost
                if share is None:
                    raise
        url = share.get("url") if isinstance(share, dict) else None
        if not isinstance(url, str) or not url.strip():
            raise RemoteError(f"the Nextcloud share API made no public link URL for {path}", redact(self.base),
                              "check the server is Nextcloud and that the account may make public links")
        link = url.rstrip("/") + "/download"
        self._links[name] = link
        return link


# ---------------------------------------------------------------------------------------------
class HttpFolderShare(ShareBackend):
    """Files copied into ``root``, a folder a web server publishes at ``base_url``; links ``<base_url>/<name>``.

    A copy goes to ``<name>.part`` and is renamed when complete; a ``<name>.sha256`` sidecar is
    written beside it. Files already there with the same sha256 are skipped.
    """

    kind = "http"

    def __init__(self, root: str | os.PathLike[str], base_url: str) -> None:
        self.root = Path(root)
        self.base_url = share_url(base_url, "base URL")

    def has(self, name: str, sha256: str, size: int) -> bool:
        target = self.root / check_name(name, str(self.root))
        if not target.is_file() or target.stat().st_size != size:
            return False
        sidecar = self.root / (name + ".sha256")
        if sidecar.is_file() and sidecar.read_text().split()[:1] == [sha256]:
            return True
        return sha256_file(target) == sha256

    def put(self, path: Path, name: str, sha256: str, size: int) -> None:
        check_name(name, str(self.root))
        self.root.mkdir(parents=True, exist_ok=True)
        part = self.root / (name + ".part")
        with open(path, "rb") as src, open(part, "ab") as dst:  # resume a partial copy
            done = dst.tell()
            if done > size:
                dst.truncate(0)
                done = 0
            src.seek(done)
            shutil.copyfileobj(src, dst, 1 << 20)
        if sha256_file(part) != sha256:  # the partial copy was of other bytes: copy it whole
            part.unlink()
            with open(path, "rb") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if sha256_file(part) != sha256:  # the source itself: its sidecar would name bytes it does not hold
                part.unlink()
                raise _changed(path, "does not match its sha256")
        os.replace(part, self.root / name)
        (self.root / (name + ".sha256")).write_text(f"{sha256}  {name}\n")

    def remove(self, name: str) -> None:
        for target in (name, name + ".sha256"):
            (self.root / check_name(target, str(self.root))).unlink(missing_ok=True)

    def link(self, name: str) -> str:
        return f"{self.base_url}/{quote(name)}"


def make_share(kind: str, *, repo_id: str | None = None, url: str | None = None, folder: str | None = None,
               public_url: str | None = None, root: str | os.PathLike[str] | None = None, user: str | None = None,
               private: bool = True, **kwargs: Any) -> ShareBackend:
    """Build a backend by name: ``'hub'``, ``'webdav'``, ``'nextcloud'`` or ``'http'``."""
    if kind == "hub":
        if not repo_id:
            raise ParameterError("the hub share needs the repo id", "repo_id", "pass repo_id='user/name'")
        return HubShare(repo_id, folder=folder or "chunks", private=private, **kwargs)
    if kind in ("webdav", "nextcloud"):
        if not url:
            raise ParameterError(f"the {kind} share needs its WebDAV URL", "share URL",
                                 "pass --share-url https://<host>/remote.php/dav/files/<user>")
        cls = NextcloudShare if kind == "nextcloud" else WebDavShare
        extra = {"public_url": public_url} if kind == "webdav" else {}
        return cls(url, folder=folder if folder is not None else "mmgene", user=user, **extra, **kwargs)
    if kind == "http":
        if not url or root is None:
            raise ParameterError("the http share needs a local folder and the URL it is served at", "share",
                                 "pass --share-root DIR and --share-url https://host/path")
        return HttpFolderShare(root, url)
    raise ParameterError(f"unknown share backend {kind!r}", "share", f"use one of {', '.join(SHARE_KINDS)}")
