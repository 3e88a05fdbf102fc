"""Fetch a dataset row's AnnData by its share link: verified by sha256, cached, retried, resumed.

Written on ``requests`` rather than pooch because pooch neither resumes a partial download with
``Range`` nor honours ``Retry-After``. The rules:

- the cache is content-addressed (``<cache>/hub/<sha256>/<file name>``); a cached file is re-hashed
  before every use and fetched again if it no longer matches, so a damaged cache is never loaded;
- a download goes to ``<file>.part``; a broken connection or short body resumes from the bytes
  already there with a ``Range`` request; a complete file whose sha256 differs is deleted and fetched
  again from scratch; only a file that matches is renamed into place;
- 429/5xx answers and network errors are retried with exponential backoff, honouring ``Retry-After``;
- the Hugging Face token is sent only to the Hub's own host (``$HF_ENDPOINT``), never put in a link.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mmgene.errors import IntegrityError, ParameterError, RemoteError
from mmgene.hub.chunks import read_chunk, sha256_file
from mmgene.hub.credentials import hub_token, redact
from mmgene.progress import info
from mmgene.settings import settings

RETRY_STATUS = {429, 500, 502, 503, 504}
DEFAULT_ENDPOINT = "https://huggingface.co"


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else Path(settings.cache_dir) / "hub"


def _file_name(url: str) -> str:
    path = unquote(urlsplit(url).path).rstrip("/")
    if path.endswith("/download"):  # Nextcloud public links: .../index.php/s/<token>/download
        path = path[: -len("/download")]
    name = path.rsplit("/", 1)[-1] or "file"
    return name if "." in name else name + ".h5ad"


def _auth_headers(url: str) -> dict[str, str]:
    """The Hub token, only for URLs on the Hub's host."""
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    if urlsplit(url).netloc != urlsplit(endpoint).netloc:
        return {}
    token = hub_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _retry_after(response: Any, attempt: int, backoff: float) -> float:
    header = response.headers.get("Retry-After") if response is not None else None
    if header is not None:
        try:
            return min(float(header), 60.0)
        except ValueError:
            pass
    return backoff * (2**attempt)


def _check(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def fetch(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 0.5,
    block: int = 1 << 16,
) -> Path:
    """Download ``url`` into the cache and return its path, guaranteed to match ``sha256``.

    Parameters
    ----------
    url
        An ``http(s)://`` share link (Hub resolve URL, Nextcloud ``.../download``, plain HTTP) or a
        ``file://`` URI.
    sha256
        The expected hex sha256 (from the dataset's ``chunk_sha256`` column or its card).
    retries
        Further attempts after the first, for network errors, 429/5xx answers, truncated and
        corrupted downloads.
    """
    import requests

    sha256 = (sha256 or "").lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ParameterError(f"not a sha256 hex digest: {sha256!r}", "sha256", "pass the chunk_sha256 value of the dataset row")
    target = _cache_root(cache_dir) / sha256 / (filename or _file_name(url))
    if target.exists():
        if _check(target, sha256):
            return target
        info(f"mmgene: cached {target.name} does not match its sha256; fetching it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")

    scheme = urlsplit(url).scheme
    if scheme == "file":
        source = Path(unquote(urlsplit(url).path))
        if not source.is_file():
            raise RemoteError(f"the linked file does not exist: {source}", redact(url), "check the link")
        shutil.copyfile(source, part)
        if sha256_file(part) != sha256:
            part.unlink()
            raise IntegrityError(f"{source.name} does not match its sha256", redact(url), "the file changed after publishing; publish again")
        os.replace(part, target)
        return target
    if scheme not in ("http", "https"):
        raise ParameterError(f"unsupported link scheme {scheme!r}", redact(url), "use an http(s):// or file:// link")

    headers = _auth_headers(url)
    last_problem = "no attempt made"
    with requests.Session() as session:
        for attempt in range(retries + 1):
            offset = part.stat().st_size if part.exists() else 0
            request_headers = dict(headers, **({"Range": f"bytes={offset}-"} if offset else {}))
            response = None
            try:
                response = session.get(url, headers=request_headers, stream=True, timeout=timeout)
                if response.status_code in RETRY_STATUS:
                    last_problem = f"HTTP {response.status_code}"
                    time.sleep(_retry_after(response, attempt, backoff))
                    continue
                if response.status_code == 416 and offset:
                    part.unlink()  # the partial file is not a prefix of the remote one
                    last_problem = "HTTP 416 on resume"
                    continue
                if response.status_code not in (200, 206):
                    denied = response.status_code in (401, 403)
                    raise RemoteError(
                        f"download failed with HTTP {response.status_code}",
                        redact(url),
                        "the link needs credentials: for a private Hub dataset set HF_TOKEN or run `hf auth login`; "
                        "WebDAV links must point at a public URL (publish with --public-url)" if denied else "check the link",
                    )
                mode = "ab" if response.status_code == 206 and offset else "wb"
                with open(part, mode) as fh:
                    for data in response.iter_content(block):
                        fh.write(data)
            except requests.RequestException as exc:
                last_problem = f"{type(exc).__name__}"
                time.sleep(_retry_after(None, attempt, backoff) if attempt else 0)
                continue
            finally:
                if response is not None:
                    response.close()
            if sha256_file(part) == sha256:
                os.replace(part, target)
                return target
            total = _total_size(response, offset)
            if total is not None and part.stat().st_size < total:
                last_problem = "truncated download"
                continue  # resume from what arrived
            part.unlink()
            last_problem = "sha256 mismatch"
            info(f"mmgene: {target.name} did not match its sha256; fetching it again")
    if part.exists() and last_problem == "sha256 mismatch":  # pragma: no cover - removed above
        part.unlink()
    error = IntegrityError if last_problem == "sha256 mismatch" else RemoteError
    raise error(
        f"could not download {target.name} ({last_problem}) after {retries + 1} attempts",
        redact(url),
        "try again later, or check that the link and its sha256 belong together",
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
    row_or_url: Mapping[str, Any] | str,
    sha256: str | None = None,
    **kwargs: Any,
) -> Any:
    """The AnnData chunk a dataset row points to (``share_link`` + ``chunk_sha256``), fetched and verified.

    Pass a row of a dataset made by :func:`mmgene.hub.publish`, or a link and its sha256. The file
    is read only after its sha256 matched. Select the row's cell with ``adata[row['cell_id']]``.
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
