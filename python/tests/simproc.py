"""Starting and stopping the standalone simulator binary, for both pytest suites.

python/tests/conftest.py (the wheel's tests) and sim/tests/python/conftest.py (the
pages' own code against the simulator) each start one simulator per run through this.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sim_binary() -> str:
    explicit = os.environ.get("TRADEAUTH_SIM_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "tradeauth-sim")


def start_sim(ca_out: Path, stderr: int | None) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Starts tradeauth-sim (its CA written to `ca_out`) and reads the URLs it prints
    first; the process is stopped again if that fails."""
    proc = subprocess.Popen(
        [sim_binary(), "--ca-out", str(ca_out)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "tradeauth-sim printed nothing; is it built? (cargo build -p tradeauth-sim)"
        urls: dict[str, str] = json.loads(line)
        return proc, urls
    except BaseException:
        stop_sim(proc)
        raise


def stop_sim(proc: subprocess.Popen[str]) -> int:
    """Stops the simulator with SIGTERM and gives its exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=10)
