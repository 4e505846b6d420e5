"""Refresh, single flight, 401 retry, GIL release, fork, logging, secrets, pickling."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

from typing import Any

import pytest

import tradeauth
from conftest import (
    CADENZA_EMAIL,
    CADENZA_PASSWORD,
    CASCADE_DELEGATE_KEY,
    EXCHANGE_KEY,
    PARTNER_SECRET,
    Sim,
    wait_for,
)


def test_short_lifetime_refresh_without_waiting_callers(sim: Sim) -> None:
    sim.post("/lifetimes", {"venue": "cadenza", "access_ttl_secs": 3})
    client = sim.cadenza_client()
    seen = set()
    # Read until the venue has seen two background refreshes (bounded, in case it never
    # does): the counter, not a fixed sleep, says when the test has seen enough.
    deadline = time.monotonic() + 15.0
    while sim.stats("cadenza")["refreshes"] < 2 and time.monotonic() < deadline:
        # current_headers() never blocks: None would mean a caller had to wait.
        cached = client.current_headers()
        assert cached is not None, "no valid credential on hand: a caller would have waited"
        seen.add(client.headers()["Authorization"])
        time.sleep(0.005)
    stats = sim.stats("cadenza")
    # Renewed in the background at least twice; no caller ever waited for it.
    assert stats["refreshes"] >= 2 and stats["logins"] == 1
    assert len(seen) >= 2
    assert client.request("GET", "/api/v3/user/profile").ok


def test_401_reauthenticates_and_retries_once(sim: Sim) -> None:
    client = sim.cadenza_client()
    old = client.access_token
    sim.post("/revoke", {"venue": "cadenza", "what": "access_tokens"})
    response = client.request("GET", "/api/v3/market/venue/list")
    assert response.status_code == 200
    assert client.access_token != old
    stats = sim.stats("cadenza")
    assert stats["logins"] + stats["refreshes"] == 2  # exactly one re-authentication
    # Everything revoked (refresh tokens too): still one re-authentication, one retry.
    sim.post("/revoke", {"venue": "cadenza", "what": "all"})
    before = sim.stats("cadenza")
    assert client.request("GET", "/api/v3/user/profile").status_code == 200
    after = sim.stats("cadenza")
    assert after["logins"] + after["refreshes"] == before["logins"] + before["refreshes"] + 1
    assert after["requests"] - before["requests"] == 3  # the rejected one, the login, the retry


def test_fifty_threads_on_a_fresh_client_make_one_login(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=300, count=1)
    client = sim.cadenza_client(login=False)
    assert client.current_headers() is None
    barrier = threading.Barrier(50)
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(client.headers())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(results) == 50 and all(r == results[0] for r in results)
    assert sim.stats("cadenza")["logins"] == 1


def test_gil_is_released_during_a_login(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=1500, count=1)
    ticks = 0
    stop = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.01)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        started = time.monotonic()
        sim.cadenza_client()
        elapsed = time.monotonic() - started
        during = ticks
    finally:
        stop.set()
        thread.join()
    assert elapsed >= 1.4
    # ~150 ticks if the thread ran freely; a held GIL would give ~0.
    assert during >= 50, f"only {during} ticks in {elapsed:.2f} s"


def fork() -> int:
    """`os.fork()`, without the warning Python 3.12+ gives for forking a process that has
    threads: that is the point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_builds_and_authenticates(sim: Sim) -> None:
    parent = sim.cadenza_client()
    assert parent.request("GET", "/api/v3/user/profile").ok
    pid = fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            fresh = sim.cadenza_client()
            ok_fresh = fresh.request("GET", "/api/v3/market/venue/list").status_code == 200
            # The inherited client rebuilds its session on the child's runtime.
            ok_inherited = parent.request("GET", "/api/v3/user/profile").status_code == 200
            code = 0 if ok_fresh and ok_inherited else 2
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The parent's client is untouched by the child.
    assert parent.request("GET", "/api/v3/user/profile").ok


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_is_inside_a_forced_refresh(sim: Sim) -> None:
    # The parent's forced refresh hangs 1.5 s at the venue, so at fork time the session's
    # lock is held by a thread the child does not have, and its refresher and pool
    # belong to the parent's runtime. The child must not wait on any of them.
    sim.post("/lifetimes", {"venue": "cadenza", "access_ttl_secs": 4})
    parent = sim.cadenza_client(auth_timeout=10.0)
    assert parent.request("GET", "/api/v3/user/profile").ok
    sim.fault("cadenza", "/api/v3/auth/token/refresh", "delay", delay_ms=1500)
    outcome: list[BaseException | None] = []

    def forced_refresh() -> None:
        try:
            parent.refresh()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001
            outcome.append(error)

    refreshing = threading.Thread(target=forced_refresh)
    refreshing.start()
    time.sleep(0.3)
    pid = fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            signal.alarm(40)  # a child stuck on a lock held at fork time ends, not hangs
            started = time.monotonic()
            assert parent.current_headers() is not None, "inherited credential not served"
            assert parent.request("GET", "/api/v3/user/profile").status_code == 200
            fresh = sim.cadenza_client()
            assert fresh.request("GET", "/api/v3/market/venue/list").status_code == 200
            code = 4 if time.monotonic() - started > 10 else 5
            # Background renewal in the child: a new token without anyone asking (its
            # own login before the inherited one expires, then a refresh of its own).
            first = parent.headers()["Authorization"]
            if wait_for(lambda: parent.headers()["Authorization"] != first, timeout=15):
                code = 0 if time.monotonic() - started <= 30 else 6
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    refreshing.join()
    assert outcome == [None], f"the parent's forced refresh failed: {outcome}"
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"the child was killed (status {status:#x}; SIGALRM: it hung)"
    assert os.WEXITSTATUS(status) == 0, f"the child failed step {os.WEXITSTATUS(status)}"
    assert parent.request("GET", "/api/v3/user/profile").ok, "the parent keeps working"


def test_events_on_the_tradeauth_logger_without_secrets(
    sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradeauth")
    client = sim.cadenza_client()
    client.refresh()
    with pytest.raises(tradeauth.Unauthorized):
        tradeauth.CadenzaClient(
            "demo@cadenza.test", "wrong-" + CADENZA_PASSWORD, sim.cadenza, ca_cert=sim.ca
        )

    def events() -> list[str]:
        return [getattr(r, "tradeauth_event", "") for r in caplog.records if r.name == "tradeauth"]

    assert wait_for(lambda: {"logged_in", "refreshed", "failed"} <= set(events()))
    secrets = [CADENZA_PASSWORD, client.access_token, client.refresh_token or "?"]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for secret in secrets:
            assert secret not in text
    failed = [r for r in caplog.records if getattr(r, "tradeauth_event", "") == "failed"]
    assert failed[0].levelno == logging.WARNING and "unauthorized" in failed[0].getMessage()


def test_a_forked_child_logs_its_own_events(sim: Sim) -> None:
    """The log forwarder is a thread, which a forked child does not inherit: the child
    starts its own, so its events still reach its `tradeauth` logger."""
    parent = sim.cadenza_client()  # the parent's forwarder runs before the fork
    assert parent.headers()
    pid = os.fork()
    if pid == 0:  # the child: exit codes say what failed
        code = 1
        try:
            signal.alarm(20)
            seen: list[str] = []

            class Collect(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    seen.append(getattr(record, "tradeauth_event", ""))

            logger = logging.getLogger("tradeauth")
            logger.setLevel(logging.INFO)
            logger.addHandler(Collect())
            sim.cadenza_client()
            code = 0 if wait_for(lambda: "logged_in" in seen, timeout=10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"the child was killed (status {status:#x})"
    assert os.WEXITSTATUS(status) == 0, "the child's login never reached its logger"


def test_secrets_absent_from_repr_and_exceptions(sim: Sim) -> None:
    clients = [
        (sim.cadenza_client(), CADENZA_PASSWORD),
        (sim.partner_client(), PARTNER_SECRET),
        (sim.cascade_client(), CASCADE_DELEGATE_KEY),
        (sim.exchange_client(api_key=EXCHANGE_KEY), EXCHANGE_KEY),
    ]
    for client, secret in clients:
        token = next(iter(client.headers().values()))
        for text in (repr(client), str(client)):
            assert secret not in text and token not in text
            assert client.venue in text and client.account in text
    wrong = "hunter2-wrong-password"
    with pytest.raises(tradeauth.Unauthorized) as info:
        tradeauth.CadenzaClient("demo@cadenza.test", wrong, sim.cadenza, ca_cert=sim.ca)
    for text in (str(info.value), repr(info.value)):
        assert wrong not in text
    bad_key = "exch_" + "z" * 32
    with pytest.raises(tradeauth.InvalidArgument) as bad:
        tradeauth.ExchangeClient(api_key=bad_key, base_url=sim.exchange)
    assert bad_key not in str(bad.value) and bad_key not in repr(bad.value)
    bad_wallet = "0x" + "g" * 64
    with pytest.raises(tradeauth.InvalidArgument) as wallet:
        tradeauth.eip191_sign(bad_wallet, "x")
    assert bad_wallet not in str(wallet.value)


def test_pickling_and_copying_are_refused(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)
    with pytest.raises(TypeError):
        copy.copy(client)


def test_headers_hot_path_never_touches_the_venue(sim: Sim) -> None:
    # What makes headers() the hot path is behaviour, not a timing: once a credential is
    # cached it is served from memory, with no request and no renewal. (Its speed is
    # measured in python/bench, not asserted here.)
    client = sim.cadenza_client()
    first = client.headers()
    before = sim.stats("cadenza")
    for _ in range(20_000):
        assert client.headers() == first
    after = sim.stats("cadenza")
    assert after["requests"] == before["requests"]
    assert (after["logins"], after["refreshes"]) == (before["logins"], before["refreshes"])


def test_ctrl_c_interrupts_a_blocking_call(sim: Sim) -> None:
    # count=3: a login by another client still alive from an earlier test cannot use up
    # the only delayed answer; /reset, before the next test, clears what is left.
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=3000, count=3)
    # A process started in the background by a non-interactive shell inherits SIGINT as
    # ignored, and Python then installs no handler (this test failed that way under
    # `nohup ... &`): give it Python's default handler for the test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sim.cadenza_client()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 2.0


def test_processes_share_one_login_through_a_file_store(sim: Sim, tmp_path: Path) -> None:
    store = f"file://{tmp_path}"
    key = "00" * 32
    first = sim.cadenza_client(store=store, store_key=key, store_lease=1.5)
    header = first.headers()
    code = (
        "import sys, tradeauth;"
        "c = tradeauth.CadenzaClient(sys.argv[1], sys.argv[2], sys.argv[3], ca_cert=sys.argv[4],"
        " store=sys.argv[5], store_key=sys.argv[6]);"
        "print(c.headers()['Authorization'] == sys.argv[7])"
    )
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-c", code, CADENZA_EMAIL, CADENZA_PASSWORD, sim.cadenza, sim.ca,
             store, key, header["Authorization"]],
            capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "True", "the child adopted the stored session"
    assert sim.stats("cadenza")["logins"] == 1
    with pytest.raises(tradeauth.InvalidArgument):
        sim.cadenza_client(store=store)  # no key, no TRADEAUTH_STORE_KEY: refused


def _child_login(cadenza: str, ca: str, inherited: tradeauth.CadenzaClient, results: Any) -> None:
    fresh = tradeauth.CadenzaClient(CADENZA_EMAIL, CADENZA_PASSWORD, cadenza, ca_cert=ca)
    ok = fresh.request("GET", "/api/v3/user/profile").ok
    results.put(ok and inherited.request("GET", "/api/v3/market/venue/list").ok)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
def test_multiprocessing_fork_child_authenticates_within_5_s(sim: Sim) -> None:
    import multiprocessing

    parent = sim.cadenza_client()
    assert parent.request("GET", "/api/v3/user/profile").ok
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        child = context.Process(target=_child_login, args=(sim.cadenza, sim.ca, parent, results))
        started = time.monotonic()
        child.start()
    child.join(timeout=5)
    assert child.exitcode == 0, "the child did not finish within 5 s"
    assert time.monotonic() - started < 5
    assert results.get(timeout=1) is True
    assert parent.request("GET", "/api/v3/user/profile").ok, "the parent keeps working"
