//! `tradeauth-sim`: a local HTTPS + WebSocket simulator of the four venues tradeauth
//! speaks to (Cadenza, Partner, Cascade, Exchange), plus a control listener.
//!
//! Each venue is its own HTTPS listener on 127.0.0.1 with a certificate signed by a CA
//! made at start. The simulator implements each venue page's endpoints and error texts,
//! with a settable clock, token lifetimes, revocation, injected faults and exact counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tradeauth_sim::SimError> {
//! use tradeauth_sim::{Fault, Sim, SimConfig, Venue};
//! let sim = Sim::start(SimConfig::default()).await?;
//! sim.arm_fault(Fault::status(Venue::Cadenza, 503).on_path("/api/v3/auth/login"));
//! println!("{} trusts {}", sim.urls().cadenza, sim.ca_path().display());
//! assert_eq!(sim.stats().cadenza.logins, 0);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
// Helpers return `Result<_, Response>` so a handler can answer an error with `?`-like early
// returns; the response is built once per request and moved, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod audit;
mod cadenza;
mod cascade;
mod clock;
mod common;
mod config;
mod control;
mod exchange;
mod faults;
mod layer;
mod partner;
mod server;
mod state;
mod stats;
mod tls;
mod ws;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use audit::AuditEntry;
pub use config::{
    CadenzaConfig, CadenzaUser, CascadeAccount, CascadeConfig, ExchangeConfig, ExchangeTrader,
    PartnerClient, PartnerConfig, Ports, SimConfig, demo,
};
pub use faults::{Fault, FaultKind};
pub use state::{CadenzaLifetimes, CascadeLifetimes, LifetimeUpdate, Lifetimes};
pub use stats::{MAX_SIGNED, SignedPayload, Stats, VenueStats};

use state::Shared;

/// Everything that can go wrong starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is invalid; the message names the field.
    #[error("invalid config: {0}")]
    Config(String),
    /// A fault spec is invalid.
    #[error("invalid fault: {0}")]
    Fault(String),
    /// A venue name is not one of cadenza, partner, cascade, exchange.
    #[error("unknown venue {0:?} (expected cadenza, partner, cascade or exchange)")]
    UnknownVenue(String),
    /// A revocation does not apply to the venue.
    #[error("cannot revoke: {0}")]
    Revoke(String),
    /// A WebSocket burst was asked of a venue without WebSocket.
    #[error("cannot burst: {0}")]
    Burst(String),
    /// A lifetime update is invalid or does not apply to the venue.
    #[error("invalid lifetimes: {0}")]
    Lifetimes(String),
    /// The certificates or the TLS configuration could not be made.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A listener could not be bound or the CA file could not be written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One of the four simulated venues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    /// Cadenza: email + password, rotating refresh tokens.
    Cadenza,
    /// Partner API: client-minted HS256 JWT.
    Partner,
    /// Cascade matcher: wallet challenge + EIP-191 signature -> JWT.
    Cascade,
    /// Exchange: permanent API keys, admin bearer token.
    Exchange,
}

impl Venue {
    /// All four venues.
    pub const ALL: [Venue; 4] = [
        Venue::Cadenza,
        Venue::Partner,
        Venue::Cascade,
        Venue::Exchange,
    ];

    /// The lowercase name used in JSON, flags and fault specs.
    pub fn name(self) -> &'static str {
        match self {
            Venue::Cadenza => "cadenza",
            Venue::Partner => "partner",
            Venue::Cascade => "cascade",
            Venue::Exchange => "exchange",
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Venue {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| SimError::UnknownVenue(s.to_owned()))
    }
}

/// What to revoke (`POST /revoke`'s `what`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoke {
    /// Cadenza refresh tokens.
    RefreshTokens,
    /// Cadenza access tokens, or Cascade JWTs.
    AccessTokens,
    /// Everything: both Cadenza kinds, or Cascade JWTs and open challenges.
    All,
}

/// Base URLs of the five listeners, e.g. `https://127.0.0.1:40001` (no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUrls {
    /// Cadenza base URL (paths start with `/api/v3`).
    pub cadenza: String,
    /// Partner API base URL.
    pub partner: String,
    /// Cascade matcher base URL (WebSocket at `/ws`).
    pub cascade: String,
    /// Exchange base URL (paths start with `/api/v1`, WebSocket at `/ws`).
    pub exchange: String,
    /// Control API base URL.
    pub control: String,
}

impl SimUrls {
    /// The base URL of one venue.
    pub fn venue(&self, venue: Venue) -> &str {
        match venue {
            Venue::Cadenza => &self.cadenza,
            Venue::Partner => &self.partner,
            Venue::Cascade => &self.cascade,
            Venue::Exchange => &self.exchange,
        }
    }
}

/// A running simulator. Dropping it (or [`Sim::shutdown`]) closes every listener.
pub struct Sim {
    shared: Arc<Shared>,
    urls: SimUrls,
    ca_pem: String,
    ca_path: PathBuf,
    /// The temp dir holding the CA when no `ca_out` was given; removed at shutdown.
    temp_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("urls", &self.urls)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

async fn bind(port: u16, what: &str) -> Result<TcpListener, SimError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| SimError::Io {
            context: format!("cannot listen for {what} on 127.0.0.1:{port}"),
            source,
        })
}

fn url_of(listener: &TcpListener) -> Result<String, SimError> {
    let addr = listener.local_addr().map_err(|source| SimError::Io {
        context: "cannot read a listener's address".into(),
        source,
    })?;
    Ok(format!("https://{addr}"))
}

/// Writes the CA PEM to `ca_out`, or to a fresh temp dir (returned so it can be removed).
fn write_ca(ca_out: Option<&Path>, pem: &str) -> Result<(PathBuf, Option<PathBuf>), SimError> {
    let io = |context: String| move |source| SimError::Io { context, source };
    let (path, temp_dir) = match ca_out {
        Some(path) => (path.to_owned(), None),
        None => {
            let dir = std::env::temp_dir()
                .join(format!("tradeauth-sim-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
            (dir.join("ca.pem"), Some(dir))
        }
    };
    std::fs::write(&path, pem).map_err(io(format!(
        "cannot write the CA certificate to {}",
        path.display()
    )))?;
    Ok((path, temp_dir))
}

impl Sim {
    /// Validates `config`, makes the CA and certificate, binds the five listeners and
    /// starts serving. Must be called inside a tokio runtime.
    pub async fn start(mut config: SimConfig) -> Result<Sim, SimError> {
        config.validate()?;
        // jsonwebtoken picks its provider from crate features and panics if another
        // workspace member also enables `rust_crypto`; naming aws-lc-rs (the workspace's
        // provider) up front avoids that. An error means one is already installed.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        config.resolve(clock::Clock::new(config.clock_offset_secs).now());
        let pki = tls::generate()?;
        let ports = config.ports;
        let listeners = [
            bind(ports.cadenza, "cadenza").await?,
            bind(ports.partner, "partner").await?,
            bind(ports.cascade, "cascade").await?,
            bind(ports.exchange, "exchange").await?,
            bind(ports.control, "control").await?,
        ];
        let urls = SimUrls {
            cadenza: url_of(&listeners[0])?,
            partner: url_of(&listeners[1])?,
            cascade: url_of(&listeners[2])?,
            exchange: url_of(&listeners[3])?,
            control: url_of(&listeners[4])?,
        };
        let (ca_path, temp_dir) = write_ca(config.ca_out.as_deref(), &pki.ca_pem)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, shutdown_rx.clone()));
        let acceptor = TlsAcceptor::from(pki.server_config);
        let routers = [
            (
                "cadenza",
                Some(Venue::Cadenza),
                cadenza::router(shared.clone()),
            ),
            (
                "partner",
                Some(Venue::Partner),
                partner::router(shared.clone()),
            ),
            (
                "cascade",
                Some(Venue::Cascade),
                cascade::router(shared.clone()),
            ),
            (
                "exchange",
                Some(Venue::Exchange),
                exchange::router(shared.clone()),
            ),
            ("control", None, control::router(shared.clone())),
        ];
        let listeners = listeners
            .into_iter()
            .zip(routers)
            .map(|(listener, (name, venue, router))| {
                server::spawn(
                    name,
                    venue.map(|venue| (shared.clone(), venue)),
                    listener,
                    acceptor.clone(),
                    router,
                    shutdown_rx.clone(),
                )
            })
            .collect();
        tracing::info!(?urls, ca = %ca_path.display(), "simulator listening");
        Ok(Sim {
            shared,
            urls,
            ca_pem: pki.ca_pem,
            ca_path,
            temp_dir,
            shutdown,
            listeners,
        })
    }

    /// Base URLs of the four venues and the control listener.
    pub fn urls(&self) -> &SimUrls {
        &self.urls
    }

    /// The CA certificate (PEM) that signed the listeners' certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the CA certificate PEM was written.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// A consistent snapshot of every venue's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// A snapshot of one venue's counters.
    pub fn venue_stats(&self, venue: Venue) -> VenueStats {
        self.stats().venue(venue).clone()
    }

    /// Arms a fault for the venue's next `fault.count` matching requests (after the faults
    /// armed before it). A WebSocket fault (`ws_drop`, `ws_silence`) is not queued: it
    /// acts at once on the venue's open connections, and its `count` is ignored.
    pub fn arm_fault(&self, fault: Fault) {
        self.shared.arm_fault(fault);
    }

    /// Arms a fault like [`Sim::arm_fault`]; returns how many open WebSocket connections
    /// a WebSocket fault reached (0 for the request faults).
    pub fn arm_fault_counted(&self, fault: Fault) -> usize {
        self.shared.arm_fault(fault)
    }

    /// Pushes `count` orderbook deltas, as fast as possible, to every orderbook
    /// subscription on `venue`'s WebSocket (Cascade, Exchange); returns the number of
    /// messages queued (`count` times the number of subscriptions).
    pub fn burst(&self, venue: Venue, count: u64) -> Result<u64, SimError> {
        self.shared.burst(venue, count)
    }

    /// How many WebSocket connections of `venue` are open now.
    pub fn ws_open_connections(&self, venue: Venue) -> usize {
        self.shared.ws_registry(venue).len()
    }

    /// The faults still armed, with their remaining counts, in arming order.
    pub fn armed_faults(&self) -> Vec<Fault> {
        self.shared.faults.list()
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Revokes issued credentials (Cadenza tokens, Cascade JWTs and challenges); returns
    /// how many. Partner and Exchange have nothing to revoke and return an error.
    pub fn revoke(&self, venue: Venue, what: Revoke) -> Result<usize, SimError> {
        self.shared.revoke(venue, what)
    }

    /// Sets sim time = system time + `secs` (clamped to about +-100 years).
    pub fn set_clock_offset_secs(&self, secs: i64) {
        self.shared.clock.set_offset_secs(secs);
    }

    /// Moves the simulated clock by `secs` relative to its current offset.
    pub fn advance_clock_secs(&self, secs: i64) {
        let offset = self.shared.clock.offset_secs().saturating_add(secs);
        self.shared.clock.set_offset_secs(offset);
    }

    /// The current clock offset in seconds.
    pub fn clock_offset_secs(&self) -> i64 {
        self.shared.clock.offset_secs()
    }

    /// The simulated now, in Unix milliseconds.
    pub fn now_unix_ms(&self) -> i64 {
        self.shared.clock.now_unix_ms()
    }

    /// Changes one venue's token lifetimes; returns all current lifetimes.
    pub fn set_lifetimes(&self, update: LifetimeUpdate) -> Result<Lifetimes, SimError> {
        self.shared.set_lifetimes(&update)
    }

    /// The current token lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.shared.lifetimes()
    }

    /// Back to the start state: faults cleared, counters zeroed, audit emptied, clock
    /// offset and lifetimes as configured, issued tokens, nonces, orders and provisioned
    /// traders forgotten.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Cadenza's audit log, oldest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        common::lock(&self.shared.audit).clone()
    }

    /// Stops accepting, closes every connection and WebSocket, and waits for the
    /// listeners to close.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for listener in std::mem::take(&mut self.listeners) {
            // A listener task only ends by returning; a join error would mean it panicked,
            // which has already been reported by the runtime.
            let _ = listener.await;
        }
    }
}

// Tests of other crates share one `Sim` between tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sim>();
};

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        for listener in &self.listeners {
            listener.abort();
        }
        if let Some(dir) = &self.temp_dir {
            // Best effort: the file is a public test CA, so a leftover is harmless.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
