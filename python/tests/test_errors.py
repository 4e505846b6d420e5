"""Every exception class is reachable, derives from AuthError(Exception), and says why."""

from __future__ import annotations

from typing import Callable

import pytest

import tradeauth
from tradeauth import _native
from conftest import CADENZA_PASSWORD, EXCHANGE_KEY, Sim

ALL = [
    tradeauth.InvalidArgument,
    tradeauth.InsecureUrl,
    tradeauth.TransportError,
    tradeauth.Timeout,
    tradeauth.Unauthorized,
    tradeauth.ApiError,
    tradeauth.ProtocolError,
    tradeauth.SigningError,
    tradeauth.ChallengeExpired,
    tradeauth.PanicError,
]


def test_hierarchy() -> None:
    assert issubclass(tradeauth.AuthError, Exception)
    for cls in ALL:
        assert issubclass(cls, tradeauth.AuthError) and cls.__module__ == "tradeauth"


def test_invalid_argument(sim: Sim) -> None:
    with pytest.raises(tradeauth.InvalidArgument) as info:
        tradeauth.ExchangeClient(api_key="not-a-key", base_url=sim.exchange)
    assert info.value.kind == "invalid_argument" and info.value.code == 1
    with pytest.raises(tradeauth.InvalidArgument):
        tradeauth.ExchangeClient(api_key=EXCHANGE_KEY, admin_token="x", base_url=sim.exchange)
    with pytest.raises(tradeauth.InvalidArgument):
        sim.cadenza_client(timeout=-1)
    with pytest.raises(tradeauth.InvalidArgument):
        sim.exchange_client(api_key=EXCHANGE_KEY).request("TRACE", "/")


def test_insecure_url() -> None:
    with pytest.raises(tradeauth.InsecureUrl) as info:
        tradeauth.CadenzaClient("a@b.c", "pw", "http://127.0.0.1:9")
    assert info.value.kind == "insecure_url"


def test_transport_error() -> None:
    with pytest.raises(tradeauth.TransportError) as info:
        tradeauth.CadenzaClient("a@b.c", "pw", "https://127.0.0.1:9", max_retries=0)
    assert info.value.retryable


def test_timeout(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "delay", delay_ms=2000, count=1)
    with pytest.raises(tradeauth.Timeout):
        sim.cadenza_client(timeout=0.3, max_retries=0)


def test_unauthorized(sim: Sim) -> None:
    with pytest.raises(tradeauth.Unauthorized) as info:
        tradeauth.CadenzaClient("demo@cadenza.test", "nope", sim.cadenza, ca_cert=sim.ca)
    assert info.value.status == 401 and not info.value.retryable
    assert "INVALID_CREDENTIALS" in str(info.value)


def test_api_error(sim: Sim) -> None:
    sim.fault(
        "cadenza", "/api/v3/auth/login", "status", status=503, count=1, retry_after_secs=1
    )
    with pytest.raises(tradeauth.ApiError) as info:
        sim.cadenza_client(max_retries=0)
    assert info.value.status == 503 and info.value.retryable
    assert info.value.retry_after == pytest.approx(1.0)


def test_protocol_error(sim: Sim) -> None:
    sim.fault("cadenza", "/api/v3/auth/login", "malformed", count=1)
    with pytest.raises(tradeauth.ProtocolError):
        sim.cadenza_client(max_retries=0)


def test_challenge_expired(sim: Sim) -> None:
    # The nonce lives 1 s and the answer is held up 1.5 s: the venue says "nonce expired".
    sim.post("/lifetimes", {"venue": "cascade", "nonce_ttl_secs": 1})
    # The fault path matches both GET and POST /auth: the challenge is fetched late too
    # (so it is fresh), then the answer is posted 1.5 s after it was issued.
    sim.fault("cascade", "/auth", "delay", delay_ms=1500, count=2)
    with pytest.raises(tradeauth.ChallengeExpired) as info:
        sim.cascade_client(max_retries=0)
    assert info.value.retryable


def test_signing_error_through_the_one_conversion() -> None:
    # No venue scenario makes a valid key fail to sign; the hook goes through the same
    # error conversion every call uses.
    with pytest.raises(tradeauth.SigningError) as info:
        _native._raise_kind("signing", "the key could not sign")
    assert info.value.kind == "signing" and info.value.code == 8
    for kind, cls in [("api_error", tradeauth.ApiError), ("timeout", tradeauth.Timeout)]:
        with pytest.raises(cls):
            _native._raise_kind(kind, "x")


def test_panic_is_an_auth_error() -> None:
    with pytest.raises(tradeauth.PanicError) as info:
        _native._panic("boom")
    assert isinstance(info.value, Exception) and info.value.kind == "panic"
    # Like C: the function is named, the panic payload (unvetted text) never shown.
    assert str(info.value) == "internal error in _panic (please report this bug)"


def test_panic_payload_is_never_shown() -> None:
    planted = "sekret-in-a-panic-0123456789"
    with pytest.raises(tradeauth.PanicError) as info:
        _native._panic(f"bearer {planted}")
    assert planted not in str(info.value) and planted not in repr(info.value)
    assert "internal error in _panic" in str(info.value)


def test_messages_never_echo_the_password(sim: Sim) -> None:
    with pytest.raises(tradeauth.AuthError) as info:
        tradeauth.CadenzaClient("demo@cadenza.test", CADENZA_PASSWORD + "x", sim.cadenza, ca_cert=sim.ca)
    assert CADENZA_PASSWORD not in str(info.value)


def test_wrong_types_and_values_are_type_errors_or_invalid_argument(sim: Sim) -> None:
    type_errors: list[Callable[[], object]] = [
        lambda: tradeauth.CadenzaClient(123, "pw", login=False),  # type: ignore[arg-type]
        lambda: tradeauth.generate_token(None, "k"),  # type: ignore[arg-type]
        lambda: tradeauth.generate_token("c", "k", ttl=1.5),  # type: ignore[arg-type]
        lambda: tradeauth.generate_token("c", "k", ttl=True),
        lambda: tradeauth.eip191_sign(b"0x00", "m"),  # type: ignore[arg-type]
        lambda: tradeauth.ExchangeClient(api_key=b"exch_"),  # type: ignore[arg-type]
        lambda: sim.exchange_client(api_key=EXCHANGE_KEY).ws_auth_message(id="1"),  # type: ignore[arg-type]
    ]
    for call in type_errors:
        with pytest.raises(TypeError):
            call()
    invalid: list[Callable[[], object]] = [
        lambda: tradeauth.generate_token("c", "k", ttl=-1),
        lambda: tradeauth.generate_token("c", "k", ttl=2**70),
        lambda: tradeauth.generate_token("c", "k", ttl=0),
        lambda: tradeauth.eip191_sign("0xzz", "m"),
        lambda: tradeauth.eip191_sign("0x" + "11" * 32, 5),  # type: ignore[arg-type]
        lambda: tradeauth.CadenzaClient("a\0b@c", "pw", login=False),
        lambda: tradeauth.CadenzaClient("a@b.c", "pw", timeout=float("nan"), login=False),
        lambda: tradeauth.CadenzaClient("a@b.c", "pw", max_retries=-1, login=False),
        lambda: tradeauth.CascadeClient("0x12", "0x" + "11" * 32, login=False),
        lambda: tradeauth.CadenzaClient("a@b.c", "pw", store="ftp://x", store_plaintext=True, login=False),
        lambda: tradeauth.CadenzaClient("a@b.c", "pw", store="memory:", store_lease=0, login=False),
        lambda: tradeauth.CadenzaClient("a@b.c", "pw", store="memory:", store_lease=-1.0, login=False),
        lambda: tradeauth.CascadeClient("0x" + "12" * 20, "0x" + "11" * 32, store_lease=float("nan"), login=False),
        lambda: sim.exchange_client(api_key=EXCHANGE_KEY).ws_auth_message(id=-5),
    ]
    for call in invalid:
        with pytest.raises(tradeauth.InvalidArgument):
            call()
