"""Several processes on one Cadenza account share one login through a credential store.

Replaces: every process running the page's `CadenzaClient` on its own, each logging in
and each refresh spending the rotating refresh token the others hold. Here the first
process logs in and writes the session (encrypted) to a file store; the others adopt it.

Environment: CADENZA_EMAIL, CADENZA_PASSWORD, CADENZA_BASE_URL, TRADEAUTH_CA_CERT.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile

import tradeauth

WORKERS = 3


def fingerprint(client: tradeauth.CadenzaClient) -> str:
    """A short digest of the header: enough to compare tokens, useless to replay them."""
    value = client.headers()["Authorization"]
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def client(store: str) -> tradeauth.CadenzaClient:
    # The store key comes from TRADEAUTH_STORE_KEY, set once by the parent below.
    return tradeauth.CadenzaClient.from_env(store=store)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(fingerprint(client(sys.argv[2])))
        return 0

    with tempfile.TemporaryDirectory(prefix="tradeauth-store-") as directory:
        store = f"file://{directory}"
        # A random 256-bit key encrypts the records at rest; it is never printed.
        os.environ["TRADEAUTH_STORE_KEY"] = os.urandom(32).hex()
        first = client(store)
        mine = fingerprint(first)
        print(f"shared_store: process {os.getpid()} logged in; session written to the store")
        children = [
            subprocess.run([sys.executable, __file__, "--worker", store],
                           capture_output=True, text=True, timeout=60, check=True)
            for _ in range(WORKERS)
        ]
        theirs = [child.stdout.strip() for child in children]
        same = sum(1 for f in theirs if f == mine)
        print(f"shared_store: {WORKERS} more processes started; {same} of them adopted the "
              f"same token from the store instead of logging in")
        return 0 if same == WORKERS else 1


if __name__ == "__main__":
    raise SystemExit(main())
