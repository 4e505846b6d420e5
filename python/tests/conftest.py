"""Fixtures for the wheel's tests: the standalone simulator over real TLS.

The tests import `tradeauth` from the installed wheel (scripts/test_python.sh runs them
from a fresh venv, outside the source tree), never from python/tradeauth/ directly.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any, Callable, Iterator

import pytest
import requests

import tradeauth
from simproc import start_sim, stop_sim

CADENZA_EMAIL = "demo@cadenza.test"
CADENZA_PASSWORD = "demo-password"
PARTNER_ID = "demo-client"
PARTNER_SECRET = "demo-partner-secret-key-0123456789abcdef"
CASCADE_DEPOSIT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
# Hardhat/Anvil development account #0: a public test key, never used for anything real.
CASCADE_DELEGATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
CASCADE_DELEGATE_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EXCHANGE_KEY = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"
EXCHANGE_ADMIN = "demo-admin-token"


class Sim:
    """The running simulator: base URLs, CA path, and control-endpoint helpers."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.ca = urls["ca_cert"]
        self.cadenza = urls["cadenza"]
        self.partner = urls["partner"]
        self.cascade = urls["cascade"]
        self.exchange = urls["exchange"]
        self.control = urls["control"]

    def stats(self, venue: str) -> dict[str, Any]:
        answer = requests.get(f"{self.control}/stats", timeout=10, verify=self.ca)
        result: dict[str, Any] = answer.json()[venue]
        return result

    def post(self, path: str, body: dict[str, Any]) -> None:
        answer = requests.post(f"{self.control}{path}", json=body, timeout=10, verify=self.ca)
        assert answer.status_code in (200, 201, 204), (path, answer.status_code, answer.text)

    def fault(self, venue: str, path: str, kind: str, **extra: Any) -> None:
        self.post("/faults", {"venue": venue, "path": path, "kind": kind, **extra})

    # Clients built against this simulator.
    def cadenza_client(self, **options: Any) -> tradeauth.CadenzaClient:
        return tradeauth.CadenzaClient(
            CADENZA_EMAIL, CADENZA_PASSWORD, self.cadenza, ca_cert=self.ca, **options
        )

    def partner_client(self, **options: Any) -> tradeauth.PartnerClient:
        return tradeauth.PartnerClient(
            PARTNER_ID, PARTNER_SECRET, self.partner, ca_cert=self.ca, **options
        )

    def cascade_client(self, **options: Any) -> tradeauth.CascadeClient:
        return tradeauth.CascadeClient(
            CASCADE_DEPOSIT, CASCADE_DELEGATE_KEY, self.cascade, ca_cert=self.ca, **options
        )

    def exchange_client(self, **kwargs: Any) -> tradeauth.ExchangeClient:
        return tradeauth.ExchangeClient(base_url=self.exchange, ca_cert=self.ca, **kwargs)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    ca_path = tmp_path_factory.mktemp("sim") / "ca.pem"
    proc, urls = start_sim(ca_path, subprocess.DEVNULL)
    try:
        yield Sim(urls)
    finally:
        stop_sim(proc)


@pytest.fixture(autouse=True)
def fresh_state(sim: Sim) -> Iterator[None]:
    sim.post("/reset", {})
    yield


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Polls `predicate` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
