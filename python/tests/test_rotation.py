"""`client.update_credentials(...)`: rotating a secret without a restart. Readers of
`headers()` never see a gap; the next renewal (Exchange: the next read) uses the new
secret; a secret of the wrong kind for the venue is refused."""

from __future__ import annotations

import threading
import time
from typing import Callable

import jwt
import pytest
import requests

import tradeauth
from conftest import (
    CADENZA_PASSWORD,
    EXCHANGE_ADMIN,
    EXCHANGE_KEY,
    PARTNER_ID,
    PARTNER_SECRET,
    Sim,
)

READERS = 8


class Readers:
    """`READERS` threads calling `headers()` in a loop until stopped, recording every
    header value they read and every exception."""

    def __init__(self, read: Callable[[], dict[str, str]]) -> None:
        self.read = read
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.errors: list[BaseException] = []
        self.empty = 0
        self.reads = 0
        self.threads = [threading.Thread(target=self.run) for _ in range(READERS)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                headers = self.read()
            except BaseException as e:  # noqa: BLE001 - every failure is a gap
                with self.lock:
                    self.errors.append(e)
                continue
            with self.lock:
                self.reads += 1
                if not headers:
                    self.empty += 1
                for value in headers.values():
                    self.seen[value] = self.seen.get(value, 0) + 1

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def assert_no_gap(self) -> None:
        assert self.errors == [], self.errors[:3]
        assert self.empty == 0
        assert self.reads > READERS


def provision_exchange_key(sim: Sim, username: str) -> str:
    answer = requests.post(
        f"{sim.exchange}/api/v1/admin/traders",
        json={"username": username},
        headers={"Authorization": f"Bearer {EXCHANGE_ADMIN}"},
        timeout=10,
        verify=sim.ca,
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["api_key"]
    return key


def test_exchange_rotation_has_no_gap_and_serves_the_new_key(sim: Sim) -> None:
    second = provision_exchange_key(sim, "team-rotation")
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    with Readers(client.headers) as readers:
        for i in range(20):
            client.update_credentials(api_key=second if i % 2 == 0 else EXCHANGE_KEY)
            time.sleep(0.01)
        client.update_credentials(api_key=second)
        time.sleep(0.05)
    readers.assert_no_gap()
    assert set(readers.seen) <= {EXCHANGE_KEY, second}
    assert client.headers() == {"x-api-key": second}
    assert client.ws_auth_message().count(second) == 1
    user = client.request("GET", "/api/v1/user")
    assert user.status_code == 200
    assert user.json()["username"] == "team-rotation"
    # Malformed keys and other kinds are refused; the served key stays.
    with pytest.raises(tradeauth.InvalidArgument):
        client.update_credentials(api_key="not-a-key")
    with pytest.raises(TypeError):
        client.update_credentials(password="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.update_credentials(second)  # type: ignore[call-arg]
    assert client.headers() == {"x-api-key": second}
    admin = sim.exchange_client(admin_token=EXCHANGE_ADMIN)
    with pytest.raises(tradeauth.InvalidArgument, match="api_key"):
        admin.update_credentials(api_key=second)


def test_partner_rotation_signs_the_next_token_with_the_new_secret(sim: Sim) -> None:
    client = sim.partner_client()
    first = client.token
    iat = jwt.decode(first, PARTNER_SECRET, algorithms=["HS256"])["iat"]
    # The core skips a forced re-mint in the second the current token was minted (HS256
    # is deterministic), even after a secret change: step into the next second first.
    while time.time() < iat + 1.05:
        time.sleep(0.05)
    new_secret = "rotated-partner-secret-0123456789abcdef"
    with Readers(client.headers) as readers:
        client.update_credentials(secret_key=new_secret)
        # The current token is still served until the next mint.
        assert client.token == first
        client.refresh()
    readers.assert_no_gap()
    minted = client.token
    assert minted != first
    claims = jwt.decode(minted, new_secret, algorithms=["HS256"])
    assert claims["clientId"] == PARTNER_ID
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(minted, PARTNER_SECRET, algorithms=["HS256"])
    # The simulator knows only the demo secret: it refuses the new token as the page
    # says (401 "Invalid Token"), and rotating back recovers.
    refused = client.request("GET", "/portfolio")
    assert refused.status_code == 401
    assert "Invalid Token" in refused.text
    client.update_credentials(secret_key=PARTNER_SECRET)
    time.sleep(1.05)
    client.refresh()
    jwt.decode(client.token, PARTNER_SECRET, algorithms=["HS256"])
    assert client.request("GET", "/portfolio").status_code == 200
    with pytest.raises(TypeError):
        client.update_credentials(api_key=EXCHANGE_KEY)  # type: ignore[call-arg]
    assert new_secret not in repr(client)


def test_cadenza_wrong_password_does_not_break_the_session(sim: Sim) -> None:
    client = sim.cadenza_client(background_refresh=False)
    token = client.access_token
    wrong = "a-wrong-password"
    with Readers(client.headers) as readers:
        client.update_credentials(password=wrong)
        # Renewal uses the refresh token, not the password: still fine.
        client.refresh()
    readers.assert_no_gap()
    assert client.access_token != token
    assert client.request("GET", "/api/v3/user/profile").status_code == 200
    # A fresh login needs the password: the wrong one is refused by the venue...
    client.logout()
    with pytest.raises(tradeauth.Unauthorized) as info:
        client.headers()
    assert wrong not in str(info.value)
    # ...and rotating back recovers.
    client.update_credentials(password=CADENZA_PASSWORD)
    assert client.headers()["Authorization"].startswith("Bearer ")
    assert client.request("GET", "/api/v3/user/profile").status_code == 200
    with pytest.raises(TypeError):
        client.update_credentials(secret_key="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.update_credentials()  # type: ignore[call-arg]


def test_cascade_rotation_has_no_gap(sim: Sim) -> None:
    from conftest import CASCADE_DELEGATE_KEY

    client = sim.cascade_client(background_refresh=False)
    with Readers(client.headers) as readers:
        for _ in range(3):
            client.update_credentials(delegate_private_key=CASCADE_DELEGATE_KEY)
            client.refresh()
    readers.assert_no_gap()
    assert sim.stats("cascade")["logins"] == 4
    with pytest.raises(tradeauth.InvalidArgument):
        client.update_credentials(delegate_private_key="0x1234")
    with pytest.raises(TypeError):
        client.update_credentials(api_key=EXCHANGE_KEY)  # type: ignore[call-arg]
    assert client.request("GET", "/account/orders").status_code == 200
