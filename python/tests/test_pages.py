"""The venue pages' usage, with tradeauth's names in place of the pages' code."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests
from eth_account import Account
from eth_account.messages import encode_defunct

import tradeauth
from conftest import (
    CADENZA_PASSWORD,
    CASCADE_DELEGATE_ADDRESS,
    CASCADE_DELEGATE_KEY,
    CASCADE_DEPOSIT,
    EXCHANGE_ADMIN,
    EXCHANGE_KEY,
    PARTNER_ID,
    PARTNER_SECRET,
    Sim,
)

# --- Cadenza: the page's `CadenzaClient` class -----------------------------------------


def test_cadenza_client_like_the_page(sim: Sim) -> None:
    # Page: client = CadenzaClient(email, password); client.request("GET", endpoint)
    client = sim.cadenza_client()
    assert sim.stats("cadenza")["logins"] == 1  # logged in at construction, like the page
    response = client.request("GET", "/api/v3/market/venue/list")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and isinstance(body["data"], list)
    assert json.loads(response.text) == body and json.loads(response.content) == body
    response.raise_for_status()
    # The page's attributes: access_token, refresh_token, expires_at (Unix ms).
    assert client.access_token and client.refresh_token
    assert client.expires_at is not None
    assert abs(client.expires_at - (time.time() * 1000 + 3_600_000)) < 60_000
    assert client.headers() == {"Authorization": f"Bearer {client.access_token}"}


def test_cadenza_refresh_rotates_the_refresh_token(sim: Sim) -> None:
    # Page: "Token Refresh" — POST /auth/token/refresh returns a new pair.
    client = sim.cadenza_client()
    before_access, before_refresh = client.access_token, client.refresh_token
    client.refresh()
    assert client.access_token != before_access
    assert client.refresh_token != before_refresh
    stats = sim.stats("cadenza")
    assert (stats["logins"], stats["refreshes"]) == (1, 1)
    assert client.request("GET", "/api/v3/user/profile").json()["data"]["email"] == client.account


def test_cadenza_request_kwargs(sim: Sim) -> None:
    client = sim.cadenza_client()
    r = client.request(
        "get", "/api/v3/account/balances", params={"asset": "BTC"}, headers={"x-trace": "1"},
        timeout=5,
    )
    assert r.ok and r.url.endswith("/api/v3/account/balances")
    missing = client.request("GET", "/api/v3/nope")
    assert missing.status_code == 404
    with pytest.raises(tradeauth.ApiError) as info:
        missing.raise_for_status()
    assert info.value.status == 404


def test_cadenza_logout_then_login_again(sim: Sim) -> None:
    client = sim.cadenza_client()
    client.logout()
    assert client.current_headers() is None
    assert client.request("GET", "/api/v3/user/profile").status_code == 200
    assert sim.stats("cadenza")["logins"] == 2


# --- Partner: the page's `generate_token` and `makeAuthenticatedRequest` ------------------


def page_generate_token(client_id: str, secret_key: str, now: int) -> str:
    """The Partner page's Python function, with `now` passed in."""
    payload = {"clientId": client_id, "iat": now, "exp": now + 900}
    return jwt.encode(payload, secret_key, algorithm="HS256")


def test_generate_token_verified_with_pyjwt(sim: Sim) -> None:
    token = tradeauth.generate_token(PARTNER_ID, PARTNER_SECRET)
    claims = jwt.decode(token, PARTNER_SECRET, algorithms=["HS256"])
    assert claims["clientId"] == PARTNER_ID
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 5
    # Byte for byte the page's PyJWT output for the same second.
    for _ in range(3):
        now = int(time.time())
        ours = tradeauth.generate_token(PARTNER_ID, PARTNER_SECRET)
        if int(time.time()) == now:
            assert ours == page_generate_token(PARTNER_ID, PARTNER_SECRET, now)
            break
    # The ttl and bytes secrets work too.
    short = tradeauth.generate_token(PARTNER_ID, PARTNER_SECRET.encode(), ttl=60)
    decoded = jwt.decode(short, PARTNER_SECRET, algorithms=["HS256"])
    assert decoded["exp"] - decoded["iat"] == 60
    # The venue accepts it, sent the page's way.
    answer = requests.get(
        f"{sim.partner}/portfolio", headers={"Authorization": f"Bearer {token}"},
        verify=sim.ca, timeout=10,
    )
    assert answer.status_code == 200


def test_generate_token_matches_pyjwt_as_secrets_alternate() -> None:
    """Each thread keeps the key schedule of the last secret: a token minted right after
    another secret (a prefix, a longer-than-a-block key, bytes, non-ASCII) must still be
    signed with its own secret, byte for byte what PyJWT gives."""
    secrets: list[str | bytes] = [
        PARTNER_SECRET, PARTNER_SECRET[:-1], PARTNER_SECRET[:-1] + "X", PARTNER_SECRET + "x",
        "k" * 64, "k" * 65,
        "k" * 200, "clé-secrète-ü", PARTNER_SECRET.encode(), b"\x00\xff binary", "k",
    ]
    client_ids = [PARTNER_ID, 'quote"and\\slash', "naïve-客户", "tab\there"]
    for _ in range(2):
        for secret in secrets + secrets[::-1]:
            for client_id in client_ids:
                for _attempt in range(3):
                    now = int(time.time())
                    ours = tradeauth.generate_token(client_id, secret)
                    if int(time.time()) == now:
                        break
                key = secret if isinstance(secret, bytes) else secret.encode()
                assert ours == jwt.encode(
                    {"clientId": client_id, "iat": now, "exp": now + 900}, key,
                    algorithm="HS256"), (len(key), client_id)


def test_generate_token_from_many_threads_each_with_its_secret() -> None:
    """Threads minting at once, each with its own secret of the same length: every token
    verifies under its thread's secret (and not another's)."""
    import threading

    secrets = [f"{PARTNER_SECRET[:-2]}{i:02d}" for i in range(8)]
    wrong: list[int] = []
    barrier = threading.Barrier(len(secrets))

    def mint(index: int) -> None:
        barrier.wait()
        for _ in range(300):
            token = tradeauth.generate_token(PARTNER_ID, secrets[index])
            try:
                jwt.decode(token, secrets[index], algorithms=["HS256"])
            except jwt.InvalidSignatureError:
                wrong.append(index)

    threads = [threading.Thread(target=mint, args=(i,)) for i in range(len(secrets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_partner_client_retries_once_on_401(sim: Sim) -> None:
    client = sim.partner_client()
    assert client.request("GET", "/portfolio").json()["clientId"] == PARTNER_ID
    assert jwt.decode(client.token, PARTNER_SECRET, algorithms=["HS256"])["clientId"] == PARTNER_ID
    # The page's makeAuthenticatedRequest: 401 -> generate a new token, retry once.
    sim.fault("partner", "/portfolio", "status", status=401, count=1)
    before = sim.stats("partner")["requests"]
    assert client.request("GET", "/portfolio").status_code == 200
    assert sim.stats("partner")["requests"] - before == 2
    created = client.request("POST", "/orders", json={"market": "BTC-USD", "size": 1})
    assert created.status_code == 201 and created.json()["status"] == "accepted"


# --- Cascade: the web3.py script ------------------------------------------------------


def test_eip191_sign_recovers_to_the_delegate() -> None:
    payload = json.dumps({"account": CASCADE_DEPOSIT.lower(), "nonce": "n", "timestamp": "t"})
    signature = tradeauth.eip191_sign(CASCADE_DELEGATE_KEY, payload)
    assert signature.startswith("0x") and len(signature) == 132
    assert int(signature[-2:], 16) in (27, 28)
    recovered = Account.recover_message(encode_defunct(text=payload), signature=signature)
    assert recovered == CASCADE_DELEGATE_ADDRESS
    # The page's line: Account.sign_message(message, private_key=...).signature.hex()
    page = Account.sign_message(encode_defunct(text=payload), private_key=CASCADE_DELEGATE_KEY)
    assert signature[2:] == page.signature.hex().removeprefix("0x")
    assert tradeauth.eip191_sign(CASCADE_DELEGATE_KEY, payload.encode()) == signature


def test_cascade_login_and_bearer(sim: Sim) -> None:
    client = sim.cascade_client()
    claims = client.claims
    assert claims is not None
    assert claims["sub"] == CASCADE_DEPOSIT.lower()
    assert claims["signer"] == CASCADE_DELEGATE_ADDRESS.lower()
    assert client.token.count(".") == 2
    assert client.headers() == {"Authorization": f"Bearer {client.token}"}
    assert client.request("GET", "/account/orders").status_code == 200
    stats = sim.stats("cascade")
    assert stats["challenges"] == 1 and stats["logins"] == 1


def test_cascade_websocket_messages(sim: Sim) -> None:
    client = sim.cascade_client()
    message = json.loads(client.ws_auth_message(id=7))
    assert message == {
        "jsonrpc": "2.0", "id": 7, "method": "auth", "params": {"bearer": client.token},
    }
    ok = client.handle_ws_reply(
        '{"jsonrpc":"2.0","id":7,"result":{"authenticated":true,"account":"0x1","exp":1}}'
    )
    assert ok.authenticated and ok.kind == "authenticated" and ok.detail["authenticated"]
    assert client.handle_ws_reply('{"jsonrpc":"2.0","method":"orderbook","params":{}}').kind == "unrelated"
    old = client.token
    rejected = client.handle_ws_reply(
        '{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"Invalid Bearer Token"}}'
    )
    assert not rejected and rejected.message == "Invalid Bearer Token"
    # The page: "Re-run the flow when you receive an Invalid Bearer Token response".
    fresh = json.loads(client.ws_auth_message())
    assert fresh["params"]["bearer"] != old
    assert sim.stats("cascade")["challenges"] == 2


def test_cascade_reruns_the_flow_on_401(sim: Sim) -> None:
    client = sim.cascade_client()
    sim.post("/revoke", {"venue": "cascade", "what": "access_tokens"})
    assert client.request("GET", "/account/positions").status_code == 200
    assert sim.stats("cascade")["challenges"] == 2


# --- Exchange: x-api-key, admin bearer, public market data ------------------------------


def test_exchange_headers_and_requests(sim: Sim) -> None:
    trader = sim.exchange_client(api_key=EXCHANGE_KEY)
    assert trader.headers() == {"x-api-key": EXCHANGE_KEY}
    profile = trader.request("GET", "/api/v1/user").json()
    assert profile["username"] == "team-alpha"
    order = trader.request(
        "POST", "/api/v1/orders",
        json={"market": "BTC-USD", "side": "buy", "price": 100, "quantity": 1},
    )
    assert order.status_code == 201
    cancelled = trader.request("DELETE", f"/api/v1/orders/{order.json()['order_id']}")
    assert cancelled.json()["status"] == "cancelled"
    assert json.loads(trader.ws_auth_message()) == {"op": "authenticate", "api_key": EXCHANGE_KEY}
    reply = trader.handle_ws_reply('{"type":"authenticated","trader_id":"t","username":"team-alpha"}')
    assert reply.authenticated and reply.detail["username"] == "team-alpha"

    admin = sim.exchange_client(admin_token=EXCHANGE_ADMIN)
    assert admin.headers() == {"Authorization": f"Bearer {EXCHANGE_ADMIN}"}
    made = admin.request("POST", "/api/v1/admin/traders", json={"username": "team-beta"})
    assert made.status_code == 201
    new_key = made.json()["api_key"]
    assert sim.exchange_client(api_key=new_key).request("GET", "/api/v1/user").status_code == 200

    public = sim.exchange_client()
    assert public.headers() == {}
    assert public.request("GET", "/api/v1/orderbook/BTC-USD").json()["market"] == "BTC-USD"
    assert public.request("GET", "/api/v1/user").status_code == 401


def test_exchange_unknown_key_is_not_retried(sim: Sim) -> None:
    client = sim.exchange_client(api_key="exch_" + "0" * 32)
    before = sim.stats("exchange")["requests"]
    response = client.request("GET", "/api/v1/user")
    assert response.status_code == 401 and response.json() == {"error": "invalid api key"}
    assert sim.stats("exchange")["requests"] - before == 1
    with pytest.raises(tradeauth.Unauthorized):
        response.raise_for_status()


def test_from_env(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEAUTH_CA_CERT", sim.ca)
    monkeypatch.setenv("CADENZA_EMAIL", "demo@cadenza.test")
    monkeypatch.setenv("CADENZA_PASSWORD", CADENZA_PASSWORD)
    monkeypatch.setenv("CADENZA_BASE_URL", sim.cadenza)
    monkeypatch.setenv("PARTNER_CLIENT_ID", PARTNER_ID)
    monkeypatch.setenv("PARTNER_SECRET_KEY", PARTNER_SECRET)
    monkeypatch.setenv("PARTNER_BASE_URL", sim.partner)
    monkeypatch.setenv("CASCADE_DEPOSIT_ADDRESS", CASCADE_DEPOSIT)
    monkeypatch.setenv("CASCADE_DELEGATE_PRIVATE_KEY", CASCADE_DELEGATE_KEY)
    monkeypatch.setenv("CASCADE_BASE_URL", sim.cascade)
    monkeypatch.setenv("EXCHANGE_API_KEY", EXCHANGE_KEY)
    monkeypatch.setenv("EXCHANGE_BASE_URL", sim.exchange)
    assert tradeauth.CadenzaClient.from_env().request("GET", "/api/v3/user/profile").ok
    assert tradeauth.PartnerClient.from_env().request("GET", "/portfolio").ok
    assert tradeauth.CascadeClient.from_env().request("GET", "/account/orders").ok
    assert tradeauth.ExchangeClient.from_env().request("GET", "/api/v1/user").ok
    monkeypatch.delenv("CADENZA_PASSWORD")
    with pytest.raises(tradeauth.InvalidArgument, match="CADENZA_PASSWORD"):
        tradeauth.CadenzaClient.from_env()


def test_ca_cert_as_pem_text_and_untrusted(sim: Sim) -> None:
    with open(sim.ca) as f:
        pem = f.read()
    client = tradeauth.ExchangeClient(api_key=EXCHANGE_KEY, base_url=sim.exchange, ca_cert=pem)
    assert client.request("GET", "/api/v1/user").ok
    untrusted = tradeauth.ExchangeClient(api_key=EXCHANGE_KEY, base_url=sim.exchange, max_retries=0)
    with pytest.raises(tradeauth.TransportError, match="certificate"):
        untrusted.request("GET", "/api/v1/user")
