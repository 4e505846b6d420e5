//! What the sessions of one process share: the TLS configuration and HTTP connection
//! pool (one per trust and connect timeout, so ten thousand sessions to one venue hold a
//! handful of connections, not ten thousand), and the limit on renewal requests in
//! flight to one venue origin.
//!
//! The registry is swapped in whole ([`ArcSwapOption`]), never locked: a forked child
//! must not wait for a lock a parent thread held at fork time. It is tagged with the
//! process generation that built it; a child starts an empty one, so it never reuses its
//! parent's connections or a semaphore whose permits the parent's tasks held.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::Semaphore;

use super::Options;
use super::tls;
use crate::error::Result;

/// A TLS configuration and the connection pool built on it.
pub(crate) struct Transport {
    /// The rustls configuration (roots, versions, ALPN, session cache).
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The pooled HTTPS client (connections kept per origin).
    pub(crate) http: reqwest::Client,
    /// One [`FirstConnection`] per origin this pool has sessions for. Touched only when
    /// a session is built (never on a request), and never in another process generation
    /// (a forked child builds transports of its own).
    firsts: std::sync::Mutex<HashMap<String, Arc<FirstConnection>>>,
}

impl Transport {
    /// A transport for `options`' trust and connect timeout, shared by nobody yet.
    fn build(options: &Options) -> Result<Self> {
        let tls = tls::client_config(&options.extra_root_certs_pem)?;
        let http = tls::http_client(&tls, options.connect_timeout)?;
        Ok(Self {
            tls,
            http,
            firsts: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The first-connection gate of this pool for `base_url`'s origin.
    pub(crate) fn first_connection(&self, base_url: &reqwest::Url) -> Arc<FirstConnection> {
        let origin = base_url.origin().ascii_serialization();
        let mut firsts = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(firsts.entry(origin).or_default())
    }
}

/// Lets one request at a time through to an origin until one has been answered.
///
/// Until a connection to a venue has been made, the pool cannot know that the venue
/// speaks HTTP/2 (ALPN says so only on connecting), so every request of a first burst
/// opens a connection of its own: 64 sessions calling at once opened 39 connections.
/// Behind this gate the first answer leaves one pooled connection (multiplexed, with
/// HTTP/2) that the rest of the burst then shares. Once open it stays open: one atomic
/// load per request.
#[derive(Default)]
pub(crate) struct FirstConnection {
    open: std::sync::atomic::AtomicBool,
    turn: tokio::sync::Mutex<()>,
}

impl FirstConnection {
    /// Waits for this request's turn while no request has been answered yet; `None`
    /// (no wait) once one has. Hold the guard until the answer (or the failure).
    pub(crate) async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        use std::sync::atomic::Ordering;
        if self.open.load(Ordering::Acquire) {
            return None;
        }
        let turn = self.turn.lock().await;
        if self.open.load(Ordering::Acquire) {
            return None;
        }
        Some(turn)
    }

    /// A request was answered (any status): a connection is pooled; open the gate.
    pub(crate) fn answered(&self) {
        self.open.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// What makes two sessions' transports interchangeable: the certificates they trust and
/// how long they wait to connect (everything else is per request or per origin).
#[derive(Clone, PartialEq, Eq, Hash)]
struct TransportKey {
    roots: Vec<String>,
    connect_timeout: Duration,
}

/// One process generation's shared parts.
#[derive(Default)]
struct Registry {
    generation: u64,
    /// Weak: a transport lives as long as a session uses it.
    transports: HashMap<TransportKey, Weak<Transport>>,
    /// Per venue origin (`scheme://host:port`); kept for the process (a few per venue).
    renewals: HashMap<String, Arc<Semaphore>>,
}

static REGISTRY: ArcSwapOption<Registry> = ArcSwapOption::const_empty();

/// Looks `find` up in this generation's registry, or installs what `make` builds (with
/// dead transports pruned); a concurrent install by another thread wins and is used.
fn lookup_or_insert<T>(
    find: impl Fn(&Registry) -> Option<T>,
    make: impl Fn() -> Result<T>,
    insert: impl Fn(&mut Registry, &T),
) -> Result<T> {
    let generation = crate::process::generation();
    loop {
        let current = REGISTRY.load_full();
        let live = current.as_deref().filter(|r| r.generation == generation);
        if let Some(found) = live.and_then(&find) {
            return Ok(found);
        }
        let made = make()?;
        let mut next = Registry {
            generation,
            ..Registry::default()
        };
        if let Some(live) = live {
            next.transports = live
                .transports
                .iter()
                .filter(|(_, t)| t.strong_count() > 0)
                .map(|(k, t)| (k.clone(), Weak::clone(t)))
                .collect();
            next.renewals = live.renewals.clone();
        }
        insert(&mut next, &made);
        let previous = REGISTRY.compare_and_swap(&current, Some(Arc::new(next)));
        let won = match (previous.as_ref(), current.as_ref()) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if won {
            return Ok(made);
        }
    }
}

/// The transport for a session with `options`: the process's shared one for the same
/// trust and connect timeout, or a private one if `options.private_pool` asks for it.
pub(crate) fn transport(options: &Options) -> Result<Arc<Transport>> {
    if options.private_pool {
        return Ok(Arc::new(Transport::build(options)?));
    }
    let key = TransportKey {
        roots: options.extra_root_certs_pem.clone(),
        connect_timeout: options.connect_timeout,
    };
    lookup_or_insert(
        |registry| registry.transports.get(&key).and_then(Weak::upgrade),
        || Ok(Arc::new(Transport::build(options)?)),
        |registry, made| {
            registry
                .transports
                .insert(key.clone(), Arc::downgrade(made));
        },
    )
}

/// The limit on renewal requests in flight from this process to `base_url`'s origin
/// ([`crate::runtime::ProcessConfig::max_concurrent_renewals`] permits, shared by every
/// session to that origin built in this process generation).
pub(crate) fn renewal_limit(base_url: &reqwest::Url) -> Result<Arc<Semaphore>> {
    let origin = base_url.origin().ascii_serialization();
    lookup_or_insert(
        |registry| registry.renewals.get(&origin).cloned(),
        || {
            let permits = crate::runtime::process_config()?.max_concurrent_renewals;
            Ok(Arc::new(Semaphore::new(permits)))
        },
        |registry, made| {
            registry.renewals.insert(origin.clone(), Arc::clone(made));
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(roots: &[&str], connect_ms: u64) -> Options {
        Options {
            extra_root_certs_pem: roots.iter().map(|r| (*r).to_owned()).collect(),
            connect_timeout: Duration::from_millis(connect_ms),
            ..Options::default()
        }
    }

    #[test]
    fn sessions_with_the_same_trust_share_one_transport() {
        let a = transport(&options(&[], 1234)).unwrap();
        let b = transport(&options(&[], 1234)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a.tls, &b.tls));
    }

    #[test]
    fn another_connect_timeout_or_a_private_pool_gets_its_own() {
        let a = transport(&options(&[], 1235)).unwrap();
        let b = transport(&options(&[], 1236)).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let private = Options {
            private_pool: true,
            ..options(&[], 1235)
        };
        let c = transport(&private).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(!Arc::ptr_eq(&a.tls, &c.tls));
    }

    #[test]
    fn a_transport_nobody_uses_is_dropped_and_built_anew() {
        let a = transport(&options(&[], 1237)).unwrap();
        let weak = Arc::downgrade(&a);
        drop(a);
        assert!(
            weak.upgrade().is_none(),
            "the registry must not keep it alive"
        );
        let b = transport(&options(&[], 1237)).unwrap();
        assert_eq!(Arc::strong_count(&b), 1);
    }

    #[tokio::test]
    async fn the_first_connection_gate_lets_one_through_until_an_answer() {
        let transport = transport(&options(&[], 1238)).unwrap();
        let url = reqwest::Url::parse("https://venue.test/api/").unwrap();
        let gate = transport.first_connection(&url);
        assert!(Arc::ptr_eq(
            &gate,
            &transport.first_connection(&reqwest::Url::parse("https://venue.test/x").unwrap())
        ));
        let first = gate.enter().await.expect("the first request goes alone");
        // A second request waits while the first is unanswered.
        let waiting = tokio::time::timeout(Duration::from_millis(50), gate.enter()).await;
        assert!(
            waiting.is_err(),
            "a second request must wait for the first answer"
        );
        // A failure (no answer) lets the next one try, still alone.
        drop(first);
        let second = gate.enter().await.expect("still gated after a failure");
        gate.answered();
        drop(second);
        assert!(gate.enter().await.is_none(), "open once answered");
        assert!(gate.enter().await.is_none(), "and stays open");
    }

    #[test]
    fn one_renewal_limit_per_origin() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let a = renewal_limit(&url("https://venue.test:8443/api/")).unwrap();
        let b = renewal_limit(&url("https://venue.test:8443/other")).unwrap();
        let c = renewal_limit(&url("https://venue.test:9443/api/")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        let limit = crate::runtime::process_config()
            .unwrap()
            .max_concurrent_renewals;
        assert_eq!(a.available_permits(), limit);
    }
}
