"""Where tokens and passwords come from, and how they are kept out of every message.

Secrets are read from the environment (or huggingface_hub's saved login) at the moment they are
needed, never taken from command-line flags, and every secret read here is registered so that
:func:`redact` can blank it out of any text mmgene shows (errors, logs, cards, links).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from mmgene.errors import ParameterError

#: environment variables holding share-server credentials (WebDAV / Nextcloud)
USER_ENV = "MMGENE_SHARE_USER"
PASSWORD_ENV = "MMGENE_SHARE_PASSWORD"

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` removes it from messages."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: object) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    out = str(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


def hub_token(token: str | None = None) -> str | None:
    """The Hugging Face token: the argument, ``$HF_TOKEN``, or huggingface_hub's saved login."""
    if not token:
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        try:
            from huggingface_hub import get_token

            token = get_token()
        except ImportError:  # pragma: no cover - huggingface_hub is part of the hub extra
            token = None
    register_secret(token)
    return token


def share_credentials(user: str | None = None) -> tuple[str, str] | None:
    """``(user, password)`` for WebDAV/Nextcloud from ``$MMGENE_SHARE_USER``/``$MMGENE_SHARE_PASSWORD``."""
    user = user or os.environ.get(USER_ENV)
    password = os.environ.get(PASSWORD_ENV)
    if not user and not password:
        return None
    if not user or not password:
        missing = USER_ENV if not user else PASSWORD_ENV
        raise ParameterError(
            f"share credentials are incomplete: {missing} is not set",
            "the environment",
            f"export {USER_ENV} and {PASSWORD_ENV} (passwords are never passed on the command line)",
        )
    register_secret(password)
    return user, password


def clean_url(url: str, what: str = "URL") -> str:
    """``url`` without trailing slash; refuses URLs that carry a user name or password."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        raise ParameterError(f"{what} must start with http://, https:// or file://", what, "pass a full URL")
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        safe = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        raise ParameterError(
            f"{what} {safe} must not contain a user name or password",
            what,
            f"remove them from the URL and export {USER_ENV} and {PASSWORD_ENV} instead",
        )
    return url.rstrip("/")
