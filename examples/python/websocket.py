"""WebSockets that stay authenticated, one per venue that has them: Cascade with asyncio
(``async with client.websocket(...)``, ``async for``) and Exchange with the blocking twin
(``with client.websocket_sync(...)``). Replaces the pages' hand-written auth message,
re-auth timer and reconnect loop: private messages wait until the venue has accepted the
credential, and a dropped connection is replaced, re-authenticated and re-subscribed.

    DEPOSIT_ADDRESS=... DELEGATE_PRIVATE_KEY=... EXCHANGE_API_KEY=...
    [CASCADE_BASE_URL=...] [EXCHANGE_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/websocket.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import tradeauth

ca_cert = os.environ.get("TRADEAUTH_CA_CERT")


def short(message: Any) -> str:
    text = str(message)
    return text if len(text) <= 100 else text[:100] + "..."


async def cascade() -> None:
    client = tradeauth.CascadeClient(
        os.environ["DEPOSIT_ADDRESS"],
        os.environ["DELEGATE_PRIVATE_KEY"],
        os.environ.get("CASCADE_BASE_URL", tradeauth.CASCADE_URL),
        ca_cert=ca_cert,
    )
    # Page: connect, send {"method": "auth", "params": {"token": jwt}}, wait for the
    # answer, re-auth before the JWT ends; here the library does all of that.
    async with client.websocket("/ws") as ws:
        print(f"cascade: WebSocket {ws.state}")
        await ws.subscribe(
            {"jsonrpc": "2.0", "id": 1, "method": "subscribe",
             "params": {"channel": "orderbook", "market": "ETH-USD"}}
        )
        await ws.subscribe(  # private: goes out only on an authenticated connection
            {"jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": {"channel": "orders"}}
        )
        await ws.send({"jsonrpc": "2.0", "id": 3, "method": "orders.list", "params": {}})
        async for message in ws:  # parsed JSON, in order; auth answers are consumed
            print(f"cascade: ws message {short(message)}")
            if message.get("id") == 3:
                break
    print(f"cascade: WebSocket {ws.state}")


def exchange() -> None:
    client = tradeauth.ExchangeClient(
        api_key=os.environ["EXCHANGE_API_KEY"],
        base_url=os.environ.get("EXCHANGE_BASE_URL", tradeauth.EXCHANGE_URL),
        ca_cert=ca_cert,
    )
    with client.websocket_sync("/ws") as ws:
        print(f"exchange: WebSocket {ws.state}")
        ws.subscribe({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"})
        ws.subscribe({"op": "subscribe", "channel": "fills"})  # private
        ws.send({"op": "place_order", "market": "BTC-USD", "side": "buy",
                 "price": 50000.0, "quantity": 0.1})
        for message in ws:
            print(f"exchange: ws message {short(message)}")
            if message.get("type") == "order_accepted":
                break
        # A bad message is refused before anything is sent, with the reason.
        try:
            ws.send("not json")
        except tradeauth.InvalidArgument as e:
            print(f"exchange: a send that is not a JSON object -> InvalidArgument: {e}")
    print(f"exchange: WebSocket {ws.state}")


asyncio.run(cascade())
exchange()
