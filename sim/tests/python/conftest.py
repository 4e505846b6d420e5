"""Starts the standalone simulator binary once per run and gives tests its URLs.

The clients under test get only a base URL; CA trust reaches `requests` through
REQUESTS_CA_BUNDLE, exactly as a user would point the pages' code at a private CA.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REPO = HERE.parents[2]
# The simulator process helpers, shared with the wheel's tests.
sys.path.insert(0, str(REPO / "python" / "tests"))

from simproc import start_sim, stop_sim  # noqa: E402


class Sim:
    """The running simulator: its URLs plus small helpers for the control listener."""

    def __init__(self, urls: dict) -> None:
        self.urls = urls
        self.control = urls["control"]

    def stats(self) -> dict:
        return requests.get(f"{self.control}/stats", timeout=10).json()

    def post(self, path: str, body: dict) -> None:
        response = requests.post(f"{self.control}{path}", json=body, timeout=10)
        assert response.status_code in (200, 204), (path, response.status_code, response.text)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    ca_path = tmp_path_factory.mktemp("sim") / "ca.pem"
    proc, urls = start_sim(ca_path, None)
    try:
        assert Path(urls["ca_cert"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        os.environ["REQUESTS_CA_BUNDLE"] = urls["ca_cert"]
        yield Sim(urls)
    finally:
        code = stop_sim(proc)
        # The simulator promises a clean exit on SIGTERM; a crash here is a sim bug.
        assert code == 0, f"tradeauth-sim exited with {code}"


@pytest.fixture(autouse=True)
def fresh_state(sim: Sim) -> Iterator[None]:
    sim.post("/reset", {})
    yield
