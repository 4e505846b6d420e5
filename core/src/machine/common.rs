//! Pieces every machine shares: the event queue, JSON parsing of venue answers, and the
//! classification of failed answers into [`Error`]s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::credential::safe_valid_until;
use crate::error::{Error, ErrorKind};
use crate::event::AuthEvent;
use crate::http::HttpResponse;
use crate::time::{Now, SplitMix64, deadline_from_unix_ms, instant_after};

/// Events kept if the driver never drains them; the oldest are dropped first so memory
/// stays bounded.
const MAX_EVENTS: usize = 256;

/// Longest venue-provided text copied into an error message.
const MAX_DETAIL: usize = 200;

/// A bounded FIFO of events.
#[derive(Debug, Default)]
pub(crate) struct Events(VecDeque<AuthEvent>);

impl Events {
    pub(crate) fn push(&mut self, event: AuthEvent) {
        if self.0.len() == MAX_EVENTS {
            self.0.pop_front();
        }
        self.0.push_back(event);
    }

    pub(crate) fn pop(&mut self) -> Option<AuthEvent> {
        self.0.pop_front()
    }
}

/// Parse a venue answer as JSON, or explain why it is not.
pub(crate) fn parse_json(venue: &str, what: &str, response: &HttpResponse) -> Result<Value, Error> {
    serde_json::from_slice::<Value>(&response.body).map_err(|e| {
        Error::protocol(format!(
            "{venue} {what} answer is not JSON (HTTP {}, {} bytes, {}); check that the base \
             URL points at the {venue} API",
            response.status,
            response.body.len(),
            e.classify_name()
        ))
        .with_status(response.status)
    })
}

/// serde_json's error category without the position text (which could quote the body).
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// Take a required non-empty string field out of a JSON object (moved, not copied, so the
/// caller can wrap a token in a `Secret` without leaving a copy behind).
pub(crate) fn take_string(
    obj: &mut serde_json::Map<String, Value>,
    field: &str,
    venue: &str,
    what: &str,
) -> Result<String, Error> {
    match obj.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Error::protocol(format!(
            "{venue} {what} answer has an empty `{field}`"
        ))),
        Some(other) => Err(Error::protocol(format!(
            "{venue} {what} answer has `{field}` of type {}, expected a string",
            type_name(&other)
        ))),
        None => Err(Error::protocol(format!(
            "{venue} {what} answer has no `{field}` field"
        ))),
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A venue-provided text made safe for an error message: control characters replaced,
/// length capped, and any known secret blotted out in case the venue echoed it.
pub(crate) fn sanitize(text: &str, secrets: &[&str]) -> String {
    let plain: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut s = redact(&plain, secrets);
    if s.chars().count() > MAX_DETAIL {
        s = s.chars().take(MAX_DETAIL).collect::<String>() + "...";
    }
    s.trim().to_owned()
}

/// `text` with every one of `secrets` replaced by `[REDACTED]`. Secrets shorter than 4
/// characters are left alone: blotting out every "a" would only garble the text.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if s.contains(secret) {
            s = s.replace(secret, "[REDACTED]");
        }
    }
    s
}

/// The error text inside a venue's error answer, whichever common shape it uses:
/// `{"error":{"code","message"}}`, `{"error":"..."}`, `{"message":"..."}`,
/// `{"code":..,"message":..}`; or a short plain-text body.
pub(crate) fn error_detail(body: &[u8], secrets: &[&str]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => json_error_text(&v)?,
        Err(_) => {
            let t = std::str::from_utf8(body).ok()?.trim();
            if t.is_empty() || t.starts_with('<') {
                // Empty, or an HTML error page from a proxy: nothing useful to quote.
                return None;
            }
            t.to_owned()
        }
    };
    let s = sanitize(&text, secrets);
    (!s.is_empty()).then_some(s)
}

fn json_error_text(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(err) = obj.get("error") {
        if let Some(s) = err.as_str() {
            return Some(s.to_owned());
        }
        if let Some(e) = err.as_object() {
            let code = e.get("code").and_then(scalar);
            let msg = e.get("message").and_then(scalar);
            return match (code, msg) {
                (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                (c, m) => c.or(m),
            };
        }
    }
    let code = obj.get("code").and_then(scalar);
    let msg = obj
        .get("message")
        .or_else(|| obj.get("detail"))
        .and_then(scalar);
    match (code, msg) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (c, m) => c.or(m),
    }
}

/// Classify a non-2xx answer: 5xx and 429 are retryable `ApiError`s carrying
/// `Retry-After`; 401/403 are `Unauthorized`; other 4xx (and odd statuses) are
/// non-retryable `ApiError`s. `what` names the request ("login", "token refresh") and
/// `hint` says what to check when credentials were rejected.
pub(crate) fn classify_status(
    venue: &str,
    what: &str,
    response: &HttpResponse,
    now_unix_ms: u64,
    detail: Option<&str>,
    hint: &str,
) -> Error {
    let status = response.status;
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    let err = if status == 429 || (500..600).contains(&status) {
        let retry_after = response.retry_after(now_unix_ms);
        let wait = retry_after
            .map(|d| format!("; the venue asks to wait {} s", d.as_secs()))
            .unwrap_or_default();
        Error::new(
            ErrorKind::ApiError,
            format!(
                "{venue} {what} failed with HTTP {status}{detail}; the venue is busy or \
                 failing, retry later{wait}"
            ),
        )
        .with_retry_after(retry_after)
        .with_retryable(true)
    } else if status == 401 || status == 403 {
        Error::new(
            ErrorKind::Unauthorized,
            format!("{venue} {what} was rejected with HTTP {status}{detail}; {hint}"),
        )
    } else {
        Error::new(
            ErrorKind::ApiError,
            format!("{venue} {what} failed with HTTP {status}{detail}"),
        )
    };
    err.with_status(status)
}

/// When to start renewing a token valid until `deadline` that arrived at `arrived`:
/// `deadline - min(window, lifetime / 4) - jitter`, jitter up to `min(window / 10, 5 s)`,
/// and never later than `valid_until` (when the credential stops being handed out).
pub(crate) fn refresh_at(
    arrived: Instant,
    deadline: Instant,
    valid_until: Instant,
    window: Duration,
    rng: Option<&mut SplitMix64>,
) -> Instant {
    let lifetime = deadline.saturating_duration_since(arrived);
    let window = window.min(lifetime / 4);
    let jitter = rng.map_or(Duration::ZERO, |r| {
        r.jitter((window / 10).min(Duration::from_secs(5)))
    });
    let at = deadline
        .checked_sub(window + jitter)
        .unwrap_or(arrived)
        .max(arrived);
    at.min(valid_until)
}

/// Reports a failed exchange: a warning log, a `Failed` event, and — when the machine
/// has no credential to hand out or is `stopped` (it will not renew the one it holds) —
/// the error kept for callers that must say why. Returns the error for the caller.
pub(crate) fn fail(
    venue: &'static str,
    account: &str,
    failure: Failure<'_>,
    error: Error,
) -> Error {
    tracing::warn!(venue, account = %account, kind = %error.kind(), "{}", error.message());
    failure.events.push(AuthEvent::failed(&error));
    if failure.stopped || !failure.has_credential {
        *failure.last_error = Some(error.clone());
    }
    error
}

/// What [`fail`] updates and decides by: the machine's event queue and kept error, and
/// whether it is stopped or still holds a valid credential.
pub(crate) struct Failure<'a> {
    /// The machine's events.
    pub events: &'a mut Events,
    /// The machine's kept error.
    pub last_error: &'a mut Option<Error>,
    /// The machine stopped (it needs the caller to act).
    pub stopped: bool,
    /// The machine holds a credential valid now.
    pub has_credential: bool,
}

/// A JSON number a venue states a Unix time in (seconds or milliseconds, as its page
/// says): an integer, or a positive float rounded down. `None` for a negative number or
/// one beyond `u64`, which no clock can mean.
pub(crate) fn unix_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && *f > 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// When a token stops being handed out and when to renew it, from its whole lifetime.
pub(crate) struct Schedule {
    /// The credential's safe deadline (the venue's expiry less the safety margin).
    pub valid_until: Instant,
    /// When to start renewing (the refresh window before expiry, with jitter).
    pub refresh_at: Instant,
    /// When the token was obtained (venue clock, Unix ms), never later than now.
    pub obtained_at_ms: u64,
}

/// The [`Schedule`] of a token that expires at `expires_at_ms` and was obtained at
/// `obtained_at_ms` (venue clock; earlier than `now` when adopted from a shared store),
/// so the safety margin and the refresh window follow the token's whole lifetime and not
/// only what is left of it.
pub(crate) fn schedule(
    now: Now,
    expires_at_ms: u64,
    obtained_at_ms: u64,
    window: Duration,
    rng: &mut SplitMix64,
) -> Schedule {
    let base_ms = now.expiry_base_ms();
    let obtained_at_ms = obtained_at_ms.min(base_ms);
    let deadline = deadline_from_unix_ms(now, expires_at_ms);
    let age = Duration::from_millis(base_ms.saturating_sub(obtained_at_ms));
    let arrived = now.instant.checked_sub(age).unwrap_or(now.instant);
    let valid_until = safe_valid_until(arrived, deadline);
    Schedule {
        valid_until,
        refresh_at: refresh_at(arrived, deadline, valid_until, window, Some(rng)),
        obtained_at_ms,
    }
}

/// The longest lifetime a venue may state before it is clamped (30 days): tokens that
/// claim to live longer are renewed within this anyway.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// A `max_lifetime` must be at least a second: anything shorter would make every token
/// expire on arrival.
pub(crate) fn check_max_lifetime(venue: &str, max_lifetime: Duration) -> Result<(), Error> {
    if max_lifetime < Duration::from_secs(1) {
        return Err(Error::invalid_argument(format!(
            "{venue} max_lifetime must be at least 1 second"
        )));
    }
    Ok(())
}

/// A venue's stated expiry (Unix ms) as the machine will use it, measured against the
/// latest clock we trust (`now.expiry_base_ms()`):
/// - `not_ms_check`: an expiry more than 100x that clock (year 5000 and later) or less
///   than a hundredth of it (1975 and earlier) is plainly not in milliseconds
///   (microseconds, seconds): a `Protocol` error, not retried;
/// - an expiry not after that clock arrived already expired: a retryable `Protocol` error
///   whose message names the clocks and how far apart they are (the driver backs off);
/// - a lifetime longer than `max_lifetime` is clamped to it, and the `Distrusted` event
///   saying so is returned with it for the machine to queue.
pub(crate) fn checked_expiry(
    venue: &str,
    what: &str,
    now: Now,
    expires_at_ms: u64,
    max_lifetime: Duration,
    not_ms_check: bool,
) -> Result<(u64, Option<AuthEvent>), Error> {
    let base = now.expiry_base_ms();
    if not_ms_check && (expires_at_ms / 100 > base || expires_at_ms < base / 100) {
        return Err(Error::protocol(format!(
            "{venue} {what} answer says the token expires at {expires_at_ms}, more than 100 \
            times or less than a hundredth of the current time in Unix milliseconds \
            ({base}); `expiresAt` must be in Unix milliseconds"
        )));
    }
    if expires_at_ms <= base {
        let behind = base - expires_at_ms;
        let mut clocks = format!("our clock says {} ms", now.wall_ms);
        if now.unix_ms != now.wall_ms {
            clocks.push_str(&format!(
                ", the venue's clock as learned from its Date headers {} ms ({:+} ms from ours)",
                now.unix_ms,
                now.unix_ms as i128 - now.wall_ms as i128
            ));
        }
        if let Some(date) = now.answer_date_ms {
            clocks.push_str(&format!(
                ", this answer's Date {date} ms ({:+} ms from ours)",
                date as i128 - now.wall_ms as i128
            ));
        }
        return Err(Error::protocol(format!(
            "{venue} {what} answer's token arrived already expired: it expired at \
            {expires_at_ms} ms, {behind} ms before the latest clock we trust ({clocks}); \
            check this machine's clock and that the expiry is in Unix milliseconds"
        ))
        .with_retryable(true));
    }
    let max_ms = u64::try_from(max_lifetime.as_millis()).unwrap_or(u64::MAX);
    let lifetime_ms = expires_at_ms - base;
    if lifetime_ms > max_ms {
        let event = AuthEvent::Distrusted {
            message: format!(
                "{venue} {what} answer states a lifetime of {} s, longer than max_lifetime \
                ({} s); the token is renewed as if it lived {} s",
                lifetime_ms / 1000,
                max_ms / 1000,
                max_ms / 1000
            ),
        };
        return Ok((base.saturating_add(max_ms), Some(event)));
    }
    Ok((expires_at_ms, None))
}

/// `instant + d` without panicking.
pub(crate) fn after(instant: Instant, d: Duration) -> Instant {
    instant_after(instant, d)
}

/// The request a reply answers, taken out of `in_flight`; a reply with nothing in flight
/// is ignored and reported as `InvalidArgument` (the trait's promise for a stray reply).
pub(crate) fn take_in_flight<S>(in_flight: &mut Option<S>, venue: &str) -> Result<S, Error> {
    in_flight.take().ok_or_else(|| {
        Error::invalid_argument(format!(
            "{venue} got a response but no request is in flight; it was ignored"
        ))
    })
}

/// The default refresh-jitter seed of an account: FNV-1a of its label. Stable and not
/// secret, so sessions of different accounts spread their refreshes without the machine
/// reading randomness.
pub(crate) fn jitter_seed(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    /// The published FNV-1a 64 vectors: a wrong constant or operator changes them.
    #[test]
    fn jitter_seeds_are_fnv_1a() {
        assert_eq!(super::jitter_seed(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::jitter_seed("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::jitter_seed("foobar"), 0x8594_4171_f739_67e8);
    }

    use super::*;

    #[test]
    fn detail_shapes() {
        let d = |b: &str| error_detail(b.as_bytes(), &["sekret-value"]);
        assert_eq!(
            d(r#"{"success":false,"error":{"code":"INVALID_CREDENTIALS","message":"bad"}}"#),
            Some("INVALID_CREDENTIALS: bad".into())
        );
        assert_eq!(
            d(r#"{"error":"nonce expired"}"#),
            Some("nonce expired".into())
        );
        assert_eq!(d(r#"{"message":"m"}"#), Some("m".into()));
        assert_eq!(d(r#"{"code":7}"#), Some("7".into()));
        assert_eq!(d("plain\ntext"), Some("plain text".into()));
        assert_eq!(d("<html>"), None);
        assert_eq!(d(""), None);
        assert_eq!(d(r#"[1]"#), None);
        assert_eq!(
            d(r#"{"error":"token sekret-value is bad"}"#),
            Some("token [REDACTED] is bad".into())
        );
        assert!(d(&"x".repeat(1000)).unwrap().len() < 210);
    }

    #[test]
    fn classification() {
        let r = HttpResponse::new(503, "").with_header("Retry-After", "3");
        let e = classify_status("V", "login", &r, 0, None, "hint");
        assert_eq!(e.kind(), ErrorKind::ApiError);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.status(), Some(503));
        let e = classify_status("V", "login", &HttpResponse::new(429, ""), 0, None, "h");
        assert!(e.is_retryable() && e.retry_after().is_none());
        let e = classify_status("V", "login", &HttpResponse::new(403, ""), 0, None, "h");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(!e.is_retryable());
        let e = classify_status("V", "login", &HttpResponse::new(400, ""), 0, Some("x"), "h");
        assert_eq!(e.kind(), ErrorKind::ApiError);
        assert!(!e.is_retryable());
        assert!(e.message().contains("(x)"));
    }

    #[test]
    fn refresh_schedule() {
        let t0 = Instant::now();
        let hour = t0 + Duration::from_secs(3600);
        let valid = hour - Duration::from_secs(10);
        assert_eq!(
            refresh_at(t0, hour, valid, Duration::from_secs(300), None),
            hour - Duration::from_secs(300)
        );
        let three = t0 + Duration::from_secs(3);
        assert_eq!(
            refresh_at(t0, three, three, Duration::from_secs(300), None),
            three - Duration::from_millis(750)
        );
        let mut rng = SplitMix64::new(1);
        let at = refresh_at(t0, hour, valid, Duration::from_secs(300), Some(&mut rng));
        assert!(at <= hour - Duration::from_secs(300));
        assert!(at >= hour - Duration::from_secs(305));
        // A zero window still refreshes no later than the credential stops being valid.
        assert_eq!(refresh_at(t0, hour, valid, Duration::ZERO, None), valid);
    }

    #[test]
    fn refresh_jitter_is_a_tenth_of_a_short_window_and_spread() {
        // A 20 s window: jitter up to 2 s (a tenth), not the 5 s cap, and not nothing.
        let t0 = Instant::now();
        let hour = t0 + Duration::from_secs(3600);
        let window = Duration::from_secs(20);
        let mut rng = SplitMix64::new(3);
        let earliest = hour - window - Duration::from_secs(2);
        let ats: Vec<Instant> = (0..100)
            .map(|_| refresh_at(t0, hour, hour, window, Some(&mut rng)))
            .collect();
        assert!(ats.iter().all(|at| *at >= earliest && *at <= hour - window));
        assert!(
            ats.iter()
                .any(|at| *at < hour - window - Duration::from_millis(1500))
        );
        assert!(
            ats.iter()
                .any(|at| *at > hour - window - Duration::from_millis(500))
        );
        // A long window: the jitter is capped at 5 s.
        let long = Duration::from_secs(600);
        let ats: Vec<Instant> = (0..100)
            .map(|_| refresh_at(t0, hour, hour, long, Some(&mut rng)))
            .collect();
        assert!(
            ats.iter()
                .all(|at| *at >= hour - long - Duration::from_secs(5))
        );
        assert!(
            ats.iter()
                .any(|at| *at < hour - long - Duration::from_secs(4))
        );
    }

    #[test]
    fn field_and_json_errors_say_what_was_wrong() {
        let mut obj = serde_json::json!({"s": "tok", "e": "", "n": 1})
            .as_object()
            .cloned()
            .unwrap();
        let message = |r: Result<String, Error>| r.unwrap_err().message().to_owned();
        assert_eq!(take_string(&mut obj, "s", "V", "login").unwrap(), "tok");
        assert!(obj.get("s").is_none(), "moved out, not copied");
        assert_eq!(
            message(take_string(&mut obj, "e", "V", "login")),
            "V login answer has an empty `e`"
        );
        assert_eq!(
            message(take_string(&mut obj, "n", "V", "login")),
            "V login answer has `n` of type number, expected a string"
        );
        assert_eq!(
            message(take_string(&mut obj, "gone", "V", "login")),
            "V login answer has no `gone` field"
        );
        let types = [
            (serde_json::json!(null), "null"),
            (serde_json::json!(true), "boolean"),
            (serde_json::json!(1), "number"),
            (serde_json::json!("x"), "string"),
            (serde_json::json!([]), "array"),
            (serde_json::json!({}), "object"),
        ];
        for (value, name) in types {
            assert_eq!(type_name(&value), name);
        }
        // Not JSON: the category, never the body (which may quote a token).
        let e = parse_json("V", "login", &HttpResponse::new(200, "{\"token\":")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert_eq!(e.status(), Some(200));
        assert!(e.message().contains("truncated"), "{e}");
        assert!(!e.message().contains("token"), "{e}");
        let e = parse_json("V", "login", &HttpResponse::new(502, "nope")).unwrap_err();
        assert!(
            e.message().contains("HTTP 502, 4 bytes, syntax error"),
            "{e}"
        );
    }

    #[test]
    fn undrained_events_keep_the_newest_in_order() {
        let failed = |i: usize| AuthEvent::Failed {
            kind: ErrorKind::Timeout,
            message: i.to_string(),
        };
        let mut events = Events::default();
        for i in 0..MAX_EVENTS + 3 {
            events.push(failed(i));
        }
        let kept: Vec<AuthEvent> = std::iter::from_fn(|| events.pop()).collect();
        assert_eq!(kept.len(), MAX_EVENTS);
        assert_eq!(kept[0], failed(3), "the oldest three were dropped");
        assert_eq!(kept[MAX_EVENTS - 1], failed(MAX_EVENTS + 2));
    }

    #[test]
    fn a_venue_text_of_exactly_the_cap_is_kept_whole() {
        let at_cap = "y".repeat(MAX_DETAIL);
        assert_eq!(sanitize(&at_cap, &[]), at_cap);
        let over = "y".repeat(MAX_DETAIL + 1);
        assert_eq!(sanitize(&over, &[]), format!("{at_cap}..."));
        // Secrets shorter than 4 characters are not blotted out (they would match
        // everywhere); longer ones are, wherever they appear.
        assert_eq!(sanitize("abc abc", &["abc"]), "abc abc");
        assert_eq!(
            sanitize("k=abcd;abcd", &["abcd"]),
            "k=[REDACTED];[REDACTED]"
        );
        assert_eq!(sanitize("a\u{7}b", &[]), "a b");
    }

    fn at(wall_ms: u64) -> Now {
        Now::new(Instant::now(), wall_ms)
    }

    const WALL: u64 = 1_700_000_000_000;
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_stated_expiry_is_kept_when_it_is_believable() {
        let (ms, event) =
            checked_expiry("V", "login", at(WALL), WALL + 3_600_000, DAY, true).unwrap();
        assert_eq!((ms, event), (WALL + 3_600_000, None));
        // Exactly max_lifetime is believed; one ms more is not.
        let (ms, event) =
            checked_expiry("V", "login", at(WALL), WALL + 86_400_000, DAY, true).unwrap();
        assert_eq!((ms, event), (WALL + 86_400_000, None));
        // The first ms after the clock is a (short) lifetime, not an expired token.
        assert_eq!(
            checked_expiry("V", "login", at(WALL), WALL + 1, DAY, true)
                .unwrap()
                .0,
            WALL + 1
        );
    }

    #[test]
    fn a_lifetime_longer_than_the_maximum_is_clamped_with_an_event() {
        let (ms, event) =
            checked_expiry("V", "login", at(WALL), WALL + 86_400_001, DAY, true).unwrap();
        assert_eq!(ms, WALL + 86_400_000);
        let Some(AuthEvent::Distrusted { message }) = event else {
            panic!("no Distrusted event: {event:?}");
        };
        assert!(
            message.contains("86400 s") && message.contains("max_lifetime"),
            "{message}"
        );
        // Measured from the latest clock: with the venue 10 s ahead, so is the cap.
        let mut now = at(WALL);
        now.answer_date_ms = Some(WALL + 10_000);
        let (ms, _) = checked_expiry("V", "login", now, u64::MAX / 1000, DAY, false).unwrap();
        assert_eq!(ms, WALL + 10_000 + 86_400_000);
    }

    #[test]
    fn an_expiry_that_is_not_milliseconds_is_refused() {
        // Microseconds: a thousand times the clock.
        let micros = (WALL + 3_600_000) * 1000;
        let e = checked_expiry("V", "login", at(WALL), micros, DAY, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(
            e.message().contains("Unix milliseconds") && e.message().contains("100 times"),
            "{}",
            e.message()
        );
        assert!(!e.is_retryable());
        // 100x the clock is the edge: not refused, clamped.
        assert!(checked_expiry("V", "login", at(WALL), WALL * 100 + 99, DAY, true).is_ok());
        assert!(checked_expiry("V", "login", at(WALL), WALL * 100 + 100, DAY, true).is_err());
        // Seconds: a thousandth of the clock; a hundredth is the edge (an expired token).
        let e = checked_expiry("V", "login", at(WALL), WALL / 1000, DAY, true).unwrap_err();
        assert!(
            !e.is_retryable() && e.message().contains("hundredth"),
            "{e}"
        );
        let e = checked_expiry("V", "login", at(WALL), WALL / 100, DAY, true).unwrap_err();
        assert!(
            e.is_retryable() && e.message().contains("already expired"),
            "{e}"
        );
        let e = checked_expiry("V", "login", at(WALL), WALL / 100 - 1, DAY, true).unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        // Without the check (JWT seconds already converted), an absurd one is clamped.
        let (ms, event) = checked_expiry("V", "login", at(WALL), micros, DAY, false).unwrap();
        assert_eq!(ms, WALL + 86_400_000);
        assert!(event.is_some());
    }

    #[test]
    fn a_token_expired_on_arrival_names_the_clocks_and_is_retried() {
        let e = checked_expiry("V", "login", at(WALL), WALL, DAY, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.is_retryable(), "retried with backoff, not given up");
        assert!(e.message().contains("0 ms before"), "{}", e.message());
        assert!(e.message().contains(&format!("our clock says {WALL} ms")));
        assert!(!e.message().contains("Date"), "{}", e.message());
        // The venue clock as learned and this answer's Date, with their differences.
        let mut now = at(WALL);
        now.unix_ms = WALL + 5_000;
        now.answer_date_ms = Some(WALL + 7_000);
        let e = checked_expiry("V", "refresh", now, WALL + 6_000, DAY, true).unwrap_err();
        let m = e.message();
        assert!(m.contains("1000 ms before"), "{m}");
        assert!(
            m.contains("Date headers 1700000005000 ms (+5000 ms from ours)"),
            "{m}"
        );
        assert!(
            m.contains("this answer's Date 1700000007000 ms (+7000 ms from ours)"),
            "{m}"
        );
        assert!(m.starts_with("V refresh answer"), "{m}");
    }

    #[test]
    fn the_latest_clock_decides_so_a_wrong_one_can_only_shorten() {
        // Our wall clock, the venue's as learned, this answer's Date: the latest wins.
        for (unix, date, base) in [
            (WALL, None, WALL),
            (WALL - 7_200_000, None, WALL),
            (WALL + 60_000, None, WALL + 60_000),
            (WALL, Some(WALL - 600_000), WALL),
            (WALL, Some(WALL + 600_000), WALL + 600_000),
            (WALL + 60_000, Some(WALL + 30_000), WALL + 60_000),
        ] {
            let mut now = at(WALL);
            now.unix_ms = unix;
            now.answer_date_ms = date;
            assert_eq!(now.expiry_base_ms(), base, "{unix} {date:?}");
            let expiry = WALL + 3_600_000;
            assert_eq!(
                crate::time::deadline_from_unix_ms(now, expiry),
                now.instant + Duration::from_millis(expiry - base)
            );
        }
    }

    #[test]
    fn max_lifetime_must_be_a_second_or_more() {
        assert!(check_max_lifetime("V", Duration::from_secs(1)).is_ok());
        let e = check_max_lifetime("V", Duration::from_millis(999)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("V max_lifetime"), "{}", e.message());
    }
}
