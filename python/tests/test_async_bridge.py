"""How asyncio results reach their event loop: queued by the runtime workers without the
GIL and settled on the loop's own thread, loop by loop, with nothing left behind."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import tradeauth
from tradeauth import _native
from conftest import EXCHANGE_KEY, Sim

PROFILE = "/api/v1/user"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def many_gets(client: Any, count: int) -> list[int]:
    responses = await asyncio.gather(*(client.arequest("GET", PROFILE) for _ in range(count)))
    return [r.status_code for r in responses]


def test_results_are_settled_by_the_loop_not_by_workers_attaching(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    before = _native._bridge_stats()
    assert asyncio.run(many_gets(client, 200)) == [200] * 200
    after = _native._bridge_stats()
    # Every result came through the loop's queue; no runtime worker took the GIL for one.
    assert after["settled"] - before["settled"] == 200
    assert after["worker_handoffs"] == before["worker_handoffs"]
    assert 1 <= after["batches"] - before["batches"] <= 200


def test_each_loop_settles_its_own_futures_on_its_own_thread(sim: Sim) -> None:
    """Two loops in two threads at once, in asyncio's debug mode, which raises if a future
    is settled from a thread other than its loop's (the future then never resolves and
    `wait_for` times out)."""
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    outcomes: dict[int, Any] = {}
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        async def main() -> list[int]:
            barrier.wait()
            return await asyncio.wait_for(many_gets(client, 100), timeout=30)

        try:
            outcomes[index] = asyncio.run(main(), debug=True)
        except BaseException as error:  # reported below, with the thread's index
            outcomes[index] = error

    # Daemon threads, joined with a bound: a future settled from the wrong thread leaves
    # its gather waiting forever, even past `wait_for`'s cancellation.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a loop never got its results"
    assert outcomes == {0: [200] * 100, 1: [200] * 100}


def test_loops_that_end_leave_no_sockets_behind(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    asyncio.run(many_gets(client, 5))  # the runtime and the connection, outside the count
    before = open_fds()
    for _ in range(30):
        assert asyncio.run(many_gets(client, 5)) == [200] * 5
    # Each loop had a wake-up socket pair; the ended loops' pairs are closed. (A new
    # loop's pair may be open until the next loop replaces it.)
    assert open_fds() - before <= 2
    assert _native._bridge_stats()["loops"] <= 2


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch a file descriptor, like Windows' proactor loop."""

    def add_reader(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_a_loop_without_add_reader_still_gets_its_results(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    before = _native._bridge_stats()
    loop = NoReaderLoop()
    try:
        assert loop.run_until_complete(many_gets(client, 20)) == [200] * 20
        # An error takes the same way back.
        failing = tradeauth.CadenzaClient("demo@cadenza.test", "not-the-password",
                                          sim.cadenza, ca_cert=sim.ca, login=False)

        async def rejected() -> Any:
            return await failing.arequest("GET", "/api/v3/user/profile")

        try:
            loop.run_until_complete(rejected())
        except tradeauth.Unauthorized as error:
            assert "not-the-password" not in str(error)
        else:
            raise AssertionError("a rejected login must raise")
    finally:
        loop.close()
    after = _native._bridge_stats()
    assert after["worker_handoffs"] - before["worker_handoffs"] == 21
    assert after["settled"] == before["settled"]


def test_a_cancelled_call_among_finished_ones(sim: Sim) -> None:
    """Cancelled futures in a batch are skipped; the others in it still settle."""
    sim.fault("exchange", PROFILE, "delay", delay_ms=400, count=1)
    client = sim.exchange_client(api_key=EXCHANGE_KEY)

    async def main() -> list[int]:
        slow = asyncio.ensure_future(client.arequest("GET", PROFILE))
        await asyncio.sleep(0.05)
        fast = [asyncio.ensure_future(client.arequest("GET", PROFILE)) for _ in range(20)]
        slow.cancel()
        done = await asyncio.gather(*fast)
        assert slow.cancelled()
        return [r.status_code for r in done]

    assert asyncio.run(main()) == [200] * 20
