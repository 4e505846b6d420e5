"""``httpx`` integration: ``httpx.Client(auth=client.httpx_auth())``.

An ``httpx.Auth`` whose ``auth_flow`` attaches the client's current header and, on a 401
from a venue whose credential can be renewed, drops that credential, gets a fresh one
and re-sends the request once. The async flow awaits renewals on the library's runtime,
so an ``httpx.AsyncClient`` never blocks its event loop.
"""

from __future__ import annotations

from typing import AsyncGenerator, Generator

import httpx as _httpx

from tradeauth._native import BaseClient

__all__ = ["HttpxAuth"]


class HttpxAuth(_httpx.Auth):
    """An ``httpx`` auth flow backed by a tradeauth client (sync and async)."""

    # The request may be sent twice, so httpx must read a streaming body first.
    requires_request_body = True

    def __init__(self, client: BaseClient) -> None:
        self.client = client

    def auth_flow(self, request: _httpx.Request) -> Generator[_httpx.Request, _httpx.Response, None]:
        sent = self.client.headers()
        request.headers.update(sent)
        response = yield request
        if response.status_code == 401 and self.client.renewable:
            self.client.invalidate(sent)
            request.headers.update(self.client.headers())
            yield request

    async def async_auth_flow(
        self, request: _httpx.Request
    ) -> AsyncGenerator[_httpx.Request, _httpx.Response]:
        sent = self.client.current_headers()
        if sent is None:
            sent = await self.client.aheaders()
        request.headers.update(sent)
        response = yield request
        if response.status_code == 401 and self.client.renewable:
            await self.client.ainvalidate(sent)
            request.headers.update(await self.client.aheaders())
            yield request

    def __repr__(self) -> str:
        return f"HttpxAuth({self.client!r})"
