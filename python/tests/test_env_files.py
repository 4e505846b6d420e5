"""`<NAME>_FILE` for every secret `from_env` reads (the Docker / Kubernetes secrets
convention): the file's value, less one trailing newline, logs in; setting both forms is
`InvalidArgument` naming both variables, never the value."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

import tradeauth
from conftest import (
    CADENZA_EMAIL,
    CADENZA_PASSWORD,
    CASCADE_DELEGATE_KEY,
    CASCADE_DEPOSIT,
    EXCHANGE_KEY,
    PARTNER_ID,
    PARTNER_SECRET,
    Sim,
)

# (secret variable, its value, the other variables, how to build and check the client)
Case = tuple[str, str, Callable[[Sim], dict[str, str]], Callable[[], tradeauth.BaseClient]]

CASES: dict[str, Case] = {
    "cadenza": (
        "CADENZA_PASSWORD",
        CADENZA_PASSWORD,
        lambda sim: {"CADENZA_EMAIL": CADENZA_EMAIL, "CADENZA_BASE_URL": sim.cadenza},
        lambda: tradeauth.CadenzaClient.from_env(),
    ),
    "partner": (
        "PARTNER_SECRET_KEY",
        PARTNER_SECRET,
        lambda sim: {"PARTNER_CLIENT_ID": PARTNER_ID, "PARTNER_BASE_URL": sim.partner},
        lambda: tradeauth.PartnerClient.from_env(),
    ),
    "cascade": (
        "CASCADE_DELEGATE_PRIVATE_KEY",
        CASCADE_DELEGATE_KEY,
        lambda sim: {"CASCADE_DEPOSIT_ADDRESS": CASCADE_DEPOSIT, "CASCADE_BASE_URL": sim.cascade},
        lambda: tradeauth.CascadeClient.from_env(),
    ),
    "exchange": (
        "EXCHANGE_API_KEY",
        EXCHANGE_KEY,
        lambda sim: {"EXCHANGE_BASE_URL": sim.exchange},
        lambda: tradeauth.ExchangeClient.from_env(),
    ),
}

PROBES = {
    "cadenza": "/api/v3/user/profile",
    "partner": "/portfolio",
    "cascade": "/account/orders",
    "exchange": "/api/v1/user",
}

ALL_VARIABLES = [
    "CADENZA_EMAIL",
    "CADENZA_PASSWORD",
    "CADENZA_BASE_URL",
    "PARTNER_CLIENT_ID",
    "PARTNER_SECRET_KEY",
    "PARTNER_BASE_URL",
    "PARTNER_TOKEN_TTL_SECS",
    "CASCADE_DEPOSIT_ADDRESS",
    "CASCADE_DELEGATE_PRIVATE_KEY",
    "CASCADE_KEYSTORE",
    "CASCADE_KEYSTORE_PASSWORD",
    "CASCADE_BASE_URL",
    "EXCHANGE_API_KEY",
    "EXCHANGE_ADMIN_TOKEN",
    "EXCHANGE_BASE_URL",
    "TRADEAUTH_CA_CERT",
    "TRADEAUTH_STORE_KEY",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, sim: Sim) -> pytest.MonkeyPatch:
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.setenv("TRADEAUTH_CA_CERT", sim.ca)
    return monkeypatch


@pytest.mark.parametrize("venue", sorted(CASES))
@pytest.mark.parametrize("newline", ["\n", "\r\n", ""], ids=["lf", "crlf", "none"])
def test_secret_from_a_file(
    sim: Sim, tmp_path: Path, clean_env: pytest.MonkeyPatch, venue: str, newline: str
) -> None:
    name, value, others, build = CASES[venue]
    for key, other in others(sim).items():
        clean_env.setenv(key, other)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes((value + newline).encode())
    clean_env.setenv(f"{name}_FILE", str(secret_file))
    client = build()
    assert client.headers()
    assert client.request("GET", PROBES[venue]).status_code == 200
    assert value not in repr(client)


@pytest.mark.parametrize("venue", sorted(CASES))
def test_both_forms_set_is_refused(
    sim: Sim, tmp_path: Path, clean_env: pytest.MonkeyPatch, venue: str
) -> None:
    name, value, others, build = CASES[venue]
    for key, other in others(sim).items():
        clean_env.setenv(key, other)
    secret_file = tmp_path / "secret"
    secret_file.write_text(value + "\n")
    clean_env.setenv(f"{name}_FILE", str(secret_file))
    clean_env.setenv(name, value)
    with pytest.raises(tradeauth.InvalidArgument) as info:
        build()
    message = str(info.value)
    assert name in message and f"{name}_FILE" in message
    assert value not in message


def test_a_missing_or_empty_file_is_named(
    sim: Sim, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    name, _, others, build = CASES["cadenza"]
    for key, other in others(sim).items():
        clean_env.setenv(key, other)
    clean_env.setenv(f"{name}_FILE", str(tmp_path / "missing"))
    with pytest.raises(tradeauth.InvalidArgument, match=f"{name}_FILE") as info:
        build()
    assert "missing" in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    clean_env.setenv(f"{name}_FILE", str(empty))
    with pytest.raises(tradeauth.InvalidArgument, match="empty"):
        build()


def test_other_variables_from_files(
    sim: Sim, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    # Not only secrets: the email and base URL too (every variable takes _FILE).
    email = tmp_path / "email"
    email.write_text(CADENZA_EMAIL + "\n")
    url = tmp_path / "url"
    url.write_text(sim.cadenza + "\n")
    password = tmp_path / "password"
    password.write_text(CADENZA_PASSWORD + "\n")
    clean_env.setenv("CADENZA_EMAIL_FILE", str(email))
    clean_env.setenv("CADENZA_BASE_URL_FILE", str(url))
    clean_env.setenv("CADENZA_PASSWORD_FILE", str(password))
    client = tradeauth.CadenzaClient.from_env()
    assert client.account == CADENZA_EMAIL
    assert client.headers()["Authorization"].startswith("Bearer ")
