"""Issue #15 in Python: ``client.websocket(path)`` (asyncio) and ``client.websocket_sync``
(blocking) against the simulator over TLS: connect and authenticate, a public and a
private subscription, a private send held until authenticated, the venue's messages in
order, a rejected key's reason, timeouts, closing, and nothing private ever sent before
the venue accepted the credential (the simulator's ``ws_private_before_auth``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest

import tradeauth
from conftest import EXCHANGE_KEY, Sim

BAD_EXCHANGE_KEY = "exch_" + "0" * 32


def cascade_rpc(id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


CASCADE_PUBLIC = cascade_rpc(1, "subscribe", {"channel": "orderbook", "market": "ETH-USD"})
CASCADE_PRIVATE = cascade_rpc(2, "subscribe", {"channel": "orders"})
CASCADE_QUERY = cascade_rpc(3, "orders.list", {})

EXCHANGE_PUBLIC = {"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}
EXCHANGE_PRIVATE = {"op": "subscribe", "channel": "orders"}
EXCHANGE_ORDER = {
    "op": "place_order",
    "market": "BTC-USD",
    "side": "buy",
    "price": 50000.0,
    "quantity": 0.1,
}


def is_type(message: Any, kind: str) -> bool:
    return isinstance(message, dict) and message.get("type") == kind


async def recv_until(
    ws: tradeauth.WebSocket, pred: Callable[[Any], bool], within: float = 5.0
) -> list[Any]:
    """Messages up to and including the first that satisfies `pred` (bounded)."""
    deadline = time.monotonic() + within
    seen: list[Any] = []
    while True:
        message = await ws.recv(timeout=max(deadline - time.monotonic(), 0.0))
        seen.append(message)
        if pred(message):
            return seen


def recv_until_sync(
    ws: tradeauth.WebSocketSync, pred: Callable[[Any], bool], within: float = 5.0
) -> list[Any]:
    deadline = time.monotonic() + within
    seen: list[Any] = []
    while True:
        message = ws.recv(timeout=max(deadline - time.monotonic(), 0.0))
        seen.append(message)
        if pred(message):
            return seen


def check_cascade(seen: list[Any]) -> None:
    assert all(isinstance(m, dict) for m in seen), seen
    answers = [m for m in seen if "id" in m]
    assert [m["id"] for m in answers] == [1, 2, 3], answers
    assert all("error" not in m for m in answers), answers
    assert "orders" in answers[1]["result"]["subscribed"]
    assert isinstance(answers[2]["result"]["orders"], list)
    # The library's own auth reply is consumed, never handed to the caller.
    assert all("authenticated" not in (m.get("result") or {}) for m in answers), answers


def check_exchange(seen: list[Any]) -> None:
    assert all(isinstance(m, dict) for m in seen), seen
    assert not [m for m in seen if is_type(m, "error")], seen
    assert not [m for m in seen if is_type(m, "authenticated")], seen
    mine = [m for m in seen if is_type(m, "subscribed") or is_type(m, "order_accepted")]
    assert [(m["type"], m.get("channel")) for m in mine] == [
        ("subscribed", "orderbook"),
        ("subscribed", "orders"),
        ("order_accepted", None),
    ], mine
    assert mine[2]["order"]["market"] == "BTC-USD"


def no_private_before_auth(sim: Sim, venue: str) -> None:
    stats = sim.stats(venue)
    assert stats["ws_private_before_auth"] == 0, stats


def test_cascade_public_then_private_then_a_private_query_in_order(sim: Sim) -> None:
    client = sim.cascade_client()

    async def main() -> list[Any]:
        async with client.websocket("/ws") as ws:
            assert ws.state == "authenticated"
            await ws.subscribe(CASCADE_PUBLIC)
            await ws.subscribe(CASCADE_PRIVATE)
            await ws.send(CASCADE_QUERY)
            seen = await recv_until(ws, lambda m: m.get("id") == 3)
            assert ws.state == "authenticated"
        assert ws.state == "closed"
        return seen

    check_cascade(asyncio.run(main()))
    no_private_before_auth(sim, "cascade")


def test_exchange_private_send_gets_order_accepted_in_order(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> list[Any]:
        async with client.websocket("/ws", idle_timeout=20.0, hold_timeout=10.0) as ws:
            assert ws.state == "authenticated"
            await ws.subscribe(EXCHANGE_PUBLIC)
            await ws.subscribe(EXCHANGE_PRIVATE, private=True)
            await ws.send(EXCHANGE_ORDER)
            seen: list[Any] = []
            async for message in ws:
                seen.append(message)
                if is_type(message, "order_accepted"):
                    break
            return seen

    check_exchange(asyncio.run(main()))
    no_private_before_auth(sim, "exchange")


def test_connect_without_a_context_and_a_json_string_message(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> list[Any]:
        ws = client.websocket("/ws")
        assert ws.state == "connecting"
        assert await ws.connect() is ws
        try:
            await ws.send('{"op": "place_order", "market": "BTC-USD", "side": "sell", '
                          '"price": 51000.0, "quantity": 0.2}')
            return await recv_until(ws, lambda m: is_type(m, "order_accepted"))
        finally:
            await ws.close()

    seen = asyncio.run(main())
    assert seen[-1]["order"]["side"] == "sell"
    no_private_before_auth(sim, "exchange")


@pytest.mark.parametrize("venue", ["cascade", "exchange"])
def test_the_blocking_twin(sim: Sim, venue: str) -> None:
    if venue == "cascade":
        client: tradeauth.BaseClient = sim.cascade_client()
        messages = [CASCADE_PUBLIC, CASCADE_PRIVATE]
        query: dict[str, Any] = CASCADE_QUERY

        def last(m: Any) -> bool:
            return bool(m.get("id") == 3)

        check: Callable[[list[Any]], None] = check_cascade
    else:
        client = sim.exchange_client(api_key=EXCHANGE_KEY)
        messages = [EXCHANGE_PUBLIC, EXCHANGE_PRIVATE]
        query = EXCHANGE_ORDER

        def last(m: Any) -> bool:
            return is_type(m, "order_accepted")

        check = check_exchange
    with client.websocket_sync("/ws") as ws:
        assert ws.state == "authenticated"
        for message in messages:
            ws.subscribe(message)
        ws.send(query)
        seen: list[Any] = []
        for received in ws:
            seen.append(received)
            if last(received):
                break
        # More with recv() on the same connection, then iteration ends once closed.
        ws.send(query)
        seen_again = recv_until_sync(ws, last)
        assert last(seen_again[-1])
        ws.close()
        assert ws.state == "closed"
        assert list(ws) == []
    check(seen)
    no_private_before_auth(sim, venue)


def test_a_bad_exchange_key_raises_unauthorized_with_the_venues_reason(sim: Sim) -> None:
    client = sim.exchange_client(api_key=BAD_EXCHANGE_KEY)

    async def main() -> None:
        async with client.websocket("/ws"):
            raise AssertionError("connected with a bad key")

    started = time.monotonic()
    with pytest.raises(tradeauth.Unauthorized) as info:
        asyncio.run(main())
    assert time.monotonic() - started < 5.0
    text = str(info.value)
    # Compared by hand: an assert that printed the text could leak the key.
    assert "invalid api key" in text.lower()
    assert BAD_EXCHANGE_KEY not in text and BAD_EXCHANGE_KEY[5:] not in text

    with pytest.raises(tradeauth.Unauthorized) as sync_info:
        with client.websocket_sync("/ws"):
            raise AssertionError("connected with a bad key")
    sync_text = str(sync_info.value)
    assert "invalid api key" in sync_text.lower() and BAD_EXCHANGE_KEY not in sync_text


def test_recv_times_out_when_nothing_comes(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> float:
        async with client.websocket("/ws") as ws:
            started = time.monotonic()
            with pytest.raises(tradeauth.Timeout):
                await ws.recv(timeout=0.2)
            took = time.monotonic() - started
            # Nothing was lost: the connection still answers.
            await ws.send({"op": "ping"})
            pong = await recv_until(ws, lambda m: is_type(m, "pong"))
            assert is_type(pong[-1], "pong")
            return took

    took = asyncio.run(main())
    assert 0.15 <= took < 2.0, took

    with client.websocket_sync("/ws") as ws:
        with pytest.raises(tradeauth.Timeout):
            ws.recv(timeout=0.2)


def test_a_blocking_recv_releases_the_gil(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    ticks = 0
    stop = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.005)

    with client.websocket_sync("/ws") as ws:
        thread = threading.Thread(target=ticker)
        thread.start()
        try:
            with pytest.raises(tradeauth.Timeout):
                ws.recv(timeout=0.5)
        finally:
            stop.set()
            thread.join()
    assert ticks >= 20, ticks


def test_a_public_session_is_open_and_refuses_private_messages(sim: Sim) -> None:
    client = sim.exchange_client()

    async def main() -> None:
        async with client.websocket("/ws") as ws:
            assert ws.state == "open"
            with pytest.raises(tradeauth.InvalidArgument):
                await ws.send(EXCHANGE_ORDER)
            with pytest.raises(tradeauth.InvalidArgument):
                await ws.send({"op": "ping"}, private=True)
            await ws.send({"op": "ping"}, private=False)
            await recv_until(ws, lambda m: is_type(m, "pong"))

    asyncio.run(main())
    no_private_before_auth(sim, "exchange")


def test_closing_ends_iteration_and_later_calls_fail(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> None:
        ws = client.websocket("/ws")
        async with ws:
            pass
        assert ws.state == "closed"
        assert [m async for m in ws] == []
        with pytest.raises(tradeauth.TransportError):
            await ws.send({"op": "ping"})
        with pytest.raises(tradeauth.TransportError):
            await ws.recv()
        with pytest.raises(tradeauth.TransportError):
            await ws.connect()

    asyncio.run(main())


def test_options_and_messages_are_checked(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(tradeauth.InvalidArgument):
            client.websocket("/ws", idle_timeout=bad)
        with pytest.raises(tradeauth.InvalidArgument):
            client.websocket_sync("/ws", hold_timeout=bad)
    ws = client.websocket_sync("/ws")
    assert repr(ws) == "WebSocketSync(path='/ws', state='connecting')"
    with pytest.raises(tradeauth.InvalidArgument):
        ws.send({"op": "ping"})  # not connected yet
    with ws:
        for bad_message in ("[1, 2]", "not json", '"text"'):
            with pytest.raises(tradeauth.InvalidArgument):
                ws.send(bad_message)
        with pytest.raises(tradeauth.InvalidArgument):
            ws.send({"op": object()})
        with pytest.raises(tradeauth.InvalidArgument):
            ws.recv(timeout=-1.0)


def test_a_dropped_connection_is_replaced_and_its_subscriptions_replayed(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> list[Any]:
        async with client.websocket("/ws") as ws:
            await ws.subscribe(EXCHANGE_PRIVATE)
            await recv_until(ws, lambda m: is_type(m, "subscribed"))
            sim.fault("exchange", "/ws", "ws_drop")
            deadline = time.monotonic() + 5.0
            while ws.state == "authenticated" and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            assert ws.state in ("reconnecting", "connecting", "authenticating"), ws.state
            # Held until the new connection is authenticated, then sent there.
            await ws.send(EXCHANGE_ORDER)
            seen = await recv_until(ws, lambda m: is_type(m, "order_accepted"))
            assert ws.state == "authenticated"
            return seen

    seen = asyncio.run(main())
    replayed = [m for m in seen if is_type(m, "subscribed")]
    assert [m["channel"] for m in replayed] == ["orders"], seen
    stats = sim.stats("exchange")
    assert stats["ws_connections"] == 2 and stats["ws_private_before_auth"] == 0, stats


# The core issue's scenarios (#15) from Python: a Cascade drop with its renumbered replay,
# a token that expires under an open connection, a revocation met by the WebSocket and an
# HTTP caller at once, and a silent venue.


def test_a_dropped_cascade_connection_replays_its_subscription_and_consumes_the_answer(
    sim: Sim,
) -> None:
    client = sim.cascade_client()

    async def main() -> list[Any]:
        async with client.websocket("/ws", hold_timeout=20.0) as ws:
            await ws.subscribe(CASCADE_PRIVATE)
            seen = await recv_until(ws, lambda m: m.get("id") == 2)
            sim.fault("cascade", "/ws", "ws_drop")
            deadline = time.monotonic() + 5.0
            while ws.state == "authenticated" and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            assert ws.state != "authenticated", "the drop was never seen"
            await ws.send(cascade_rpc(9, "orders.list", {}))
            seen += await recv_until(ws, lambda m: m.get("id") == 9)
            assert ws.state == "authenticated"
            return seen

    seen = asyncio.run(main())
    # The replayed subscription went out as tradeauth-sub-N and its answer was consumed:
    # the caller sees its own id 2 once and the query's answer, nothing of the library's.
    assert [m["id"] for m in seen if "id" in m] == [2, 9], seen
    assert all("error" not in m for m in seen), seen
    stats = sim.stats("cascade")
    assert stats["ws_connections"] == 2 and stats["ws_auths"] == 2, stats
    assert stats["ws_private_before_auth"] == 0, stats


def test_a_token_expiring_under_an_open_connection_is_renewed_on_it(sim: Sim) -> None:
    sim.post("/lifetimes", {"venue": "cascade", "token_ttl_secs": 5})
    client = sim.cascade_client()

    async def main() -> int:
        async with client.websocket("/ws") as ws:
            await ws.subscribe(CASCADE_PRIVATE)
            await recv_until(ws, lambda m: m.get("id") == 2)
            call = 100
            until = time.monotonic() + 11.0  # two expiries of the 5 s token
            while time.monotonic() < until:
                call += 1
                await ws.send(cascade_rpc(call, "orders.list", {}))
                seen = await recv_until(ws, lambda m: m.get("id") == call)
                assert "error" not in seen[-1], f"private call {call} refused: {seen[-1]}"
                await asyncio.sleep(0.25)
            return call - 100

    calls = asyncio.run(main())
    stats = sim.stats("cascade")
    assert calls >= 20, calls
    assert stats["rejections"].get("Invalid Bearer Token", 0) == 0, stats
    assert stats["ws_connections"] == 1, stats
    assert stats["ws_auths"] >= 3, f"re-authenticated before each expiry: {stats}"
    assert stats["ws_private_before_auth"] == 0, stats


def test_a_revocation_is_one_renewal_shared_by_the_websocket_and_http(sim: Sim) -> None:
    client = sim.cascade_client()

    async def main() -> tuple[list[Any], int]:
        async with client.websocket("/ws") as ws:
            assert sim.stats("cascade")["logins"] == 1
            sim.post("/revoke", {"venue": "cascade", "what": "access_tokens"})
            # Both meet the revoked token at the same moment.
            _, http = await asyncio.gather(
                ws.send(cascade_rpc(7, "orders.list", {})),
                client.arequest("GET", "/account/orders"),
            )
            seen = await recv_until(ws, lambda m: m.get("id") == 7)
            await ws.send(cascade_rpc(8, "orders.list", {}))
            seen += await recv_until(ws, lambda m: m.get("id") == 8)
            return seen, http.status_code

    seen, status = asyncio.run(main())
    assert status == 200, "HTTP renews and retries"
    answers = {m["id"]: m for m in seen if "id" in m}
    assert answers[7]["error"]["code"] == -32001, "the caller sees its own call's answer"
    assert "error" not in answers[8], f"the stream continues: {answers[8]}"
    stats = sim.stats("cascade")
    assert stats["logins"] == 2, f"one renewal, shared: {stats}"
    assert stats["ws_connections"] == 1, stats


def test_a_silent_venue_is_detected_by_the_idle_timeout_and_replaced(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> tuple[float, float]:
        async with client.websocket("/ws", idle_timeout=0.8, ping_interval=0.2) as ws:
            started = time.monotonic()
            sim.fault("exchange", "/ws", "ws_silence", secs=30)
            while ws.state == "authenticated" and time.monotonic() - started < 10.0:
                await asyncio.sleep(0.005)
            detected = time.monotonic() - started
            while ws.state != "authenticated" and time.monotonic() - started < 20.0:
                await asyncio.sleep(0.005)
            back = time.monotonic() - started
            assert ws.state == "authenticated", ws.state
            await ws.send(EXCHANGE_ORDER)
            await recv_until(ws, lambda m: is_type(m, "order_accepted"))
            return detected, back

    detected, back = asyncio.run(main())
    # Pongs stop at the fault; the last one came at most one ping interval before it.
    assert 0.6 <= detected < 5.0, detected
    assert back < 5.0, back
    stats = sim.stats("exchange")
    assert stats["ws_connections"] == 2 and stats["ws_private_before_auth"] == 0, stats
