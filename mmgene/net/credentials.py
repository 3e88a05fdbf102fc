"""Where tokens and passwords come from, and how they are kept out of every message.

Secrets are read from the environment (or huggingface_hub's saved login) at the moment they are
needed, never taken from command-line flags, and every secret read here is registered so that
:func:`redact` can blank it out of any text mmgene shows (errors, logs, cards, links), raw or encoded
(percent-encoded as in URLs and forms, base64 as in Basic auth headers).

A secret goes only to the origin it belongs to (:func:`may_receive_secret`): same scheme, host and
port, over https. The one exception is a plain-http origin on this machine (127.0.0.1, ::1,
localhost): the test servers and local servers are reached that way, and a remote URL can never
match it, because the whole origin, scheme included, must be equal.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from functools import lru_cache
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from mmgene.errors import ParameterError

#: environment variables holding share-server credentials (WebDAV / Nextcloud)
USER_ENV = "MMGENE_SHARE_USER"
PASSWORD_ENV = "MMGENE_SHARE_PASSWORD"

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` removes it from messages."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that depend only on ``data``, at each of its three possible byte
    alignments inside a longer encoded string (standard and URL-safe alphabets)."""
    out: set[str] = set()
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + data).decode()
        core = text[-(-4 * shift // 3) : 8 * (shift + len(data)) // 6]
        out.update({core, core.replace("+", "-").replace("/", "_")})
    return out


def secret_forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in text: raw, percent-encoded (``quote`` with and without ``/``
    kept, ``quote_plus``; upper- or lower-case hex) and base64 (see :func:`_base64_cores`)."""
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/")):
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))
    forms |= _base64_cores(secret.encode("utf-8"))
    return {f for f in forms if len(f) >= 4}


@lru_cache(maxsize=8)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in secret_forms(secret)}
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def redact(text: object) -> str:
    """``text`` with every registered secret, in any of its :func:`secret_forms`, replaced by ``***``."""
    out = str(text)
    pattern = _pattern(frozenset(_SECRETS))
    return pattern.sub("***", out) if pattern is not None else out


# -- where a secret may go -------------------------------------------------------------------------
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, lower-cased, with the scheme's default port filled in;
    ``("", "", None)`` for a URL whose port is not a number."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return "", "", None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address such as 127.0.0.1, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_receive_secret(url: str, home: str) -> bool:
    """Whether a secret that belongs to ``home`` may be sent with a request to ``url``.

    Only when both have the same scheme, host and port, and that origin is https, or plain http on
    a loopback address (local servers and tests; a remote URL can never equal such an origin).
    """
    scheme, host, port = origin(home)
    if not host or origin(url) != (scheme, host, port):
        return False
    return scheme == "https" or (scheme == "http" and is_loopback(host))


def require_secure_origin(url: str, what: str, secret: str) -> None:
    """Refuse to configure a client that would send ``secret`` to ``url`` without https."""
    if may_receive_secret(url, url):
        return
    raise ParameterError(
        f"{what} {redact(url)} is not an https:// URL, so {secret} would travel unencrypted",
        what,
        "use an https:// URL (plain http is allowed only for a server on this machine: 127.0.0.1, ::1 or localhost)",
    )


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
    register_secret(f"{user}:{password}")  # what a Basic auth header encodes
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
