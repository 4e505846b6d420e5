"""The wheel's ``tradeauth`` console script: the same command line as the Rust binary,
installed by pip, against the simulator over TLS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import (
    CADENZA_EMAIL,
    CADENZA_PASSWORD,
    CASCADE_DELEGATE_KEY,
    CASCADE_DEPOSIT,
    EXCHANGE_KEY,
    Sim,
)

SCRIPT = Path(sys.executable).parent / "tradeauth"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_the_console_script_is_installed_and_documents_itself() -> None:
    assert SCRIPT.exists(), SCRIPT
    done = run(["--help"], {})
    assert done.returncode == 0
    for command in ("header", "request", "check", "token", "store"):
        assert command in done.stdout
    assert "Example" in run(["check", "--help"], {}).stdout


def test_check_passes_from_the_wheel_and_prints_no_secret(sim: Sim) -> None:
    env = {
        "CASCADE_DEPOSIT_ADDRESS": CASCADE_DEPOSIT,
        "CASCADE_DELEGATE_PRIVATE_KEY": CASCADE_DELEGATE_KEY,
        "CASCADE_BASE_URL": sim.cascade,
        "TRADEAUTH_CA_CERT": sim.ca,
    }
    done = run(["check", "cascade", "--json"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    statuses = {line["name"]: line["status"] for line in report["checks"]}
    assert statuses["sign"] == "pass" and statuses["websocket"] == "pass", report
    assert CASCADE_DELEGATE_KEY[2:] not in done.stdout + done.stderr


def test_request_and_header_exit_codes(sim: Sim) -> None:
    env = {
        "CADENZA_EMAIL": CADENZA_EMAIL,
        "CADENZA_PASSWORD": CADENZA_PASSWORD,
        "CADENZA_BASE_URL": sim.cadenza,
        "TRADEAUTH_CA_CERT": sim.ca,
    }
    done = run(["request", "cadenza", "GET", "/api/v3/user/profile"], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "HTTP 200"
    json.loads(done.stdout)
    assert CADENZA_PASSWORD not in done.stdout + done.stderr
    assert run(["request", "cadenza", "GET", "/no/such/path"], env).returncode == 22
    wrong = run(
        ["request", "cadenza", "GET", "/api/v3/user/profile"],
        {**env, "CADENZA_PASSWORD": "not-it-123"},
    )
    assert wrong.returncode == 15
    assert "not-it-123" not in wrong.stdout + wrong.stderr
    header = run(
        ["header", "exchange"],
        {"EXCHANGE_API_KEY": EXCHANGE_KEY, "EXCHANGE_BASE_URL": sim.exchange},
    )
    assert header.returncode == 0, header.stderr
    assert header.stdout.lower().startswith("x-api-key: ")
