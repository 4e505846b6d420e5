"""Cadenza with tradeauth — replaces the page's `CadenzaClient` class ("Automatic Token
Refresh"), its "Login" and "Token Refresh" snippets, and the hand-built
`headers={"Authorization": f"Bearer {access_token}"}`.

The page's class checks the expiry on every call and refreshes in the caller's thread;
this one refreshes in the background, single-flight, and renews once on a 401.

    CADENZA_EMAIL=... CADENZA_PASSWORD=... [CADENZA_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/cadenza.py
"""

from __future__ import annotations

import logging
import os
import time

import tradeauth

logging.basicConfig(level=logging.INFO, format="  log %(name)s %(levelname)s %(message)s")

# Page: client = CadenzaClient(email, password)  -- logs in at construction.
client = tradeauth.CadenzaClient(
    os.environ["CADENZA_EMAIL"],
    os.environ["CADENZA_PASSWORD"],
    base_url=os.environ.get("CADENZA_BASE_URL", tradeauth.CADENZA_URL),
    ca_cert=os.environ.get("TRADEAUTH_CA_CERT"),
)
print(f"cadenza: {client!r}")
expires_at = client.expires_at or 0
print(f"cadenza: logged in; access token expires in {(expires_at - time.time() * 1000) / 60000:.0f} min")

# Page: client.request("GET", "/api/v3/market/venue/list")
response = client.request("GET", "/api/v3/market/venue/list")
response.raise_for_status()
body = response.json()
# Page's "Request Validation": check the status code, then the success flag.
assert body.get("success"), body
print(f"cadenza: GET /api/v3/market/venue/list -> {response.status_code}, {len(body['data'])} venues")

# Page: "Token Refresh" -- POST /auth/token/refresh, keep the rotated refresh token.
client.refresh()
print("cadenza: refreshed; the refresh token was rotated and kept in memory (never printed)")

profile = client.request("GET", "/api/v3/user/profile").json()["data"]
print(f"cadenza: GET /api/v3/user/profile -> {profile['email']}")
client.logout()
print("cadenza: logged out; credentials wiped")
