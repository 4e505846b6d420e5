//! Partner API: the client mints its own HS256 JWT `{clientId, iat, exp}` (15 min by
//! default) and sends it as a bearer token. Nothing goes over the network to get one.
//!
//! States: `Empty -> Minted -> (inside the refresh window) -> Minted`; a 401 mints anew.

use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::credential::{Credential, safe_valid_until};
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::hmac::{HmacSha256Key, with_cached_key};
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
/// order, `exp = iat + ttl_secs`, HMAC-SHA256.
///
/// Each thread keeps the HMAC key schedule of the last secret it minted with (wiped when
/// another secret replaces it or the thread ends), so minting again with the same secret
/// skips the key set-up.
pub fn mint_token(client_id: &str, secret_key: &[u8], iat: u64, ttl_secs: u64) -> Result<Secret> {
    if client_id.is_empty() {
        return Err(Error::invalid_argument("Partner client id is empty"));
    }
    if secret_key.is_empty() {
        return Err(Error::invalid_argument("Partner secret key is empty"));
    }
    with_cached_key(secret_key, |key| mint_with(client_id, key, iat, ttl_secs))
}

/// [`mint_token`] with a key schedule already made (a Partner session keeps its own).
/// Both callers have refused an empty client id.
fn mint_with(client_id: &str, key: &HmacSha256Key, iat: u64, ttl_secs: u64) -> Result<Secret> {
    if ttl_secs == 0 {
        // exp == iat: the venue would refuse the token the moment it arrives.
        return Err(Error::invalid_argument(
            "Partner token ttl must be at least 1 second",
        ));
    }
    let exp = iat.checked_add(ttl_secs).ok_or_else(|| {
        Error::invalid_argument("Partner token iat + ttl overflows; use a realistic ttl")
    })?;
    // Built in place, one buffer per part, each allocated at its final size: minting is
    // on every reconnect of a strategy, and allocation was a third of its cost.
    let mut claims = String::with_capacity(72 + client_id.len());
    claims.push_str(r#"{"clientId":"#);
    push_json_string_ascii(&mut claims, client_id);
    let mut claims = claims.into_bytes();
    claims.extend_from_slice(br#","iat":"#);
    push_decimal(&mut claims, iat);
    claims.extend_from_slice(br#","exp":"#);
    push_decimal(&mut claims, exp);
    claims.push(b'}');
    let mut token = Vec::with_capacity(HEADER_B64.len() + base64url_len(claims.len()) + 45);
    token.extend_from_slice(HEADER_B64.as_bytes());
    token.push(b'.');
    push_base64url(&mut token, &claims);
    let tag = key.sign(&token);
    token.push(b'.');
    push_base64url(&mut token, &tag);
    // Only ASCII was written, so this never fails.
    let token = String::from_utf8(token)
        .map_err(|_| Error::new(ErrorKind::Signing, "a minted token was not ASCII"))?;
    Ok(Secret::from(token))
}

/// The base64url alphabet (RFC 4648, section 5).
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How many characters base64url without padding makes of `len` bytes.
fn base64url_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

/// `input` in base64url without padding, as JWTs carry it. Written here rather than with
/// the `base64` crate, whose engine and per-chunk UTF-8 check were a sixth of a mint.
fn push_base64url(out: &mut Vec<u8>, input: &[u8]) {
    let char_at = |group: u32, shift: u32| BASE64URL[((group >> shift) & 63) as usize];
    let start = out.len();
    out.resize(start + base64url_len(input.len()), 0);
    let (triples, rest) = input.as_chunks::<3>();
    let (quads, tail) = out[start..].as_chunks_mut::<4>();
    for (&[a, b, c], quad) in triples.iter().zip(quads) {
        let group = u32::from_be_bytes([0, a, b, c]);
        *quad = [
            char_at(group, 18),
            char_at(group, 12),
            char_at(group, 6),
            char_at(group, 0),
        ];
    }
    // The last one or two bytes make two or three characters (`tail` is that long).
    let group = match *rest {
        [a] => u32::from_be_bytes([0, a, 0, 0]),
        [a, b] => u32::from_be_bytes([0, a, b, 0]),
        _ => 0,
    };
    for (slot, shift) in tail.iter_mut().zip([18, 12, 6]) {
        *slot = char_at(group, shift);
    }
}

/// `value` in decimal, without `fmt`'s machinery (a fifth of a mint's time went to
/// formatting the two numbers).
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
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
    /// The secret's HMAC key schedule, made once per secret (the secret text itself is not
    /// kept: the schedule is all minting needs).
    key: HmacSha256Key,
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
        let key = HmacSha256Key::new(secret_key.expose().as_bytes());
        Ok(PartnerMachine {
            client_id,
            key,
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
        let token = match mint_with(&self.client_id, &self.key, iat, self.ttl_secs) {
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
        // The token minted with the old secret stays until its renewal; the old secret and
        // its schedule are wiped as they drop here.
        self.key = HmacSha256Key::new(secret_key.expose().as_bytes());
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
    fn decimal_like_display() {
        for value in [0, 1, 9, 10, 99, 100, 1_700_000_000, 1_700_000_900, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, value);
            assert_eq!(out, format!("x{value}").into_bytes());
        }
    }

    #[test]
    fn base64url_like_the_base64_crate() {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..=70 {
            for start in [0, 1, 2, 62, 63, 64, 190, 191, 192, 250] {
                let input = &bytes[start..start + len];
                let mut out = b"x".to_vec();
                push_base64url(&mut out, input);
                let want = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input);
                assert_eq!(
                    out,
                    format!("x{want}").into_bytes(),
                    "{len} bytes from {start}"
                );
                assert_eq!(base64url_len(len), want.len());
            }
        }
    }

    #[test]
    fn the_next_whole_second_of_the_wall_clock() {
        let base = Instant::now();
        let at = |unix_ms| next_whole_second(Now::new(base, unix_ms));
        assert_eq!(at(1_700_000_000_250), base + Duration::from_millis(750));
        assert_eq!(at(1_700_000_000_999), base + Duration::from_millis(1));
        assert_eq!(at(1_700_000_000_000), base + Duration::from_millis(1000));
    }
}
