//! Partner API: the client mints its own HS256 JWT `{clientId, iat, exp}` (15 min by
//! default) and sends it as a bearer token. Nothing goes over the network to get one.
//!
//! States: `Empty -> Minted -> (inside the refresh window) -> Minted`; a 401 mints anew.

use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::credential::{Credential, safe_valid_until};
use crate::error::{Error, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse};
use crate::machine::common::{self, Events};
use crate::machine::{Capabilities, Machine, MachineStatus, NewSecret, Venue};
use crate::secret::Secret;
use crate::time::{Now, deadline_from_unix_ms};

/// The page's 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(900);
/// Re-mint this long before expiry (capped at a quarter of the ttl).
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(60);

/// The JOSE header exactly as PyJWT writes it, `{"alg":"HS256","typ":"JWT"}` in base64url,
/// so the tokens are byte-identical to the page's Python `generate_token`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// What a Partner session needs.
#[derive(Debug, Clone)]
pub struct PartnerConfig {
    /// The partner client id (the `clientId` claim; also the account label).
    pub client_id: String,
    /// The HMAC secret key.
    pub secret_key: Secret,
    /// Token lifetime, `exp - iat` (default 900 s); whole seconds are used.
    pub ttl: Duration,
    /// How long before expiry to mint a new token (default 60 s, capped at ttl/4).
    pub refresh_window: Duration,
}

impl PartnerConfig {
    /// A config with the page's defaults (ttl 900 s, window 60 s).
    pub fn new(client_id: impl Into<String>, secret_key: impl Into<Secret>) -> Self {
        PartnerConfig {
            client_id: client_id.into(),
            secret_key: secret_key.into(),
            ttl: DEFAULT_TTL,
            refresh_window: DEFAULT_REFRESH_WINDOW,
        }
    }

    setters! {
        /// Set the token lifetime.
        with_ttl(value: Duration) => ttl = value;
        /// Set the refresh window.
        with_refresh_window(value: Duration) => refresh_window = value;
    }
}

/// Mint a Partner JWT, byte for byte what the page's Python `generate_token` gives with
/// PyJWT: header `{"alg":"HS256","typ":"JWT"}`, claims `{"clientId","iat","exp"}` in that
/// order, `exp = iat + ttl_secs`, HMAC-SHA256 by aws-lc-rs (through jsonwebtoken).
pub fn mint_token(client_id: &str, secret_key: &[u8], iat: u64, ttl_secs: u64) -> Result<Secret> {
    if client_id.is_empty() {
        return Err(Error::invalid_argument("Partner client id is empty"));
    }
    if secret_key.is_empty() {
        return Err(Error::invalid_argument("Partner secret key is empty"));
    }
    if ttl_secs == 0 {
        // exp == iat: the venue would refuse the token the moment it arrives.
        return Err(Error::invalid_argument(
            "Partner token ttl must be at least 1 second",
        ));
    }
    let exp = iat.checked_add(ttl_secs).ok_or_else(|| {
        Error::invalid_argument("Partner token iat + ttl overflows; use a realistic ttl")
    })?;
    // Built in place, one buffer per part: minting is on every reconnect of a strategy,
    // and allocation was a third of its cost.
    let mut claims = String::with_capacity(48 + client_id.len());
    claims.push_str(r#"{"clientId":"#);
    push_json_string_ascii(&mut claims, client_id);
    let _ = write!(claims, r#","iat":{iat},"exp":{exp}}}"#);
    let mut token = String::with_capacity(HEADER_B64.len() + claims.len().div_ceil(3) * 4 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret_key);
    let tag = aws_lc_rs::hmac::sign(&key, token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    Ok(Secret::from(token))
}

/// A JSON string literal the way Python's `json.dumps` writes it (`ensure_ascii=True`):
/// non-ASCII as `\uXXXX` (UTF-16, lowercase hex), so non-ASCII client ids match too.
fn push_json_string_ascii(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() && c != '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Why the next mint happens, which decides its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    First,
    Renew,
    Rejected,
}

struct Minted {
    credential: Credential,
    iat: u64,
    refresh_at: Instant,
    /// Signed by a secret since replaced: a re-mint in its second gives a new token.
    old_secret: bool,
}

/// The Partner state machine: mints locally, never sends a request.
pub struct PartnerMachine {
    client_id: String,
    secret_key: Secret,
    ttl_secs: u64,
    refresh_window: Duration,
    token: Option<Minted>,
    next: Reason,
    events: Events,
    last_error: Option<Error>,
}

impl PartnerMachine {
    /// Validate the config and make a machine with no token yet (the first
    /// `handle_timeout` / `poll_request` mints one).
    pub fn new(config: PartnerConfig) -> Result<Self> {
        let PartnerConfig {
            client_id,
            secret_key,
            ttl,
            refresh_window,
        } = config;
        if client_id.is_empty() || client_id.chars().any(char::is_control) {
            return Err(Error::invalid_argument(
                "Partner client id must be non-empty and without control characters",
            ));
        }
        if secret_key.is_empty() {
            return Err(Error::invalid_argument("Partner secret key is empty"));
        }
        let ttl_secs = ttl.as_secs();
        if !(1..=366 * 24 * 3600).contains(&ttl_secs) {
            return Err(Error::invalid_argument(
                "Partner token ttl must be between 1 second and 366 days",
            ));
        }
        Ok(PartnerMachine {
            client_id,
            secret_key,
            ttl_secs,
            refresh_window,
            token: None,
            next: Reason::First,
            events: Events::default(),
            last_error: None,
        })
    }

    /// The `iat` (Unix seconds) of the current token.
    pub fn issued_at(&self) -> Option<u64> {
        self.token.as_ref().map(|t| t.iat)
    }

    /// The `exp` (Unix seconds) of the current token.
    pub fn expires_at(&self) -> Option<u64> {
        self.token.as_ref().map(|t| t.iat + self.ttl_secs)
    }

    fn mint(&mut self, now: Now) {
        let iat = now.unix_secs();
        let token = match mint_token(
            &self.client_id,
            self.secret_key.expose().as_bytes(),
            iat,
            self.ttl_secs,
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(venue = "partner", account = %self.client_id, "{}", e.message());
                self.events.push(AuthEvent::failed(&e));
                self.last_error = Some(e);
                self.token = None;
                return;
            }
        };
        let exp_ms = (iat + self.ttl_secs).saturating_mul(1000);
        let deadline = deadline_from_unix_ms(now, exp_ms);
        let valid_until = safe_valid_until(now.instant, deadline);
        let credential = match Credential::bearer(&token, Some(valid_until), Some(exp_ms)) {
            Ok(c) => c,
            Err(e) => {
                // Unreachable for base64url text, but never panic on it.
                self.last_error = Some(e);
                return;
            }
        };
        let mut refresh_at = common::refresh_at(
            now.instant,
            deadline,
            valid_until,
            self.refresh_window,
            None,
        );
        if refresh_at <= now.instant {
            // A token lifetime too short for any window: re-mint no sooner than the next
            // whole second, when `iat` (and so the token) actually changes.
            refresh_at = next_whole_second(now);
        }
        let event = match self.next {
            Reason::First => AuthEvent::LoggedIn,
            Reason::Renew => AuthEvent::Refreshed,
            Reason::Rejected => AuthEvent::ReLoggedIn,
        };
        tracing::debug!(venue = "partner", account = %self.client_id, iat, event = event.as_str(), "minted token");
        self.events.push(event);
        self.token = Some(Minted {
            credential,
            iat,
            refresh_at,
            old_secret: false,
        });
        self.next = Reason::Renew;
        self.last_error = None;
    }
}

/// The monotonic instant at which the wall clock reaches its next whole second (when a
/// token's `iat`, and so the token, would change).
fn next_whole_second(now: Now) -> Instant {
    common::after(
        now.instant,
        Duration::from_millis(1000 - now.unix_ms % 1000),
    )
}

impl Machine for PartnerMachine {
    fn venue(&self) -> Venue {
        Venue::Partner
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            renewable: true,
            shareable: false,
            ws_auth: false,
            public: false,
        }
    }

    fn status(&self) -> MachineStatus {
        // Minting needs no request and is retried at every timeout: never stopped.
        if self.token.is_some() {
            MachineStatus::Active
        } else {
            MachineStatus::LoggedOut
        }
    }

    fn account(&self) -> &str {
        &self.client_id
    }

    fn handle_timeout(&mut self, now: Now) {
        let due = self
            .token
            .as_ref()
            .is_none_or(|t| now.instant >= t.refresh_at);
        if !due {
            return;
        }
        if let Some(t) = self.token.as_mut()
            && t.iat == now.unix_secs()
        {
            // Same second, same claims, same token: wait for the next whole second
            // rather than re-minting an identical token (and reporting a refresh).
            t.refresh_at = next_whole_second(now);
            return;
        }
        self.mint(now);
    }

    fn poll_request(&mut self, now: Now) -> Option<HttpRequest> {
        // Nothing is ever sent; minting is the only work, done here too so a driver that
        // only polls still gets a token.
        self.handle_timeout(now);
        None
    }

    fn handle_response(&mut self, _now: Now, _response: HttpResponse) -> Result<()> {
        Err(Error::invalid_argument(
            "Partner sends no requests, so it expects no responses; it was ignored",
        ))
    }

    fn handle_transport_error(&mut self, _now: Now, _error: &Error) {}

    fn replace_secret(&mut self, now: Now, secret: NewSecret) -> Result<()> {
        let _ = now;
        let NewSecret::PartnerSecret(secret_key) = secret else {
            return Err(secret.refused(Venue::Partner));
        };
        if secret_key.is_empty() {
            return Err(Error::invalid_argument("Partner secret key is empty"));
        }
        // The token minted with the old secret stays until its renewal; the old secret is
        // wiped as it drops here.
        self.secret_key = secret_key;
        if let Some(token) = self.token.as_mut() {
            token.old_secret = true;
        }
        Ok(())
    }

    fn handle_unauthorized(&mut self, now: Now) {
        // HS256 is deterministic: a token minted in the same second would be identical to
        // the rejected one, so a second call in that second (or a 401 on a token minted
        // this second) changes nothing.
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.iat == now.unix_secs() && !t.old_secret)
        {
            return;
        }
        self.token = None;
        self.next = Reason::Rejected;
        self.mint(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.token.as_ref().map(|t| t.refresh_at)
    }

    fn credential(&self, now: Instant) -> Option<Credential> {
        self.token
            .as_ref()
            .map(|t| &t.credential)
            .filter(|c| c.is_valid_at(now))
            .cloned()
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop()
    }

    fn is_busy(&self) -> bool {
        false
    }

    fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    fn logout(&mut self) {
        self.token = None;
        self.next = Reason::First;
        self.last_error = None;
    }
}

impl fmt::Debug for PartnerMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerMachine")
            .field("account", &self.client_id)
            .field("ttl_secs", &self.ttl_secs)
            .field("issued_at", &self.issued_at())
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_whole_second_of_the_wall_clock() {
        let base = Instant::now();
        let at = |unix_ms| next_whole_second(Now::new(base, unix_ms));
        assert_eq!(at(1_700_000_000_250), base + Duration::from_millis(750));
        assert_eq!(at(1_700_000_000_999), base + Duration::from_millis(1));
        assert_eq!(at(1_700_000_000_000), base + Duration::from_millis(1000));
    }
}
