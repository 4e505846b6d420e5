"""The keyword options: one set, parsed once in the native module, for every client
constructor; each option the stubs name reaches core, and nothing else is accepted."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import tradeauth
from conftest import Sim

STUB = Path(tradeauth.__file__).with_name("_native.pyi")


def stub_keywords(typed_dict: str) -> list[str]:
    """The fields of one of the stub's options TypedDicts (its own, not inherited)."""
    text = STUB.read_text()
    body = text.split(f"class {typed_dict}(", 1)[1].split("\nclass ", 1)[0]
    return re.findall(r"^    ([a-z_]+): Optional\[", body, re.M)


def test_every_stub_keyword_is_accepted_and_an_unknown_one_is_named() -> None:
    keywords = stub_keywords("_Options") + stub_keywords("_StoreOptions")
    assert "connect_timeout" in keywords and "store_prefix" in keywords
    # None means the default for every option: all of them at once are accepted.
    defaults: dict[str, Any] = {k: None for k in keywords}
    client = tradeauth.CadenzaClient("you@example.com", "password", login=False, **defaults)
    assert client.venue == "cadenza"
    with pytest.raises(TypeError, match="unexpected keyword argument 'conect_timeout'"):
        tradeauth.CadenzaClient(
            "you@example.com",
            "password",
            login=False,
            conect_timeout=1.0,  # type: ignore[call-arg]
        )
    # A value of the wrong type names the keyword.
    with pytest.raises(TypeError, match="refresh_window must be a number of seconds"):
        tradeauth.ExchangeClient(refresh_window="soon")  # type: ignore[arg-type]


def test_values_are_checked_before_anything_is_sent() -> None:
    bad: list[dict[str, Any]] = [
        {"connect_timeout": 0},
        {"timeout": -1.0},
        {"retry_base_delay": 2.0, "retry_max_delay": 1.0},
        {"store_lease": 0},
        {"store_timeout": float("nan")},
        {"store_ca_cert": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        {"max_lifetime": 0.5},
    ]
    for options in bad:
        with pytest.raises(tradeauth.InvalidArgument):
            tradeauth.CadenzaClient(
                "you@example.com",
                "password",
                login=False,
                background_refresh=False,
                **options,
            )


def test_a_store_for_a_venue_with_nothing_to_share_is_refused(sim: Sim) -> None:
    with pytest.raises(tradeauth.InvalidArgument, match="nothing to share"):
        sim.exchange_client(store="memory:", store_plaintext=True)
    with pytest.raises(tradeauth.InvalidArgument, match="nothing to share"):
        sim.partner_client(store="memory:", store_plaintext=True)


def test_connect_timeout_bounds_a_handshake_that_never_completes(sim: Sim) -> None:
    # A listener that never accepts: the TCP connect succeeds (the backlog) and the TLS
    # handshake never gets an answer, so only connect_timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = tradeauth.CadenzaClient(
            "you@example.com",
            "password",
            f"https://127.0.0.1:{port}/",
            login=False,
            ca_cert=sim.ca,
            background_refresh=False,
            connect_timeout=0.3,
            timeout=30,
            auth_timeout=30,
            max_retries=0,
        )
        started = time.monotonic()
        with pytest.raises((tradeauth.Timeout, tradeauth.TransportError)):
            client.headers()
        # The 5 s default (or the 30 s request timeout) would still be waiting.
        assert time.monotonic() - started < 3.0


def test_max_lifetime_clamps_what_the_venue_states(sim: Sim) -> None:
    client = sim.cadenza_client(max_lifetime=120, background_refresh=False)
    expires_at = client.expires_at
    assert expires_at is not None
    # The simulator issues one-hour tokens; believed for two minutes at most.
    assert expires_at - time.time() * 1000 <= 121_000
