"""``httpx`` integration: ``httpx.Client(auth=client.httpx_auth())``.

An ``httpx.Auth`` whose ``auth_flow`` attaches the client's current header and, on a 401
from a venue whose credential can be renewed, drops that credential, gets a fresh one
and re-sends the request once. The async flow awaits renewals on the library's runtime,
so an ``httpx.AsyncClient`` never blocks its event loop.

Where the credential goes: only to ``https://`` URLs on the client's own origin (scheme,
host and port of its ``base_url``). Any other URL — plain ``http://``, or ``https://`` on
another host or port — raises :class:`tradeauth.InsecureUrl` from the auth flow, before
anything is sent; the message names the refused origin, never a secret.

Redirects (``follow_redirects=True``) are followed by httpx inside one run of the auth
flow, and httpx strips only ``Authorization``, never ``x-api-key``. So the flow also puts
a ``trace`` extension on the request (httpx copies it to every hop; a ``trace`` of your
own is still called): on each hop, just before its headers are written, the
``Authorization`` and ``x-api-key`` headers are removed unless that hop is on the same
https origin. The hop is still followed, without the credential. This runs in httpx's
default transport (httpcore); with a custom transport that ignores the ``trace``
extension, leave ``follow_redirects`` off.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, Awaitable, Callable, Generator, Optional

import httpx as _httpx

from tradeauth import _origin
from tradeauth._native import BaseClient

__all__ = ["HttpxAuth"]

_CREDENTIAL_HEADERS = tuple(name.encode("ascii") for name in _origin.CREDENTIAL_HEADERS)


class HttpxAuth(_httpx.Auth):
    """An ``httpx`` auth flow backed by a tradeauth client (sync and async)."""

    # The request may be sent twice, so httpx must read a streaming body first.
    requires_request_body = True

    def __init__(self, client: BaseClient) -> None:
        self.client = client

    def auth_flow(self, request: _httpx.Request) -> Generator[_httpx.Request, _httpx.Response, None]:
        _origin.check(self.client, str(request.url))
        self._guard_hops(request, asynchronous=False)
        sent = self.client.headers()
        request.headers.update(sent)
        response = yield request
        if self._retry(response):
            self.client.invalidate(sent)
            request.headers.update(self.client.headers())
            yield request

    async def async_auth_flow(
        self, request: _httpx.Request
    ) -> AsyncGenerator[_httpx.Request, _httpx.Response]:
        _origin.check(self.client, str(request.url))
        self._guard_hops(request, asynchronous=True)
        sent = self.client.current_headers()
        if sent is None:
            sent = await self.client.aheaders()
        request.headers.update(sent)
        response = yield request
        if self._retry(response):
            await self.client.ainvalidate(sent)
            request.headers.update(await self.client.aheaders())
            yield request

    def _retry(self, response: _httpx.Response) -> bool:
        # A 401 from a hop a redirect took off the origin is not the venue's answer.
        return (
            response.status_code == 401
            and self.client.renewable
            and _origin.same_origin(self.client, str(response.request.url))
        )

    def _strip_off_origin(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback: drops the credential from a hop off the origin just
        before its headers are written."""
        if not event.endswith("send_request_headers.started"):
            return
        hop = info.get("request")
        if hop is None:
            return
        url = hop.url
        scheme = url.scheme.decode("ascii", "replace")
        host = url.host.decode("ascii", "replace")
        if not _origin.is_own(self.client, scheme, host, url.port):
            hop.headers[:] = [(k, v) for k, v in hop.headers if k.lower() not in _CREDENTIAL_HEADERS]

    def _guard_hops(self, request: _httpx.Request, *, asynchronous: bool) -> None:
        previous: Optional[Callable[..., Any]] = request.extensions.get("trace")
        if getattr(previous, "_tradeauth_guard", False):
            return  # a retry of a request already guarded
        trace: Callable[[str, dict[str, Any]], Any]
        if asynchronous:

            async def atrace(event: str, info: dict[str, Any]) -> None:
                self._strip_off_origin(event, info)
                if previous is not None:
                    awaited: Awaitable[None] = previous(event, info)
                    await awaited

            trace = atrace
        else:

            def strace(event: str, info: dict[str, Any]) -> None:
                self._strip_off_origin(event, info)
                if previous is not None:
                    previous(event, info)

            trace = strace
        setattr(trace, "_tradeauth_guard", True)
        request.extensions["trace"] = trace

    def __repr__(self) -> str:
        return f"HttpxAuth({self.client!r})"
