"""``requests`` integration: ``requests.get(url, auth=client.requests_auth())``.

Replaces the pages' hand-built ``headers={"Authorization": f"Bearer {token}"}``: the
auth object attaches the client's current header (a lock-free read) to every request,
and on a 401 from a venue whose credential can be renewed it drops that credential,
gets a fresh one and re-sends the request once (as the Partner page's
``makeAuthenticatedRequest`` and the Cascade page's "on 401 re-run the flow" ask).
"""

from __future__ import annotations

from typing import Any

import requests as _requests

from tradeauth._native import BaseClient

__all__ = ["RequestsAuth"]


class RequestsAuth(_requests.auth.AuthBase):
    """A ``requests`` auth handler backed by a tradeauth client."""

    def __init__(self, client: BaseClient) -> None:
        self.client = client

    def __call__(self, r: _requests.PreparedRequest) -> _requests.PreparedRequest:
        r.headers.update(self.client.headers())
        if self.client.renewable:
            r.register_hook("response", self._retry_on_401)
        return r

    def _retry_on_401(self, response: _requests.Response, **kwargs: Any) -> _requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_tradeauth_retried", False):
            return response
        self.client.invalidate(sent.headers)
        # Drain and release the first answer so its connection can be reused.
        _ = response.content
        response.close()
        retry = sent.copy()
        retry.headers.update(self.client.headers())
        retry._tradeauth_retried = True  # type: ignore[attr-defined]
        answer: _requests.Response = response.connection.send(retry, **kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer

    def __repr__(self) -> str:
        return f"RequestsAuth({self.client!r})"
