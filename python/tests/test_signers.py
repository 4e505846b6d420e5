"""External signers for Cascade (`signer=` + `delegate_address=`): a KMS / HSM / wallet
reached from Python. Every answer shape (DER, high-s DER, 64 and 65 bytes, sync or
async) logs in with a signature eth_account recovers to the delegate; every way a signer
can fail is `SigningError`, promptly, with nothing posted to the venue."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import warnings
from typing import Any, Callable

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_account import Account
from eth_account.messages import encode_defunct

import tradeauth
from conftest import (
    CASCADE_DELEGATE_ADDRESS,
    CASCADE_DELEGATE_KEY,
    CASCADE_DEPOSIT,
    Sim,
)

# Hardhat/Anvil development account #2: a public test key, never used for anything real.
STRANGER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
KEY_BYTES = bytes.fromhex(CASCADE_DELEGATE_KEY[2:])
# secp256k1's group order, and half of it (EIP-2: only s <= n/2 is accepted).
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_ORDER = ORDER // 2

Signer = Callable[[bytes], Any]


def signer_client(sim: Sim, signer: Signer, **kwargs: Any) -> tradeauth.CascadeClient:
    return tradeauth.CascadeClient(
        CASCADE_DEPOSIT,
        base_url=sim.cascade,
        signer=signer,
        delegate_address=CASCADE_DELEGATE_ADDRESS,
        ca_cert=sim.ca,
        background_refresh=False,
        **kwargs,
    )


def assert_signed_by_delegate(sim: Sim, count: int | None) -> None:
    """Every signature the venue accepted recovers, by eth_account, to the delegate, and
    has a low s (`count` of them, or at least one if None)."""
    signed = sim.stats("cascade")["signed"]
    if count is None:
        assert signed
    else:
        assert len(signed) == count
    for entry in signed:
        recovered = Account.recover_message(
            encode_defunct(text=entry["payload"]), signature=entry["signature"]
        )
        assert recovered == CASCADE_DELEGATE_ADDRESS
        s = int(entry["signature"][2 + 64 : 2 + 128], 16)
        assert s <= HALF_ORDER, "a high s was posted"


def coincurve_der(digest: bytes) -> bytes:
    assert isinstance(digest, bytes) and len(digest) == 32
    signature: bytes = coincurve.PrivateKey(KEY_BYTES).sign(digest, hasher=None)
    return signature


def coincurve_64(digest: bytes) -> bytes:
    signature: bytes = coincurve.PrivateKey(KEY_BYTES).sign_recoverable(digest, hasher=None)
    return signature[:64]


def coincurve_65(digest: bytes) -> bytes:
    signature: bytes = coincurve.PrivateKey(KEY_BYTES).sign_recoverable(digest, hasher=None)
    return signature


@pytest.mark.parametrize(
    "signer", [coincurve_der, coincurve_64, coincurve_65], ids=["der", "raw64", "raw65"]
)
def test_each_answer_shape_logs_in(sim: Sim, signer: Signer) -> None:
    client = signer_client(sim, signer)
    assert client.headers()["Authorization"].startswith("Bearer ")
    assert client.request("GET", "/account/orders").status_code == 200
    client.refresh()
    assert client.request("GET", "/account/orders").status_code == 200
    assert sim.stats("cascade")["logins"] == 2
    assert_signed_by_delegate(sim, 2)


def test_cryptography_signer_with_random_k_and_high_s(sim: Sim) -> None:
    key = ec.derive_private_key(int(CASCADE_DELEGATE_KEY, 16), ec.SECP256K1())
    high_s_seen = 0
    calls = 0

    def sign(digest: bytes) -> bytes:
        nonlocal high_s_seen, calls
        der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        calls += 1
        _, s = utils.decode_dss_signature(der)
        if s > HALF_ORDER:
            high_s_seen += 1
        return der

    client = signer_client(sim, sign)
    client.headers()
    # At least 6 more logins, and on until a high s has been returned (half of them are).
    logins = 1
    while logins < 7 or (high_s_seen == 0 and logins < 40):
        client.refresh()
        logins += 1
    assert high_s_seen > 0, "the signer never returned a high s"
    assert calls == logins
    assert sim.stats("cascade")["logins"] == logins
    assert_signed_by_delegate(sim, min(logins, 32))


def test_bytearray_and_memoryview_answers(sim: Sim) -> None:
    def as_bytearray(digest: bytes) -> Any:
        return bytearray(coincurve_der(digest))

    def as_memoryview(digest: bytes) -> Any:
        return memoryview(coincurve_65(digest))

    for signer in (as_bytearray, as_memoryview):
        signer_client(sim, signer).headers()
    assert_signed_by_delegate(sim, 2)


def test_a_signature_by_another_key_is_refused_before_posting(sim: Sim) -> None:
    stranger = coincurve.PrivateKey(bytes.fromhex(STRANGER_KEY[2:]))

    def sign(digest: bytes) -> bytes:
        signature: bytes = stranger.sign(digest, hasher=None)
        return signature

    client = signer_client(sim, sign, login=False)
    with pytest.raises(tradeauth.SigningError) as info:
        client.headers()
    assert CASCADE_DELEGATE_ADDRESS in str(info.value)
    stats = sim.stats("cascade")
    assert stats["logins"] == 0
    assert stats["rejections"] == {}, "nothing may be posted"
    assert stats["signed"] == []
    assert_no_secret(str(info.value), repr(client))


def test_a_raising_signer_is_a_signing_error_with_its_cause(sim: Sim) -> None:
    calls = 0

    def sign(digest: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("HSM slot 3 is offline")
        return coincurve_der(digest)

    with pytest.raises(tradeauth.SigningError) as info:
        signer_client(sim, sign)
    message = str(info.value)
    assert "RuntimeError: HSM slot 3 is offline" in message
    assert "Traceback" not in message
    assert info.value.kind == "signing"
    assert sim.stats("cascade")["logins"] == 0
    # Asked again next time.
    client = signer_client(sim, sign)
    assert client.headers()["Authorization"].startswith("Bearer ")
    assert calls == 2
    assert_no_secret(message, repr(client))


def test_a_non_bytes_answer_is_named(sim: Sim) -> None:
    def sign(digest: bytes) -> Any:
        return digest.hex()

    with pytest.raises(tradeauth.SigningError, match="returned str, expected bytes"):
        signer_client(sim, sign)
    for garbage in (b"", b"\x30\x02\x01", bytes(65)):

        def answer(digest: bytes, garbage: bytes = garbage) -> bytes:
            return garbage

        with pytest.raises(tradeauth.SigningError):
            signer_client(sim, answer)
    assert sim.stats("cascade")["logins"] == 0


def test_a_signer_past_its_timeout_fails_promptly(sim: Sim) -> None:
    released = threading.Event()

    def sign(digest: bytes) -> bytes:
        time.sleep(2.0)
        released.set()
        return coincurve_der(digest)

    client = signer_client(sim, sign, signer_timeout=0.3, login=False)
    started = time.monotonic()
    with pytest.raises(tradeauth.SigningError, match="did not answer within"):
        client.headers()
    elapsed = time.monotonic() - started
    # Well before the 2 s sleep ends (the event below is the proof); slack for a loaded CI.
    assert elapsed < 1.9, elapsed
    assert not released.is_set(), "the call waited for the signer's thread"
    assert sim.stats("cascade")["logins"] == 0
    # The signer's thread finishes on its own later; its answer is dropped.
    assert released.wait(5.0)


def test_no_gil_is_held_while_the_signer_waits(sim: Sim) -> None:
    # The signer waits for another Python thread: were the GIL held by the caller (or by
    # the library while it waits), that thread could never run.
    go = threading.Event()
    ticks = 0

    def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            time.sleep(0.01)
        go.set()

    def sign(digest: bytes) -> bytes:
        threading.Thread(target=ticker).start()
        assert go.wait(5.0)
        return coincurve_der(digest)

    client = signer_client(sim, sign)
    assert ticks == 10
    assert client.headers()["Authorization"].startswith("Bearer ")


def test_an_async_signer_from_sync_and_async_callers(sim: Sim) -> None:
    loops: list[int] = []

    async def sign(digest: bytes) -> bytes:
        await asyncio.sleep(0)
        loops.append(id(asyncio.get_running_loop()))
        return coincurve_der(digest)

    # Sync caller.
    client = signer_client(sim, sign)
    assert client.headers()["Authorization"].startswith("Bearer ")

    async def main() -> None:
        caller_loop = id(asyncio.get_running_loop())
        # The async API, a fresh login.
        fresh = signer_client(sim, sign, login=False)
        headers = await fresh.aheaders()
        assert headers["Authorization"].startswith("Bearer ")
        response = await fresh.arequest("GET", "/account/orders")
        assert response.status_code == 200
        await fresh.arefresh()
        # The blocking API from inside a running loop: the signer's coroutine runs on a
        # loop of its own on a worker thread, never this one.
        other = signer_client(sim, sign, login=False)
        assert other.headers()["Authorization"].startswith("Bearer ")
        assert caller_loop not in loops[1:]

    asyncio.run(main())
    assert len(loops) == 4
    assert sim.stats("cascade")["logins"] == 4
    assert_signed_by_delegate(sim, 4)


def test_an_async_signer_that_raises(sim: Sim) -> None:
    async def sign(digest: bytes) -> bytes:
        await asyncio.sleep(0)
        raise ValueError("KMS key is disabled")

    with pytest.raises(tradeauth.SigningError, match="ValueError: KMS key is disabled"):
        signer_client(sim, sign)


def test_exactly_one_key_source(sim: Sim) -> None:
    errors: list[str] = []
    with pytest.raises(tradeauth.InvalidArgument, match="exactly one") as info:
        tradeauth.CascadeClient(CASCADE_DEPOSIT, base_url=sim.cascade, ca_cert=sim.ca)
    errors.append(str(info.value))
    with pytest.raises(tradeauth.InvalidArgument, match="exactly one") as info:
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT,
            CASCADE_DELEGATE_KEY,
            sim.cascade,
            signer=coincurve_der,
            delegate_address=CASCADE_DELEGATE_ADDRESS,
            ca_cert=sim.ca,
        )
    errors.append(str(info.value))
    with pytest.raises(tradeauth.InvalidArgument, match="delegate_address") as info:
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT, base_url=sim.cascade, signer=coincurve_der, ca_cert=sim.ca
        )
    errors.append(str(info.value))
    with pytest.raises(tradeauth.InvalidArgument, match="delegate address") as info:
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT,
            base_url=sim.cascade,
            signer=coincurve_der,
            delegate_address="0x1234",
            ca_cert=sim.ca,
        )
    errors.append(str(info.value))
    with pytest.raises(tradeauth.InvalidArgument, match="go with signer"):
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT,
            CASCADE_DELEGATE_KEY,
            sim.cascade,
            delegate_address=CASCADE_DELEGATE_ADDRESS,
            ca_cert=sim.ca,
        )
    with pytest.raises(tradeauth.InvalidArgument, match="signer_timeout"):
        signer_client(sim, coincurve_der, signer_timeout=-1.0)
    with pytest.raises(TypeError, match="callable"):
        signer_client(sim, b"not callable")  # type: ignore[arg-type]
    assert_no_secret(*errors)
    # The existing positional forms still work.
    assert tradeauth.CascadeClient(
        CASCADE_DEPOSIT, CASCADE_DELEGATE_KEY, sim.cascade, ca_cert=sim.ca
    ).headers()
    assert sim.stats("cascade")["logins"] == 1


def test_rotating_to_a_signer_and_back(sim: Sim) -> None:
    client = sim.cascade_client(background_refresh=False)
    client.headers()
    client.update_credentials(signer=coincurve_der, delegate_address=CASCADE_DELEGATE_ADDRESS)
    client.refresh()
    client.update_credentials(delegate_private_key=CASCADE_DELEGATE_KEY)
    client.refresh()
    assert sim.stats("cascade")["logins"] == 3
    assert_signed_by_delegate(sim, 3)
    with pytest.raises(tradeauth.InvalidArgument, match="exactly one"):
        client.update_credentials()
    with pytest.raises(TypeError):
        client.update_credentials(password="x")  # type: ignore[call-arg]
    assert_no_secret(repr(client))


def fork() -> int:
    """`os.fork()` without the warning Python 3.12+ gives for a process with threads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_the_signer_is_running(sim: Sim) -> None:
    # At fork time a blocking-pool thread is inside the Python signer (sleeping, GIL
    # released); the child has no such thread and must sign with its own.
    entered = threading.Event()

    def slow(digest: bytes) -> bytes:
        if threading.current_thread() is not threading.main_thread():
            entered.set()
        time.sleep(0.5)
        return coincurve_der(digest)

    client = signer_client(sim, slow)
    entered.clear()
    refreshing = threading.Thread(target=client.refresh)
    refreshing.start()
    assert entered.wait(5.0)
    pid = fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            signal.alarm(30)
            client.refresh()
            ok = client.request("GET", "/account/orders").status_code == 200
            fresh = signer_client(sim, slow)
            code = 0 if ok and fresh.headers() else 2
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    refreshing.join(10)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert client.request("GET", "/account/orders").status_code == 200
    # The parent's login and refresh, the child's refresh and its fresh client's login.
    assert sim.stats("cascade")["logins"] >= 4
    assert_signed_by_delegate(sim, None)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert CASCADE_DELEGATE_KEY[2:].lower() not in text.lower()
        assert STRANGER_KEY[2:].lower() not in text.lower()
