"""Issue #12: a WebSocket rejection that echoes the credential never shows it in Python.

The texts are exactly what the simulator's ``echo_credential`` fault answers on the
venue's WebSocket (``Invalid Bearer Token: <token> is not accepted here``, ``invalid api
key: <key>``), and the same with the secret pushed across the 200-character cap.
"""

from __future__ import annotations

import json

import pytest

import tradeauth
from conftest import EXCHANGE_KEY, Sim

PAD = "x" * 190


def assert_redacted(reply: tradeauth.WsAuthReply, secret: str) -> None:
    assert reply.kind == "rejected" and not reply.authenticated
    message = reply.message or ""
    # Compared by hand: an assert that printed the message would leak the secret.
    assert secret not in message, "the secret appeared in the rejection message"
    assert secret[:12] not in message, "part of the secret appeared in the rejection message"
    for text in (repr(reply), str(reply)):
        assert secret not in text and secret[:12] not in text


@pytest.mark.parametrize("prefix", ["Invalid Bearer Token: ", PAD])
def test_cascade_rejection_echoing_the_bearer_is_redacted(sim: Sim, prefix: str) -> None:
    client = sim.cascade_client()
    token = client.token
    text = json.dumps(
        {"jsonrpc": "2.0", "id": 1,
         "error": {"code": -32001, "message": f"{prefix}{token} is not accepted here"}}
    )
    reply = client.handle_ws_reply(text)
    assert_redacted(reply, token)
    assert "[REDACTED]" in (reply.message or "") or prefix == PAD


@pytest.mark.parametrize("prefix", ["invalid api key: ", PAD])
def test_exchange_rejection_echoing_the_key_is_redacted(sim: Sim, prefix: str) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    client.ws_auth_message()  # a reply answers an auth message made from the key
    reply = client.handle_ws_reply(json.dumps({"type": "error", "message": f"{prefix}{EXCHANGE_KEY}"}))
    assert_redacted(reply, EXCHANGE_KEY)
