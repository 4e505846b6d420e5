"""Demo: start the simulator and walk each venue's flow the way its page does.

Usage: demo_pages.py PATH_TO_tradeauth-sim
Prints every step and what the simulator counted; never a token, key or password.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim" / "tests" / "python"))

import requests  # noqa: E402

from page_clients import (  # noqa: E402
    PageCadenzaClient,
    cascade_challenge,
    cascade_post_proof,
    cascade_sign,
    exchange_get,
    partner_request,
)

DEPOSIT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DELEGATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def main() -> int:
    binary = sys.argv[1]
    ca_out = Path(tempfile.mkdtemp(prefix="tradeauth-demo-")) / "ca.pem"
    sim = subprocess.Popen([binary, "--ca-out", str(ca_out)], stdout=subprocess.PIPE, text=True,
                           stderr=subprocess.DEVNULL)
    try:
        assert sim.stdout is not None
        urls = json.loads(sim.stdout.readline())
        os.environ["REQUESTS_CA_BUNDLE"] = urls["ca_cert"]
        print("simulator up:", ", ".join(f"{k}={v}" for k, v in urls.items() if k != "ca_cert"))

        print("\nCadenza (email + password -> 1 h access token, rotating refresh token)")
        client = PageCadenzaClient(urls["cadenza"], "demo@cadenza.test", "demo-password", log=say)
        response = client.request("GET", "/api/v3/market/venue/list")
        say(f"GET /api/v3/market/venue/list -> {response.status_code}, "
            f"{len(response.json()['data'])} venues")
        client.refresh()
        stale = requests.get(f"{urls['cadenza']}/api/v3/user/profile",
                             headers={"Authorization": "Bearer not-a-token"}, timeout=10)
        say(f"a made-up bearer token -> {stale.status_code} {stale.json()['error']['code']}")

        print("\nPartner (self-minted HS256 JWT {clientId, iat, exp = iat + 900})")
        response = partner_request(f"{urls['partner']}/portfolio", "demo-client",
                                   "demo-partner-secret-key-0123456789abcdef")
        say(f"minted a token, GET /portfolio -> {response.status_code}")
        response = requests.get(f"{urls['partner']}/portfolio", timeout=10)
        say(f"no Authorization header -> {response.status_code} {response.json()['error']!r}")

        print("\nCascade (wallet challenge, EIP-191 signature by a delegate key)")
        challenge = cascade_challenge(urls["cascade"], DEPOSIT)
        say(f"GET /auth -> challenge with nonce {challenge['message']['nonce']}")
        signature = cascade_sign(challenge, DELEGATE_KEY)
        say("signed signing_payload with the delegate key (EIP-191 personal_sign)")
        session = cascade_post_proof(urls["cascade"], challenge, signature).json()
        say(f"POST /auth -> session token for {session['claims']['sub']}, "
            f"exp {session['claims']['exp']}")
        orders = requests.get(f"{urls['cascade']}/account/orders",
                              headers={"Authorization": f"Bearer {session['token']}"}, timeout=10)
        say(f"GET /account/orders -> {orders.status_code}")
        replay = cascade_post_proof(urls["cascade"], challenge, signature)
        say(f"replaying the same challenge -> {replay.status_code} {replay.json()['error']!r}")

        print("\nExchange (static x-api-key)")
        profile = exchange_get(urls["exchange"], "/api/v1/user", "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f")
        say(f"GET /api/v1/user -> {profile.status_code}, username {profile.json()['username']}")
        missing = exchange_get(urls["exchange"], "/api/v1/user", None)
        say(f"no x-api-key -> {missing.status_code} {missing.json()['error']!r}")

        stats = requests.get(f"{urls['control']}/stats", timeout=10).json()
        print("\nsimulator counters:")
        for venue, counters in stats.items():
            shown = {k: v for k, v in counters.items() if v}
            say(f"{venue}: {shown}")
        return 0
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
