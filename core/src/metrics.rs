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
    /// The same counts through the `metrics` facade, labelled once the session knows
    /// its venue and account.
    #[cfg(feature = "metrics")]
    facade: std::sync::OnceLock<facade::Facade>,
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
    /// Registers this session's handles with the installed `metrics` recorder.
    #[cfg(feature = "metrics")]
    pub(crate) fn label(&self, venue: &str, account: &str) {
        let _ = self.facade.set(facade::Facade::new(venue, account));
    }

    /// Runs `f` on the facade handles, if registered.
    #[cfg(feature = "metrics")]
    fn fx(&self, f: impl FnOnce(&facade::Facade)) {
        if let Some(handles) = self.facade.get() {
            f(handles);
        }
    }

    /// Sets the facade's gauges (they are values at a moment, not counts).
    #[cfg(feature = "metrics")]
    pub(crate) fn gauges(&self, expires_in_seconds: Option<f64>, clock_skew_seconds: f64) {
        self.fx(|f| {
            f.expires_in.set(expires_in_seconds.unwrap_or(0.0));
            f.clock_skew.set(clock_skew_seconds);
        });
    }

    /// Counts what an event says happened.
    pub(crate) fn on_event(&self, event: &AuthEvent) {
        #[cfg(feature = "metrics")]
        self.fx(|f| f.on_event(event));
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
        #[cfg(feature = "metrics")]
        self.fx(|f| f.renewal_seconds.record(seconds));
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.renewal_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A request re-authenticated after the venue answered 401.
    pub(crate) fn reauth_after_401(&self) {
        bump(&self.reauths_after_401);
        #[cfg(feature = "metrics")]
        self.fx(|f| f.reauths_after_401.increment(1));
    }

    /// A credential adopted from the shared store.
    pub(crate) fn store_adoption(&self) {
        bump(&self.store_adoptions);
        #[cfg(feature = "metrics")]
        self.fx(|f| f.store_adoptions.increment(1));
    }

    /// A credential written to the shared store.
    pub(crate) fn store_write(&self) {
        bump(&self.store_writes);
        #[cfg(feature = "metrics")]
        self.fx(|f| f.store_writes.increment(1));
    }

    /// A renewal that waited for another process's lease.
    pub(crate) fn store_lease_wait(&self) {
        bump(&self.store_lease_waits);
        #[cfg(feature = "metrics")]
        self.fx(|f| f.store_lease_waits.increment(1));
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

/// One metric family of the text format: its name (without the `tradeauth_` prefix),
/// type, help and how to read a sample from a snapshot.
/// The `metrics` facade (feature `metrics`): one handle per metric and session, with the
/// names `prometheus_text` writes, labelled `venue` and `account`.
#[cfg(feature = "metrics")]
mod facade {
    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

    use crate::error::ErrorKind;
    use crate::event::AuthEvent;

    pub(crate) struct Facade {
        logins: Counter,
        refreshes: Counter,
        relogins: Counter,
        failures: Vec<Counter>,
        pub(super) renewal_seconds: Histogram,
        pub(super) reauths_after_401: Counter,
        pub(super) store_adoptions: Counter,
        pub(super) store_writes: Counter,
        pub(super) store_lease_waits: Counter,
        ws_connects: Counter,
        ws_reconnects: Counter,
        ws_auths: Counter,
        pub(super) expires_in: Gauge,
        pub(super) clock_skew: Gauge,
    }

    impl std::fmt::Debug for Facade {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Facade")
        }
    }

    impl Facade {
        pub(crate) fn new(venue: &str, account: &str) -> Self {
            let labels = [("venue", venue.to_owned()), ("account", account.to_owned())];
            let c = |name: &'static str| counter!(name, &labels);
            Facade {
                logins: c("tradeauth_logins_total"),
                refreshes: c("tradeauth_refreshes_total"),
                relogins: c("tradeauth_relogins_total"),
                failures: ErrorKind::ALL
                    .iter()
                    .map(|kind| {
                        let mut labelled = labels.to_vec();
                        labelled.push(("kind", kind.as_str().to_owned()));
                        counter!("tradeauth_renewal_failures_total", &labelled)
                    })
                    .collect(),
                renewal_seconds: histogram!("tradeauth_renewal_seconds", &labels),
                reauths_after_401: c("tradeauth_reauths_after_401_total"),
                store_adoptions: c("tradeauth_store_adoptions_total"),
                store_writes: c("tradeauth_store_writes_total"),
                store_lease_waits: c("tradeauth_store_lease_waits_total"),
                ws_connects: c("tradeauth_ws_connects_total"),
                ws_reconnects: c("tradeauth_ws_reconnects_total"),
                ws_auths: c("tradeauth_ws_auths_total"),
                expires_in: gauge!("tradeauth_expires_in_seconds", &labels),
                clock_skew: gauge!("tradeauth_clock_skew_seconds", &labels),
            }
        }

        pub(crate) fn on_event(&self, event: &AuthEvent) {
            let counter = match event {
                AuthEvent::LoggedIn => &self.logins,
                AuthEvent::Refreshed => &self.refreshes,
                AuthEvent::ReLoggedIn => &self.relogins,
                AuthEvent::Failed { kind, .. } => {
                    match ErrorKind::ALL.iter().position(|k| k == kind) {
                        Some(i) => &self.failures[i],
                        None => return,
                    }
                }
                AuthEvent::WsConnected => &self.ws_connects,
                AuthEvent::WsReconnecting { .. } => &self.ws_reconnects,
                AuthEvent::WsAuthenticated => &self.ws_auths,
                _ => return,
            };
            counter.increment(1);
        }
    }
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&Metrics) -> Option<f64>,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "logins_total",
        kind: "counter",
        help: "Successful logins.",
        value: |m| Some(m.logins as f64),
    },
    Family {
        name: "refreshes_total",
        kind: "counter",
        help: "Successful refreshes.",
        value: |m| Some(m.refreshes as f64),
    },
    Family {
        name: "relogins_total",
        kind: "counter",
        help: "Full logins after a refused refresh or a forced re-login.",
        value: |m| Some(m.relogins as f64),
    },
    Family {
        name: "expires_in_seconds",
        kind: "gauge",
        help: "Seconds until the credential served now expires.",
        value: |m| m.expires_in_seconds,
    },
    Family {
        name: "clock_skew_seconds",
        kind: "gauge",
        help: "The venue's clock minus this host's, from its Date header.",
        value: |m| Some(m.clock_skew_seconds),
    },
    Family {
        name: "reauths_after_401_total",
        kind: "counter",
        help: "Requests answered 401 that were re-authenticated and sent again.",
        value: |m| Some(m.reauths_after_401 as f64),
    },
    Family {
        name: "store_adoptions_total",
        kind: "counter",
        help: "Credentials adopted from the shared store.",
        value: |m| Some(m.store_adoptions as f64),
    },
    Family {
        name: "store_writes_total",
        kind: "counter",
        help: "Credentials written to the shared store.",
        value: |m| Some(m.store_writes as f64),
    },
    Family {
        name: "store_lease_waits_total",
        kind: "counter",
        help: "Renewals that waited for another process's store lease.",
        value: |m| Some(m.store_lease_waits as f64),
    },
    Family {
        name: "ws_connects_total",
        kind: "counter",
        help: "WebSocket connections opened.",
        value: |m| Some(m.ws_connects as f64),
    },
    Family {
        name: "ws_reconnects_total",
        kind: "counter",
        help: "WebSocket reconnect attempts.",
        value: |m| Some(m.ws_reconnects as f64),
    },
    Family {
        name: "ws_auths_total",
        kind: "counter",
        help: "WebSocket authentications the venue accepted.",
        value: |m| Some(m.ws_auths as f64),
    },
];

/// A label value as the text format quotes it: backslash, double quote and newline
/// escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value in the text format (`+Inf`, `-Inf`, `NaN` spelled as it wants).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

/// The Prometheus text exposition format (0.0.4) of these sessions' metrics: one sample
/// per session and family, labelled `venue` and `account` (an account name, never a
/// secret), names prefixed `tradeauth_`.
pub fn prometheus_text<'a>(
    sessions: impl IntoIterator<Item = (&'a str, &'a str, Metrics)>,
) -> String {
    use std::fmt::Write;
    let sessions: Vec<(String, Metrics)> = sessions
        .into_iter()
        .map(|(venue, account, m)| {
            (
                format!("venue=\"{}\",account=\"{}\"", label(venue), label(account)),
                m,
            )
        })
        .collect();
    let mut out = String::new();
    // Writing to a String cannot fail.
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP tradeauth_{} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE tradeauth_{} {}", family.name, family.kind);
        for (labels, m) in &sessions {
            if let Some(value) = (family.value)(m) {
                let _ = writeln!(
                    out,
                    "tradeauth_{}{{{labels}}} {}",
                    family.name,
                    number(value)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP tradeauth_renewal_failures_total Failed authentication attempts, by error kind."
    );
    let _ = writeln!(out, "# TYPE tradeauth_renewal_failures_total counter");
    for (labels, m) in &sessions {
        for (kind, n) in &m.renewal_failures {
            let _ = writeln!(
                out,
                "tradeauth_renewal_failures_total{{{labels},kind=\"{kind}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tradeauth_renewal_seconds How long each authentication took until it produced a credential."
    );
    let _ = writeln!(out, "# TYPE tradeauth_renewal_seconds histogram");
    for (labels, m) in &sessions {
        let h = &m.renewal_seconds;
        for (i, n) in h.cumulative.iter().enumerate() {
            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
            let _ = writeln!(
                out,
                "tradeauth_renewal_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "tradeauth_renewal_seconds_sum{{{labels}}} {}",
            number(h.sum_seconds)
        );
        let _ = writeln!(
            out,
            "tradeauth_renewal_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    out
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

    #[test]
    fn the_text_format_has_every_family_once_and_a_sample_per_session() {
        let counters = Counters::default();
        counters.on_event(&AuthEvent::LoggedIn);
        counters.on_event(&AuthEvent::Failed {
            kind: ErrorKind::Timeout,
            message: String::new(),
        });
        counters.renewal(Duration::from_millis(20));
        let a = counters.snapshot(Some(12.5), 0.0);
        let b = Counters::default().snapshot(None, -1.0);
        let text = prometheus_text([
            ("cadenza", "me@example.com", a),
            ("exchange", "quote\"back\\slash\nline", b),
        ]);
        assert_eq!(
            text.matches("# TYPE ").count(),
            FAMILIES.len() + 2,
            "{text}"
        );
        assert!(
            text.contains(
                "tradeauth_logins_total{venue=\"cadenza\",account=\"me@example.com\"} 1\n"
            )
        );
        assert!(text.contains(
            "tradeauth_logins_total{venue=\"exchange\",account=\"quote\\\"back\\\\slash\\nline\"} 0\n"
        ), "{text}");
        // No expiry: no sample rather than a made-up number.
        assert_eq!(text.matches("tradeauth_expires_in_seconds{").count(), 1);
        assert!(text.contains(
            "tradeauth_expires_in_seconds{venue=\"cadenza\",account=\"me@example.com\"} 12.5\n"
        ));
        assert!(text.contains("tradeauth_clock_skew_seconds{venue=\"exchange\",account=\"quote\\\"back\\\\slash\\nline\"} -1\n"));
        assert!(text.contains(
            "tradeauth_renewal_failures_total{venue=\"cadenza\",account=\"me@example.com\",kind=\"timeout\"} 1\n"
        ));
        assert!(text.contains(
            "tradeauth_renewal_seconds_bucket{venue=\"cadenza\",account=\"me@example.com\",le=\"0.01\"} 0\n"
        ));
        assert!(text.contains(
            "tradeauth_renewal_seconds_bucket{venue=\"cadenza\",account=\"me@example.com\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "tradeauth_renewal_seconds_bucket{venue=\"cadenza\",account=\"me@example.com\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains(
            "tradeauth_renewal_seconds_sum{venue=\"cadenza\",account=\"me@example.com\"} 0.02\n"
        ));
        assert!(text.contains("tradeauth_renewal_seconds_count{venue=\"exchange\",account=\"quote\\\"back\\\\slash\\nline\"} 0\n"));
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
