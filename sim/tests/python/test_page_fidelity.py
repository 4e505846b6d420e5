"""Page-style clients against the simulator: success paths and the pages' own error texts."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from page_clients import (
    CadenzaError,
    PageCadenzaClient,
    cascade_challenge,
    cascade_login,
    cascade_post_proof,
    cascade_sign,
    exchange_get,
    partner_generate_token,
    partner_request,
)

# The simulator's built-in demo accounts (sim/README.md). The Cascade keys are the
# well-known public Hardhat test keys.
CADENZA_EMAIL, CADENZA_PASSWORD = "demo@cadenza.test", "demo-password"
PARTNER_ID, PARTNER_SECRET = "demo-client", "demo-partner-secret-key-0123456789abcdef"
DEPOSIT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DELEGATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEPOSIT_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
STRANGER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
EXCHANGE_KEY = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"
EXCHANGE_ADMIN = "demo-admin-token"


# ---------------------------------------------------------------- Cadenza

def test_cadenza_login_and_protected_call(sim):
    client = PageCadenzaClient(sim.urls["cadenza"], CADENZA_EMAIL, CADENZA_PASSWORD)
    expires_in_ms = client.expires_at - time.time() * 1000
    # The page: access tokens live one hour; expiresAt is Unix ms.
    assert 3590_000 < expires_in_ms <= 3600_000
    response = client.request("GET", "/api/v3/market/venue/list")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert client.refreshes == 0
    assert sim.stats()["cadenza"]["logins"] == 1


def test_cadenza_refreshes_inside_five_minutes_and_rotates(sim):
    # A 200 s access token is always inside the page's 5-minute window: every request refreshes.
    sim.post("/lifetimes", {"venue": "cadenza", "access_ttl_secs": 200})
    client = PageCadenzaClient(sim.urls["cadenza"], CADENZA_EMAIL, CADENZA_PASSWORD)
    first_refresh_token = client.refresh_token
    assert client.request("GET", "/api/v3/user/profile").status_code == 200
    assert client.refreshes == 1
    assert client.refresh_token != first_refresh_token
    # The spent refresh token is rejected: rotation.
    reused = requests.post(f"{sim.urls['cadenza']}/api/v3/auth/token/refresh",
                           json={"refreshToken": first_refresh_token}, timeout=10)
    assert reused.status_code == 401
    assert reused.json()["success"] is False
    assert reused.json()["error"]["code"] == "INVALID_REFRESH_TOKEN"
    assert sim.stats()["cadenza"]["refreshes"] == 1


def test_cadenza_wrong_password_fails_the_page_checks(sim):
    with pytest.raises(CadenzaError) as caught:
        PageCadenzaClient(sim.urls["cadenza"], CADENZA_EMAIL, "not-the-password")
    assert caught.value.status == 401
    assert caught.value.body["success"] is False
    assert "not-the-password" not in str(caught.value.body)


def test_cadenza_missing_and_stale_bearer(sim):
    url = f"{sim.urls['cadenza']}/api/v3/market/venue/list"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401 and missing.json()["success"] is False
    client = PageCadenzaClient(sim.urls["cadenza"], CADENZA_EMAIL, CADENZA_PASSWORD)
    sim.post("/clock", {"offset_secs": 3700})  # an hour later the access token has expired
    stale = requests.get(url, headers={"Authorization": f"Bearer {client.access_token}"},
                         timeout=10)
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "TOKEN_EXPIRED"


def test_cadenza_plain_http_is_not_served(sim):
    plain = sim.urls["cadenza"].replace("https://", "http://")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{plain}/api/v3/auth/login",
                      json={"email": CADENZA_EMAIL, "password": CADENZA_PASSWORD}, timeout=5)


# ---------------------------------------------------------------- Partner

def test_partner_token_is_accepted(sim):
    response = partner_request(f"{sim.urls['partner']}/portfolio", PARTNER_ID, PARTNER_SECRET)
    assert response.status_code == 200, response.text


def test_partner_error_texts(sim):
    url = f"{sim.urls['partner']}/portfolio"
    no_header = requests.get(url, timeout=10)
    assert (no_header.status_code, no_header.json()["error"]) == (401, "Unauthorized")

    forged = partner_generate_token(PARTNER_ID, "some-other-secret-that-is-long-enough!!")
    bad = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert (bad.status_code, bad.json()["error"]) == (401, "Invalid Token")

    unknown = partner_generate_token("nobody", PARTNER_SECRET)
    bad = requests.get(url, headers={"Authorization": f"Bearer {unknown}"}, timeout=10)
    assert (bad.status_code, bad.json()["error"]) == (401, "Invalid Token")

    old = partner_generate_token(PARTNER_ID, PARTNER_SECRET, now=int(time.time()) - 1000)
    expired = requests.get(url, headers={"Authorization": f"Bearer {old}"}, timeout=10)
    assert (expired.status_code, expired.json()["error"]) == (401, "Token Expired")


def test_partner_retry_on_401_recovers(sim):
    # The page's makeAuthenticatedRequest: an expired token gets one fresh retry.
    old = partner_generate_token(PARTNER_ID, PARTNER_SECRET, now=int(time.time()) - 1000)
    response = partner_request(f"{sim.urls['partner']}/portfolio", PARTNER_ID, PARTNER_SECRET,
                               first_token=old)
    assert response.status_code == 200
    stats = sim.stats()["partner"]
    assert stats["rejections"].get("Token Expired") == 1


def test_partner_post_with_body(sim):
    response = partner_request(f"{sim.urls['partner']}/orders", PARTNER_ID, PARTNER_SECRET,
                               method="POST", data={"symbol": "BTC-USD", "quantity": 1})
    assert response.status_code in (200, 201), response.text


# ---------------------------------------------------------------- Cascade

def test_cascade_challenge_has_the_page_shape(sim):
    challenge = cascade_challenge(sim.urls["cascade"], DEPOSIT)
    assert set(challenge) == {"message", "server_signature", "signing_payload"}
    assert set(challenge["message"]) == {"account", "nonce", "timestamp"}
    assert challenge["message"]["account"] == DEPOSIT.lower()
    import json
    assert json.loads(challenge["signing_payload"]) == challenge["message"]


@pytest.mark.parametrize("key", [DELEGATE_KEY, DEPOSIT_KEY])
def test_cascade_wallet_login_and_orders(sim, key):
    session = cascade_login(sim.urls["cascade"], DEPOSIT, key)
    claims = session["claims"]
    assert claims["exp"] > time.time()
    # The token is a JWT whose own exp matches the claims.
    assert jwt.decode(session["token"], options={"verify_signature": False})["exp"] == claims["exp"]
    orders = requests.get(f"{sim.urls['cascade']}/account/orders",
                          headers={"Authorization": f"Bearer {session['token']}"}, timeout=10)
    assert orders.status_code == 200


def test_cascade_signature_with_0x_prefix_is_accepted(sim):
    challenge = cascade_challenge(sim.urls["cascade"], DEPOSIT)
    signature = cascade_sign(challenge, DELEGATE_KEY)
    prefixed = signature if signature.startswith("0x") else "0x" + signature
    assert cascade_post_proof(sim.urls["cascade"], challenge, prefixed).status_code == 200


def test_cascade_rejections(sim):
    base = sim.urls["cascade"]
    stranger = cascade_challenge(base, DEPOSIT)
    refused = cascade_post_proof(base, stranger, cascade_sign(stranger, STRANGER_KEY))
    assert refused.status_code == 401

    challenge = cascade_challenge(base, DEPOSIT)
    signature = cascade_sign(challenge, DELEGATE_KEY)
    assert cascade_post_proof(base, challenge, signature).status_code == 200
    replay = cascade_post_proof(base, challenge, signature)
    assert replay.status_code == 401 and replay.json()["error"] == "nonce already used"

    late = cascade_challenge(base, DEPOSIT)
    sim.post("/clock", {"offset_secs": 301})  # the page: the nonce expires after five minutes
    expired = cascade_post_proof(base, late, cascade_sign(late, DELEGATE_KEY))
    assert expired.status_code == 401 and expired.json()["error"] == "nonce expired"


def test_cascade_account_routes_need_the_bearer(sim):
    for path in ("/account/orders", "/account/positions"):
        response = requests.get(f"{sim.urls['cascade']}{path}", timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "Invalid Bearer Token"


# ---------------------------------------------------------------- Exchange

def test_exchange_profile_matches_the_page(sim):
    response = exchange_get(sim.urls["exchange"], "/api/v1/user", EXCHANGE_KEY)
    assert response.status_code == 200
    profile = response.json()
    assert profile["username"] == "team-alpha"
    assert profile["trader_id"] == "9d64e278-8b56-46e9-9cab-18c5b22f2fb9"
    assert set(profile) >= {"trader_id", "username", "api_key", "created_at"}


def test_exchange_error_texts(sim):
    base = sim.urls["exchange"]
    missing = exchange_get(base, "/api/v1/positions", None)
    assert missing.status_code == 401 and "missing authentication" in missing.text
    unknown = exchange_get(base, "/api/v1/positions", "exch_" + "0" * 32)
    assert unknown.status_code == 401 and "invalid api key" in unknown.text


def test_exchange_every_trader_route_requires_the_key(sim):
    base = sim.urls["exchange"]
    for path in ("/api/v1/user", "/api/v1/positions", "/api/v1/portfolio", "/api/v1/leaderboard",
                 "/api/v1/open-orders", "/api/v1/fills"):
        assert exchange_get(base, path, None).status_code == 401, path
        assert exchange_get(base, path, EXCHANGE_KEY).status_code == 200, path


def test_exchange_admin_provisions_a_working_key(sim):
    base = sim.urls["exchange"]
    created = requests.post(f"{base}/api/v1/admin/traders", json={"username": "team-beta"},
                            headers={"Authorization": f"Bearer {EXCHANGE_ADMIN}"}, timeout=10)
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    assert key.startswith("exch_") and len(key) == 37
    assert exchange_get(base, "/api/v1/user", key).json()["username"] == "team-beta"
