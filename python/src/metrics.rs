//! `client.metrics()` and `tradeauth.prometheus_text()` (issue #19): the core snapshot as
//! a dict, and the text exposition of every live client for a scrape endpoint.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tradeauth::{Metrics, Session, WeakSession};

/// Every client made in this process, weakly: a scrape sees the live ones and forgets the
/// dropped ones as it goes.
static LIVE: Mutex<Vec<WeakSession>> = Mutex::new(Vec::new());

/// Registers a new client's session for `prometheus_text()`.
pub(crate) fn register(session: &Session) {
    // A poisoned lock only means a panic elsewhere mid-push: the list is still usable.
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|weak| weak.upgrade().is_some());
    live.push(session.downgrade());
}

/// The snapshot as a dict with the Rust field names.
pub(crate) fn as_dict<'py>(py: Python<'py>, m: &Metrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("logins", m.logins)?;
    d.set_item("refreshes", m.refreshes)?;
    d.set_item("relogins", m.relogins)?;
    let failures = PyDict::new(py);
    for (kind, n) in &m.renewal_failures {
        failures.set_item(kind, n)?;
    }
    d.set_item("renewal_failures", failures)?;
    let h = &m.renewal_seconds;
    let histogram = PyDict::new(py);
    histogram.set_item("bounds", h.bounds.clone())?;
    histogram.set_item("cumulative", h.cumulative.clone())?;
    histogram.set_item("sum", h.sum_seconds)?;
    histogram.set_item("count", h.count)?;
    d.set_item("renewal_seconds", histogram)?;
    d.set_item("expires_in_seconds", m.expires_in_seconds)?;
    d.set_item("clock_skew_seconds", m.clock_skew_seconds)?;
    d.set_item("reauths_after_401", m.reauths_after_401)?;
    d.set_item("store_adoptions", m.store_adoptions)?;
    d.set_item("store_writes", m.store_writes)?;
    d.set_item("store_lease_waits", m.store_lease_waits)?;
    d.set_item("ws_connects", m.ws_connects)?;
    d.set_item("ws_reconnects", m.ws_reconnects)?;
    d.set_item("ws_auths", m.ws_auths)?;
    Ok(d)
}

/// The Prometheus text exposition format of every live client's metrics, labelled
/// `venue` and `account`, names prefixed `tradeauth_`.
#[pyfunction]
pub(crate) fn prometheus_text(py: Python<'_>) -> String {
    py.detach(|| {
        let sessions: Vec<Session> = {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|weak| weak.upgrade().is_some());
            live.iter().filter_map(WeakSession::upgrade).collect()
        };
        let snapshots: Vec<(String, String, Metrics)> = sessions
            .iter()
            .map(|s| {
                (
                    s.venue().as_str().to_owned(),
                    s.account().to_owned(),
                    s.metrics(),
                )
            })
            .collect();
        // The upgraded clones drop here, outside the registry lock.
        drop(sessions);
        tradeauth::prometheus_text(
            snapshots
                .iter()
                .map(|(venue, account, m)| (venue.as_str(), account.as_str(), m.clone())),
        )
    })
}
