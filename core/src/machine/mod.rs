//! The sans-IO authentication state machines, one venue per module.
//!
//! A machine does no I/O, reads no clock and draws no randomness: the driver feeds it the
//! time ([`Now`]) and the venue's answers (`handle_*`), and asks it what to send and what
//! to attach (`poll_*`, [`Machine::credential`]). This is the shape of quinn-proto and
//! rustls, and it lets every transition be tested with a manual clock.
//!
//! A driver loop looks like:
//!
//! ```no_run
//! # use tradeauth::{Machine, Now, HttpResponse};
//! # fn send(_: &tradeauth::HttpRequest) -> Result<HttpResponse, tradeauth::Error> { todo!() }
//! # fn run(m: &mut dyn Machine) {
//! let now = Now::capture();
//! m.handle_timeout(now);
//! while let Some(request) = m.poll_request(now) {
//!     match send(&request) {
//!         Ok(response) => {
//!             if let Err(e) = m.handle_response(Now::capture(), response) {
//!                 // back off per e.is_retryable() / e.retry_after(), or report e
//!                 break;
//!             }
//!         }
//!         Err(e) => { m.handle_transport_error(Now::capture(), &e); break; }
//!     }
//! }
//! while let Some(event) = m.poll_event() { /* log it */ }
//! let header = m.credential(Now::capture().instant);
//! // sleep until m.poll_timeout(), then repeat
//! # }
//! ```

use std::fmt;
use std::time::Instant;

use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse};
use crate::time::Now;

pub mod cadenza;
pub mod cascade;
pub(crate) mod common;
#[cfg(test)]
pub(crate) mod demo;
pub mod exchange;
pub mod partner;

pub use cadenza::{CadenzaConfig, CadenzaMachine};
pub use cascade::{CascadeConfig, CascadeMachine};
pub use common::DEFAULT_MAX_LIFETIME;
pub use exchange::{ExchangeConfig, ExchangeMachine};
pub use partner::{PartnerConfig, PartnerMachine};

/// The four venues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Venue {
    /// Cadenza: email + password login, rotating refresh token.
    Cadenza,
    /// Partner API: client-minted HS256 JWT.
    Partner,
    /// Cascade matcher: wallet challenge signed with EIP-191.
    Cascade,
    /// Exchange: permanent trader API key or static admin token.
    Exchange,
    /// The unit tests' demo venue (`machine/demo.rs`): a venue added the way
    /// ARCHITECTURE.md says, which no build outside those tests has.
    #[cfg(test)]
    Demo,
}

impl Venue {
    /// A stable lowercase name: `"cadenza"`, `"partner"`, `"cascade"`, `"exchange"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Venue::Cadenza => "cadenza",
            Venue::Partner => "partner",
            Venue::Cascade => "cascade",
            Venue::Exchange => "exchange",
            #[cfg(test)]
            Venue::Demo => "demo",
        }
    }

    /// [`Venue::as_str`] as a NUL-terminated C string, for the C ABI.
    pub const fn as_cstr(self) -> &'static std::ffi::CStr {
        match self {
            Venue::Cadenza => c"cadenza",
            Venue::Partner => c"partner",
            Venue::Cascade => c"cascade",
            Venue::Exchange => c"exchange",
            #[cfg(test)]
            Venue::Demo => c"demo",
        }
    }

    /// The name as the venue spells it, for messages: `"Cadenza"`, ...
    pub const fn display_name(self) -> &'static str {
        match self {
            Venue::Cadenza => "Cadenza",
            Venue::Partner => "Partner",
            Venue::Cascade => "Cascade",
            Venue::Exchange => "Exchange",
            #[cfg(test)]
            Venue::Demo => "Demo",
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a machine stands, in the terms a driver decides by (each machine's own
/// `state_name()` is for logs and tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineStatus {
    /// No credential and no step under way: the next `poll_request` starts a login, or,
    /// for venues that need no request (Partner), the next `handle_timeout` mints one.
    LoggedOut,
    /// A full login from its first step is due or in flight (Cadenza's login, Cascade's
    /// challenge). A process sharing a store reads the store once before sending it.
    LoggingIn,
    /// A later step of a login is due or in flight (Cascade's signed answer).
    Completing,
    /// Renewing with what the machine holds (Cadenza's refresh token) is due or in flight.
    Refreshing,
    /// Holding a credential, with nothing to send.
    Active,
    /// Stopped after a failure that retrying the same secret cannot fix (see
    /// [`Machine::last_error`]); `handle_unauthorized` or `logout` re-arms it.
    Stopped,
}

impl MachineStatus {
    /// Whether the machine's next `poll_request` may send something to the venue.
    pub const fn wants_request(self) -> bool {
        matches!(
            self,
            Self::LoggedOut | Self::LoggingIn | Self::Completing | Self::Refreshing
        )
    }
}

/// What a machine can do, fixed for its life: drivers and bindings ask this instead of
/// deciding by venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// A rejected credential can be replaced by a new one (false for Exchange's permanent
    /// key or token: retrying after a 401 would only repeat it).
    pub renewable: bool,
    /// Obtaining a credential costs a venue round trip that processes sharing a store
    /// can save (Cadenza, Cascade); a locally minted or static one is never shared.
    pub shareable: bool,
    /// [`Machine::ws_auth_message_for`] can build a WebSocket authentication message
    /// (Cascade; Exchange traders).
    pub ws_auth: bool,
    /// Requests may go without any credential (Exchange's public use).
    pub public: bool,
}

/// What a WebSocket message means for authentication.
#[derive(Debug, Clone, PartialEq)]
pub enum WsAuthReply {
    /// The venue accepted the auth message; `detail` is its answer (JSON-RPC `result`, or
    /// the whole `{"type":"authenticated",..}` object). No secrets are in it.
    Authenticated {
        /// The venue's answer.
        detail: serde_json::Value,
    },
    /// The venue refused it (e.g. `"Invalid Bearer Token"`).
    Rejected {
        /// The venue's message.
        message: String,
    },
    /// Not an authentication reply (market data, another request's answer, not JSON).
    Unrelated,
}

/// A venue's WebSocket message rules: stateless, fixed for the machine's life, so a
/// client asks once and classifies every message without the session lock. Sans-IO:
/// callers that run their own WebSocket stack use them as they are.
#[derive(Debug, Clone, Copy)]
pub struct WsRules {
    /// Whether an outgoing message needs an authenticated connection (a private channel
    /// or a trading operation): a client holds it until the venue has said authenticated,
    /// so it is never sent on a connection that is not.
    pub is_private: fn(&serde_json::Value) -> bool,
    /// Whether an inbound message on an authenticated connection says the venue no
    /// longer accepts the credential it authenticated with (Cascade's "Invalid Bearer
    /// Token" answer to a private call after a revocation): renew once, authenticate again.
    pub refuses_credential: fn(&serde_json::Value) -> bool,
    /// The message with its request id replaced (JSON-RPC venues), so a subscription
    /// replayed on a new connection gets an id of the client's own; `None`: the venue's
    /// requests have no id (send it unchanged).
    pub with_id: fn(&serde_json::Value, serde_json::Value) -> Option<serde_json::Value>,
    /// The request id an inbound reply answers (JSON-RPC venues); `None` for
    /// notifications and venues without ids.
    pub reply_id: fn(&serde_json::Value) -> Option<&serde_json::Value>,
}

impl WsRules {
    /// The rules of a venue without WebSocket auth: nothing private, no ids.
    pub const NONE: WsRules = WsRules {
        is_private: |_| false,
        refuses_credential: |_| false,
        with_id: |_, _| None,
        reply_id: |_| None,
    };
}

/// What a machine needs to resume a session obtained elsewhere (another process sharing a
/// credential store): the token, its venue expiry and, for Cadenza, the rotated refresh
/// token. `Debug` prints no secret.
#[derive(Clone)]
pub struct SessionSnapshot {
    /// The access token / JWT, without the `"Bearer "` prefix.
    pub token: crate::secret::Secret,
    /// The venue's expiry of `token`, Unix ms (venue clock).
    pub expires_at_ms: u64,
    /// When the token was obtained, Unix ms (venue clock): with `expires_at_ms` it gives
    /// the token's whole lifetime, so an adopting process schedules its refresh where the
    /// process that obtained it would have.
    pub obtained_at_ms: u64,
    /// Cadenza's current (rotated) refresh token.
    pub refresh_token: Option<crate::secret::Secret>,
    /// Cascade's session claims, as the venue sent them (not secret).
    pub claims: Option<serde_json::Value>,
}

impl fmt::Debug for SessionSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSnapshot")
            .field("token", &"[REDACTED]")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("obtained_at_ms", &self.obtained_at_ms)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_claims", &self.claims.is_some())
            .finish()
    }
}

/// A replacement for a secret a machine holds ([`Machine::replace_secret`]): rotation
/// without a restart. `Debug` prints no secret.
#[derive(Clone)]
pub enum NewSecret {
    /// Cadenza: the account password (used by the next login).
    Password(crate::secret::Secret),
    /// Partner: the HS256 secret key (used by the next mint).
    PartnerSecret(crate::secret::Secret),
    /// Exchange: the trader API key (served at once: it is the credential).
    ApiKey(crate::secret::Secret),
    /// Cascade: the delegate private key, hex (signs the next challenge).
    DelegateKey(crate::secret::Secret),
    /// Cascade: an external signer instead (signs the next challenge).
    Signer(crate::signer::ExternalSigner),
}

impl NewSecret {
    /// What it replaces, for messages and for keeping one replacement per kind.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            NewSecret::Password(_) => "password",
            NewSecret::PartnerSecret(_) => "secret_key",
            NewSecret::ApiKey(_) => "api_key",
            // Both replace the one delegate key source.
            NewSecret::DelegateKey(_) | NewSecret::Signer(_) => "delegate",
        }
    }

    /// The refusal of a machine that holds no secret of this kind.
    pub(crate) fn refused(&self, venue: Venue) -> Error {
        Error::invalid_argument(format!(
            "{} has no {} to replace",
            venue.display_name(),
            self.kind_name()
        ))
    }
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewSecret::{}([REDACTED])", self.kind_name())
    }
}

/// One venue's authentication state machine.
///
/// Inputs are `handle_*`, outputs `poll_*`. Time only moves forward; calling a `handle_*`
/// twice is harmless. Retries, backoff, timeouts and `Retry-After` sleeps belong to the
/// driver: a machine only classifies failures (see [`Error::is_retryable`]).
pub trait Machine: std::any::Any + Send {
    /// The venue this machine speaks to.
    fn venue(&self) -> Venue;

    /// What this machine can do (renewal, sharing, WebSocket auth, public use).
    fn capabilities(&self) -> Capabilities;

    /// Where the machine stands (what the driver decides by).
    fn status(&self) -> MachineStatus;

    /// Account label for logs/repr (email, client id, deposit address, username/"admin"/"public") — never a secret.
    fn account(&self) -> &str;

    /// Time-driven work: start a refresh when inside the window, mint (Partner), drop expired state, discard stale challenges.
    fn handle_timeout(&mut self, now: Now);

    /// The next HTTP request to send (login, refresh, challenge, challenge answer); None when nothing is needed or one is already in flight.
    ///
    /// It also does the time-driven work of [`Machine::handle_timeout`] first, so a driver
    /// that only calls this cannot send a stale request.
    #[must_use]
    fn poll_request(&mut self, now: Now) -> Option<HttpRequest>;

    /// A digest to be signed by the caller's external signer before the machine can go on
    /// (Cascade with [`crate::signer::ExternalSigner`]); the driver runs the signer (it is
    /// I/O) and hands its answer to [`Machine::handle_signature`]. `None` otherwise, and
    /// while one is being signed. The default never asks.
    fn poll_sign(&mut self, now: Now) -> Option<crate::signer::SignRequest> {
        let _ = now;
        None
    }

    /// The answer to the last [`Machine::poll_sign`]: the normalised 65-byte `r||s||v`,
    /// or the signer's failure (`Signing`). Err carries the classified failure; an answer
    /// nobody asked for is `InvalidArgument` and changes nothing.
    fn handle_signature(&mut self, now: Now, answer: Result<[u8; 65]>) -> Result<()> {
        let _ = (now, answer);
        Err(Error::invalid_argument(format!(
            "{} got a signature but none was asked for; it was ignored",
            self.venue().display_name()
        )))
    }

    /// Replaces a secret the machine holds (rotation): the next renewal uses it, the
    /// credential served now stays until then (Exchange's key is the credential, so it is
    /// served at once), and the old secret is wiped. A stopped machine (its secret was
    /// refused) is re-armed. A secret of a kind the venue does not use is refused.
    fn replace_secret(&mut self, now: Now, secret: NewSecret) -> Result<()> {
        let _ = now;
        Err(secret.refused(self.venue()))
    }

    /// The venue's reply to the request last returned by poll_request. Err carries the classified failure (and a Failed event is queued).
    ///
    /// A reply when no request is in flight is ignored and reported as `InvalidArgument`
    /// (no event, no state change).
    fn handle_response(&mut self, now: Now, response: HttpResponse) -> Result<()>;

    /// The request from poll_request got no reply (connect/TLS/timeout); forget it is in flight so it can be re-sent.
    fn handle_transport_error(&mut self, now: Now, error: &Error);

    /// The venue rejected the current credential (HTTP 401, WebSocket "Invalid Bearer Token"): drop it and re-authenticate. Calling it twice is harmless.
    ///
    /// It also re-arms a machine that stopped after a rejected login, so it is the one
    /// way (besides [`Machine::logout`]) to make it try the same secret again.
    fn handle_unauthorized(&mut self, now: Now);

    /// The caller wants a new credential now, before the refresh window (a forced
    /// refresh): renew the cheapest way the venue offers. By default that is the same as
    /// [`Machine::handle_unauthorized`]; Cadenza uses its refresh token instead of a login.
    fn force_refresh(&mut self, now: Now) {
        self.handle_unauthorized(now);
    }

    /// When handle_timeout next has work (refresh-window start incl. jitter, challenge staleness, expiry).
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The credential to attach, only if valid at `now` (never an expired one).
    fn credential(&self, now: Instant) -> Option<Credential>;

    /// Queued events, oldest first.
    #[must_use]
    fn poll_event(&mut self) -> Option<AuthEvent>;

    /// Whether a request is in flight (between poll_request and handle_response/handle_transport_error).
    fn is_busy(&self) -> bool;

    /// The last failure that left the machine without a credential (e.g. a rejected login), for callers that must report it.
    fn last_error(&self) -> Option<&Error>;

    /// Wipe every credential and secret-derived state (logout); the machine may log in again afterwards.
    fn logout(&mut self);

    /// The current session as a [`SessionSnapshot`], if the venue has one worth sharing
    /// (Cadenza, Cascade) and its credential is valid at `now`. The default has none.
    fn snapshot(&self, now: Instant) -> Option<SessionSnapshot> {
        let _ = now;
        None
    }

    /// Adopts a session obtained elsewhere (a shared store's record), replacing the current
    /// one; no event is queued (nothing was sent to the venue). Refused while a request is
    /// in flight, for an expired snapshot, or by venues with nothing to share (the default).
    fn restore(&mut self, now: Now, snapshot: &SessionSnapshot) -> Result<()> {
        let _ = (now, snapshot);
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} sessions cannot be restored from a snapshot",
                self.venue().display_name()
            ),
        ))
    }

    /// Whether the machine holds a single-use secret it would present on its next renewal
    /// (Cadenza's rotating refresh token): a driver sharing a store fences it first so
    /// that no two processes present the same one. The default holds none.
    fn holds_refresh_token(&self) -> bool {
        false
    }

    /// Drops (and wipes) that single-use secret, keeping the credential: the next renewal
    /// is a full login. For a driver that learns another process may have presented it.
    fn forget_refresh_token(&mut self) {}

    /// The WebSocket authentication message for the current credential, if the venue has
    /// one (Cascade, Exchange). `id` is the JSON-RPC id where the venue uses one.
    fn ws_auth_message(&self, now: Instant, id: serde_json::Value) -> Result<String> {
        let _ = (now, id);
        Err(no_ws_auth(self.venue()))
    }

    /// The WebSocket authentication message carrying `credential`: one this machine
    /// issued, or one a process sharing its account did (a store's record, a forked
    /// parent's). Refused, like [`Machine::ws_auth_message`], by machines without one.
    fn ws_auth_message_for(
        &self,
        credential: &Credential,
        id: serde_json::Value,
    ) -> Result<String> {
        let _ = (credential, id);
        Err(no_ws_auth(self.venue()))
    }

    /// Interpret a WebSocket message; a rejection of the credential is handled as
    /// [`Machine::handle_unauthorized`].
    fn handle_ws_reply(&mut self, now: Now, text: &str) -> WsAuthReply {
        let _ = (now, text);
        WsAuthReply::Unrelated
    }

    /// Interprets an inbound WebSocket message as the answer to the auth message sent
    /// with request `id`, and only that one: venues whose replies carry the request's id
    /// (Cascade's JSON-RPC) answer `Unrelated` for any other reply, so a caller's own
    /// request that fails is never taken for the auth answer. A rejection of the credential
    /// is handled as [`Machine::handle_unauthorized`]. The default (venues without ids)
    /// reads it as [`Machine::handle_ws_reply`] does.
    fn handle_ws_auth_reply(
        &mut self,
        now: Now,
        text: &str,
        id: &serde_json::Value,
    ) -> WsAuthReply {
        let _ = id;
        self.handle_ws_reply(now, text)
    }

    /// The venue's WebSocket message rules (which messages are private, which answer
    /// refuses the credential, request ids), for a client that runs the connection. The
    /// default (no WebSocket auth) has no private messages and no ids.
    fn ws_rules(&self) -> WsRules {
        WsRules::NONE
    }
}

/// The refusal of a machine whose venue has no WebSocket authentication.
fn no_ws_auth(venue: Venue) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "{} has no WebSocket authentication message",
            venue.display_name()
        ),
    )
}
