"""Cascade's delegate key from a Web3 Secret Storage v3 keystore (`keystore=` +
`keystore_password=` / `keystore_password_file=`, or `CASCADE_KEYSTORE` in from_env), as
eth_account writes it with scrypt or pbkdf2. Errors name the file, never the password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from eth_account import Account

import tradeauth
from conftest import CASCADE_DELEGATE_KEY, CASCADE_DEPOSIT, Sim

PASSWORD = "correct horse battery staple"


Kdf = Literal["scrypt", "pbkdf2"]


def write_keystore(directory: Path, kdf: Kdf, name: str | None = None) -> Path:
    keystore: dict[str, Any] = Account.encrypt(
        bytes.fromhex(CASCADE_DELEGATE_KEY[2:]), PASSWORD, kdf=kdf, iterations=2**12
    )
    path = directory / (name or f"{kdf}.json")
    path.write_text(json.dumps(keystore))
    return path


def keystore_client(sim: Sim, path: Any, **kwargs: Any) -> tradeauth.CascadeClient:
    return tradeauth.CascadeClient(
        CASCADE_DEPOSIT, base_url=sim.cascade, keystore=path, ca_cert=sim.ca, **kwargs
    )


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert CASCADE_DELEGATE_KEY[2:] not in text


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_keystore_logs_in(sim: Sim, tmp_path: Path, kdf: Kdf) -> None:
    path = write_keystore(tmp_path, kdf)
    client = keystore_client(sim, path, keystore_password=PASSWORD)
    assert client.headers()["Authorization"].startswith("Bearer ")
    assert client.request("GET", "/account/orders").status_code == 200
    # A str path and a bytes password work the same.
    other = keystore_client(sim, str(path), keystore_password=PASSWORD.encode())
    assert other.headers()["Authorization"].startswith("Bearer ")
    assert sim.stats("cascade")["logins"] == 2
    assert_no_password(repr(client), repr(other))


def test_keystore_password_file(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "scrypt")
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    client = keystore_client(sim, path, keystore_password_file=password_file)
    assert client.headers()["Authorization"].startswith("Bearer ")
    with pytest.raises(tradeauth.InvalidArgument, match="not both"):
        keystore_client(
            sim, path, keystore_password=PASSWORD, keystore_password_file=password_file
        )
    with pytest.raises(tradeauth.InvalidArgument, match="keystore_password_file"):
        keystore_client(sim, path, keystore_password_file=tmp_path / "missing.txt")


def test_wrong_password_names_the_file_not_the_password(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "scrypt")
    wrong = "not the password at all"
    with pytest.raises(tradeauth.InvalidArgument) as info:
        keystore_client(sim, path, keystore_password=wrong)
    message = str(info.value)
    assert str(path) in message
    assert "MAC" in message
    assert wrong not in message
    assert_no_password(message)
    assert sim.stats("cascade")["challenges"] == 0


def test_corrupted_mac(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "pbkdf2")
    keystore = json.loads(path.read_text())
    mac = keystore["crypto"]["mac"]
    keystore["crypto"]["mac"] = ("0" if mac[0] != "0" else "1") + mac[1:]
    path.write_text(json.dumps(keystore))
    with pytest.raises(tradeauth.InvalidArgument, match="MAC") as info:
        keystore_client(sim, path, keystore_password=PASSWORD)
    assert str(path) in str(info.value)
    assert_no_password(str(info.value))


def test_unsupported_kdf(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "scrypt")
    keystore = json.loads(path.read_text())
    keystore["crypto"]["kdf"] = "argon2id"
    path.write_text(json.dumps(keystore))
    with pytest.raises(tradeauth.InvalidArgument, match="argon2id") as info:
        keystore_client(sim, path, keystore_password=PASSWORD)
    message = str(info.value)
    assert str(path) in message and "KDF" in message
    assert_no_password(message)


def test_keystore_argument_errors(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "pbkdf2")
    with pytest.raises(tradeauth.InvalidArgument, match="keystore_password"):
        keystore_client(sim, path)
    with pytest.raises(tradeauth.InvalidArgument, match="exactly one"):
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT,
            CASCADE_DELEGATE_KEY,
            sim.cascade,
            keystore=path,
            keystore_password=PASSWORD,
            ca_cert=sim.ca,
        )
    with pytest.raises(tradeauth.InvalidArgument, match="go with keystore"):
        tradeauth.CascadeClient(
            CASCADE_DEPOSIT,
            CASCADE_DELEGATE_KEY,
            sim.cascade,
            keystore_password=PASSWORD,
            ca_cert=sim.ca,
        )
    with pytest.raises(tradeauth.InvalidArgument, match="cannot open"):
        keystore_client(sim, tmp_path / "missing.json", keystore_password=PASSWORD)
    with pytest.raises(tradeauth.InvalidArgument, match="str or bytes"):
        keystore_client(sim, path, keystore_password=1234)


def test_keystore_from_env(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_keystore(tmp_path, "scrypt")
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    for name in ("CASCADE_DELEGATE_PRIVATE_KEY", "CASCADE_KEYSTORE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.delenv("CASCADE_KEYSTORE_FILE", raising=False)
    monkeypatch.setenv("CASCADE_DEPOSIT_ADDRESS", CASCADE_DEPOSIT)
    monkeypatch.setenv("CASCADE_KEYSTORE", str(path))
    monkeypatch.setenv("CASCADE_KEYSTORE_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("CASCADE_BASE_URL", sim.cascade)
    monkeypatch.setenv("TRADEAUTH_CA_CERT", sim.ca)
    client = tradeauth.CascadeClient.from_env()
    assert client.headers()["Authorization"].startswith("Bearer ")
    assert sim.stats("cascade")["logins"] == 1
    # Both key sources set.
    monkeypatch.setenv("CASCADE_DELEGATE_PRIVATE_KEY", CASCADE_DELEGATE_KEY)
    with pytest.raises(tradeauth.InvalidArgument, match="exactly one") as info:
        tradeauth.CascadeClient.from_env()
    assert_no_password(str(info.value))
    monkeypatch.delenv("CASCADE_DELEGATE_PRIVATE_KEY")
    # A wrong password from the file.
    password_file.write_text("wrong\n")
    with pytest.raises(tradeauth.InvalidArgument, match="MAC") as info:
        tradeauth.CascadeClient.from_env()
    assert str(path) in str(info.value)


def test_rotating_to_a_keystore(sim: Sim, tmp_path: Path) -> None:
    path = write_keystore(tmp_path, "pbkdf2")
    client = sim.cascade_client(background_refresh=False)
    client.headers()
    with pytest.raises(tradeauth.InvalidArgument, match="MAC"):
        client.update_credentials(keystore=path, keystore_password="wrong")
    client.update_credentials(keystore=path, keystore_password=PASSWORD)
    client.refresh()
    assert client.request("GET", "/account/orders").status_code == 200
    assert sim.stats("cascade")["logins"] == 2
