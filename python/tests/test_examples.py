"""examples/python/ run against the simulator, exit 0, and print no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    CADENZA_EMAIL,
    CADENZA_PASSWORD,
    CASCADE_DELEGATE_KEY,
    CASCADE_DEPOSIT,
    EXCHANGE_ADMIN,
    EXCHANGE_KEY,
    PARTNER_ID,
    PARTNER_SECRET,
    Sim,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def example_env(sim: Sim) -> dict[str, str]:
    """The environment scripts/demo_python.sh gives the examples."""
    return {
        **os.environ,
        "TRADEAUTH_CA_CERT": sim.ca,
        "CADENZA_EMAIL": CADENZA_EMAIL,
        "CADENZA_PASSWORD": CADENZA_PASSWORD,
        "CADENZA_BASE_URL": sim.cadenza,
        "PARTNER_CLIENT_ID": PARTNER_ID,
        "PARTNER_SECRET_KEY": PARTNER_SECRET,
        "PARTNER_BASE_URL": sim.partner,
        "DEPOSIT_ADDRESS": CASCADE_DEPOSIT,
        "DELEGATE_PRIVATE_KEY": CASCADE_DELEGATE_KEY,
        "CASCADE_BASE_URL": sim.cascade,
        "EXCHANGE_API_KEY": EXCHANGE_KEY,
        "EXCHANGE_ADMIN_TOKEN": EXCHANGE_ADMIN,
        "EXCHANGE_BASE_URL": sim.exchange,
    }


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example(sim: Sim, name: str) -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=example_env(sim),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert output.strip()
    for secret in (CADENZA_PASSWORD, PARTNER_SECRET, CASCADE_DELEGATE_KEY[2:], EXCHANGE_KEY, EXCHANGE_ADMIN):
        assert secret not in output, f"{name} printed a secret"
    assert "eyJ" not in output  # no JWT
