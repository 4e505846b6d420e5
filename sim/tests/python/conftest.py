"""Starts the standalone simulator binary once per run and gives tests its URLs.

The clients under test get only a base URL; CA trust reaches `requests` through
REQUESTS_CA_BUNDLE, exactly as a user would point the pages' code at a private CA.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REPO = HERE.parents[2]


def sim_binary() -> str:
    explicit = os.environ.get("TRADEAUTH_SIM_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "tradeauth-sim")


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
    proc = subprocess.Popen([sim_binary(), "--ca-out", str(ca_path)],
                            stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "tradeauth-sim printed nothing; is it built? (cargo build -p tradeauth-sim)"
        urls = json.loads(line)
        assert Path(urls["ca_cert"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        os.environ["REQUESTS_CA_BUNDLE"] = urls["ca_cert"]
        yield Sim(urls)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        # The simulator promises a clean exit on SIGTERM; a crash here is a sim bug.
        assert code == 0, f"tradeauth-sim exited with {code}"


@pytest.fixture(autouse=True)
def fresh_state(sim: Sim) -> Iterator[None]:
    sim.post("/reset", {})
    yield
