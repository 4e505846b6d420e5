"""Partner API with tradeauth — replaces the page's Python `generate_token` and Node.js
`generateToken`, and its `makeAuthenticatedRequest` (401 -> new token, retry once).

    PARTNER_CLIENT_ID=... PARTNER_SECRET_KEY=... PARTNER_BASE_URL=... [TRADEAUTH_CA_CERT=...]
    python examples/python/partner.py
"""

from __future__ import annotations

import os

import requests

import tradeauth

client_id = os.environ["PARTNER_CLIENT_ID"]
secret_key = os.environ["PARTNER_SECRET_KEY"]
base_url = os.environ["PARTNER_BASE_URL"]
ca_cert = os.environ.get("TRADEAUTH_CA_CERT")

# Page: token = generate_token("your-client-id", "your-secret-key")
token = tradeauth.generate_token(client_id, secret_key)
print(f"partner: generate_token -> an HS256 JWT of {len(token)} chars (not printed)")

# Page's cURL/axios call with the token in the Authorization header.
answer = requests.get(
    f"{base_url}/portfolio",
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    verify=ca_cert or True,
    timeout=10,
)
print(f"partner: GET /portfolio with the minted token -> {answer.status_code}")

# Page: makeAuthenticatedRequest(url) -- cached token, re-minted before expiry, and on a
# 401 re-minted and retried once.
client = tradeauth.PartnerClient(client_id, secret_key, base_url, ttl=900, ca_cert=ca_cert)
print(f"partner: {client!r}")
portfolio = client.request("GET", "/portfolio")
print(f"partner: client.request('GET', '/portfolio') -> {portfolio.status_code}, clientId={portfolio.json()['clientId']}")
order = client.request("POST", "/orders", json={"market": "BTC-USD", "side": "buy", "size": 1})
print(f"partner: POST /orders -> {order.status_code} {order.json()['status']}")

# The same client as a requests auth= handler.
with_auth = requests.get(f"{base_url}/portfolio", auth=client.requests_auth(), verify=ca_cert or True, timeout=10)
print(f"partner: requests.get(..., auth=client.requests_auth()) -> {with_auth.status_code}")
