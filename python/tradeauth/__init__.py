"""tradeauth: trading venues' authentication, implemented once in Rust.

Drop-in replacements for the venue pages' code::

    import tradeauth

    client = tradeauth.CadenzaClient("you@example.com", "password")   # logs in
    venues = client.request("GET", "/api/v3/market/venue/list").json()
    token = tradeauth.generate_token("client-id", "secret-key")       # Partner JWT
    signature = tradeauth.eip191_sign(delegate_key, payload)          # Cascade

Every client keeps a valid credential on hand (single-flight login, background refresh,
one re-authentication on 401), its ``headers()`` is a lock-free read, every blocking call
releases the GIL, and no secret ever appears in ``repr``, exceptions or logs. Events go
to the ``tradeauth`` logger. All errors derive from :class:`AuthError`.

asyncio: ``await client.arequest(...)`` (and ``aheaders``, ``arefresh``, ``alogout``,
``ainvalidate``, ``aws_auth_message``) run on the library's own tokio runtime and settle
an ``asyncio.Future`` via ``loop.call_soon_threadsafe``; cancelling it aborts the task.
WebSockets: ``async with client.websocket("/ws") as ws:`` (or ``with
client.websocket_sync("/ws") as ws:``) connects and authenticates with the client's
credential; ``ws.subscribe(...)`` / ``ws.send(...)`` hold private messages until the venue
has accepted it, ``async for message in ws`` yields the venue's messages (parsed JSON) in
order, and the connection re-authenticates and reconnects by itself.
Integrations: ``auth=client.requests_auth()`` (requests) and ``auth=client.httpx_auth()``
(httpx, sync and async), both renewing the credential and retrying once on a 401. They
attach credentials only to ``https://`` URLs on the client's own origin (anything else
raises ``InsecureUrl``) and strip them from any redirect hop that leaves it.
Cascade key sources: ``delegate_private_key``, ``keystore=PATH`` with
``keystore_password=`` (or ``keystore_password_file=``), or ``signer=FN`` with
``delegate_address=``, where ``FN(digest: bytes) -> bytes`` (or ``async def``) signs the
32-byte EIP-191 digest (65 bytes r||s||v, 64 bytes r||s or DER) on a worker thread,
bounded by ``signer_timeout``. Rotation without a restart:
``client.update_credentials(password=... | secret_key=... | api_key=... | ...)``.
"""

from __future__ import annotations

import atexit as _atexit

from tradeauth._native import (
    CADENZA_UAT_URL,
    CADENZA_URL,
    CASCADE_URL,
    EXCHANGE_URL,
    ApiError,
    AuthError,
    BaseClient,
    CadenzaClient,
    CascadeClient,
    ChallengeExpired,
    ExchangeClient,
    InsecureUrl,
    InvalidArgument,
    PanicError,
    PartnerClient,
    ProtocolError,
    Response,
    SigningError,
    Timeout,
    TransportError,
    Unauthorized,
    WebSocket,
    WebSocketSync,
    WsAuthReply,
    __version__,
    _at_exit,
    configure,
    eip191_sign,
    generate_token,
    prometheus_text,
)

# Fork needs nothing here: a client inherited by a forked child rebuilds its runtime,
# refresher and connection pool on first use there (the native core notices the fork)
# and never touches (or drops) the parent's.

# At exit, the library's runtime threads stop calling into Python (logging, asyncio)
# before the interpreter finalizes.
_atexit.register(_at_exit)

__all__ = [
    "CADENZA_UAT_URL",
    "CADENZA_URL",
    "CASCADE_URL",
    "EXCHANGE_URL",
    "ApiError",
    "AuthError",
    "BaseClient",
    "CadenzaClient",
    "CascadeClient",
    "ChallengeExpired",
    "ExchangeClient",
    "InsecureUrl",
    "InvalidArgument",
    "PanicError",
    "PartnerClient",
    "ProtocolError",
    "Response",
    "SigningError",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "WebSocket",
    "WebSocketSync",
    "WsAuthReply",
    "__version__",
    "configure",
    "eip191_sign",
    "generate_token",
    "prometheus_text",
]
