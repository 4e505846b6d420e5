"""Many accounts in one Python process (issue #21), the twin of core/examples/scale.rs.

N ``CadenzaClient``s and M ``ExchangeClient``s against a simulator started with N users
and M traders (``scripts/bench.sh`` makes its config), for S seconds. Prints one JSON line:
memory per client, threads, open sockets (ours and the venue's count), the venue's peak
of renewal requests in flight, refreshes per client, hot-path reads without a header,
failed requests, and ``current_headers()`` p50/p99 over all clients next to one client.
``--max-*`` assert counts (the smoke run in CI); timings are only reported.

Usage: ``python scale_bench.py [--cadenza N] [--exchange M] [--secs S] [--private-pool]
[--max-connections N] [--max-threads N] [--max-renewals N]`` with ``SIM_CADENZA``,
``SIM_EXCHANGE``, ``SIM_CONTROL`` and ``SIM_CA`` set. Accounts: ``scale-{i}@scale.test`` /
``scale-pw-{i}``; traders ``exch_{i:032x}``. Prints no secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
import urllib.request
from typing import Any, Dict, List

import tradeauth


def proc_now() -> Dict[str, int]:
    """This process's resident memory (bytes), threads and open sockets."""
    fields: Dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "Threads"):
                fields[name] = int(rest.split()[0])
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return {"rss": fields.get("VmRSS", 0) * 1024, "threads": fields.get("Threads", 0),
            "sockets": sockets}


def venue_stats(control: str, ca: str, venue: str) -> Dict[str, Any]:
    """The simulator's counters of one venue."""
    context = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(f"{control}/stats", context=context, timeout=10) as r:
        stats: Dict[str, Any] = json.load(r)[venue]
    return stats


def quantile(sorted_samples: List[int], q: float) -> int:
    if not sorted_samples:
        return 0
    return sorted_samples[round((len(sorted_samples) - 1) * q)]


def sweep(clients: List[tradeauth.BaseClient], samples: List[int]) -> int:
    """Times ``current_headers()`` on each client once (ns); the reads that found none."""
    missing = 0
    clock = time.perf_counter_ns
    for client in clients:
        start = clock()
        found = client.current_headers()
        samples.append(clock() - start)
        if found is None:
            missing += 1
    return missing


async def calls(clients: List[tradeauth.BaseClient]) -> int:
    """One authenticated GET per client, 64 at a time; how many failed."""
    turn = asyncio.Semaphore(64)

    async def one(client: tradeauth.BaseClient) -> bool:
        path = "/api/v1/user" if client.venue == "exchange" else "/api/v3/user/profile"
        async with turn:
            try:
                response = await client.arequest("GET", path)
            except tradeauth.AuthError:
                return False
            return response.status_code == 200

    results = await asyncio.gather(*(one(c) for c in clients))
    return sum(1 for ok in results if not ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cadenza", type=int, default=1000)
    parser.add_argument("--exchange", type=int, default=1000)
    parser.add_argument("--secs", type=float, default=30)
    parser.add_argument("--private-pool", action="store_true")
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--max-threads", type=int)
    parser.add_argument("--max-renewals", type=int)
    args = parser.parse_args()
    env = {k: os.environ.get(k) for k in ("SIM_CADENZA", "SIM_EXCHANGE", "SIM_CONTROL", "SIM_CA")}
    missing_env = [k for k, v in env.items() if not v]
    if missing_env:
        print(f"scale_bench: {', '.join(missing_env)} not set (start the simulator first)",
              file=sys.stderr)
        return 2
    cadenza_url, exchange_url = str(env["SIM_CADENZA"]), str(env["SIM_EXCHANGE"])
    control, ca = str(env["SIM_CONTROL"]), str(env["SIM_CA"])
    limit = tradeauth.configure()["max_concurrent_renewals"]

    before = proc_now()
    started = time.monotonic()
    # login=False, then one concurrent first call each: every account logs in at once
    # (the process-wide renewal limit queues them).
    cadenza: List[tradeauth.BaseClient] = [
        tradeauth.CadenzaClient(f"scale-{i}@scale.test", f"scale-pw-{i}", cadenza_url,
                                login=False, ca_cert=ca, private_pool=args.private_pool)
        for i in range(args.cadenza)
    ]

    async def login_all() -> int:
        async def one(client: tradeauth.BaseClient) -> bool:
            try:
                await client.aheaders()
            except tradeauth.AuthError:
                return False
            return True

        results = await asyncio.gather(*(one(c) for c in cadenza))
        return sum(1 for ok in results if not ok)

    login_failures = asyncio.run(login_all())
    startup = time.monotonic() - started
    after_cadenza = proc_now()
    exchange: List[tradeauth.BaseClient] = [
        tradeauth.ExchangeClient(f"exch_{i:032x}", base_url=exchange_url, ca_cert=ca,
                                 private_pool=args.private_pool)
        for i in range(args.exchange)
    ]
    failed_requests = asyncio.run(calls(exchange))
    settled = proc_now()

    samples: List[int] = []
    missing = 0
    peak = dict(settled)
    run = time.monotonic()
    while time.monotonic() - run < args.secs:
        missing += sweep(cadenza, samples)
        now = proc_now()
        for k in peak:
            peak[k] = max(peak[k], now[k])
        time.sleep(1)
    one_samples: List[int] = []
    if cadenza:
        for _ in range(min(max(len(samples), 1), 200_000)):
            missing += sweep(cadenza[:1], one_samples)
    samples.sort()
    one_samples.sort()

    renewal_stats = venue_stats(control, ca, "cadenza")
    failed_requests += asyncio.run(calls(cadenza))
    cad = venue_stats(control, ca, "cadenza")
    exch = venue_stats(control, ca, "exchange")
    refreshes = sorted(c.metrics()["refreshes"] for c in cadenza)
    renewal_failures = sum(sum(c.metrics()["renewal_failures"].values()) for c in cadenza)
    end = proc_now()
    sessions = max(args.cadenza + args.exchange, 1)
    report = {
        "label": "private pools" if args.private_pool else "shared pool",
        "binding": "python",
        "cadenza_sessions": args.cadenza,
        "exchange_sessions": args.exchange,
        "secs": args.secs,
        "max_concurrent_renewals": limit,
        "rss_before_mib": before["rss"] / 1048576,
        "rss_settled_mib": settled["rss"] / 1048576,
        "rss_per_session_kib": (settled["rss"] - before["rss"]) / 1024 / sessions,
        "rss_per_cadenza_session_kib":
            (after_cadenza["rss"] - before["rss"]) / 1024 / max(args.cadenza, 1),
        "threads_settled": settled["threads"],
        "threads_peak": peak["threads"],
        "sockets_settled": settled["sockets"],
        "sockets_peak": peak["sockets"],
        "sockets_end": end["sockets"],
        "venue_open_connections_cadenza": cad["open_connections"],
        "venue_max_open_connections_cadenza": cad["max_open_connections"],
        "venue_open_connections_exchange": exch["open_connections"],
        "venue_max_open_connections_exchange": exch["max_open_connections"],
        "venue_max_renewals_in_flight": renewal_stats["max_in_flight"],
        "venue_logins": cad["logins"],
        "venue_refreshes": cad["refreshes"],
        "refreshes_per_session_min": refreshes[0] if refreshes else 0,
        "refreshes_per_session_max": refreshes[-1] if refreshes else 0,
        "renewal_failures": renewal_failures,
        "startup_secs": startup,
        "login_failures": login_failures,
        "failed_requests": failed_requests,
        "venue_rejections": sum(cad["rejections"].values()) + sum(exch["rejections"].values()),
        "hot_path_missing": missing,
        "hot_path_all_p50_ns": quantile(samples, 0.5),
        "hot_path_all_p99_ns": quantile(samples, 0.99),
        "hot_path_one_p50_ns": quantile(one_samples, 0.5),
        "hot_path_one_p99_ns": quantile(one_samples, 0.99),
    }
    print(json.dumps(report, sort_keys=True))

    failures = []
    connections = max(cad["max_open_connections"], exch["max_open_connections"])
    if args.max_connections is not None and connections > args.max_connections:
        failures.append(f"the venue saw {connections} connections open at once "
                        f"(max {args.max_connections})")
    if args.max_threads is not None and peak["threads"] > args.max_threads:
        failures.append(f"{peak['threads']} threads (max {args.max_threads})")
    if args.max_renewals is not None and renewal_stats["max_in_flight"] > args.max_renewals:
        failures.append(f"{renewal_stats['max_in_flight']} renewal requests in flight at once "
                        f"(max {args.max_renewals})")
    if login_failures + failed_requests + missing + renewal_failures:
        failures.append(f"{login_failures} failed logins, {failed_requests} failed requests, "
                        f"{missing} hot-path reads without a header, "
                        f"{renewal_failures} failed renewals")
    for failure in failures:
        print(f"scale_bench: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
