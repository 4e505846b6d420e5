//! Per-session operational counters (issue #19): what a dashboard or an alert needs to
//! see a token that will not renew, a venue whose clock drifts or a WebSocket that keeps
//! reconnecting. Counted where the session already publishes its events, read as a
//! plain snapshot with [`Session::metrics`](crate::Session::metrics).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::ErrorKind;
use crate::event::AuthEvent;

/// Upper bounds, in seconds, of the renewal-latency histogram's buckets (the Prometheus
/// client defaults); a last, unbounded bucket follows.
pub const RENEWAL_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram in the Prometheus layout.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Histogram {
    /// Each bucket's upper bound in seconds ([`RENEWAL_BUCKETS`]).
    pub bounds: Vec<f64>,
    /// Cumulative counts: `cumulative[i]` observations took at most `bounds[i]`; one more
    /// entry than `bounds`, the last being every observation (the `+Inf` bucket).
    pub cumulative: Vec<u64>,
    /// The sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// How many observations there were.
    pub count: u64,
}

/// A snapshot of one session's counters and gauges. Field names are the same in every
/// layer (Rust, C, Python); Prometheus adds the `tradeauth_` prefix and unit suffixes.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Successful logins (a Partner mint, a Cascade challenge login, a Cadenza login).
    pub logins: u64,
    /// Successful refreshes (a forced `refresh()` of a Cadenza session counts as one).
    pub refreshes: u64,
    /// Full logins after a refresh was refused, or a forced re-login.
    pub relogins: u64,
    /// Failed authentication attempts, by error kind (`ErrorKind::as_str`); kinds that
    /// never failed are absent.
    pub renewal_failures: BTreeMap<&'static str, u64>,
    /// How long each authentication that went to the venue took until it produced a
    /// credential (the first login included).
    pub renewal_seconds: Histogram,
    /// Seconds until the credential served now expires (negative never: 0 when it has);
    /// `None` with no credential or one without an expiry (an Exchange key).
    pub expires_in_seconds: Option<f64>,
    /// The venue's clock minus this host's, in seconds, from its last plausible `Date`.
    pub clock_skew_seconds: f64,
    /// Requests the venue answered 401 that were re-authenticated and sent once more.
    pub reauths_after_401: u64,
    /// Credentials adopted from the shared store (renewed by another process).
    pub store_adoptions: u64,
    /// Credentials this session wrote to the shared store.
    pub store_writes: u64,
    /// Renewals that found the store lease held by another process and waited.
    pub store_lease_waits: u64,
    /// WebSocket connections opened (by every `websocket()` client of the session).
    pub ws_connects: u64,
    /// WebSocket reconnect attempts after a close, an error or silence.
    pub ws_reconnects: u64,
    /// WebSocket connections the venue authenticated (re-auths on an open one included).
    pub ws_auths: u64,
}

/// The live counters behind [`Metrics`]: plain atomics, so a forked child that copied
/// them keeps counting from the parent's figures without touching the parent.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logins: AtomicU64,
    refreshes: AtomicU64,
    relogins: AtomicU64,
    failures: [AtomicU64; ErrorKind::ALL.len()],
    /// Per bucket (not cumulative), the last for slower than every bound.
    renewal_buckets: [AtomicU64; RENEWAL_BUCKETS.len() + 1],
    renewal_micros: AtomicU64,
    reauths_after_401: AtomicU64,
    store_adoptions: AtomicU64,
    store_writes: AtomicU64,
    store_lease_waits: AtomicU64,
    ws_connects: AtomicU64,
    ws_reconnects: AtomicU64,
    ws_auths: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Counts what an event says happened.
    pub(crate) fn on_event(&self, event: &AuthEvent) {
        match event {
            AuthEvent::LoggedIn => bump(&self.logins),
            AuthEvent::Refreshed => bump(&self.refreshes),
            AuthEvent::ReLoggedIn => bump(&self.relogins),
            AuthEvent::Failed { kind, .. } => {
                if let Some(i) = ErrorKind::ALL.iter().position(|k| k == kind) {
                    bump(&self.failures[i]);
                }
            }
            AuthEvent::WsConnected => bump(&self.ws_connects),
            AuthEvent::WsReconnecting { .. } => bump(&self.ws_reconnects),
            AuthEvent::WsAuthenticated => bump(&self.ws_auths),
            AuthEvent::Distrusted { .. }
            | AuthEvent::WsRejected { .. }
            | AuthEvent::WsDisconnected { .. }
            | AuthEvent::WsResubscribed { .. } => {}
        }
    }

    /// One authentication that produced a credential after `took`.
    pub(crate) fn renewal(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = RENEWAL_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(RENEWAL_BUCKETS.len());
        bump(&self.renewal_buckets[bucket]);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.renewal_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A request re-authenticated after the venue answered 401.
    pub(crate) fn reauth_after_401(&self) {
        bump(&self.reauths_after_401);
    }

    /// A credential adopted from the shared store.
    pub(crate) fn store_adoption(&self) {
        bump(&self.store_adoptions);
    }

    /// A credential written to the shared store.
    pub(crate) fn store_write(&self) {
        bump(&self.store_writes);
    }

    /// A renewal that waited for another process's lease.
    pub(crate) fn store_lease_wait(&self) {
        bump(&self.store_lease_waits);
    }

    /// The snapshot, with the gauges the session computes at read time.
    pub(crate) fn snapshot(
        &self,
        expires_in_seconds: Option<f64>,
        clock_skew_seconds: f64,
    ) -> Metrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let renewal_failures = ErrorKind::ALL
            .iter()
            .zip(&self.failures)
            .filter_map(|(kind, n)| Some((kind.as_str(), load(n))).filter(|(_, n)| *n > 0))
            .collect();
        let mut cumulative = Vec::with_capacity(self.renewal_buckets.len());
        let mut total = 0u64;
        for bucket in &self.renewal_buckets {
            total = total.saturating_add(load(bucket));
            cumulative.push(total);
        }
        Metrics {
            logins: load(&self.logins),
            refreshes: load(&self.refreshes),
            relogins: load(&self.relogins),
            renewal_failures,
            renewal_seconds: Histogram {
                bounds: RENEWAL_BUCKETS.to_vec(),
                cumulative,
                // Lossless below 2^53 microseconds (285 years of renewals).
                sum_seconds: load(&self.renewal_micros) as f64 / 1e6,
                count: total,
            },
            expires_in_seconds,
            clock_skew_seconds,
            reauths_after_401: load(&self.reauths_after_401),
            store_adoptions: load(&self.store_adoptions),
            store_writes: load(&self.store_writes),
            store_lease_waits: load(&self.store_lease_waits),
            ws_connects: load(&self.ws_connects),
            ws_reconnects: load(&self.ws_reconnects),
            ws_auths: load(&self.ws_auths),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_land_in_their_bucket_and_the_buckets_are_cumulative() {
        let counters = Counters::default();
        counters.renewal(Duration::from_millis(5)); // on the first bound: in it
        counters.renewal(Duration::from_millis(6));
        counters.renewal(Duration::from_millis(300));
        counters.renewal(Duration::from_secs(11)); // past every bound
        let h = counters.snapshot(None, 0.0).renewal_seconds;
        assert_eq!(h.bounds, RENEWAL_BUCKETS.to_vec());
        assert_eq!(h.cumulative, vec![1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4]);
        assert_eq!(h.count, 4);
        assert!((h.sum_seconds - 11.311).abs() < 1e-9, "{}", h.sum_seconds);
    }

    #[test]
    fn events_count_what_they_say_and_failures_by_kind() {
        let counters = Counters::default();
        for event in [
            AuthEvent::LoggedIn,
            AuthEvent::Refreshed,
            AuthEvent::Refreshed,
            AuthEvent::ReLoggedIn,
            AuthEvent::Failed {
                kind: ErrorKind::Timeout,
                message: String::new(),
            },
            AuthEvent::Failed {
                kind: ErrorKind::Timeout,
                message: String::new(),
            },
            AuthEvent::Failed {
                kind: ErrorKind::Unauthorized,
                message: String::new(),
            },
            AuthEvent::WsConnected,
            AuthEvent::WsReconnecting {
                attempt: 1,
                delay_ms: 0,
            },
            AuthEvent::WsAuthenticated,
            AuthEvent::WsAuthenticated,
            AuthEvent::Distrusted {
                message: String::new(),
            },
        ] {
            counters.on_event(&event);
        }
        counters.reauth_after_401();
        counters.store_adoption();
        counters.store_write();
        counters.store_write();
        counters.store_lease_wait();
        let m = counters.snapshot(Some(1.5), -2.0);
        assert_eq!((m.logins, m.refreshes, m.relogins), (1, 2, 1));
        assert_eq!(
            m.renewal_failures,
            BTreeMap::from([("timeout", 2), ("unauthorized", 1)])
        );
        assert_eq!((m.ws_connects, m.ws_reconnects, m.ws_auths), (1, 1, 2));
        assert_eq!(m.reauths_after_401, 1);
        assert_eq!(
            (m.store_adoptions, m.store_writes, m.store_lease_waits),
            (1, 2, 1)
        );
        assert_eq!(m.expires_in_seconds, Some(1.5));
        assert_eq!(m.clock_skew_seconds, -2.0);
        assert_eq!(m.renewal_seconds.cumulative, vec![0; 12]);
    }
}
