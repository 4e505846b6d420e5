"""examples/python/ run against the simulator, exit 0, and print no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest
from conftest import Sim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def example_env(sim: Sim) -> dict[str, str]:
    """The environment scripts/demo_python.sh gives the examples."""
    return {
        **os.environ,
        "TRADEAUTH_CA_CERT": sim.ca,
        "CADENZA_EMAIL": conftest.CADENZA_EMAIL,
        "CADENZA_PASSWORD": conftest.CADENZA_PASSWORD,
        "CADENZA_BASE_URL": sim.cadenza,
        "PARTNER_CLIENT_ID": conftest.PARTNER_ID,
        "PARTNER_SECRET_KEY": conftest.PARTNER_SECRET,
        "PARTNER_BASE_URL": sim.partner,
        "DEPOSIT_ADDRESS": conftest.CASCADE_DEPOSIT,
        "DELEGATE_PRIVATE_KEY": conftest.CASCADE_DELEGATE_KEY,
        "CASCADE_BASE_URL": sim.cascade,
        "EXCHANGE_API_KEY": conftest.EXCHANGE_KEY,
        "EXCHANGE_ADMIN_TOKEN": conftest.EXCHANGE_ADMIN,
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
    secrets = (
        conftest.CADENZA_PASSWORD,
        conftest.PARTNER_SECRET,
        conftest.CASCADE_DELEGATE_KEY[2:],
        conftest.EXCHANGE_KEY,
        conftest.EXCHANGE_ADMIN,
    )
    for secret in secrets:
        assert secret not in output, f"{name} printed a secret"
    assert "eyJ" not in output  # no JWT
