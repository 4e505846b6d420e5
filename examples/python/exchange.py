"""Exchange with tradeauth — replaces the page's curl calls with `-H "x-api-key: ..."`,
the admin `Authorization: Bearer` calls, and the WebSocket `authenticate` message.

    EXCHANGE_API_KEY=... [EXCHANGE_ADMIN_TOKEN=...] [EXCHANGE_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/exchange.py
"""

from __future__ import annotations

import json
import os

import httpx

import tradeauth

base_url = os.environ.get("EXCHANGE_BASE_URL", tradeauth.EXCHANGE_URL)
ca_cert = os.environ.get("TRADEAUTH_CA_CERT")

# Page: curl https://exchange.jamesxu.dev/api/v1/user -H "x-api-key: exch_..."
trader = tradeauth.ExchangeClient(api_key=os.environ["EXCHANGE_API_KEY"], base_url=base_url, ca_cert=ca_cert)
print(f"exchange: {trader!r}; headers carry {sorted(trader.headers())}")
profile = trader.request("GET", "/api/v1/user").json()
print(f"exchange: GET /api/v1/user -> username={profile['username']}")
order = trader.request(
    "POST", "/api/v1/orders", json={"market": "BTC-USD", "side": "buy", "price": 100, "quantity": 1}
).json()
print(f"exchange: POST /api/v1/orders -> {order['status']}")
cancelled = trader.request("DELETE", f"/api/v1/orders/{order['order_id']}").json()
print(f"exchange: DELETE /api/v1/orders/{{id}} -> {cancelled['status']}")

# Page: {"op": "authenticate", "api_key": "exch_..."} -> {"type": "authenticated", ...}
op = json.loads(trader.ws_auth_message())["op"]
reply = trader.handle_ws_reply('{"type":"authenticated","trader_id":"t-1","username":"team-alpha"}')
print(f"exchange: WebSocket message op={op!r}; reply authenticated={reply.authenticated}")

# The same key on an httpx client.
verify = ca_cert if ca_cert else True
with httpx.Client(base_url=base_url, verify=verify, auth=trader.httpx_auth()) as http:
    print(f"exchange: httpx GET /api/v1/positions -> {http.get('/api/v1/positions').status_code}")

# Page: admin actions with the static bearer token.
admin_token = os.environ.get("EXCHANGE_ADMIN_TOKEN")
if admin_token:
    admin = tradeauth.ExchangeClient(admin_token=admin_token, base_url=base_url, ca_cert=ca_cert)
    made = admin.request("POST", "/api/v1/admin/traders", json={"username": "demo-python-trader"})
    print(f"exchange: admin POST /api/v1/admin/traders -> {made.status_code} (new key not printed)")

# Page: "Market data without authentication".
public = tradeauth.ExchangeClient(base_url=base_url, ca_cert=ca_cert)
book = public.request("GET", "/api/v1/orderbook/BTC-USD").json()
print(f"exchange: public GET /api/v1/orderbook/BTC-USD -> {len(book['bids'])} bids, {len(book['asks'])} asks")
