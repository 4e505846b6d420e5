//! The header a caller attaches to an authenticated request.

use std::fmt;
use std::time::{Duration, Instant};

use crate::clock;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::time::safety_margin;

/// `authorization`, the header bearer tokens travel in.
pub const AUTHORIZATION: &str = "authorization";
/// `x-api-key`, the header Exchange trader keys travel in.
pub const X_API_KEY: &str = "x-api-key";

const BEARER_PREFIX: &str = "Bearer ";

/// A credential ready to attach: one header name and its (secret) value, plus when it
/// stops being safe to use.
#[derive(Clone)]
pub struct Credential {
    header_name: &'static str,
    header_value: Secret,
    valid_until: Option<Instant>,
    /// `valid_until` on the raw monotonic and realtime clocks for the hot path's coarse
    /// check (see `crate::clock`); unknown fields are 0 (the precise clock then decides).
    coarse_until: clock::Coarse,
    expires_at_ms: Option<u64>,
}

impl Credential {
    /// A credential from a header name and complete value (e.g. `"Bearer eyJ.."`). The
    /// value must be valid HTTP header text (visible ASCII and spaces, no control
    /// characters), so a token can never inject another header.
    pub fn new(
        header_name: &'static str,
        header_value: Secret,
        valid_until: Option<Instant>,
        expires_at_ms: Option<u64>,
    ) -> Result<Self> {
        let v = header_value.expose();
        if v.is_empty() || !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(Error::invalid_argument(format!(
                "the {header_name} header value is empty or contains characters that are not \
                 allowed in an HTTP header (control characters, newlines, non-ASCII)"
            )));
        }
        Ok(Credential {
            header_name,
            header_value,
            valid_until,
            coarse_until: valid_until.map_or_else(clock::Coarse::default, clock::coarse_deadline),
            expires_at_ms,
        })
    }

    /// `authorization: Bearer <token>`. The token must be non-empty visible ASCII (no
    /// spaces, no control characters).
    pub fn bearer(
        token: &Secret,
        valid_until: Option<Instant>,
        expires_at_ms: Option<u64>,
    ) -> Result<Self> {
        check_token_text(token.expose(), "bearer token")?;
        let mut value = String::with_capacity(BEARER_PREFIX.len() + token.len());
        value.push_str(BEARER_PREFIX);
        value.push_str(token.expose());
        Credential::new(
            AUTHORIZATION,
            Secret::from(value),
            valid_until,
            expires_at_ms,
        )
    }

    /// The header name, lowercase: `"authorization"` or `"x-api-key"`.
    pub fn header_name(&self) -> &'static str {
        self.header_name
    }

    /// The complete header value, e.g. `"Bearer eyJ.."` (secret: do not log).
    pub fn header_value(&self) -> &str {
        self.header_value.expose()
    }

    /// The token or key itself, without the `"Bearer "` prefix (secret: do not log).
    pub fn token(&self) -> &str {
        let v = self.header_value.expose();
        v.strip_prefix(BEARER_PREFIX).unwrap_or(v)
    }

    /// The instant, on the deadline clock ([`crate::time::deadline_now`], which counts
    /// time suspended), from which this credential must no longer be used (already
    /// shortened by the safety margin); `None` if it never expires.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// The venue's own wall-clock expiry in Unix ms, for display; `None` if it has none.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at_ms
    }

    /// Whether the credential may still be used at `now`.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|until| now < until)
    }

    /// Whether the credential may still be used now: the hot path's check. It is
    /// `is_valid_at(deadline_now())`, but reads two coarse clocks (a few ns each) while the
    /// deadline is more than 100 ms away on both, and the precise deadline clock otherwise
    /// (closer to it, or after a suspend or a wall-clock step), so it never says "valid"
    /// past `valid_until` (see the `clock` module for why).
    #[inline]
    pub fn is_valid_now(&self) -> bool {
        match self.valid_until {
            None => true,
            Some(until) => clock::surely_before(&self.coarse_until) || clock::now() < until,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("header_name", &self.header_name)
            .field("header_value", &"[REDACTED]")
            .field("valid_until", &self.valid_until)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// The instant until which a token that arrived at `arrived` and that the venue honours
/// until `deadline` may be handed out: `deadline - min(10 s, lifetime / 10)`.
pub fn safe_valid_until(arrived: Instant, deadline: Instant) -> Instant {
    let lifetime = deadline.saturating_duration_since(arrived);
    deadline
        .checked_sub(safety_margin(lifetime))
        .unwrap_or(arrived)
}

/// Check that a token or key from a venue or a caller can go into a header: non-empty,
/// visible ASCII only. `what` names the value in the error (the value is never echoed).
pub(crate) fn check_token_text(token: &str, what: &str) -> Result<()> {
    if token.is_empty() {
        return Err(Error::invalid_argument(format!("the {what} is empty")));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_argument(format!(
            "the {what} contains whitespace, control or non-ASCII characters, which cannot \
             go into an HTTP header"
        )));
    }
    Ok(())
}

/// The remaining lifetime of a credential at `now` (zero if it has expired, `None` if it
/// never expires). Handy for drivers deciding whether to wait for a refresh.
pub fn remaining(credential: &Credential, now: Instant) -> Option<Duration> {
    credential
        .valid_until
        .map(|until| until.saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sleeps (on the thread's timer, not the clock under test) until just past `until`,
    /// at most 2 s: a deadline clock that is stuck or slow cannot make a test wait for it.
    fn sleep_past(until: Instant) {
        let left = until.saturating_duration_since(clock::now());
        std::thread::sleep(left.min(Duration::from_secs(2)) + Duration::from_millis(2));
    }

    #[test]
    fn bearer_and_validity() {
        let t0 = clock::now();
        let c = Credential::bearer(
            &Secret::from("eyJ.abc.def"),
            Some(t0 + Duration::from_secs(5)),
            Some(1),
        )
        .unwrap();
        assert_eq!(c.header_name(), "authorization");
        assert_eq!(c.header_value(), "Bearer eyJ.abc.def");
        assert_eq!(c.token(), "eyJ.abc.def");
        assert!(c.is_valid_at(t0));
        assert!(c.is_valid_at(t0 + Duration::from_millis(4999)));
        assert!(!c.is_valid_at(t0 + Duration::from_secs(5)));
        assert!(c.is_valid_now());
        assert_eq!(remaining(&c, t0), Some(Duration::from_secs(5)));
        let debug = format!("{c:?}");
        assert!(!debug.contains("eyJ.abc.def"), "{debug}");
        // Redacted, not empty: what a log line needs to tell credentials apart.
        assert!(
            debug.contains("authorization") && debug.contains("[REDACTED]"),
            "{debug}"
        );
        assert!(debug.contains("expires_at_ms: Some(1)"), "{debug}");
    }

    #[test]
    fn rejects_header_injection() {
        for bad in ["", "a b", "tok\r\nx-evil: 1", "tok\n", "t\u{0}k", "tök"] {
            assert!(
                Credential::bearer(&Secret::from(bad), None, None).is_err(),
                "{bad:?}"
            );
        }
        assert!(Credential::new(X_API_KEY, Secret::from("k\r\n"), None, None).is_err());
        let c = Credential::new(X_API_KEY, Secret::from("exch_1"), None, None).unwrap();
        assert_eq!(c.token(), "exch_1");
        assert!(c.is_valid_at(clock::now() + Duration::from_secs(1_000_000)));
    }

    #[test]
    fn valid_now_never_past_the_deadline() {
        let t0 = clock::now();
        let make = |until: Option<Instant>| {
            Credential::bearer(&Secret::from("eyJ.abc.def"), until, None).unwrap()
        };
        assert!(make(None).is_valid_now());
        assert!(make(Some(t0 + Duration::from_secs(3600))).is_valid_now());
        assert!(!make(Some(t0)).is_valid_now());
        if let Some(past) = t0.checked_sub(Duration::from_secs(60)) {
            assert!(!make(Some(past)).is_valid_now());
        }
        // A deadline a few ms ahead: valid now, and no longer once it has passed, even
        // though the coarse clock may still lag behind it (the precise clock decides).
        let until = clock::now() + Duration::from_millis(20);
        let short = make(Some(until));
        assert!(short.is_valid_now() || clock::now() >= until);
        sleep_past(until);
        assert!(!short.is_valid_now());
        // Agrees with is_valid_at(clock::now()) either side of a deadline.
        for ms in [0u64, 1, 5, 50, 99, 100, 101, 150, 1000, 60_000] {
            let c = make(Some(clock::now() + Duration::from_millis(ms)));
            let before = clock::now();
            let now_valid = c.is_valid_now();
            if now_valid {
                assert!(c.is_valid_at(before), "{ms} ms");
            } else {
                assert!(!c.is_valid_at(clock::now()), "{ms} ms");
            }
        }
    }

    #[test]
    fn a_long_lived_credential_expires_in_real_time_on_the_coarse_path() {
        // A deadline well beyond the coarse clock's slack: the hot path answers from the
        // coarse clock alone at first. A stuck or wrong coarse clock would keep vouching
        // for it after the deadline has passed in real time; this waits for that moment.
        let until = clock::now() + clock::SLACK + Duration::from_millis(150);
        let c = Credential::bearer(&Secret::from("eyJ.abc.def"), Some(until), None).unwrap();
        assert!(c.is_valid_now());
        assert!(
            clock::surely_before(&c.coarse_until),
            "the coarse clock should vouch for a deadline 250 ms ahead"
        );
        sleep_past(until);
        assert!(!c.is_valid_now(), "valid after its deadline passed");
        assert!(!clock::surely_before(&c.coarse_until));
        assert!(!c.is_valid_at(clock::now()));
    }

    #[test]
    fn accessors_report_what_the_credential_was_built_with() {
        let t0 = clock::now();
        let until = t0 + Duration::from_secs(90);
        let c = Credential::bearer(
            &Secret::from("eyJ.abc.def"),
            Some(until),
            Some(1_700_000_000_123),
        )
        .unwrap();
        assert_eq!(c.valid_until(), Some(until));
        assert_eq!(c.expires_at_ms(), Some(1_700_000_000_123));
        assert_eq!(remaining(&c, t0), Some(Duration::from_secs(90)));
        assert_eq!(
            remaining(&c, until + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        let forever = Credential::new(X_API_KEY, Secret::from("exch_1"), None, None).unwrap();
        assert_eq!(forever.valid_until(), None);
        assert_eq!(forever.expires_at_ms(), None);
        assert_eq!(remaining(&forever, t0), None);
        assert_eq!(forever.header_name(), "x-api-key");
    }

    #[test]
    fn margin_applied() {
        let t0 = clock::now();
        assert_eq!(
            safe_valid_until(t0, t0 + Duration::from_secs(3600)),
            t0 + Duration::from_secs(3590)
        );
        assert_eq!(
            safe_valid_until(t0, t0 + Duration::from_secs(3)),
            t0 + Duration::from_millis(2700)
        );
        assert_eq!(safe_valid_until(t0, t0), t0);
    }
}
