"""requests and httpx adapters, and the asyncio variants, with the real libraries."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest
import requests

import tradeauth
from tradeauth.httpx import HttpxAuth
from tradeauth.requests import RequestsAuth
from conftest import EXCHANGE_KEY, PARTNER_ID, Sim


def test_requests_auth(sim: Sim) -> None:
    client = sim.cadenza_client()
    auth = client.requests_auth()
    assert isinstance(auth, RequestsAuth) and isinstance(auth, requests.auth.AuthBase)
    url = f"{sim.cadenza}/api/v3/market/venue/list"
    assert requests.get(url, auth=auth, verify=sim.ca, timeout=10).status_code == 200
    sim.post("/revoke", {"venue": "cadenza", "what": "access_tokens"})
    with requests.Session() as session:
        # verify= per request: requests lets REQUESTS_CA_BUNDLE override session.verify.
        answer = session.get(url, auth=auth, timeout=10, verify=sim.ca)
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [401]
    partner = sim.partner_client()
    got = requests.get(f"{sim.partner}/portfolio", auth=partner.requests_auth(), verify=sim.ca)
    assert got.json()["clientId"] == PARTNER_ID


def test_httpx_auth_sync(sim: Sim) -> None:
    client = sim.cascade_client()
    auth = client.httpx_auth()
    assert isinstance(auth, HttpxAuth) and isinstance(auth, httpx.Auth)
    with httpx.Client(base_url=sim.cascade, verify=ssl.create_default_context(cafile=sim.ca), auth=auth) as http:
        assert http.get("/account/orders").status_code == 200
        sim.post("/revoke", {"venue": "cascade", "what": "access_tokens"})
        answer = http.get("/account/orders")
        assert answer.status_code == 200 and [r.status_code for r in answer.history] == [401]
    exchange = sim.exchange_client(api_key=EXCHANGE_KEY)
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca)) as http:
        user = http.get(f"{sim.exchange}/api/v1/user", auth=exchange.httpx_auth())
    assert user.json()["username"] == "team-alpha"


def test_httpx_auth_async(sim: Sim) -> None:
    client = sim.cadenza_client(login=False)

    async def main() -> list[int]:
        context = ssl.create_default_context(cafile=sim.ca)
        async with httpx.AsyncClient(base_url=sim.cadenza, verify=context, auth=client.httpx_auth()) as http:
            first = await http.get("/api/v3/user/profile")
            sim.post("/revoke", {"venue": "cadenza", "what": "access_tokens"})
            second = await http.get("/api/v3/user/profile")
            return [first.status_code, second.status_code, len(second.history)]

    assert asyncio.run(main()) == [200, 200, 1]


def test_asyncio_variants(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=800, count=1)
    client = sim.cadenza_client(login=False)

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.ensure_future(ticker())
        responses = await asyncio.gather(
            *(client.arequest("GET", "/api/v3/market/venue/list") for _ in range(20))
        )
        tick_task.cancel()
        assert all(r.status_code == 200 for r in responses)
        assert ticks >= 30, f"the event loop was blocked ({ticks} ticks)"
        assert await client.aheaders() == client.headers()
        before = client.access_token
        await client.arefresh()
        assert client.access_token != before
        cascade = sim.cascade_client(login=False)
        assert '"method":"auth"' in await cascade.aws_auth_message(id=3)
        await client.alogout()
        assert client.current_headers() is None
        failing = tradeauth.CadenzaClient(
            "demo@cadenza.test", "bad", sim.cadenza, ca_cert=sim.ca, login=False
        )
        with pytest.raises(tradeauth.Unauthorized):
            await failing.arequest("GET", "/api/v3/user/profile")

    asyncio.run(main())
    stats = sim.stats("cadenza")
    assert stats["logins"] == 1 and stats["refreshes"] == 1  # rejected logins are not counted


def test_asyncio_cancellation(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=1000, count=1)
    client = sim.cadenza_client(login=False)

    async def main() -> None:
        task = asyncio.ensure_future(client.arequest("GET", "/api/v3/user/profile"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(1.2)  # the abandoned login's answer arrives; nothing may crash
    assert client.request("GET", "/api/v3/user/profile").ok


def test_arequest_needs_a_running_loop(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    with pytest.raises(RuntimeError):
        client.arequest("GET", "/api/v1/user")
