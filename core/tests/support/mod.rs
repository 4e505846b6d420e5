//! Shared by the session tests: an in-process simulator and options that trust its CA.

#![allow(dead_code)]

use std::time::Duration;

use tradeauth::{Options, Session};
use tradeauth_sim::{Sim, SimConfig, Venue, demo};

/// A fresh simulator with the demo accounts.
pub async fn sim() -> Sim {
    Sim::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// Options pointing at one simulated venue, trusting the simulator's CA, with quick
/// retries so fault tests stay fast.
pub fn options(sim: &Sim, venue: Venue) -> Options {
    Options::new()
        .base_url(sim.urls().venue(venue))
        .add_root_pem(sim.ca_pem())
        .retry_delays(Duration::from_millis(5), Duration::from_millis(50))
        .request_timeout(Duration::from_secs(5))
}

/// A Cadenza session for the demo user.
pub fn cadenza(_sim: &Sim, options: Options) -> Session {
    let config = tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD);
    Session::cadenza(config, options).expect("valid cadenza session")
}

/// A Partner session for the demo client.
pub fn partner(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::PartnerConfig::new(demo::PARTNER_CLIENT_ID, demo::PARTNER_SECRET_KEY);
    Session::partner(config, options).expect("valid partner session")
}

/// A Cascade session signing with the demo delegate key.
pub fn cascade(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY);
    Session::cascade(config, options).expect("valid cascade session")
}

/// An Exchange trader session with the demo key.
pub fn exchange(sim: &Sim, options: Options) -> Session {
    let _ = sim;
    let config = tradeauth::ExchangeConfig::trader(demo::EXCHANGE_API_KEY);
    Session::exchange(config, options).expect("valid exchange session")
}

/// Waits (bounded) for the first event matching `pred`; events, not sleeps, say when.
pub async fn wait_for_event(
    events: &mut tokio::sync::broadcast::Receiver<tradeauth::AuthEvent>,
    within: Duration,
    pred: impl Fn(&tradeauth::AuthEvent) -> bool,
) -> tradeauth::AuthEvent {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("event arrived in time")
}

/// `GET path` on a session; a transport or auth failure fails the test, naming the path.
pub async fn get(session: &Session, path: &str) -> tradeauth::HttpResponse {
    session
        .request(tradeauth::Method::Get, path)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
