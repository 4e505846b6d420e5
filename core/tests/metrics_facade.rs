//! The optional `metrics` feature: a session's counts reach the `metrics` facade (so
//! `metrics-exporter-prometheus` and friends work) with the names `prometheus_text`
//! writes, labelled venue and account, and they agree with the simulator's own counts.
//! Run with `cargo test -p tradeauth --features metrics --test metrics_facade`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tradeauth::{CadenzaConfig, Method, Options, Session};
use tradeauth_sim::{Sim, SimConfig, Venue, demo};

/// One metric's value: a count, a gauge's last value (as bits) or the histogram's samples.
#[derive(Default)]
struct Cell {
    count: AtomicU64,
    gauge: AtomicU64,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.count.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, _value: f64) {}
    fn decrement(&self, _value: f64) {}
    fn set(&self, value: f64) {
        self.gauge.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.samples.lock().expect("samples").push(value);
    }
}

/// Every registered metric under `name{label=value,...}`.
#[derive(Default)]
struct Recorded(Mutex<BTreeMap<String, Arc<Cell>>>);

impl Recorded {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().expect("cells").entry(name).or_default())
    }

    fn get(&self, name: &str) -> Option<Arc<Cell>> {
        self.0.lock().expect("cells").get(name).cloned()
    }
}

struct Shared(Arc<Recorded>);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.cell(key))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_reports_what_the_session_and_the_venue_counted() {
    let recorded = Arc::new(Recorded::default());
    metrics::set_global_recorder(Shared(Arc::clone(&recorded))).expect("the only recorder");
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let session = Session::cadenza(
        CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
        Options::new()
            .base_url(sim.urls().venue(Venue::Cadenza))
            .add_root_pem(sim.ca_pem())
            .background_refresh(false),
    )
    .expect("session");
    // Login, a forced refresh, then a revoked token: one 401, re-authenticated.
    session.credential().await.expect("login");
    session.refresh().await.expect("refresh");
    sim.revoke(Venue::Cadenza, tradeauth_sim::Revoke::All)
        .expect("revoke");
    let response = session
        .request(Method::Get, "/api/v3/user/profile")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status, 200);
    let snapshot = session.metrics();
    let stats = sim.venue_stats(Venue::Cadenza);

    let labels = format!("account={},venue=cadenza", demo::CADENZA_EMAIL);
    let count = |name: &str| {
        recorded
            .get(&format!("{name}{{{labels}}}"))
            .map(|c| c.count.load(Ordering::Relaxed))
            .unwrap_or_else(|| panic!("{name} was not registered"))
    };
    let logins = count("tradeauth_logins_total") + count("tradeauth_relogins_total");
    assert_eq!(
        logins, stats.logins,
        "logins and re-logins are the venue's logins"
    );
    assert_eq!(count("tradeauth_logins_total"), snapshot.logins);
    assert_eq!(count("tradeauth_relogins_total"), snapshot.relogins);
    assert_eq!(count("tradeauth_refreshes_total"), stats.refreshes);
    assert_eq!(count("tradeauth_refreshes_total"), 1);
    assert_eq!(count("tradeauth_reauths_after_401_total"), 1);
    assert_eq!(snapshot.reauths_after_401, 1);
    let renewals = recorded
        .get(&format!("tradeauth_renewal_seconds{{{labels}}}"))
        .expect("histogram")
        .samples
        .lock()
        .expect("samples")
        .clone();
    assert_eq!(renewals.len() as u64, snapshot.renewal_seconds.count);
    assert!(
        renewals.len() >= 3 && renewals.iter().all(|s| *s > 0.0 && *s < 10.0),
        "{renewals:?}"
    );
    let expires = recorded
        .get(&format!("tradeauth_expires_in_seconds{{{labels}}}"))
        .expect("gauge");
    let expires = f64::from_bits(expires.gauge.load(Ordering::Relaxed));
    assert!(expires > 3000.0 && expires <= 3600.0, "{expires}");
    // A failure is counted by kind, as the snapshot does.
    let unauthorized = recorded
        .get(&format!(
            "tradeauth_renewal_failures_total{{account={},kind=unauthorized,venue=cadenza}}",
            demo::CADENZA_EMAIL
        ))
        .unwrap_or_else(|| {
            let names: Vec<String> = recorded.0.lock().expect("cells").keys().cloned().collect();
            panic!("not registered per kind: {names:#?}")
        });
    assert_eq!(
        unauthorized.count.load(Ordering::Relaxed),
        snapshot
            .renewal_failures
            .get("unauthorized")
            .copied()
            .unwrap_or(0)
    );
}
