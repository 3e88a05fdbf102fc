"""Fetch a dataset row's AnnData by its share link: verified by sha256, cached, retried, resumed.

A link to a file of a Hub repository (``<HF_ENDPOINT>/[datasets/]<repo>/resolve/<revision>/<path>``)
is fetched by ``huggingface_hub.hf_hub_download`` (:mod:`mmgene.hub.hub_files`: its resume, etag
check and token handling; verified once, then used without hashing it again). Every other link
(WebDAV, Nextcloud, any web server) goes through mmgene's own downloader on
:class:`mmgene.net.http.HttpClient`, written on ``requests`` rather than pooch because pooch neither
resumes a partial download with ``Range`` nor honours ``Retry-After``. The rules:

- the cache is content-addressed (``<cache>/hub/<sha256>/<file name>``); a file fetched by mmgene's
  own downloader is re-hashed before every use and fetched again if it no longer matches, so a
  damaged cache is never loaded;
- the file name comes from ``filename=`` or the link's last path segment, never from the server
  (``Content-Disposition`` is ignored); a name that could leave its folder (``..``, ``/``, ``\\``,
  an encoded ``%2F``, a drive letter, control characters) is refused, so nothing is written outside
  ``<cache>/<sha256>/``;
- ``file://`` links read local files, so they are refused unless the caller passes ``allow_file=True``
  (a dry run's own links); one naming another host (``file://server/...``) is always refused, since
  its path would otherwise be read as a local one;
- a download goes to ``<file>.part``; a broken connection or short body resumes from the bytes
  already there with a ``Range`` request; a complete file whose sha256 differs is deleted and fetched
  again from scratch; only a file that matches is renamed into place;
- each attempt has a total deadline (connect and every read, see :mod:`mmgene.net.deadline`), so a
  server that trickles bytes cannot hold it; what arrived is kept and the next attempt resumes;
- 429/5xx answers and network errors are retried with exponential backoff, honouring ``Retry-After``
  (seconds or an HTTP date); there is no wait after the last attempt;
- the Hugging Face token is sent only to the Hub's own origin (``$HF_ENDPOINT``: same scheme, host and
  port, over https), redirects included (:class:`mmgene.net.http.ScopedAuth`), never put in a link.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mmgene.errors import IntegrityError, ParameterError, RemoteError
from mmgene.hub.chunks import read_chunk, sha256_file
from mmgene.net.credentials import hub_token, redact
from mmgene.progress import info
from mmgene.settings import settings

DEFAULT_ENDPOINT = "https://huggingface.co"
#: seconds one download attempt may take (connect and all reads); a slower transfer resumes in the next
DEFAULT_DEADLINE = 600.0
#: characters no cached file name may hold: path separators, drive/stream colons, control characters
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else Path(settings.cache_dir) / "hub"


def _file_name(url: str) -> str:
    """The link's last path segment, percent-decoded (``.h5ad`` added when it has no extension).

    The segment is taken before decoding, so an encoded ``%2F`` stays inside the name and is refused
    by :func:`_safe_target` rather than silently cut.
    """
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/download"):  # Nextcloud public links: .../index.php/s/<token>/download
        path = path[: -len("/download")]
    name = unquote(path.rsplit("/", 1)[-1]) or "file"
    return name if "." in name else name + ".h5ad"


def is_plain_name(name: str) -> bool:
    """Whether ``name`` is one plain file name: not ``.``/``..``, no separator (``/``, ``\\``), no drive or
    stream colon, no control character, no surrounding blanks."""
    return bool(name) and name not in (".", "..") and not _UNSAFE_NAME.search(name) and name == name.strip()


def _safe_target(folder: Path, name: str, url: str) -> Path:
    """``folder / name``, refusing any name that is not one plain file name inside ``folder``."""
    if not is_plain_name(name):
        raise ParameterError(
            f"refusing to save a download as {name!r}: the name could leave the cache folder",
            redact(url),
            "pass filename='<plain name>' or fix the link (no '..', '/', '\\', ':' or control characters in its last segment)",
        )
    target = folder / name
    if os.path.dirname(os.path.abspath(target)) != os.path.abspath(folder):  # pragma: no cover - guarded above
        raise ParameterError(f"refusing to save a download as {name!r}", redact(url), "pass a plain file name")
    return target


def hub_endpoint() -> str:
    """The Hub's origin: ``$HF_ENDPOINT``, else https://huggingface.co (read at each call)."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _hub_auth() -> Any:
    """The Hub token as a credential scoped to the Hub's origin (read only when a request may carry it)."""
    from mmgene.net.http import ScopedAuth

    return ScopedAuth(hub_endpoint(), bearer=hub_token)


def _auth_headers(url: str) -> dict[str, str]:
    """The Hub token, only for URLs on the Hub's own origin (scheme, host and port; https or loopback)."""
    return _hub_auth().headers(url)


def _check(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def _check_sha256(sha256: str) -> str:
    sha256 = (sha256 or "").lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ParameterError(f"not a sha256 hex digest: {sha256!r}", "sha256", "pass the chunk_sha256 value of the dataset row")
    return sha256


def _check_scheme(url: str, allow_file: bool) -> str:
    """The link's scheme, refusing anything but http(s) and (when allowed) a ``file://`` link to this machine.

    A ``file://`` link with a host (``file://server/share/x.h5ad``) names a file on that machine, yet
    its path alone would read a local file of the same name; only an empty host or ``localhost``
    (RFC 8089) means this machine.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file" and parts.netloc.lower() not in ("", "localhost"):
        host = parts.netloc.rpartition("@")[2]  # never a user name or password in a message
        raise ParameterError(
            f"a file:// link naming the host {host!r} points at a file on another machine; "
            "mmgene reads file:// links on this machine only",
            redact(urlunsplit((parts.scheme, host, parts.path, "", ""))),
            "use file:///<absolute path> (or file://localhost/<path>) for a file on this machine, "
            "or an http(s):// link for a remote one",
        )
    if scheme == "file" and not allow_file:
        raise ParameterError(
            "refusing to read a local file through a file:// link",
            redact(url),
            "pass allow_file=True if you trust this link (e.g. the links of your own dry run)",
        )
    if scheme not in ("http", "https", "file"):
        raise ParameterError(f"unsupported link scheme {scheme!r}", redact(url), "use an http(s):// link (or file:// with allow_file=True)")
    return scheme


def fetch(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    deadline: float | None = None,
    backoff: float = 0.5,
    block: int = 1 << 16,
    allow_file: bool = False,
) -> Path:
    """Download ``url`` into the cache and return its path, guaranteed to match ``sha256``.

    Parameters
    ----------
    url
        An ``http(s)://`` share link (Hub resolve URL, Nextcloud ``.../download``, plain HTTP), or a
        ``file://`` URI when ``allow_file=True``.
    sha256
        The expected hex sha256 (from the dataset's ``chunk_sha256`` column or its card).
    filename
        The cached file's name (default: the link's last segment); a plain name, no folders. A file
        of a Hub repository keeps its path in the repository, so a Hub link takes no ``filename``.
    retries, backoff
        Further attempts after the first, for network errors, 429/5xx answers, deadline overruns,
        truncated and corrupted downloads, and the first wait between them (doubled each time).
    timeout
        Seconds any one connect or read may wait.
    deadline
        Seconds one attempt may take in all (default ``$MMGENE_HTTP_DEADLINE`` or 600); the next
        attempt resumes from the bytes received. (``retries``, ``backoff``, ``timeout`` and ``deadline``
        apply to mmgene's own downloader; a Hub link uses huggingface_hub's.)
    allow_file
        Allow ``file://`` links, which read a local file (refused by default: a dataset row must not
        make mmgene read arbitrary local files).
    """
    from mmgene.net.deadline import resolve_deadline

    sha256 = _check_sha256(sha256)
    scheme = _check_scheme(url, allow_file)
    seconds = resolve_deadline(deadline, DEFAULT_DEADLINE)
    if scheme != "file":
        from mmgene.hub.hub_files import fetch_hub_file, hub_file

        located = hub_file(url, hub_endpoint())
        if located is not None:
            if filename is not None:
                raise ParameterError("a file of a Hub repository keeps its path in the repository", redact(url),
                                     "leave filename out for Hub links")
            return fetch_hub_file(located, sha256, _cache_root(cache_dir) / sha256)
    target = _safe_target(_cache_root(cache_dir) / sha256, filename if filename is not None else _file_name(url), url)
    if target.exists():
        if _check(target, sha256):
            return target
        info(f"mmgene: cached {target.name} does not match its sha256; fetching it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if scheme == "file":
        return _copy_local(url, part, target, sha256)
    return _download(url, part, target, sha256, retries=retries, timeout=timeout, seconds=seconds, backoff=backoff, block=block)


def _copy_local(url: str, part: Path, target: Path, sha256: str) -> Path:
    """A ``file://`` link (allowed by the caller): copy, verify, rename into place."""
    source = Path(unquote(urlsplit(url).path))
    if not source.is_file():
        raise RemoteError(f"the linked file does not exist: {source}", redact(url), "check the link")
    shutil.copyfile(source, part)
    if sha256_file(part) != sha256:
        part.unlink()
        raise IntegrityError(f"{source.name} does not match its sha256", redact(url), "the file changed after publishing; publish again")
    os.replace(part, target)
    return target


def _download(url: str, part: Path, target: Path, sha256: str, *, retries: int, timeout: float, seconds: float,
              backoff: float, block: int) -> Path:
    """GET ``url`` into ``part`` (resuming what is there), verify it, rename it to ``target``.

    Retries, waits and deadlines are :class:`mmgene.net.http.HttpClient`'s; each try resumes, and a
    truncated body, a refused resume or a sha256 mismatch is tried again at once.
    """
    from mmgene.net.deadline import Attempt
    from mmgene.net.http import GaveUp, HttpClient, RetryPolicy, TryAgain

    def prepare() -> dict[str, Any]:
        offset = part.stat().st_size if part.exists() else 0
        return {"headers": {"Range": f"bytes={offset}-"}} if offset else {}

    def accept(response: Any) -> Path:
        offset = part.stat().st_size if part.exists() else 0
        status = response.status_code
        if status == 416 and offset:
            part.unlink()  # the partial file is not a prefix of the remote one
            raise TryAgain("HTTP 416 on resume", wait=0.0)
        if status not in (200, 206):
            raise _refused(status, url)
        with open(part, "ab" if status == 206 and offset else "wb") as fh:
            for data in response.iter_content(block):
                fh.write(data)
        clock = Attempt.current()
        if clock is not None and clock.expired:  # the body was cut short: keep it, the next try resumes
            raise TryAgain(clock.problem())
        total = _total_size(response, offset)
        if total is not None and part.stat().st_size < total:
            raise TryAgain("truncated download", wait=0.0)  # resume from what arrived
        if sha256_file(part) != sha256:
            part.unlink()
            info(f"mmgene: {target.name} did not match its sha256; fetching it again")
            raise TryAgain("sha256 mismatch", wait=0.0)
        os.replace(part, target)
        return target

    policy = RetryPolicy(retries=retries, backoff=backoff)
    with HttpClient(policy=policy, timeout=timeout, deadline=seconds, auth=_hub_auth()) as http:
        try:
            return http.request("GET", url, stream=True, prepare=prepare, accept=accept, what=f"the download of {target.name}",
                                hint="try again later (the next run resumes), or check that the link and its sha256 belong together")
        except GaveUp as exc:
            if exc.problem != "sha256 mismatch":
                raise
            raise IntegrityError(f"could not download {target.name} (sha256 mismatch) after {exc.attempts} attempts", redact(url),
                                 "check that the link and its sha256 belong together") from None


def _refused(status: int, url: str) -> RemoteError:
    denied = status in (401, 403)
    return RemoteError(
        f"download failed with HTTP {status}",
        redact(url),
        "the link needs credentials: for a private Hub dataset set HF_TOKEN or run `hf auth login` (the token is sent "
        "only to $HF_ENDPOINT over https); WebDAV links must point at a public URL (publish with --public-url)"
        if denied else "check the link",
    )


def _total_size(response: Any, offset: int) -> int | None:
    rng = response.headers.get("Content-Range", "")
    if "/" in rng and rng.rsplit("/", 1)[1].isdigit():
        return int(rng.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (offset if response.status_code == 206 else 0)
    return None


def fetch_anndata(
    row_or_url: Mapping[str, Any] | str | Any,
    sha256: str | None = None,
    **kwargs: Any,
) -> Any:
    """The AnnData chunk a dataset row points to (``share_link`` + ``chunk_sha256``), fetched and verified.

    Pass a row of a dataset made by :func:`mmgene.hub.publish` (a mapping, or a pandas row such as
    ``table.iloc[i]``), or a link and its sha256. The file is read only after its sha256 matched.
    Select the row's cell with ``adata[row['cell_id']]``.
    Keyword arguments go to :func:`fetch`; the ``file://`` links of a dry run need ``allow_file=True``.
    """
    fix = "pass a row of a dataset made by mmgene.hub.publish, or a link and its sha256"
    if isinstance(row_or_url, str):
        url = row_or_url
        if sha256 is None:
            raise ParameterError("a link needs its sha256", "sha256", "pass sha256=... (the chunk_sha256 column)")
    elif isinstance(row_or_url, Mapping) or callable(getattr(row_or_url, "keys", None)):  # a dict, or a pandas row
        row = row_or_url if isinstance(row_or_url, Mapping) else dict(row_or_url)
        missing = [k for k in ("share_link", "chunk_sha256") if k not in row]
        if missing:
            raise ParameterError(f"the row has no {' or '.join(missing)} column", "row", fix)
        url, sha256 = row["share_link"], row["chunk_sha256"]
    else:
        raise ParameterError(f"fetch_anndata takes a dataset row or a share link, not a {type(row_or_url).__name__}",
                             "row_or_url", fix)
    return read_chunk(fetch(url, sha256, **kwargs))
