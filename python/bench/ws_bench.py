"""WebSocket messages per second from Python (issue #16): tradeauth vs ``websockets``.

Reads the simulator's Exchange orderbook stream, side by side in one run:

* **tradeauth**: ``tradeauth.ExchangeClient(api_key=..)``, ``async with
  client.websocket("/ws") as ws``, ``await ws.subscribe(..)``, ``async for message in
  ws`` (the library authenticates and hands over each message already parsed);
* **websockets** (the PyPI package, pinned in ``requirements.txt``): ``websockets.connect``
  to the same ``wss://`` URL with an ``ssl`` context trusting the simulator's CA, the
  Exchange page's auth message ``{"op":"authenticate","api_key":..}``, the same
  subscription, and ``json.loads`` of each message.

Each reader gets its own connection, one after the other (never both open), and the same
``POST /ws/burst`` of N deltas (``{"venue":"exchange","count":N}``, asked from a thread
while the reader already waits). A reader's rate is (N - 1) / (time of its last delta -
time of its first), so the control request's own latency is not in it. Rounds alternate
the order (A B, B A, ...) and the medians are reported with their ratio.

Usage: ``python ws_bench.py [--smoke] [--count N] [--rounds R]``. Needs the simulator's
addresses in ``SIM_EXCHANGE``, ``SIM_CONTROL`` and ``SIM_CA`` (``source
scripts/common.sh; start_sim``), or starts ``$TRADEAUTH_SIM_BIN`` (default
``target/debug/tradeauth-sim``) itself. Installs the pinned ``websockets`` if missing.
Prints no secret (the demo key is sent, never printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Awaitable, Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"

# The simulator's demo trader (sim/README.md): a public test key. Sent, never printed.
EXCHANGE_KEY = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"
SUBSCRIBE = {"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}


def ensure_websockets() -> None:
    """pip-installs the pinned ``websockets`` into this interpreter if it is missing."""
    try:
        import websockets  # noqa: F401
        return
    except ImportError:
        pass
    pins = [line.strip() for line in REQUIREMENTS.read_text().splitlines()
            if line.strip().lower().startswith("websockets==")]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        check=True,
    )


class Sim:
    """The simulator's Exchange and control addresses (started here if not given)."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen[str]] = None
        if not os.environ.get("SIM_EXCHANGE"):
            binary = os.environ.get("TRADEAUTH_SIM_BIN", str(REPO / "target/debug/tradeauth-sim"))
            self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True,
                                         stderr=subprocess.DEVNULL)
            assert self.proc.stdout is not None
            info = json.loads(self.proc.stdout.readline())
            os.environ["SIM_EXCHANGE"] = info["exchange"]
            os.environ["SIM_CONTROL"] = info["control"]
            os.environ["SIM_CA"] = info["ca_cert"]
        self.exchange = os.environ["SIM_EXCHANGE"]
        self.control = os.environ["SIM_CONTROL"]
        self.ca = os.environ["SIM_CA"]
        self.ws_url = self.exchange.replace("https://", "wss://", 1) + "/ws"
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def burst(self, count: int) -> int:
        """``POST /ws/burst`` (blocking; run it from a thread): returns ``sent``."""
        body = json.dumps({"venue": "exchange", "count": count}).encode()
        request = urllib.request.Request(f"{self.control}/ws/burst", data=body, method="POST",
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, context=self.ssl, timeout=30) as answer:
            sent: int = json.loads(answer.read())["sent"]
        return sent

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Clock:
    """First and last delta times of one read."""

    def __init__(self) -> None:
        self.first = 0.0
        self.last = 0.0


async def timed_burst(sim: Sim, n: int, read: Callable[[Clock], Awaitable[None]]) -> float:
    """Asks for the burst from a thread while `read` (already waiting) takes N deltas;
    returns deltas per second between the first and the last."""
    clock = Clock()
    asked = asyncio.get_running_loop().run_in_executor(None, sim.burst, n)
    await read(clock)
    sent = await asked
    assert sent >= n, f"the burst reached no reader ({sent})"
    return (n - 1) / (clock.last - clock.first) if n > 1 else 0.0


async def tradeauth_rate(sim: Sim, n: int) -> float:
    import tradeauth

    client = tradeauth.ExchangeClient(api_key=EXCHANGE_KEY, base_url=sim.exchange,
                                      ca_cert=sim.ca)
    async with client.websocket("/ws") as ws:
        await ws.subscribe(SUBSCRIBE)
        async for message in ws:
            if message.get("type") == "orderbook_snapshot":
                break

        async def read(clock: Clock) -> None:
            got = 0
            async for message in ws:
                if message.get("type") == "orderbook_delta":
                    got += 1
                    if got == 1:
                        clock.first = time.perf_counter()
                    if got == n:
                        clock.last = time.perf_counter()
                        return

        return await timed_burst(sim, n, read)


async def websockets_rate(sim: Sim, n: int) -> float:
    import websockets

    async with websockets.connect(sim.ws_url, ssl=sim.ssl) as ws:
        await ws.send(json.dumps({"op": "authenticate", "api_key": EXCHANGE_KEY}))
        reply = json.loads(await ws.recv())
        # Only the type: an error reply could quote what was sent.
        assert reply.get("type") == "authenticated", f"auth refused ({reply.get('type')})"
        await ws.send(json.dumps(SUBSCRIBE))
        async for raw in ws:
            if json.loads(raw).get("type") == "orderbook_snapshot":
                break

        async def read(clock: Clock) -> None:
            got = 0
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "orderbook_delta":
                    got += 1
                    if got == 1:
                        clock.first = time.perf_counter()
                    if got == n:
                        clock.last = time.perf_counter()
                        return

        return await timed_burst(sim, n, read)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny N: check it runs")
    parser.add_argument("--count", type=int, default=200_000, help="deltas per read")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_websockets()
    count, rounds = (2_000, 1) if args.smoke else (args.count, args.rounds)

    import tradeauth
    import websockets

    print(f"tradeauth {tradeauth.__version__} from {tradeauth.__file__}; "
          f"websockets {websockets.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{count} orderbook deltas per read, {rounds} rounds (order alternates)")
    sim = Sim()
    readers: Dict[str, Callable[[Sim, int], Awaitable[float]]] = {
        "tradeauth": tradeauth_rate, "websockets": websockets_rate,
    }
    rates: Dict[str, List[float]] = {name: [] for name in readers}
    try:
        for r in range(rounds):
            order = list(readers) if r % 2 == 0 else list(reversed(readers))
            for name in order:
                rate = asyncio.run(readers[name](sim, count))
                rates[name].append(rate)
                print(f"round {r + 1}: {name:<10} {rate:>12,.0f} messages/s")
                time.sleep(0.2)  # the closed connection leaves the simulator's registry
    finally:
        sim.close()
    ours = statistics.median(rates["tradeauth"])
    theirs = statistics.median(rates["websockets"])
    if args.smoke:
        print("SMOKE MODE: tiny N (and usually a debug wheel): these figures only show that "
              "both readers run; see BENCHMARKS.md for real ones.")
    print(f"RESULT python ws: median of {rounds}: tradeauth {ours:,.0f} messages/s, "
          f"websockets {theirs:,.0f} messages/s, ratio {ours / theirs:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
