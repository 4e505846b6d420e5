"""Many clients in one process (issue #21): clients to one venue share one connection and
a fixed set of threads, ``private_pool=True`` opts out, and the process-wide settings
(``tradeauth.configure``, ``TRADEAUTH_WORKER_THREADS``,
``TRADEAUTH_MAX_CONCURRENT_RENEWALS``) are what the runtime and the venue see. The
simulator's own counts (connections opened, requests in flight) are the evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

import tradeauth
from conftest import Sim

PROFILE = "/api/v3/user/profile"


def threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def test_three_hundred_clients_share_one_connection_and_a_fixed_set_of_threads(sim: Sim) -> None:
    limit = tradeauth.configure()["max_concurrent_renewals"]
    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(lambda _: sim.cadenza_client(), range(300)))
        statuses = list(pool.map(lambda c: c.request("GET", PROFILE).status_code, clients))
    assert statuses == [200] * 300
    stats = sim.stats("cadenza")
    assert stats["logins"] == 300
    # HTTP/2: one shared connection (the first request to the venue goes alone, so the
    # 16 callers behind it share the multiplexed connection it opened).
    assert stats["connections"] <= 2, stats
    assert stats["max_in_flight"] <= limit + 16, stats  # logins (limited) + 16 callers
    # The library's threads do not grow with the number of clients: 2 workers and one
    # log forwarder (4 with the main thread, measured). 300 logins logged through
    # `block_in_place` used to borrow blocking threads, up to the pool's cap of 32.
    assert threads() <= 10

    # The contrast that shows the count can fail: a pool of each client's own.
    before = sim.stats("cadenza")["connections"]
    with ThreadPoolExecutor(16) as pool:
        private = list(pool.map(lambda _: sim.cadenza_client(private_pool=True), range(30)))
    assert len(private) == 30
    assert sim.stats("cadenza")["connections"] - before >= 30


def test_configure_answers_the_settings_and_refuses_bad_ones() -> None:
    config = tradeauth.configure()
    assert set(config) == {"worker_threads", "max_concurrent_renewals"}
    for bad in ({"max_concurrent_renewals": 0}, {"max_concurrent_renewals": -1},
                {"worker_threads": 5000}):
        with pytest.raises(tradeauth.InvalidArgument, match="from 1 to 4096"):
            tradeauth.configure(**bad)
    assert tradeauth.configure() == config, "a refused call changes nothing"


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_environment_sets_the_runtime_and_the_renewal_limit(sim: Sim) -> None:
    code = f"""
        import json, tradeauth
        client = tradeauth.ExchangeClient(base_url={sim.exchange!r}, ca_cert={sim.ca!r})
        client.request("GET", "/api/v1/orderbook/BTC-USD")
        answer = tradeauth.configure()
        try:
            tradeauth.configure(worker_threads=answer["worker_threads"] + 1)
            refused = ""
        except tradeauth.InvalidArgument as e:
            refused = str(e)
        print(json.dumps({{"config": answer, "refused": refused}}))
    """
    done = run_python(code, {"TRADEAUTH_WORKER_THREADS": "3",
                             "TRADEAUTH_MAX_CONCURRENT_RENEWALS": "5"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["config"] == {"worker_threads": 3, "max_concurrent_renewals": 5}
    assert "already runs 3 worker threads" in out["refused"]


@pytest.mark.parametrize("name", ["TRADEAUTH_WORKER_THREADS", "TRADEAUTH_MAX_CONCURRENT_RENEWALS"])
def test_a_bad_setting_in_the_environment_is_an_error_naming_it(sim: Sim, name: str) -> None:
    code = f"""
        import tradeauth
        try:
            tradeauth.ExchangeClient(base_url={sim.exchange!r}, ca_cert={sim.ca!r}) \\
                .request("GET", "/api/v1/orderbook/BTC-USD")
        except tradeauth.InvalidArgument as e:
            print(e)
    """
    done = run_python(code, {name: "lots"})
    assert done.returncode == 0, done.stderr
    assert f"{name} must be a whole number from 1 to 4096" in done.stdout


def test_a_configured_limit_is_what_the_venue_sees(sim: Sim) -> None:
    # Every login takes 50 ms at the venue; 12 clients log in at once from a process
    # whose limit is 2.
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=50, count=12)
    code = f"""
        import json, tradeauth
        from concurrent.futures import ThreadPoolExecutor
        tradeauth.configure(max_concurrent_renewals=2)
        def login(_):
            return tradeauth.CadenzaClient("demo@cadenza.test", "demo-password",
                                           {sim.cadenza!r}, ca_cert={sim.ca!r})
        with ThreadPoolExecutor(12) as pool:
            clients = list(pool.map(login, range(12)))
        print(len(clients))
    """
    done = run_python(code, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "12"
    stats = sim.stats("cadenza")
    assert stats["logins"] == 12
    assert stats["max_in_flight"] == 2, stats
