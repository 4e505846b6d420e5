"""What a client is without optional arguments: the venue's default URL (from core,
not a literal copied into the binding) and what the venue's machine can do."""

from __future__ import annotations

import tradeauth

# Hardhat / anvil public test accounts: #1 is the deposit address, #0 the delegate key.
DEPOSIT = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
DELEGATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_default_urls_are_the_pages_and_come_from_core() -> None:
    # No login and no background refresh: nothing is sent to the real venues.
    cadenza = tradeauth.CadenzaClient(
        "you@example.com", "password", login=False, background_refresh=False
    )
    cascade = tradeauth.CascadeClient(
        DEPOSIT, DELEGATE_KEY, login=False, background_refresh=False
    )
    exchange = tradeauth.ExchangeClient(background_refresh=False)
    assert cadenza.base_url == "https://cadenza-api.algo724.com/"
    assert cascade.base_url == "https://matcher.cascade.xyz/"
    assert exchange.base_url == "https://exchange.jamesxu.dev/"
    # base_url=None is the same as leaving it out.
    explicit = tradeauth.ExchangeClient(base_url=None, background_refresh=False)
    assert explicit.base_url == exchange.base_url


def test_what_a_client_can_do_is_the_machines_answer() -> None:
    cadenza = tradeauth.CadenzaClient(
        "you@example.com", "password", login=False, background_refresh=False
    )
    public = tradeauth.ExchangeClient(background_refresh=False)
    trader = tradeauth.ExchangeClient(
        api_key="exch_" + "0" * 32, background_refresh=False
    )
    assert cadenza.renewable
    assert not public.renewable and not trader.renewable
    # A public client sends requests without a credential, and never tries to log in.
    assert public.headers() == {}
    assert public.current_headers() == {}
    assert trader.headers() == {"x-api-key": "exch_" + "0" * 32}
