//! Test helpers: a manual clock and canned responses. No sockets, no sleeps.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tradeauth::{AuthEvent, HttpResponse, Machine, Now};

/// Wall clock at the test's "zero": 2023-11-14T22:13:20Z.
pub const BASE_MS: u64 = 1_700_000_000_000;

/// A manual clock: both clocks move together from a fixed base.
#[derive(Clone, Copy)]
pub struct Clock {
    pub base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// The time `ms` milliseconds after the base.
    pub fn ms(&self, ms: u64) -> Now {
        Now::new(self.base + Duration::from_millis(ms), BASE_MS + ms)
    }

    /// The time `s` seconds after the base.
    pub fn secs(&self, s: u64) -> Now {
        self.ms(s * 1000)
    }

    /// The time at a given monotonic instant (wall clock follows).
    pub fn at(&self, instant: Instant) -> Now {
        let ms = instant.duration_since(self.base).as_millis() as u64;
        Now::new(instant, BASE_MS + ms)
    }
}

pub fn json(status: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse::new(status, body.to_string()).with_header("content-type", "application/json")
}

pub fn events(m: &mut dyn Machine) -> Vec<AuthEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

pub fn body_json(req: &tradeauth::HttpRequest) -> serde_json::Value {
    serde_json::from_slice(&req.body).expect("machine bodies are JSON")
}

/// The machine is `venue`'s, for `account`.
pub fn assert_venue_and_account(m: &dyn Machine, venue: &str, account: &str) {
    assert_eq!(m.venue().as_str(), venue);
    assert_eq!(m.account(), account);
}

/// The machine's request in flight at `now` gets `answer`: a retryable error that says
/// to wait `wait`. Returns the error.
pub fn retryable_after(
    m: &mut dyn Machine,
    now: Now,
    answer: HttpResponse,
    wait: Duration,
) -> tradeauth::Error {
    let e = m.handle_response(now, answer).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(wait), "{e}");
    e
}

/// `req` is a `POST path` of the JSON `body`.
pub fn assert_json_post(req: &tradeauth::HttpRequest, path: &str, body: serde_json::Value) {
    assert_eq!(req.method, tradeauth::Method::Post);
    assert_eq!(req.path, path);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(body_json(req), body);
}

/// Assert no secret appears in a formatted value.
pub fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into: {text}");
    }
}
