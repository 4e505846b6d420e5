//! Everything the listeners share: the start configuration, the clock, counters, faults,
//! the audit log and each venue's state.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::audit::AuditEntry;
use crate::clock::Clock;
use crate::common::lock;
use crate::config::SimConfig;
use crate::faults::{Fault, FaultKind, FaultQueue};
use crate::stats::StatsRegistry;
use crate::ws::{Command, Pace, Registry};
use crate::{Revoke, SimError, Venue, cadenza, cascade, exchange, partner};

pub(crate) struct Shared {
    /// The resolved start configuration; `reset` returns to it.
    pub(crate) config: SimConfig,
    pub(crate) clock: Clock,
    pub(crate) stats: StatsRegistry,
    pub(crate) faults: FaultQueue,
    pub(crate) audit: Mutex<Vec<AuditEntry>>,
    pub(crate) cadenza: Mutex<cadenza::State>,
    pub(crate) partner: Mutex<partner::State>,
    pub(crate) cascade: Mutex<cascade::State>,
    /// Per-start secrets; they survive a reset (which revokes the tokens instead).
    pub(crate) cascade_keys: cascade::Keys,
    pub(crate) exchange: Mutex<exchange::State>,
    /// Becomes `true` at shutdown; WebSocket sessions watch it.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Cascade's open WebSocket connections.
    pub(crate) cascade_ws: Registry,
    /// Exchange's open WebSocket connections.
    pub(crate) exchange_ws: Registry,
    /// Never has a connection: what `ws_registry` gives for the venues without WebSocket.
    no_ws: Registry,
    /// WebSocket faults armed at start, with the number of connections still to get them.
    pending_ws: Mutex<Vec<Fault>>,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, shutdown: watch::Receiver<bool>) -> Self {
        let shared = Self {
            clock: Clock::new(config.clock_offset_secs),
            stats: StatsRegistry::default(),
            faults: FaultQueue::default(),
            audit: Mutex::new(Vec::new()),
            cadenza: Mutex::new(cadenza::State::new(&config.cadenza)),
            partner: Mutex::new(partner::State::new(&config.partner)),
            cascade: Mutex::new(cascade::State::new(&config.cascade)),
            cascade_keys: cascade::Keys::generate(),
            exchange: Mutex::new(exchange::State::new(&config.exchange)),
            config,
            shutdown,
            cascade_ws: Registry::default(),
            exchange_ws: Registry::default(),
            no_ws: Registry::default(),
            pending_ws: Mutex::new(Vec::new()),
        };
        for fault in &shared.config.faults {
            if fault.is_ws() {
                // No connection is open yet: it applies to the first `count` that open.
                lock(&shared.pending_ws).push(fault.clone());
            } else {
                shared.faults.arm(fault.clone());
            }
        }
        shared
    }

    /// Arms a fault. A WebSocket fault (`ws_drop`, `ws_silence`) is not queued: it is
    /// sent to every connection of its venue open now; returns how many it reached (0 for
    /// the other kinds, which wait for requests).
    pub(crate) fn arm_fault(&self, fault: Fault) -> usize {
        match ws_command(&fault.kind) {
            Some(_) => self
                .ws_registry(fault.venue)
                .broadcast(|| ws_command(&fault.kind).unwrap_or(Command::Drop(None))),
            None => {
                self.faults.arm(fault);
                0
            }
        }
    }

    /// The commands of the start-up WebSocket faults that a newly opened connection of
    /// `venue` gets (each fault applies to its first `count` connections).
    pub(crate) fn take_pending_ws_faults(&self, venue: Venue) -> Vec<Command> {
        let mut pending = lock(&self.pending_ws);
        let commands = pending
            .iter_mut()
            .filter(|f| f.venue == venue && f.count > 0)
            .filter_map(|f| {
                f.count -= 1;
                ws_command(&f.kind)
            })
            .collect();
        pending.retain(|f| f.count > 0);
        commands
    }

    /// The open WebSocket connections of `venue` (always empty for Cadenza and Partner).
    pub(crate) fn ws_registry(&self, venue: Venue) -> &Registry {
        match venue {
            Venue::Cascade => &self.cascade_ws,
            Venue::Exchange => &self.exchange_ws,
            Venue::Cadenza | Venue::Partner => &self.no_ws,
        }
    }

    /// The configured orderbook delta period of `venue`'s WebSocket (0 = off).
    pub(crate) fn ws_delta_interval_ms(&self, venue: Venue) -> u64 {
        match venue {
            Venue::Cascade => self.config.cascade.ws_delta_interval_ms,
            Venue::Exchange => self.config.exchange.ws_delta_interval_ms,
            Venue::Cadenza | Venue::Partner => 0,
        }
    }

    /// Queues `count` orderbook deltas per subscription to every orderbook subscriber of
    /// `venue`'s WebSocket; returns the number of messages queued.
    pub(crate) fn burst(&self, venue: Venue, count: u64) -> Result<u64, SimError> {
        self.burst_paced(venue, count, Pace::default())
    }

    /// Like [`Shared::burst`], with the deltas stamped and/or spaced as `pace` says
    /// (`POST /ws/burst` with `stamp` / `interval_us`).
    pub(crate) fn burst_paced(
        &self,
        venue: Venue,
        count: u64,
        pace: Pace,
    ) -> Result<u64, SimError> {
        if count > MAX_BURST {
            return Err(SimError::Burst(format!(
                "count must be at most {MAX_BURST}, got {count}"
            )));
        }
        match venue {
            Venue::Cascade | Venue::Exchange => Ok(self.ws_registry(venue).burst(count, pace)),
            Venue::Cadenza | Venue::Partner => Err(SimError::Burst(format!(
                "{venue} has no WebSocket (use cascade or exchange)"
            ))),
        }
    }

    /// Back to the start state: no faults, zero counters, empty audit, the start clock
    /// offset and lifetimes, no issued tokens, nonces, orders or provisioned traders.
    pub(crate) fn reset(&self) {
        self.faults.clear();
        self.stats.reset();
        lock(&self.audit).clear();
        self.clock.set_offset_secs(self.config.clock_offset_secs);
        *lock(&self.cadenza) = cadenza::State::new(&self.config.cadenza);
        *lock(&self.partner) = partner::State::new(&self.config.partner);
        *lock(&self.cascade) = cascade::State::new(&self.config.cascade);
        *lock(&self.exchange) = exchange::State::new(&self.config.exchange);
    }

    /// Invalidates issued credentials; returns how many were revoked.
    pub(crate) fn revoke(&self, venue: Venue, what: Revoke) -> Result<usize, SimError> {
        match (venue, what) {
            (Venue::Cadenza, what) => Ok(lock(&self.cadenza).revoke(
                matches!(what, Revoke::RefreshTokens | Revoke::All),
                matches!(what, Revoke::AccessTokens | Revoke::All),
            )),
            (Venue::Cascade, Revoke::AccessTokens) => Ok(lock(&self.cascade).revoke(false)),
            (Venue::Cascade, Revoke::All) => Ok(lock(&self.cascade).revoke(true)),
            (Venue::Cascade, Revoke::RefreshTokens) => Err(SimError::Revoke(
                "cascade has no refresh tokens (revoke access_tokens or all)".into(),
            )),
            (Venue::Partner, _) => Err(SimError::Revoke(
                "partner tokens are minted by the client; there is nothing to revoke".into(),
            )),
            (Venue::Exchange, _) => Err(SimError::Revoke(
                "exchange api keys are permanent; there is nothing to revoke".into(),
            )),
        }
    }

    pub(crate) fn lifetimes(&self) -> Lifetimes {
        let cadenza = lock(&self.cadenza);
        let cascade = lock(&self.cascade);
        Lifetimes {
            cadenza: CadenzaLifetimes {
                access_ttl_secs: cadenza.access_ttl_secs,
                refresh_ttl_secs: cadenza.refresh_ttl_secs,
            },
            cascade: CascadeLifetimes {
                token_ttl_secs: cascade.token_ttl_secs,
                nonce_ttl_secs: cascade.nonce_ttl_secs,
            },
        }
    }

    pub(crate) fn set_lifetimes(&self, update: &LifetimeUpdate) -> Result<Lifetimes, SimError> {
        let bad = |why: String| Err(SimError::Lifetimes(why));
        // Which venue each lifetime belongs to, in the one table both checks read.
        let fields = [
            (Venue::Cadenza, "access_ttl_secs", update.access_ttl_secs),
            (Venue::Cadenza, "refresh_ttl_secs", update.refresh_ttl_secs),
            (Venue::Cascade, "token_ttl_secs", update.token_ttl_secs),
            (Venue::Cascade, "nonce_ttl_secs", update.nonce_ttl_secs),
        ];
        if let Some((_, name, _)) = fields.iter().find(|(_, _, v)| *v == Some(0)) {
            return bad(format!("{name} must be at least 1"));
        }
        let allowed: Vec<&str> = fields
            .iter()
            .filter(|(venue, _, _)| *venue == update.venue)
            .map(|(_, name, _)| *name)
            .collect();
        if let Some((_, name, _)) = fields
            .iter()
            .find(|(venue, _, v)| v.is_some() && *venue != update.venue)
        {
            return bad(format!("{name} does not apply to {}", update.venue));
        }
        if fields.iter().all(|(_, _, v)| v.is_none()) {
            return bad(format!(
                "no lifetime given for {} (it has: {})",
                update.venue,
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        match update.venue {
            Venue::Cadenza => {
                let mut s = lock(&self.cadenza);
                s.access_ttl_secs = update.access_ttl_secs.unwrap_or(s.access_ttl_secs);
                s.refresh_ttl_secs = update.refresh_ttl_secs.unwrap_or(s.refresh_ttl_secs);
            }
            Venue::Cascade => {
                let mut s = lock(&self.cascade);
                s.token_ttl_secs = update.token_ttl_secs.unwrap_or(s.token_ttl_secs);
                s.nonce_ttl_secs = update.nonce_ttl_secs.unwrap_or(s.nonce_ttl_secs);
            }
            Venue::Partner | Venue::Exchange => {}
        }
        Ok(self.lifetimes())
    }
}

/// The most deltas per subscription one burst may ask for.
const MAX_BURST: u64 = 1_000_000;

/// The command a WebSocket fault sends to each connection it applies to.
fn ws_command(kind: &FaultKind) -> Option<Command> {
    match kind {
        FaultKind::WsDrop { after_messages } => Some(Command::Drop(*after_messages)),
        FaultKind::WsSilence { secs } => Some(Command::Silence(Duration::from_secs(*secs))),
        _ => None,
    }
}

/// Current token lifetimes, as `GET /lifetimes` returns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetimes {
    /// Cadenza lifetimes.
    pub cadenza: CadenzaLifetimes,
    /// Cascade lifetimes.
    pub cascade: CascadeLifetimes,
}

/// Cadenza token lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CadenzaLifetimes {
    /// Access token lifetime in seconds.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl_secs: u64,
}

/// Cascade lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CascadeLifetimes {
    /// JWT lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Challenge nonce lifetime in seconds.
    pub nonce_ttl_secs: u64,
}

/// A change of one venue's lifetimes (`POST /lifetimes`); fields left `None` keep their
/// value. Cadenza takes `access_ttl_secs`/`refresh_ttl_secs`, Cascade
/// `token_ttl_secs`/`nonce_ttl_secs`. New lifetimes apply to what is issued (or, for
/// nonces, checked) from then on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifetimeUpdate {
    /// The venue to change.
    pub venue: Venue,
    /// Cadenza access token lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_ttl_secs: Option<u64>,
    /// Cadenza refresh token lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_ttl_secs: Option<u64>,
    /// Cascade JWT lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_secs: Option<u64>,
    /// Cascade nonce lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_ttl_secs: Option<u64>,
}

/// Builder methods that set one lifetime of a [`LifetimeUpdate`], one per field and each
/// named after it, so they cannot drift apart.
macro_rules! lifetime_setters {
    ($($(#[$doc:meta])* $field:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, secs: u64) -> Self {
                self.$field = Some(secs);
                self
            }
        )*
    };
}

impl LifetimeUpdate {
    /// An update of `venue` that changes nothing yet.
    pub fn new(venue: Venue) -> Self {
        Self {
            venue,
            access_ttl_secs: None,
            refresh_ttl_secs: None,
            token_ttl_secs: None,
            nonce_ttl_secs: None,
        }
    }

    lifetime_setters! {
        /// Cadenza: set the access token lifetime.
        access_ttl_secs;
        /// Cadenza: set the refresh token lifetime.
        refresh_ttl_secs;
        /// Cascade: set the JWT lifetime.
        token_ttl_secs;
        /// Cascade: set the nonce lifetime.
        nonce_ttl_secs;
    }
}
