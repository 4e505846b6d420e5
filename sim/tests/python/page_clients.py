"""Clients written the way the four venue pages' own Python code works.

These are the simulator's fidelity check: if a client built from nothing but a page's
instructions (plain `requests`, PyJWT, eth_account) authenticates against the simulator
and gets the error texts the page names, the simulator follows the page. They are our
own code, written to behave like the pages' snippets, not copies of them; the only
configuration they take is a base URL, with CA trust coming from REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import jwt
import requests
from eth_account import Account
from eth_account.messages import encode_defunct

# The page refreshes when the token expires within the next five minutes.
CADENZA_REFRESH_WINDOW_MS = 5 * 60 * 1000
HTTP_TIMEOUT = 10


class PageCadenzaClient:
    """Cadenza login + refresh-before-expiry, the behaviour of the page's CadenzaClient."""

    def __init__(self, base_url: str, email: str, password: str,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.base_url = base_url.rstrip("/")
        self.log = log
        self.access_token: Optional[str] = None
        self.refresh_token: Optional[str] = None
        self.expires_at = 0
        self.logins = 0
        self.refreshes = 0
        self._login(email, password)

    def _take(self, response: requests.Response) -> None:
        # The page's advice: check the status code and the success flag before using data.
        body = response.json()
        if response.status_code != 200 or not body.get("success"):
            raise CadenzaError(response.status_code, body)
        data = body["data"]
        self.access_token = data["accessToken"]
        self.refresh_token = data["refreshToken"]
        self.expires_at = data["expiresAt"]

    def _login(self, email: str, password: str) -> None:
        response = requests.post(f"{self.base_url}/api/v3/auth/login",
                                 json={"email": email, "password": password},
                                 timeout=HTTP_TIMEOUT)
        self._take(response)
        self.logins += 1
        self.log(f"cadenza: logged in, access token expires at {self.expires_at} (Unix ms)")

    def refresh(self) -> None:
        response = requests.post(f"{self.base_url}/api/v3/auth/token/refresh",
                                 json={"refreshToken": self.refresh_token},
                                 timeout=HTTP_TIMEOUT)
        self._take(response)
        self.refreshes += 1
        self.log(f"cadenza: refreshed, new expiry {self.expires_at}, refresh token rotated")

    def _ensure_valid_token(self) -> None:
        if time.time() * 1000 > self.expires_at - CADENZA_REFRESH_WINDOW_MS:
            self.refresh()

    def request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        self._ensure_valid_token()
        headers = {"Authorization": f"Bearer {self.access_token}"}
        return requests.request(method, f"{self.base_url}{endpoint}", headers=headers,
                                timeout=HTTP_TIMEOUT, **kwargs)


class CadenzaError(Exception):
    """A Cadenza answer that failed the page's status + success check."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body.get('error') if isinstance(body, dict) else body}")
        self.status = status
        self.body = body


def partner_generate_token(client_id: str, secret_key: str, now: Optional[int] = None,
                           ttl: int = 900) -> str:
    """The Partner page's token: HS256 over {clientId, iat, exp = iat + 900}."""
    issued = int(time.time()) if now is None else now
    claims = {"clientId": client_id, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret_key, algorithm="HS256")


def partner_request(url: str, client_id: str, secret_key: str, method: str = "GET",
                    data: Any = None, first_token: Optional[str] = None) -> requests.Response:
    """The page's makeAuthenticatedRequest: on a 401, mint a new token and retry once."""

    def send(token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return requests.request(method, url, headers=headers, json=data, timeout=HTTP_TIMEOUT)

    response = send(first_token or partner_generate_token(client_id, secret_key))
    if response.status_code == 401:
        response = send(partner_generate_token(client_id, secret_key))
    return response


def cascade_challenge(base_url: str, deposit_address: str) -> dict:
    """Step 1 of the Cascade page: GET /auth?account=DEPOSIT."""
    response = requests.get(f"{base_url}/auth", params={"account": deposit_address},
                            timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()


def cascade_sign(challenge: dict, private_key: str) -> str:
    """EIP-191 personal_sign of signing_payload, hex as eth_account's `.signature.hex()` gives it."""
    message = encode_defunct(text=challenge["signing_payload"])
    return Account.sign_message(message, private_key=private_key).signature.hex()


def cascade_post_proof(base_url: str, challenge: dict, signature: str) -> requests.Response:
    """Step 2 of the Cascade page: POST the message, signature and server signature."""
    return requests.post(f"{base_url}/auth", json={
        "message": challenge["message"],
        "signature": signature,
        "server_signature": challenge["server_signature"],
    }, timeout=HTTP_TIMEOUT)


def cascade_login(base_url: str, deposit_address: str, private_key: str) -> dict:
    """The whole Cascade page flow; returns the session `{token, claims}`."""
    challenge = cascade_challenge(base_url, deposit_address)
    response = cascade_post_proof(base_url, challenge, cascade_sign(challenge, private_key))
    response.raise_for_status()
    return response.json()


def exchange_get(base_url: str, path: str, api_key: Optional[str]) -> requests.Response:
    """An Exchange REST call with the page's x-api-key header (or none)."""
    headers = {} if api_key is None else {"x-api-key": api_key}
    return requests.get(f"{base_url}{path}", headers=headers, timeout=HTTP_TIMEOUT)
