"""Cascade with an external signer: the challenge's EIP-191 digest is signed by your own
code (here coincurve, standing in for an HSM, a cloud KMS or a hardware wallet), so
tradeauth never holds the delegate private key. The signer answers DER, as KMS and
PKCS#11 HSMs do; tradeauth normalises it (low s, recovery id found against the declared
delegate address) before posting it.

    DEPOSIT_ADDRESS=... DELEGATE_PRIVATE_KEY=... [CASCADE_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/signer.py
"""

from __future__ import annotations

import os

import coincurve
from eth_account import Account

import tradeauth

# In production the key stays in the HSM / KMS; this example loads it to play that part.
_key = coincurve.PrivateKey(bytes.fromhex(os.environ["DELEGATE_PRIVATE_KEY"].removeprefix("0x")))
delegate_address: str = Account.from_key(_key.secret).address


def sign_digest(digest: bytes) -> bytes:
    """Signs the 32-byte digest as a prehash (no hashing of our own); answers DER."""
    signature: bytes = _key.sign(digest, hasher=None)
    return signature


client = tradeauth.CascadeClient(
    os.environ["DEPOSIT_ADDRESS"],
    base_url=os.environ.get("CASCADE_BASE_URL", tradeauth.CASCADE_URL),
    signer=sign_digest,
    delegate_address=delegate_address,
    signer_timeout=5.0,
    ca_cert=os.environ.get("TRADEAUTH_CA_CERT"),
)
print(f"signer: {client!r}")
claims = client.claims or {}
print(f"signer: session for {claims.get('sub')} signed by delegate {claims.get('signer')}")

orders = client.request("GET", "/account/orders", timeout=10)
print(f"signer: GET /account/orders -> {orders.status_code}")

# A forced renewal asks the signer again, for a new challenge.
client.refresh()
print(f"signer: renewed; Authorization header present: {'Authorization' in client.headers()}")


# Rotation without a restart: point the client at another signer (e.g. a new KMS key).
def sign_digest_v2(digest: bytes) -> bytes:
    return sign_digest(digest)


client.update_credentials(signer=sign_digest_v2, delegate_address=delegate_address)
client.refresh()
print(f"signer: rotated to a new signer -> {client.request('GET', '/account/orders').status_code}")
