//! Exact per-venue counters. All of them live under one mutex so a snapshot is consistent
//! and an increment is never lost (tests assert "exactly one login").

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::Venue;
use crate::common::lock;

/// Counters of one venue. Every venue has the same fields; those that do not apply stay 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueStats {
    /// Successful logins (Cadenza password logins, Cascade `POST /auth` successes,
    /// Partner: distinct valid tokens first seen).
    pub logins: u64,
    /// Successful Cadenza token refreshes.
    pub refreshes: u64,
    /// Cascade challenges issued.
    pub challenges: u64,
    /// Credentials issued (Cadenza access tokens, Cascade JWTs, Exchange provisioned keys).
    pub tokens_issued: u64,
    /// Successful WebSocket authentications.
    pub ws_auths: u64,
    /// WebSocket connections accepted (upgrades completed), cumulative since start/reset.
    pub ws_connections: u64,
    /// Private WebSocket messages received on a connection not authenticated at that
    /// moment (Exchange: `subscribe` to `orders`/`fills`, `place_order`, `cancel_order`;
    /// Cascade: `subscribe` to `orders`/`positions`, `orders.list`, `positions.list`,
    /// `order.create`, where an expired or revoked token counts as not authenticated).
    pub ws_private_before_auth: u64,
    /// Text messages the server sent on its WebSockets (replies, snapshots, deltas,
    /// order events); automatic pongs are not counted.
    pub ws_messages_sent: u64,
    /// Cadenza token families revoked because an already rotated refresh token was
    /// presented again (only with `cadenza.revoke_family_on_reuse`).
    pub family_revocations: u64,
    /// Every HTTP request the venue received (a WebSocket upgrade counts as one).
    pub requests: u64,
    /// Requests being handled right now.
    pub in_flight: u64,
    /// The most requests ever handled at the same time (since start or reset): tests of
    /// single-flight clients assert it stays 1.
    pub max_in_flight: u64,
    /// TLS connections accepted (handshake completed), cumulative since start/reset.
    pub connections: u64,
    /// TLS connections open right now (a WebSocket's included).
    pub open_connections: u64,
    /// The most TLS connections ever open at the same time (since start or reset): what
    /// a client's connection pool costs the venue.
    pub max_open_connections: u64,
    /// Rejected requests and WebSocket messages by reason (error code or text, or
    /// `fault:<status|drop|malformed>` for injected faults).
    pub rejections: BTreeMap<String, u64>,
    /// Cascade: the last [`MAX_SIGNED`] accepted `POST /auth` signatures with the payload
    /// they sign, oldest first, so a test can check them with another library (e.g.
    /// eth_account's `recover_message`). A spent nonce's signature is not a secret.
    #[serde(default)]
    pub signed: Vec<SignedPayload>,
}

/// How many accepted Cascade signatures [`VenueStats::signed`] keeps.
pub const MAX_SIGNED: usize = 32;

/// One accepted Cascade challenge signature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPayload {
    /// The `signing_payload` text that was signed (EIP-191).
    pub payload: String,
    /// The signature as posted (`0x` + 130 hex).
    pub signature: String,
    /// The address it recovers to, lowercase `0x` hex.
    pub signer: String,
}

impl VenueStats {
    /// How many rejections had this reason.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejections.get(reason).copied().unwrap_or(0)
    }

    /// All rejections, whatever the reason.
    pub fn total_rejections(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// Counters of all four venues, as `GET /stats` returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Cadenza counters.
    pub cadenza: VenueStats,
    /// Partner counters.
    pub partner: VenueStats,
    /// Cascade counters.
    pub cascade: VenueStats,
    /// Exchange counters.
    pub exchange: VenueStats,
}

impl Stats {
    /// The counters of one venue.
    pub fn venue(&self, venue: Venue) -> &VenueStats {
        match venue {
            Venue::Cadenza => &self.cadenza,
            Venue::Partner => &self.partner,
            Venue::Cascade => &self.cascade,
            Venue::Exchange => &self.exchange,
        }
    }

    fn venue_mut(&mut self, venue: Venue) -> &mut VenueStats {
        match venue {
            Venue::Cadenza => &mut self.cadenza,
            Venue::Partner => &mut self.partner,
            Venue::Cascade => &mut self.cascade,
            Venue::Exchange => &mut self.exchange,
        }
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct StatsRegistry {
    inner: Mutex<Stats>,
}

impl StatsRegistry {
    pub(crate) fn update(&self, venue: Venue, f: impl FnOnce(&mut VenueStats)) {
        f(lock(&self.inner).venue_mut(venue));
    }

    pub(crate) fn reject(&self, venue: Venue, reason: &str) {
        self.update(venue, |s| {
            *s.rejections.entry(reason.to_owned()).or_insert(0) += 1;
        });
    }

    pub(crate) fn snapshot(&self) -> Stats {
        lock(&self.inner).clone()
    }

    /// Zeroes every counter but the live gauges (requests in flight, connections open),
    /// which stay true, and restarts the peaks from them.
    pub(crate) fn reset(&self) {
        let mut stats = lock(&self.inner);
        let mut fresh = Stats::default();
        for venue in [
            Venue::Cadenza,
            Venue::Partner,
            Venue::Cascade,
            Venue::Exchange,
        ] {
            let (old, new) = (stats.venue(venue), fresh.venue_mut(venue));
            new.in_flight = old.in_flight;
            new.max_in_flight = old.in_flight;
            new.open_connections = old.open_connections;
            new.max_open_connections = old.open_connections;
        }
        *stats = fresh;
    }
}
