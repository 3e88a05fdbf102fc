"""Fetch a dataset row's AnnData by its share link: verified by sha256, cached, retried, resumed.

Written on ``requests`` rather than pooch because pooch neither resumes a partial download with
``Range`` nor honours ``Retry-After``. The rules:

- the cache is content-addressed (``<cache>/hub/<sha256>/<file name>``); a cached file is re-hashed
  before every use and fetched again if it no longer matches, so a damaged cache is never loaded;
- the file name comes from ``filename=`` or the link's last path segment, never from the server
  (``Content-Disposition`` is ignored); a name that could leave its folder (``..``, ``/``, ``\\``,
  an encoded ``%2F``, a drive letter, control characters) is refused, so nothing is written outside
  ``<cache>/<sha256>/``;
- ``file://`` links read local files, so they are refused unless the caller passes ``allow_file=True``
  (a dry run's own links);
- a download goes to ``<file>.part``; a broken connection or short body resumes from the bytes
  already there with a ``Range`` request; a complete file whose sha256 differs is deleted and fetched
  again from scratch; only a file that matches is renamed into place;
- each attempt has a total deadline (connect and every read, see :mod:`mmgene.net.deadline`), so a
  server that trickles bytes cannot hold it; what arrived is kept and the next attempt resumes;
- 429/5xx answers and network errors are retried with exponential backoff, honouring ``Retry-After``;
  there is no wait after the last attempt;
- the Hugging Face token is sent only to the Hub's own origin (``$HF_ENDPOINT``: same scheme, host and
  port, over https; see :func:`mmgene.net.credentials.may_receive_secret`), never put in a link.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mmgene.errors import IntegrityError, ParameterError, RemoteError
from mmgene.hub.chunks import read_chunk, sha256_file
from mmgene.net.credentials import hub_token, may_receive_secret, redact
from mmgene.progress import info
from mmgene.settings import settings

RETRY_STATUS = {429, 500, 502, 503, 504}
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


def _auth_headers(url: str) -> dict[str, str]:
    """The Hub token, only for URLs on the Hub's own origin (scheme, host and port; https or loopback)."""
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    if not may_receive_secret(url, endpoint):
        return {}
    token = hub_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _retry_after(response: Any) -> float | None:
    """Seconds the server's ``Retry-After`` asks for (at most 60), or ``None`` when it says nothing usable."""
    header = response.headers.get("Retry-After")
    try:
        return min(max(float(header), 0.0), 60.0) if header is not None else None
    except ValueError:
        return None


def _check(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def _check_sha256(sha256: str) -> str:
    sha256 = (sha256 or "").lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ParameterError(f"not a sha256 hex digest: {sha256!r}", "sha256", "pass the chunk_sha256 value of the dataset row")
    return sha256


def _check_scheme(url: str, allow_file: bool) -> str:
    scheme = urlsplit(url).scheme.lower()
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
        The cached file's name (default: the link's last segment); a plain name, no folders.
    retries
        Further attempts after the first, for network errors, 429/5xx answers, deadline overruns,
        truncated and corrupted downloads.
    timeout
        Seconds any one connect or read may wait.
    deadline
        Seconds one attempt may take in all (default ``$MMGENE_HTTP_DEADLINE`` or 600); the next
        attempt resumes from the bytes received.
    allow_file
        Allow ``file://`` links, which read a local file (refused by default: a dataset row must not
        make mmgene read arbitrary local files).
    """
    from mmgene.net.deadline import resolve_deadline

    sha256 = _check_sha256(sha256)
    scheme = _check_scheme(url, allow_file)
    seconds = resolve_deadline(deadline, DEFAULT_DEADLINE)
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
    """The retry loop: one :func:`_attempt` per try, a wait only before the next one."""
    from mmgene.net.deadline import deadline_session

    headers = _auth_headers(url)
    last_problem, wait = "no attempt made", 0.0
    with deadline_session() as session:
        for attempt in range(retries + 1):
            if attempt and wait:
                time.sleep(wait)  # only between attempts: the loop ends right after the last one
            last_problem, told = _attempt(session, url, part, headers, timeout=timeout, seconds=seconds, block=block)
            wait = backoff * (2**attempt) if told is None else told
            if last_problem == "":
                if sha256_file(part) == sha256:
                    os.replace(part, target)
                    return target
                part.unlink()
                last_problem, wait = "sha256 mismatch", 0.0
                info(f"mmgene: {target.name} did not match its sha256; fetching it again")
    raise _final_error(target.name, url, last_problem, retries + 1, seconds)


def _attempt(session: Any, url: str, part: Path, headers: dict[str, str], *, timeout: float, seconds: float,
             block: int) -> tuple[str, float | None]:
    """One GET (resuming ``part``): ``("", 0)`` when a complete body arrived, else ``(problem, wait)``
    where ``wait`` is what the server asked for, ``0`` to retry at once, ``None`` to back off."""
    from mmgene.net.deadline import NETWORK_ERRORS, Attempt

    offset = part.stat().st_size if part.exists() else 0
    request_headers = dict(headers, **({"Range": f"bytes={offset}-"} if offset else {}))
    with Attempt(seconds) as clock:
        try:
            with session.get(url, headers=request_headers, stream=True, timeout=clock.timeout(timeout, timeout)) as response:
                status = response.status_code
                if status in RETRY_STATUS:
                    return f"HTTP {status}", _retry_after(response)
                if status == 416 and offset:
                    part.unlink()  # the partial file is not a prefix of the remote one
                    return "HTTP 416 on resume", 0.0
                if status not in (200, 206):
                    raise _refused(status, url)
                with open(part, "ab" if status == 206 and offset else "wb") as fh:
                    for data in response.iter_content(block):
                        fh.write(data)
                total = _total_size(response, offset)
        except NETWORK_ERRORS as exc:
            return clock.problem(exc), None
        if clock.expired:  # the watchdog cut the body short; keep what arrived for the next attempt
            return clock.problem(), None
    if total is not None and part.stat().st_size < total:
        return "truncated download", 0.0  # resume from what arrived
    return "", 0.0


def _refused(status: int, url: str) -> RemoteError:
    denied = status in (401, 403)
    return RemoteError(
        f"download failed with HTTP {status}",
        redact(url),
        "the link needs credentials: for a private Hub dataset set HF_TOKEN or run `hf auth login` (the token is sent "
        "only to $HF_ENDPOINT over https); WebDAV links must point at a public URL (publish with --public-url)"
        if denied else "check the link",
    )


def _final_error(name: str, url: str, problem: str, attempts: int, seconds: float) -> Exception:
    if problem == "sha256 mismatch":
        return IntegrityError(f"could not download {name} (sha256 mismatch) after {attempts} attempts", redact(url),
                              "check that the link and its sha256 belong together")
    fix = "try again later, or check that the link and its sha256 belong together"
    if "deadline" in problem:
        fix = (f"the server is too slow or stalls: try again later (the next run resumes), or allow more time per attempt "
               f"with deadline= (now {seconds:g} s) or MMGENE_HTTP_DEADLINE")
    return RemoteError(f"could not download {name} ({problem}) after {attempts} attempts", redact(url), fix)


def _total_size(response: Any, offset: int) -> int | None:
    rng = response.headers.get("Content-Range", "")
    if "/" in rng and rng.rsplit("/", 1)[1].isdigit():
        return int(rng.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (offset if response.status_code == 206 else 0)
    return None


def fetch_anndata(
    row_or_url: Mapping[str, Any] | str,
    sha256: str | None = None,
    **kwargs: Any,
) -> Any:
    """The AnnData chunk a dataset row points to (``share_link`` + ``chunk_sha256``), fetched and verified.

    Pass a row of a dataset made by :func:`mmgene.hub.publish`, or a link and its sha256. The file
    is read only after its sha256 matched. Select the row's cell with ``adata[row['cell_id']]``.
    Keyword arguments go to :func:`fetch`; the ``file://`` links of a dry run need ``allow_file=True``.
    """
    if isinstance(row_or_url, Mapping):
        missing = [k for k in ("share_link", "chunk_sha256") if k not in row_or_url]
        if missing:
            raise ParameterError(
                f"the row has no {', '.join(missing)} column",
                "row",
                "pass a row of a dataset made by mmgene.hub.publish, or a link and its sha256",
            )
        url, sha256 = row_or_url["share_link"], row_or_url["chunk_sha256"]
    else:
        url = row_or_url
        if sha256 is None:
            raise ParameterError("a link needs its sha256", "sha256", "pass sha256=... (the chunk_sha256 column)")
    return read_chunk(fetch(url, sha256, **kwargs))
