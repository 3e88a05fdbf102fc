"""Chunk files stored in a Hub repository: fetched by ``huggingface_hub.hf_hub_download``, verified
by sha256 once.

A link on the Hub's own origin of the form
``<endpoint>/[datasets/|spaces/]<namespace>/<name>/resolve/<revision>/<path>`` (what
:class:`mmgene.hub.share.HubShare` makes) names one file of one repository. It is downloaded by
``hf_hub_download`` into ``<cache>/hub/<sha256>/<path>`` (its ``local_dir`` mode: huggingface_hub
resumes an interrupted download, records the file's etag and commit under ``.cache/huggingface/``
there, and sends the token only to the Hub; mmgene gives it the token only when the Hub's endpoint is
https or on this machine). Before any byte is fetched, the file's etag is asked
for: on the Hub a large (LFS) file's etag is its sha256, so a link whose file changed is refused at
once.

The downloaded file is hashed once; when it matches, a stamp goes beside it (``<file>.verified``:
the sha256, the etag and commit it was fetched at, its size and modification time). While the file
keeps that size and time, later uses take it as it is: no request, no hashing. A file that changed
is hashed again, and one that no longer matches is fetched again; a fresh download that does not
match is deleted and refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mmgene.errors import IntegrityError, MMGeneError, ParameterError, RemoteError, cause
from mmgene.hub.chunks import sha256_file
from mmgene.hub.download import is_plain_name
from mmgene.net.credentials import hub_token, may_receive_secret, origin, redact
from mmgene.progress import info

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: errors of the code itself, never turned into a message about the network
_BUGS = (TypeError, AttributeError, NameError, ImportError)
STAMP_SUFFIX = ".verified"


@dataclass(frozen=True)
class HubFile:
    """One file of one Hub repository, as a resolve link names it."""

    url: str
    endpoint: str
    repo_type: str
    repo_id: str
    revision: str
    path: str


def hub_file(url: str, endpoint: str) -> HubFile | None:
    """The Hub file ``url`` links to, or ``None`` when it is no ``resolve`` link on ``endpoint``'s origin.

    Segments are decoded after splitting, so an encoded ``%2F`` stays inside its segment; a path
    segment that is not one plain name (``..``, a separator, a colon, a control character) is refused,
    so nothing is written outside the file's cache folder.
    """
    parts = urlsplit(url)
    base = urlsplit(endpoint).path.rstrip("/")
    if origin(url) != origin(endpoint) or not parts.path.startswith(base + "/"):
        return None
    segments = parts.path[len(base):].strip("/").split("/")
    repo_type = "model"
    if segments[0] in ("datasets", "spaces"):
        repo_type, segments = segments[0][:-1], segments[1:]
    if len(segments) < 5 or segments[2] != "resolve":
        return None
    names = [unquote(s) for s in (segments[0], segments[1], *segments[4:])]
    if not all(is_plain_name(n) for n in names):
        raise ParameterError(
            "refusing to save a Hub file whose repository or path could leave the cache folder",
            redact(url),
            "use the link the dataset row gives (no '..', '\\', ':' or control characters in it)",
        )
    return HubFile(url, endpoint, repo_type, f"{names[0]}/{names[1]}", unquote(segments[3]), "/".join(names[2:]))


# -- the stamp of a verified file -------------------------------------------------------------------
def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + STAMP_SUFFIX)


def is_verified(path: Path, sha256: str) -> bool:
    """Whether ``path`` carries a stamp saying it matched ``sha256`` and has not changed since
    (same size and modification time)."""
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (isinstance(stamp, dict) and stamp.get("sha256") == sha256 and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def _stamp(path: Path, sha256: str, etag: str | None, commit: str | None) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "etag": etag, "commit": commit, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _stamp_path(path).with_name(_stamp_path(path).name + ".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True) + "\n")
    os.replace(tmp, _stamp_path(path))


def _forget(path: Path) -> None:
    """Delete a cached file that does not match, and its stamp (both written here)."""
    path.unlink(missing_ok=True)
    _stamp_path(path).unlink(missing_ok=True)


# -- fetching ---------------------------------------------------------------------------------------
def fetch_hub_file(hub: HubFile, sha256: str, folder: Path) -> Path:
    """``hub``'s file under ``folder`` (``<cache>/hub/<sha256>``), guaranteed to match ``sha256``."""
    target = folder.joinpath(*hub.path.split("/"))
    if is_verified(target, sha256):
        return target
    etag, commit = _remote_version(hub)
    if etag is not None and _SHA256.fullmatch(etag) and etag != sha256:
        raise IntegrityError(
            f"{hub.path} in {hub.repo_id} has sha256 {etag}, not {sha256}", redact(hub.url),
            "check that the link and its sha256 belong together (the file changed after publishing: publish again)",
        )
    for force in (False, True):  # a local file that no longer matches is fetched once more, from scratch
        path = _download(hub, commit or hub.revision, folder, force)
        if sha256_file(path) == sha256:
            _stamp(path, sha256, etag, commit)
            return path
        _forget(path)
        info(f"mmgene: {hub.path} did not match its sha256{'' if force else '; fetching it again'}")
    raise IntegrityError(f"{hub.path} from {hub.repo_id} does not match its sha256", redact(hub.url),
                         "check that the link and its sha256 belong together")


def _hub_api() -> Any:
    from mmgene.lazy import require

    return require("huggingface_hub", "fetching a file from the Hub")


def _token(hub: HubFile) -> str | bool | None:
    """The Hub token for ``hub``'s endpoint, or ``False`` (huggingface_hub then sends none) when that
    endpoint is neither https nor this machine: the token never travels in clear text."""
    return hub_token() if may_receive_secret(hub.endpoint, hub.endpoint) else False


def _remote_version(hub: HubFile) -> tuple[str | None, str | None]:
    """``(etag, commit)`` of the file on the Hub now; ``(None, None)`` when huggingface_hub is offline."""
    hf = _hub_api()
    from huggingface_hub.errors import OfflineModeIsEnabled

    url = hf.hf_hub_url(hub.repo_id, hub.path, repo_type=hub.repo_type, revision=hub.revision, endpoint=hub.endpoint)
    try:
        meta = hf.get_hf_file_metadata(url, token=_token(hub))
    except OfflineModeIsEnabled:
        return None, None
    except _BUGS:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's HTTP and network errors, whatever its HTTP library
        raise _hub_error(hub, exc) from None
    return meta.etag, meta.commit_hash


def _download(hub: HubFile, revision: str, folder: Path, force: bool) -> Path:
    hf = _hub_api()
    try:
        return Path(hf.hf_hub_download(hub.repo_id, hub.path, repo_type=hub.repo_type, revision=revision, local_dir=folder,
                                       endpoint=hub.endpoint, token=_token(hub), force_download=force))
    except _BUGS:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's HTTP and network errors, whatever its HTTP library
        raise _hub_error(hub, exc) from None


def _hub_error(hub: HubFile, exc: BaseException) -> MMGeneError:
    """One clear error for what huggingface_hub raised (no secret in it)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = redact(hub.url)
    if isinstance(exc, LocalEntryNotFoundError):
        return RemoteError(f"{hub.path} is not cached and the Hub cannot be reached ({redact(cause(exc))})", where,
                           "check the network (HF_HUB_OFFLINE must be unset) and try again")
    if isinstance(exc, RepositoryNotFoundError):
        return RemoteError(f"the Hub repository {hub.repo_id} was not found or is private", where,
                           "for a private dataset set HF_TOKEN or run `hf auth login` (the token is sent only to $HF_ENDPOINT, "
                           "and only over https or to this machine)")
    if isinstance(exc, RevisionNotFoundError):
        return RemoteError(f"the Hub repository {hub.repo_id} has no revision {hub.revision!r}", where, "check the link")
    if isinstance(exc, EntryNotFoundError):
        return RemoteError(f"{hub.path} is not in the Hub repository {hub.repo_id}", where, "check the link")
    if isinstance(exc, ValueError) and not isinstance(exc, OSError):
        return ParameterError(f"huggingface_hub refused the link ({redact(cause(exc))})", where, "check the link")
    return RemoteError(f"could not fetch {hub.path} from the Hub ({redact(cause(exc))})", where,
                       "try again later (an interrupted download resumes)")
