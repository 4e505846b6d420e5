"""Issue #19 in Python: ``client.metrics()`` after a scripted sequence (login, forced
refresh, a revoked token met by a request) matches the simulator's own counts, and
``tradeauth.prometheus_text()`` is valid text exposition (parsed by prometheus_client)
for every live client, with no secret in it.
"""

from __future__ import annotations

import gc

from prometheus_client.parser import text_string_to_metric_families

import tradeauth
from conftest import CADENZA_EMAIL, CADENZA_PASSWORD, EXCHANGE_KEY, PARTNER_SECRET, Sim


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` (as the parser names it) with its labels."""
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_cadenza_metrics_match_the_venues_counts(sim: Sim) -> None:
    client = sim.cadenza_client(background_refresh=False)  # logs in, like the page
    client.refresh()
    sim.post("/revoke", {"venue": "cadenza", "what": "access_tokens"})
    assert client.request("GET", "/api/v3/user/profile").status_code == 200

    m = client.metrics()
    stats = sim.stats("cadenza")
    # The revoked access token took the refresh token along: the 401 became a full login,
    # a login for the venue and a re-login for the session.
    assert m["logins"] + m["relogins"] == stats["logins"], (m, stats)
    assert m["refreshes"] == stats["refreshes"] == 1, (m, stats)
    assert m["reauths_after_401"] == 1
    assert m["renewal_failures"] == {}
    h = m["renewal_seconds"]
    assert h["count"] == 3 and h["cumulative"][-1] == 3, h
    assert len(h["cumulative"]) == len(h["bounds"]) + 1
    assert 0.0 < h["sum"] < 30.0, h
    expires_in = m["expires_in_seconds"]
    assert expires_in is not None and 0.0 < expires_in <= 3600.0, m
    assert m["ws_connects"] == m["store_writes"] == 0


def test_a_wrong_password_counts_one_unauthorized_failure(sim: Sim) -> None:
    client = tradeauth.CadenzaClient(
        CADENZA_EMAIL, "not-the-password", sim.cadenza, ca_cert=sim.ca, login=False
    )
    try:
        client.headers()
    except tradeauth.Unauthorized:
        pass
    else:
        raise AssertionError("a wrong password was accepted")
    m = client.metrics()
    assert m["renewal_failures"] == {"unauthorized": 1}, m
    assert m["logins"] == 0 and m["renewal_seconds"]["count"] == 0


def test_prometheus_text_parses_covers_live_clients_and_holds_no_secret(sim: Sim) -> None:
    cadenza = sim.cadenza_client()
    exchange = sim.exchange_client(api_key=EXCHANGE_KEY)
    exchange.headers()
    text = tradeauth.prometheus_text()

    logins = samples(text, "tradeauth_logins_total")
    assert ({"venue": "cadenza", "account": CADENZA_EMAIL}, 1.0) in logins, logins
    assert any(labels["venue"] == "exchange" for labels, _ in logins), logins
    buckets = samples(text, "tradeauth_renewal_seconds_bucket")
    mine = [(labels["le"], v) for labels, v in buckets if labels["account"] == CADENZA_EMAIL]
    assert mine and mine[-1][0] == "+Inf", mine
    expiry = samples(text, "tradeauth_expires_in_seconds")
    # A key without an expiry has no sample rather than a made-up number.
    assert not [labels for labels, _ in expiry if labels["venue"] == "exchange"], expiry
    for secret in (CADENZA_PASSWORD, PARTNER_SECRET, EXCHANGE_KEY, "eyJ"):
        assert secret not in text
    assert cadenza.access_token not in text
    del cadenza, exchange


def test_a_dropped_client_leaves_the_scrape(sim: Sim) -> None:
    gc.collect()

    def partners() -> int:
        logins = samples(tradeauth.prometheus_text(), "tradeauth_logins_total")
        return len([1 for labels, _ in logins if labels["venue"] == "partner"])

    before = partners()
    client = sim.partner_client()
    client.headers()
    assert partners() == before + 1
    del client
    gc.collect()
    assert partners() == before
