"""tradeauth from Python against what users would otherwise write (issue #7).

Measures side by side, in one run, and prints one table of ratios:

* ``tradeauth.generate_token`` vs PyJWT ``jwt.encode`` (the Partner page's snippet);
* ``tradeauth.eip191_sign`` vs eth_account ``Account.sign_message`` with its pure-Python
  backend and with coincurve;
* ``client.headers()`` vs a baseline written the way the Cadenza page's class works
  (expiry check against ``time.time()`` plus an f-string header dict);
* N authenticated GETs on one kept-alive connection against the simulator:
  ``tradeauth.CadenzaClient.request`` vs a requests-based client written like the page's;
* 1000 threads asking a client whose token just expired for a header: how many refresh
  requests the simulator saw (target 1) for tradeauth and for the baseline;
* N authenticated GETs from one asyncio loop, 50 at a time: ``arequest`` vs aiohttp with
  the same header;
* ``import tradeauth`` time and RSS, and the wheel's size.

Usage: ``python bench.py [--smoke] [--wheel PATH]``. Needs the simulator's addresses in
``SIM_CADENZA``, ``SIM_CONTROL`` and ``SIM_CA`` (``source scripts/common.sh; start_sim``),
or starts ``$TRADEAUTH_SIM_BIN`` (default ``target/debug/tradeauth-sim``) itself. Installs
the pinned comparison packages from ``requirements.txt`` beside it if they are missing.
Prints no secret (tokens and signatures are only counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"

# The simulator's demo accounts (sim/README.md); public test values, not secrets.
CADENZA_EMAIL = "demo@cadenza.test"
CADENZA_PASSWORD = "demo-password"
PARTNER_ID = "demo-client"
PARTNER_SECRET = "demo-partner-secret-key-0123456789abcdef"
# Hardhat/Anvil account #0: a well-known public development key.
CASCADE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SIGNING_PAYLOAD = json.dumps(
    {"deposit_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
     "nonce": "6f0c1e2d3b4a59687766554433221100", "issued_at": 1700000000}
)
PROFILE = "/api/v3/user/profile"


def ensure_packages() -> None:
    """pip-installs the pinned comparison packages into this interpreter if missing."""
    try:
        import aiohttp  # noqa: F401
        import coincurve  # noqa: F401
        import eth_account  # noqa: F401
        import jwt  # noqa: F401
        import requests  # noqa: F401
        return
    except ImportError:
        pass
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )


# --- timing ---------------------------------------------------------------------------


def per_op_ns(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n


def side_by_side(fns: List[Callable[[], Any]], n: int, rounds: int) -> List[float]:
    """Median ns/op of each function, run in alternation (A B C A B C ...) so that load
    from the rest of the machine hits all of them alike."""
    for fn in fns:  # warm-up
        per_op_ns(fn, max(1, n // 10))
    samples: List[List[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            samples[i].append(per_op_ns(fn, n))
    return [statistics.median(s) for s in samples]


# --- the simulator ----------------------------------------------------------------------


class Sim:
    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen[str]] = None
        if not os.environ.get("SIM_CADENZA"):
            binary = os.environ.get("TRADEAUTH_SIM_BIN", str(REPO / "target/debug/tradeauth-sim"))
            self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True,
                                         stderr=subprocess.DEVNULL)
            assert self.proc.stdout is not None
            info = json.loads(self.proc.stdout.readline())
            os.environ["SIM_CADENZA"] = info["cadenza"]
            os.environ["SIM_CONTROL"] = info["control"]
            os.environ["SIM_CA"] = info["ca_cert"]
        self.cadenza = os.environ["SIM_CADENZA"]
        self.control = os.environ["SIM_CONTROL"]
        self.ca = os.environ["SIM_CA"]
        import requests

        self.http = requests.Session()

    def post(self, path: str, body: Dict[str, Any]) -> None:
        answer = self.http.post(f"{self.control}{path}", json=body, timeout=10, verify=self.ca)
        answer.raise_for_status()

    def stats(self) -> Dict[str, Any]:
        answer = self.http.get(f"{self.control}/stats", timeout=10, verify=self.ca)
        answer.raise_for_status()
        stats: Dict[str, Any] = answer.json()["cadenza"]
        return stats

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


# --- the baseline: a client written the way the Cadenza page's class works ------------


class PageStyleClient:
    """requests-based, like the page: tokens in attributes, a refresh when ``time.time()``
    says the token is within 5 minutes of ``expiresAt``, an f-string header per request.
    One ``requests.Session`` so that it, too, keeps its connection alive."""

    REFRESH_MARGIN_MS = 300_000

    def __init__(self, base_url: str, email: str, password: str, verify: str) -> None:
        import requests

        self.base_url = base_url
        self.verify = verify  # per call: a Session's verify loses to REQUESTS_CA_BUNDLE
        self.http = requests.Session()
        self.access_token = ""
        self.refresh_token = ""
        self.expires_at = 0
        answer = self.http.post(f"{base_url}/api/v3/auth/login",
                                json={"email": email, "password": password}, timeout=10,
                                verify=verify)
        self._store(answer.json()["data"])

    def _store(self, data: Dict[str, Any]) -> None:
        self.access_token = data["accessToken"]
        self.refresh_token = data["refreshToken"]
        self.expires_at = data["expiresAt"]

    def _ensure_valid_token(self) -> None:
        if time.time() * 1000 > self.expires_at - self.REFRESH_MARGIN_MS:
            answer = self.http.post(f"{self.base_url}/api/v3/auth/token/refresh",
                                    json={"refreshToken": self.refresh_token}, timeout=10,
                                    verify=self.verify)
            self._store(answer.json()["data"])

    def headers(self) -> Dict[str, str]:
        self._ensure_valid_token()
        return {"Authorization": f"Bearer {self.access_token}"}

    def request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        return self.http.request(method, f"{self.base_url}{endpoint}",
                                 headers=self.headers(), timeout=10, verify=self.verify,
                                 **kwargs)


# --- the measurements ---------------------------------------------------------------------


Row = Tuple[str, str, str, str, str]  # what, tradeauth, baseline, ratio, target


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def bench_generate_token(n: int, rounds: int) -> List[Row]:
    import jwt

    import tradeauth

    def page_generate_token(client_id: str, secret_key: str) -> str:
        now = int(time.time())
        payload = {"clientId": client_id, "iat": now, "exp": now + 900}
        return jwt.encode(payload, secret_key, algorithm="HS256")

    ours, theirs = side_by_side(
        [lambda: tradeauth.generate_token(PARTNER_ID, PARTNER_SECRET),
         lambda: page_generate_token(PARTNER_ID, PARTNER_SECRET)], n, rounds)
    return [("generate_token vs PyJWT jwt.encode", fmt_ns(ours), fmt_ns(theirs),
             f"{theirs / ours:.1f}x", ">= 30x")]


ETH_CHILD = r"""
import json, sys, time, statistics
from eth_account import Account
from eth_account.messages import encode_defunct
key, payload, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sign = lambda: Account.sign_message(encode_defunct(text=payload), private_key=key).signature.hex()
sign()
out = []
for _ in range(rounds):
    t = time.perf_counter_ns()
    for _ in range(n):
        sign()
    out.append((time.perf_counter_ns() - t) / n)
from eth_keys import keys
print(json.dumps({"ns": statistics.median(out), "backend": type(keys.backend).__name__}))
"""


def eth_sign_ns(backend: str, n: int, rounds: int) -> Tuple[float, str]:
    """eth_account's sign_message in a child process, with eth_keys' backend chosen by
    ECC_BACKEND_CLASS (read at import), the way a user picks it."""
    env = dict(os.environ)
    env["ECC_BACKEND_CLASS"] = backend
    out = subprocess.run([sys.executable, "-c", ETH_CHILD, CASCADE_KEY, SIGNING_PAYLOAD,
                          str(n), str(rounds)], env=env, check=True, capture_output=True,
                         text=True)
    result = json.loads(out.stdout)
    return float(result["ns"]), str(result["backend"])


def bench_eip191(n: int, rounds: int) -> List[Row]:
    import tradeauth

    ours = side_by_side([lambda: tradeauth.eip191_sign(CASCADE_KEY, SIGNING_PAYLOAD)],
                        n, rounds)[0]
    coin, coin_name = eth_sign_ns("eth_keys.backends.CoinCurveECCBackend", n, rounds)
    pure, pure_name = eth_sign_ns("eth_keys.backends.NativeECCBackend", max(1, n // 10), rounds)
    # Once more after the children, so that machine load in between is seen by both.
    ours = min(ours, side_by_side(
        [lambda: tradeauth.eip191_sign(CASCADE_KEY, SIGNING_PAYLOAD)], n, rounds)[0])
    return [
        (f"eip191_sign vs eth_account ({coin_name})", fmt_ns(ours), fmt_ns(coin),
         f"{coin / ours:.1f}x", ">= 3x"),
        (f"eip191_sign vs eth_account ({pure_name})", fmt_ns(ours), fmt_ns(pure),
         f"{pure / ours:.0f}x", ">= 100x"),
    ]


def bench_headers(sim: Sim, n: int, rounds: int) -> List[Row]:
    import tradeauth

    client = tradeauth.CadenzaClient(CADENZA_EMAIL, CADENZA_PASSWORD, sim.cadenza,
                                     ca_cert=sim.ca)
    baseline = PageStyleClient(sim.cadenza, CADENZA_EMAIL, CADENZA_PASSWORD, sim.ca)
    assert client.headers().keys() == baseline.headers().keys()
    value = baseline.headers()["Authorization"]

    def floor() -> Dict[str, str]:
        # The least any Python-callable headers() can do: one call, one new 1-item dict.
        return {"Authorization": value}

    ours, theirs, least = side_by_side([client.headers, baseline.headers, floor], n, rounds)
    return [("client.headers() vs page-style time.time() + f-string", fmt_ns(ours),
             fmt_ns(theirs), f"{theirs / ours:.1f}x", "<= 250 ns and >= 4x"),
            ("  floor: a Python function returning a new 1-item dict", fmt_ns(least),
             fmt_ns(theirs), f"{theirs / least:.1f}x", "(CPython's own limit)")]


def bench_gets(sim: Sim, n: int, rounds: int) -> List[Row]:
    import tradeauth

    client = tradeauth.CadenzaClient(CADENZA_EMAIL, CADENZA_PASSWORD, sim.cadenza,
                                     ca_cert=sim.ca)
    baseline = PageStyleClient(sim.cadenza, CADENZA_EMAIL, CADENZA_PASSWORD, sim.ca)

    def ours() -> None:
        assert client.request("GET", PROFILE).status_code == 200

    def theirs() -> None:
        assert baseline.request("GET", PROFILE).status_code == 200

    ours_ns, theirs_ns = side_by_side([ours, theirs], n, rounds)
    return [(f"authenticated GET, keep-alive (N={n} x {rounds})", fmt_ns(ours_ns),
             fmt_ns(theirs_ns), f"{theirs_ns / ours_ns:.1f}x", ">= 2x")]


def bench_arequest(sim: Sim, n: int, concurrency: int, rounds: int) -> List[Row]:
    """`n` authenticated GETs from one asyncio loop, `concurrency` at a time: tradeauth's
    ``arequest`` vs aiohttp (one ``ClientSession``, the same header) — issue #21's goal
    is >= 1.5x aiohttp. Alternating rounds; the best of each."""
    import asyncio
    import ssl

    import aiohttp

    import tradeauth

    client = tradeauth.CadenzaClient(CADENZA_EMAIL, CADENZA_PASSWORD, sim.cadenza,
                                     ca_cert=sim.ca)
    url = sim.cadenza.rstrip("/") + PROFILE

    async def ours() -> float:
        turn = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with turn:
                response = await client.arequest("GET", PROFILE)
                assert response.status_code == 200

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)

    async def theirs() -> float:
        context = ssl.create_default_context(cafile=sim.ca)
        connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            turn = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with turn:
                    async with session.get(url, headers=client.headers()) as response:
                        await response.read()
                        assert response.status == 200

            await one()  # connect outside the clock, as tradeauth's client already is
            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return n / (time.perf_counter() - start)

    best_ours, best_theirs = 0.0, 0.0
    for _ in range(rounds):
        best_ours = max(best_ours, asyncio.run(ours()))
        best_theirs = max(best_theirs, asyncio.run(theirs()))
    return [(f"arequest GETs/s, {concurrency} at a time (N={n}, best of {rounds})",
             f"{best_ours:,.0f}/s", f"aiohttp {best_theirs:,.0f}/s",
             f"{best_ours / best_theirs:.2f}x", ">= 1.5x aiohttp")]


def stampede(sim: Sim, make: Callable[[], Any], threads: int) -> Tuple[int, int, int, int]:
    """`threads` threads released at once ask an expired client for a header. Returns the
    simulator's (refreshes, logins, auth requests, failed callers) during the stampede."""
    client = make()
    # The token has a 2 s lifetime (set below): wait until it has really expired.
    time.sleep(2.3)
    barrier = threading.Barrier(threads)
    failures = [0]
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        try:
            client.headers()
        except Exception:  # the baseline's losing refreshes fail (rotated refresh token)
            with lock:
                failures[0] += 1

    before = sim.stats()
    workers = [threading.Thread(target=call) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    after = sim.stats()
    return (after["refreshes"] - before["refreshes"], after["logins"] - before["logins"],
            after["requests"] - before["requests"], failures[0])


def bench_stampede(sim: Sim, threads: int) -> List[Row]:
    import tradeauth

    sim.post("/lifetimes", {"venue": "cadenza", "access_ttl_secs": 2})
    try:
        ours = stampede(sim, lambda: tradeauth.CadenzaClient(
            CADENZA_EMAIL, CADENZA_PASSWORD, sim.cadenza, ca_cert=sim.ca,
            background_refresh=False), threads)
        theirs = stampede(sim, lambda: PageStyleClient(
            sim.cadenza, CADENZA_EMAIL, CADENZA_PASSWORD, sim.ca), threads)
    finally:
        sim.post("/lifetimes", {"venue": "cadenza", "access_ttl_secs": 3600})

    def show(r: Tuple[int, int, int, int]) -> str:
        return f"{r[2]} req ({r[0]} refresh, {r[1]} login, {r[3]} failed)"

    return [(f"{threads} threads, expired token: auth requests", show(ours), show(theirs),
             f"{ours[2]} vs {theirs[2]}", "exactly 1")]


IMPORT_CHILD = r"""
import time
t = time.perf_counter()
import tradeauth
took = time.perf_counter() - t
def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
print(took, rss_kib())
"""

RSS_BEFORE_CHILD = r"""
def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
print(rss_kib())
"""


def bench_import(runs: int) -> List[Row]:
    times: List[float] = []
    rss: List[int] = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_CHILD], check=True,
                             capture_output=True, text=True).stdout.split()
        times.append(float(out[0]))
        rss.append(int(out[1]))
    bare = int(subprocess.run([sys.executable, "-c", RSS_BEFORE_CHILD], check=True,
                              capture_output=True, text=True).stdout)
    took = statistics.median(times) * 1e3
    return [("import tradeauth (fresh interpreter, median)", f"{took:.1f} ms", "", "",
             "<= 30 ms"),
            ("RSS after import tradeauth (bare interpreter)",
             f"{statistics.median(rss) / 1024:.1f} MiB (+{(statistics.median(rss) - bare) / 1024:.1f})",
             f"{bare / 1024:.1f} MiB", "", "")]


def bench_wheel(wheel: Optional[str]) -> List[Row]:
    if not wheel:
        found = sorted((REPO / "target/wheels").glob("tradeauth-*.whl"))
        wheel = str(found[-1]) if found else None
    if not wheel or not os.path.exists(wheel):
        return [("wheel size", "(no wheel found)", "", "", "<= 10 MB")]
    size = os.path.getsize(wheel)
    return [(f"wheel size ({os.path.basename(wheel)})", f"{size / 1e6:.2f} MB", "", "",
             "<= 10 MB")]


def print_table(rows: List[Row]) -> None:
    head = ("measurement", "tradeauth", "baseline", "ratio", "target")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny N: check it runs")
    parser.add_argument("--wheel", help="the wheel whose size to report")
    parser.add_argument("--threads", type=int, default=1000)
    args = parser.parse_args()
    ensure_packages()
    scale = 0.01 if args.smoke else 1.0
    rounds = 3 if args.smoke else 7

    def n(full: int) -> int:
        return max(1, int(full * scale))

    import tradeauth

    print(f"tradeauth {tradeauth.__version__} from {tradeauth.__file__}")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    sim = Sim()
    rows: List[Row] = []
    try:
        rows += bench_generate_token(n(20_000), rounds)
        rows += bench_eip191(n(2_000), rounds)
        rows += bench_headers(sim, n(200_000), rounds)
        rows += bench_gets(sim, n(500), rounds)
        rows += bench_arequest(sim, max(n(3_000), 50), 50, rounds)
        rows += bench_stampede(sim, args.threads if not args.smoke else min(args.threads, 100))
        rows += bench_import(3 if args.smoke else 11)
        rows += bench_wheel(args.wheel)
    finally:
        sim.close()
    print()
    if args.smoke:
        print("SMOKE MODE: tiny N (and usually a debug wheel): these figures only show that "
              "every measurement runs; see BENCHMARKS.md for real ones.")
    print_table(rows)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
