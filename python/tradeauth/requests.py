"""``requests`` integration: ``requests.get(url, auth=client.requests_auth())``.

Replaces the pages' hand-built ``headers={"Authorization": f"Bearer {token}"}``: the
auth object attaches the client's current header (a lock-free read) to every request,
and on a 401 from a venue whose credential can be renewed it drops that credential,
gets a fresh one and re-sends the request once (as the Partner page's
``makeAuthenticatedRequest`` and the Cascade page's "on 401 re-run the flow" ask).

Where the credential goes: only to ``https://`` URLs on the client's own origin (scheme,
host and port of its ``base_url``). Any other URL — plain ``http://``, or ``https://`` on
another host or port — raises :class:`tradeauth.InsecureUrl` while the request is being
prepared, before anything is sent; the message names the refused origin, never a secret.
On a redirect (which ``requests`` follows by default) the ``Authorization`` and
``x-api-key`` headers are removed before the next hop unless that hop is on the same
https origin: ``requests`` itself strips only ``Authorization``, and only on a host
change. The hop is still followed, without the credential.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import requests as _requests

from tradeauth import _origin
from tradeauth._native import BaseClient

__all__ = ["RequestsAuth"]


class RequestsAuth(_requests.auth.AuthBase):
    """A ``requests`` auth handler backed by a tradeauth client."""

    def __init__(self, client: BaseClient) -> None:
        self.client = client

    def __call__(self, r: _requests.PreparedRequest) -> _requests.PreparedRequest:
        _origin.check(self.client, r.url or "")
        r.headers.update(self.client.headers())
        if self.client.renewable:
            r.register_hook("response", self._retry_on_401)
        # Registered last so that it sees the final answer of each hop (a retried one too).
        r.register_hook("response", self._strip_before_redirect)
        return r

    def _strip_before_redirect(self, response: _requests.Response, **kwargs: Any) -> None:
        # `Session.resolve_redirects` builds the next hop by copying the request this
        # response answers (`response.request`, or for a retried 401 the first request,
        # in `history`), after the response hooks ran: removing the credential there
        # keeps it off a next hop that leaves the origin.
        if not response.is_redirect:
            return
        # As `requests` resolves it ("//host/x" and "/x" included).
        target = urljoin(response.url or "", response.headers.get("location", ""))
        if _origin.same_origin(self.client, target):
            return
        for answered in [response, *response.history]:
            if answered.request is not None:
                _origin.strip(answered.request.headers)

    def _retry_on_401(self, response: _requests.Response, **kwargs: Any) -> _requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_tradeauth_retried", False):
            return response
        if not _origin.same_origin(self.client, sent.url or ""):
            # A 401 from a hop off the origin (reached by a redirect) gets no credential.
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
