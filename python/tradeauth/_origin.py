"""Where the ``requests`` and ``httpx`` plug-ins may send a credential: the one rule.

A credential goes only to an ``https://`` URL on the client's own origin (scheme, host
and port of its ``base_url``). A plain ``http://`` URL, or an ``https://`` URL on another
origin, raises :class:`tradeauth.InsecureUrl` before anything is sent; its message names
the refused origin and never a secret. On a redirect the credential is removed from every
hop that is not on that origin (the hop itself is still followed, without it).
"""

from __future__ import annotations

from typing import Any, MutableMapping, NoReturn, Optional, Tuple
from urllib.parse import urlsplit

from tradeauth._native import BaseClient, InsecureUrl

__all__ = ["CREDENTIAL_HEADERS", "check", "is_own", "origin_of", "same_origin", "strip"]

# Every header a venue client attaches (Bearer token / JWT, Exchange API key). Removed by
# name on a hop that leaves the origin, whichever the client sent.
CREDENTIAL_HEADERS: Tuple[str, ...] = ("authorization", "x-api-key")

# `ErrorKind::InsecureUrl.code()` in the Rust core (python/tests check they agree).
_INSECURE_URL_CODE = 2

Origin = Tuple[str, str, int]


def origin_of(url: str) -> Optional[Origin]:
    """``(scheme, host, port)`` of an absolute URL, lowercased, default ports filled in;
    ``None`` when it has no host or a bad port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme, 0)
    return (scheme, host, port)


def _show(origin: Optional[Origin], url: str) -> str:
    """An origin as text for a message: scheme, host and port only (never a path or query,
    which a caller may have put a secret in)."""
    if origin is None:
        scheme = urlsplit(url).scheme if "://" in url else ""
        return f"{scheme or 'a'} URL without a usable host"
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def same_origin(client: BaseClient, url: str) -> bool:
    """Whether `url` is ``https://`` on the client's own origin."""
    mine = origin_of(client.base_url)
    theirs = origin_of(url)
    return theirs is not None and theirs[0] == "https" and theirs == mine


def is_own(client: BaseClient, scheme: str, host: str, port: Optional[int]) -> bool:
    """Whether a request's parts name the client's own https origin (a transport-level
    request, whose URL comes in pieces)."""
    scheme = scheme.lower()
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme, 0)
    return scheme == "https" and (scheme, host.lower().strip("[]"), port) == origin_of(
        client.base_url
    )


def _refuse(message: str) -> NoReturn:
    error = InsecureUrl(message)
    # The attributes every tradeauth exception carries (set by the native conversion).
    error.kind = "insecure_url"
    error.code = _INSECURE_URL_CODE
    error.status = None
    error.retryable = False
    error.retry_after = None
    raise error


def check(client: BaseClient, url: str) -> None:
    """Raises :class:`tradeauth.InsecureUrl` unless `url` may carry the client's credential."""
    if same_origin(client, url):
        return
    theirs = origin_of(url)
    venue = client.venue
    if theirs is not None and theirs[0] == "http":
        _refuse(
            f"refusing to send the {venue} credential over plain http to {_show(theirs, url)}; "
            "use the venue's https:// URL"
        )
    mine = origin_of(client.base_url)
    _refuse(
        f"refusing to send the {venue} credential to {_show(theirs, url)}: it is not the "
        f"client's origin {_show(mine, client.base_url)}"
    )


def strip(headers: MutableMapping[str, Any]) -> None:
    """Removes the credential headers, whatever their case."""
    for name in [k for k in headers if k.lower() in CREDENTIAL_HEADERS]:
        del headers[name]
