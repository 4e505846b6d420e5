"""Cascade with tradeauth — replaces the page's web3.py script (and the viem one):
challenge, EIP-191 `personal_sign` of `signing_payload` by the delegate key, POST /auth,
the bearer on REST calls, and the WebSocket `auth` message; re-run on 401 / "Invalid
Bearer Token".

    DEPOSIT_ADDRESS=... DELEGATE_PRIVATE_KEY=... [CASCADE_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/cascade.py
"""

from __future__ import annotations

import json
import os

import tradeauth

# Page: DEPOSIT_ADDRESS = os.environ["DEPOSIT_ADDRESS"]; delegate = Account.from_key(...)
client = tradeauth.CascadeClient(
    os.environ["DEPOSIT_ADDRESS"],
    os.environ["DELEGATE_PRIVATE_KEY"],
    base_url=os.environ.get("CASCADE_BASE_URL", tradeauth.CASCADE_URL),
    ca_cert=os.environ.get("TRADEAUTH_CA_CERT"),
)
print(f"cascade: {client!r}")
claims = client.claims or {}
# Page: token = session["token"] -- the challenge was signed and posted at construction.
print(f"cascade: session for {claims.get('sub')} signed by delegate {claims.get('signer')}, exp {claims.get('exp')}")

# Page: requests.get(f"{MATCHER_HTTP_BASE_URL}/account/orders", headers={"Authorization": ...})
orders = client.request("GET", "/account/orders", timeout=10)
print(f"cascade: GET /account/orders -> {orders.status_code}")

# Page: "Authenticate WebSockets" -- the JSON-RPC auth message, and its reply.
message = json.loads(client.ws_auth_message(id=1))
print(f"cascade: WebSocket auth message: method={message['method']} id={message['id']} (bearer not printed)")
reply = client.handle_ws_reply('{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Invalid Bearer Token"}}')
print(f"cascade: reply {reply.kind!r} ({reply.message}); the next auth message carries a fresh token")
assert json.loads(client.ws_auth_message(id=2))["params"]["bearer"] != message["params"]["bearer"]

# Page: signature = Account.sign_message(encode_defunct(text=payload), private_key=...)
signature = tradeauth.eip191_sign(os.environ["DELEGATE_PRIVATE_KEY"], '{"hello":"cascade"}')
print(f"cascade: eip191_sign -> 0x + {len(signature) - 2} hex chars, v = {int(signature[-2:], 16)}")
