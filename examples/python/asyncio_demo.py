"""asyncio with tradeauth — the async counterpart of the pages' request helpers: many
concurrent requests on a fresh client share one login, run on the library's runtime,
and never block the event loop.

    CADENZA_EMAIL=... CADENZA_PASSWORD=... [CADENZA_BASE_URL=...] [TRADEAUTH_CA_CERT=...]
    python examples/python/asyncio_demo.py
"""

from __future__ import annotations

import asyncio
import os
import time

import tradeauth


async def main() -> None:
    client = tradeauth.CadenzaClient(
        os.environ["CADENZA_EMAIL"],
        os.environ["CADENZA_PASSWORD"],
        base_url=os.environ.get("CADENZA_BASE_URL", tradeauth.CADENZA_URL),
        ca_cert=os.environ.get("TRADEAUTH_CA_CERT"),
        login=False,  # no blocking login in the constructor; the first await logs in
    )
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(client.arequest("GET", "/api/v3/market/venue/list") for _ in range(10))
    )
    took = time.perf_counter() - started
    codes = sorted({r.status_code for r in responses})
    print(f"asyncio: 10 concurrent arequest() on a fresh client -> {codes} in {took * 1000:.0f} ms (one login)")
    await client.arefresh()
    print("asyncio: await client.arefresh() -> renewed")


asyncio.run(main())
