"""Issue #12: the requests and httpx plug-ins never send a credential to the wrong place.

A plain ``http://`` listener and an ``https://`` listener of the test's own (another
origin, trusted through a CA bundle) record every header they receive. Each venue's
plug-in is pointed at them directly, through the venue's ``redirect`` fault, and
(bearer venues) through a redirect to the simulator's other venue listener; none of them
may ever see the credential. On the venue's own origin the credential is still sent and a
401 still renews it and retries once.
"""

from __future__ import annotations

import asyncio
import http.server
import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Callable, Iterator, Optional

import httpx
import pytest
import requests

import tradeauth
from tradeauth import _native
from conftest import EXCHANGE_KEY, Sim

VENUES = ["cadenza", "partner", "cascade", "exchange"]

# An authenticated path of each venue.
PATHS = {
    "cadenza": "/api/v3/user/profile",
    "partner": "/portfolio",
    "cascade": "/account/orders",
    "exchange": "/api/v1/user",
}

Client = tradeauth.BaseClient


class Recorder:
    """A listener of the test's own that records the headers of every request."""

    def __init__(self, server: http.server.ThreadingHTTPServer, scheme: str) -> None:
        self.server = server
        self.url = f"{scheme}://127.0.0.1:{server.server_port}"
        self.seen: list[dict[str, str]] = []

    def assert_no_credential(self, client: Client) -> None:
        assert self.seen, "the request never reached the listener"
        secrets = [v.split(" ")[-1] for v in client.headers().values()]
        for headers in self.seen:
            names = {name.lower() for name in headers}
            assert not names & {"authorization", "x-api-key"}, sorted(names)
            for secret in secrets:
                # Compared by hand: an assert that printed it would leak the secret.
                leaked = any(secret in value for value in headers.values())
                assert not leaked, f"the credential ({len(secret)} chars) reached {self.url}"

    def refuses(self, client: Client, sender: str, url: str, verify: str, what: str) -> str:
        """`sender` must refuse `url` (`InsecureUrl`) before any request reaches this
        listener (`what` names it); gives the refusal's message."""
        with pytest.raises(tradeauth.InsecureUrl) as info:
            SENDERS[sender](client, url, verify)
        assert self.seen == [], f"a request reached {what}"
        return str(info.value)

    def redirected_to(self, sim: Sim, client: Client, venue: str, sender: str, verify: str) -> None:
        """The venue redirects to this listener: followed, without the credential."""
        sim.fault(venue, PATHS[venue], "redirect", location=f"{self.url}/landing")
        status, history = SENDERS[sender](client, own_url(sim, venue), verify)
        assert (status, history) == (200, [307])
        self.assert_no_credential(client)


def _serve(scheme: str, context: Optional[ssl.SSLContext]) -> Iterator[Recorder]:
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k: v for k, v in self.headers.items()})
            body = b"landed"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    recorder = Recorder(server, scheme)
    recorder.seen = seen
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain() -> Iterator[Recorder]:
    yield from _serve("http", None)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory, sim: Sim) -> tuple[Path, Path, Path]:
    """A CA and a 127.0.0.1 server certificate of the test's own (openssl), and a bundle
    trusting both it and the simulator."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the other https origin's certificate")
    d = tmp_path_factory.mktemp("other-origin")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tradeauth test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    bundle = d / "bundle.pem"
    bundle.write_text(Path(sim.ca).read_text() + (d / "ca.pem").read_text())
    return d / "server.pem", d / "server.key", bundle


@pytest.fixture
def other(tls_files: tuple[Path, Path, Path]) -> Iterator[Recorder]:
    cert, key, _ = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve("https", context)


@pytest.fixture
def bundle(tls_files: tuple[Path, Path, Path]) -> str:
    return str(tls_files[2])


def make_client(sim: Sim, venue: str) -> Client:
    makers: dict[str, Callable[[], Client]] = {
        "cadenza": sim.cadenza_client,
        "partner": sim.partner_client,
        "cascade": sim.cascade_client,
        "exchange": lambda: sim.exchange_client(api_key=EXCHANGE_KEY),
    }
    return makers[venue]()


def own_url(sim: Sim, venue: str) -> str:
    return f"{sim.urls[venue]}{PATHS[venue]}"


# The three ways of sending: requests, httpx sync, httpx async. Each returns the answer's
# status and the statuses of the redirects it followed.
def via_requests(client: Client, url: str, verify: str) -> tuple[int, list[int]]:
    answer = requests.get(url, auth=client.requests_auth(), verify=verify, timeout=10)
    return answer.status_code, [r.status_code for r in answer.history]


def via_httpx(client: Client, url: str, verify: str) -> tuple[int, list[int]]:
    context = ssl.create_default_context(cafile=verify)
    with httpx.Client(verify=context, follow_redirects=True, timeout=10) as http:
        answer = http.get(url, auth=client.httpx_auth())
    return answer.status_code, [r.status_code for r in answer.history]


def via_httpx_async(client: Client, url: str, verify: str) -> tuple[int, list[int]]:
    async def main() -> tuple[int, list[int]]:
        context = ssl.create_default_context(cafile=verify)
        async with httpx.AsyncClient(verify=context, follow_redirects=True, timeout=10) as http:
            answer = await http.get(url, auth=client.httpx_auth())
        return answer.status_code, [r.status_code for r in answer.history]

    return asyncio.run(main())


SENDERS = {"requests": via_requests, "httpx": via_httpx, "httpx_async": via_httpx_async}


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", VENUES)
def test_plain_http_url_is_refused_before_sending(
    sim: Sim, plain: Recorder, venue: str, sender: str
) -> None:
    client = make_client(sim, venue)
    message = plain.refuses(
        client, sender, f"{plain.url}/api/v1/user", sim.ca, "the plain http listener"
    )
    assert plain.url.replace("http://", "") in message, message
    assert "http" in message and "plain" in message, message
    for value in client.headers().values():
        assert value.split(" ")[-1] not in message


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", VENUES)
def test_other_https_origin_is_refused_before_sending(
    sim: Sim, other: Recorder, bundle: str, venue: str, sender: str
) -> None:
    client = make_client(sim, venue)
    url = f"{other.url}{PATHS[venue]}"
    message = other.refuses(client, sender, url, bundle, "the other origin")
    assert other.url in message and "not the client's origin" in message, message
    # Same host, another port (the simulator's next venue) is another origin too.
    neighbour = sim.urls["partner" if venue != "partner" else "cadenza"]
    with pytest.raises(tradeauth.InsecureUrl):
        SENDERS[sender](client, f"{neighbour}/x", sim.ca)


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", VENUES)
def test_redirect_to_plain_http_carries_no_credential(
    sim: Sim, plain: Recorder, venue: str, sender: str
) -> None:
    plain.redirected_to(sim, make_client(sim, venue), venue, sender, sim.ca)


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", VENUES)
def test_redirect_to_another_https_origin_carries_no_credential(
    sim: Sim, other: Recorder, bundle: str, venue: str, sender: str
) -> None:
    other.redirected_to(sim, make_client(sim, venue), venue, sender, bundle)


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", ["cadenza", "cascade", "exchange"])
def test_redirect_to_the_simulators_other_venue_carries_no_credential(
    sim: Sim, venue: str, sender: str
) -> None:
    # The Partner listener tells a missing bearer ("Unauthorized") from a foreign one
    # ("Invalid Token").
    client = make_client(sim, venue)
    sim.fault(venue, PATHS[venue], "redirect", location=f"{sim.partner}/portfolio")
    status, history = SENDERS[sender](client, own_url(sim, venue), sim.ca)
    assert (status, history) == (401, [307])
    rejections = sim.stats("partner")["rejections"]
    assert rejections == {"Unauthorized": 1}, rejections


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("venue", VENUES)
def test_own_origin_carries_the_credential_and_retries_once_on_401(
    sim: Sim, venue: str, sender: str
) -> None:
    client = make_client(sim, venue)
    assert SENDERS[sender](client, own_url(sim, venue), sim.ca) == (200, [])
    # A redirect that stays on the venue's origin keeps the credential.
    sim.fault(venue, PATHS[venue], "redirect", location=own_url(sim, venue))
    assert SENDERS[sender](client, own_url(sim, venue), sim.ca) == (200, [307])
    sim.fault(venue, PATHS[venue], "status", status=401)
    status, history = SENDERS[sender](client, own_url(sim, venue), sim.ca)
    if client.renewable:
        assert (status, history) == (200, [401]), "renewed and retried once"
    else:
        assert (status, history) == (401, []), "a static key is not retried"


def test_insecure_url_carries_the_native_attributes(sim: Sim) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    with pytest.raises(tradeauth.InsecureUrl) as ours:
        requests.get("http://127.0.0.1:9/x", auth=client.requests_auth())
    with pytest.raises(tradeauth.InsecureUrl) as native:
        _native._raise_kind("insecure_url", "x")
    for name in ["kind", "code", "status", "retryable", "retry_after"]:
        assert getattr(ours.value, name) == getattr(native.value, name), name
    assert isinstance(ours.value, tradeauth.AuthError)


def test_a_trace_extension_of_the_caller_still_runs(sim: Sim, plain: Recorder) -> None:
    client = sim.exchange_client(api_key=EXCHANGE_KEY)
    events: list[str] = []

    def trace(event: str, info: dict[str, object]) -> None:
        events.append(event)

    sim.fault("exchange", PATHS["exchange"], "redirect", location=f"{plain.url}/landing")
    context = ssl.create_default_context(cafile=sim.ca)
    with httpx.Client(verify=context, follow_redirects=True, timeout=10) as http:
        answer = http.get(
            own_url(sim, "exchange"), auth=client.httpx_auth(), extensions={"trace": trace}
        )
    assert answer.status_code == 200
    assert any(e.endswith("send_request_headers.started") for e in events), events
    plain.assert_no_credential(client)
