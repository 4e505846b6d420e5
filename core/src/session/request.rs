//! Sending: the machine's requests and the caller's ([`RequestBuilder`]), over TLS, with
//! header values and bodies wiped when the HTTP stack drops them.

use std::sync::Arc;
use std::time::Duration;

use super::Session;
use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{HttpRequest, HttpResponse, Method};

impl Session {
    /// Sends one request to the venue; no credential handling here.
    pub(super) async fn send(
        &self,
        http: &reqwest::Client,
        mut request: HttpRequest,
        timeout: Option<Duration>,
    ) -> Result<HttpResponse> {
        let url = self.inner.base_url.join(&request.path).map_err(|e| {
            Error::new(ErrorKind::InvalidArgument, format!("bad request path: {e}"))
        })?;
        if url.origin() != self.inner.base_url.origin() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "request path must stay on the session's venue host",
            ));
        }
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        // The first request to an origin goes alone (see `pool::FirstConnection`); the
        // wait counts against this request's own timeout, and past it the request goes
        // anyway, on a connection of its own.
        let budget = timeout.unwrap_or(self.inner.options.request_timeout);
        let started = std::time::Instant::now();
        let first = self.local()?.first_connection.clone();
        let turn = tokio::time::timeout(budget, first.enter())
            .await
            .ok()
            .flatten();
        let left = budget
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let mut builder = http.request(method, url).timeout(left);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), wiped_header_value(name, value)?);
        }
        if !request.body.is_empty() {
            // Moved, not copied, into memory that is wiped when reqwest drops it (login
            // bodies carry passwords, refresh bodies refresh tokens).
            let body = zeroize::Zeroizing::new(std::mem::take(&mut request.body));
            builder = builder.body(bytes::Bytes::from_owner(body));
        }
        let mut response = builder.send().await.map_err(transport_error)?;
        first.answered();
        drop(turn);
        self.observe_date(response.headers());
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        // Read chunk by chunk into one buffer that is wiped whenever it grows (answers
        // carry tokens); each chunk is wiped too when nothing else shares its memory.
        let mut body = Vec::with_capacity(body_capacity_hint(response.content_length()));
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            append_wiping(&mut body, &chunk);
            drop(wipe_if_unique(chunk));
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Starts an authenticated request to `path` (relative to the base URL).
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder {
        RequestBuilder {
            session: self.clone(),
            request: HttpRequest {
                method,
                path: path.into(),
                headers: Vec::new(),
                body: Vec::new(),
            },
            query: Vec::new(),
            timeout: None,
            error: None,
        }
    }

    /// A credential for a request; `None` only for sessions that have none (Exchange public use).
    pub(super) async fn credential_for_request(&self) -> Result<Option<Arc<Credential>>> {
        if let Some(credential) = self.current() {
            return Ok(Some(credential));
        }
        if self.inner.capabilities.public {
            return Ok(None);
        }
        self.authenticate(None).await.map(Some)
    }
}

/// A header value for reqwest in memory that is wiped when the HTTP stack drops it; the
/// auth headers are also marked sensitive (never HPACK-indexed, redacted in `Debug`).
fn wiped_header_value(name: &str, value: &str) -> Result<reqwest::header::HeaderValue> {
    let owned = zeroize::Zeroizing::new(value.as_bytes().to_vec());
    let mut header = reqwest::header::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(
        owned,
    ))
    .map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("the value of header {name} is not valid header text"),
        )
    })?;
    if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key") {
        header.set_sensitive(true);
    }
    Ok(header)
}

/// The most a response body is given up front, whatever its `content-length` claims: a
/// hostile or broken venue cannot make the library allocate more than this before a
/// byte has arrived (the buffer then grows with what really arrives).
const MAX_BODY_PREALLOCATION: usize = 1 << 20;

/// The capacity to give a response body up front for its `content-length`, if any.
fn body_capacity_hint(content_length: Option<u64>) -> usize {
    match content_length {
        Some(length) => usize::try_from(length).map_or(MAX_BODY_PREALLOCATION, |length| {
            length.min(MAX_BODY_PREALLOCATION)
        }),
        None => 0,
    }
}

/// Appends `chunk` to `body`; when `body` must grow, its old buffer is wiped first.
fn append_wiping(body: &mut Vec<u8>, chunk: &[u8]) {
    if body.capacity() - body.len() < chunk.len() {
        let wanted = (body.len() + chunk.len()).max(body.capacity().saturating_mul(2));
        let mut grown = Vec::with_capacity(wanted);
        grown.extend_from_slice(body);
        zeroize::Zeroize::zeroize(body);
        *body = grown;
    }
    body.extend_from_slice(chunk);
}

/// Wipes a received chunk if its memory is this chunk's alone (not still shared with
/// the HTTP stack's read buffer, which the library cannot touch), and hands back that
/// wiped memory for the caller to free; `None` when the memory was shared.
fn wipe_if_unique(chunk: bytes::Bytes) -> Option<bytes::BytesMut> {
    let mut unique = chunk.try_into_mut().ok()?;
    zeroize::Zeroize::zeroize(&mut unique[..]);
    Some(unique)
}

pub(super) fn transport_error(error: reqwest::Error) -> Error {
    // The whole source chain, because the useful part ("invalid peer certificate:
    // UnknownIssuer", "connection refused") sits at the bottom. reqwest's text names the
    // URL, which carries no secret (credentials travel in headers only).
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        Error::new(ErrorKind::Timeout, format!("no answer in time: {detail}"))
    } else {
        let hint = if detail.contains("certificate") {
            "; if the venue uses a private CA, add it as an extra root certificate"
        } else {
            ""
        };
        Error::new(
            ErrorKind::Transport,
            format!("connection failed: {detail}{hint}"),
        )
    }
}

/// An authenticated request under construction; see [`Session::request`].
pub struct RequestBuilder {
    session: Session,
    request: HttpRequest,
    query: Vec<(String, String)>,
    timeout: Option<Duration>,
    error: Option<Error>,
}

impl RequestBuilder {
    /// Adds a query parameter (URL-encoded for you).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body (and `content-type: application/json`).
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.request.body = bytes;
                self.request
                    .headers
                    .push(("content-type".into(), "application/json".into()));
            }
            Err(e) => {
                self.error = Some(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("body is not JSON: {e}"),
                ))
            }
        }
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Adds a header; the session's own auth header cannot be overridden.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// Bounds this one request (default: the session's `request_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends it: attaches a valid credential; on a 401 drops that credential,
    /// re-authenticates once and retries once. Idempotent methods are also retried on
    /// transport errors, 5xx and 429 with backoff; POST and PATCH never are (an order
    /// must not be placed twice).
    pub async fn send(self) -> Result<HttpResponse> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let session = self.session;
        let mut request = self.request;
        if !self.query.is_empty() {
            let mut url = session.inner.base_url.join(&request.path).map_err(|e| {
                Error::new(ErrorKind::InvalidArgument, format!("bad request path: {e}"))
            })?;
            // Checked here as `Session::send` checks it: the path below keeps only the
            // URL's path and query, so an absolute URL to another host would otherwise
            // be sent to the venue in its place.
            if url.origin() != session.inner.base_url.origin() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "request path must stay on the session's venue host",
                ));
            }
            url.query_pairs_mut().extend_pairs(&self.query);
            request.path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
        }
        let auth_names = ["authorization", "x-api-key"];
        request
            .headers
            .retain(|(name, _)| !auth_names.iter().any(|a| name.eq_ignore_ascii_case(a)));
        let idempotent = matches!(request.method, Method::Get | Method::Put | Method::Delete);
        let mut reauthenticated = false;
        let mut retries = 0u32;
        loop {
            let credential = session.credential_for_request().await?;
            let mut attempt = request.clone();
            if let Some(credential) = &credential {
                attempt.headers.push((
                    credential.header_name().to_owned(),
                    credential.header_value().to_owned(),
                ));
            }
            let http = session.local()?.transport.http.clone();
            let outcome = session.send(&http, attempt, self.timeout).await;
            match outcome {
                Ok(response) if response.status == 401 && !reauthenticated => {
                    let Some(rejected) = credential else {
                        return Ok(response);
                    };
                    if !session.inner.capabilities.renewable {
                        // A permanent key cannot be renewed; retrying would only repeat the 401.
                        return Ok(response);
                    }
                    reauthenticated = true;
                    session.counters().reauth_after_401();
                    session.authenticate(Some(&rejected)).await?;
                }
                Ok(response)
                    if idempotent
                        && (response.status == 429 || response.status >= 500)
                        && retries < session.inner.options.max_retries =>
                {
                    let after = crate::http::retry_after(&response.headers);
                    tokio::time::sleep(session.backoff(retries, after)).await;
                    retries += 1;
                }
                Ok(response) => return Ok(response),
                Err(error)
                    if idempotent
                        && matches!(error.kind(), ErrorKind::Transport | ErrorKind::Timeout)
                        && retries < session.inner.options.max_retries =>
                {
                    tokio::time::sleep(session.backoff(retries, None)).await;
                    retries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tradeauth_sim::{Sim, SimConfig, Venue as SimVenue, demo};

    use super::*;
    use crate::session::Options;

    /// An answered request is sent once: the 401 branch (re-authenticate, resend) is
    /// taken for a 401 only, and once. Bounded by a timeout so that a loop that resends
    /// forever fails here, first, rather than hanging the integration tests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answered_request_is_sent_once_after_one_login() {
        let sim = Sim::start(SimConfig::default()).await.expect("simulator");
        let options = Options::new()
            .base_url(sim.urls().venue(SimVenue::Cadenza))
            .add_root_pem(sim.ca_pem())
            .background_refresh(false);
        let config = crate::CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD);
        let session = Session::cadenza(config, options).expect("session");
        let send = session
            .request(crate::Method::Get, "/api/v3/user/profile")
            .send();
        let answer = tokio::time::timeout(Duration::from_secs(30), send)
            .await
            .expect("answered, not re-sent without end")
            .expect("request");
        assert_eq!(answer.status, 200);
        let stats = sim.stats().cadenza;
        assert_eq!(
            (stats.logins, stats.refreshes, stats.requests),
            (1, 0, 2),
            "one login, then the request once"
        );
        assert_eq!(session.metrics().reauths_after_401, 0);
    }

    /// An error that is not the network's (here, a path off the venue's origin) is
    /// answered at once, never retried; bounded by a timeout for the same reason.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_request_is_not_retried() {
        let sim = Sim::start(SimConfig::default()).await.expect("simulator");
        let options = Options::new()
            .base_url(sim.urls().venue(SimVenue::Exchange))
            .add_root_pem(sim.ca_pem())
            .max_retries(3);
        let config = crate::ExchangeConfig::trader(demo::EXCHANGE_API_KEY);
        let session = Session::exchange(config, options).expect("session");
        let send = session
            .request(crate::Method::Get, "//evil.example/api/v1/positions")
            .send();
        let error = tokio::time::timeout(Duration::from_secs(30), send)
            .await
            .expect("answered, not retried without end")
            .expect_err("off the venue's origin");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert_eq!(sim.stats().exchange.requests, 0);
    }

    /// A POST that timed out is not sent again (an order must not be placed twice),
    /// while a GET that timed out is retried up to `max_retries`: counted at the venue,
    /// with a quick backoff so both finish in well under a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_post_that_timed_out_is_not_sent_again_and_a_get_is_retried() {
        let sim = Sim::start(SimConfig::default()).await.expect("simulator");
        let options = Options::new()
            .base_url(sim.urls().venue(SimVenue::Exchange))
            .add_root_pem(sim.ca_pem())
            .background_refresh(false)
            .max_retries(3)
            .retry_delays(Duration::from_millis(1), Duration::from_millis(5))
            .request_timeout(Duration::from_millis(100));
        let config = crate::ExchangeConfig::trader(demo::EXCHANGE_API_KEY);
        let session = Session::exchange(config, options).expect("session");
        let requests = || sim.stats().exchange.requests;
        for (method, path, sent) in [
            (crate::Method::Post, "/api/v1/orders", 1),
            (crate::Method::Get, "/api/v1/positions", 4),
        ] {
            sim.arm_fault(
                tradeauth_sim::Fault::delay(SimVenue::Exchange, 400)
                    .on_path(path)
                    .times(10),
            );
            let before = requests();
            let send = session
                .request(method, path)
                .json(&serde_json::json!({"market": "BTC-PERP"}))
                .send();
            let error = tokio::time::timeout(Duration::from_secs(30), send)
                .await
                .expect("bounded by its retries")
                .expect_err("every attempt timed out");
            assert_eq!(error.kind(), ErrorKind::Timeout, "{method:?}: {error}");
            assert_eq!(requests() - before, sent, "{method:?} {path}");
        }
    }

    #[test]
    fn a_claimed_body_length_is_preallocated_up_to_a_bound() {
        assert_eq!(body_capacity_hint(None), 0);
        assert_eq!(body_capacity_hint(Some(0)), 0);
        assert_eq!(body_capacity_hint(Some(100)), 100);
        assert_eq!(
            body_capacity_hint(Some(MAX_BODY_PREALLOCATION as u64)),
            MAX_BODY_PREALLOCATION
        );
        // A hostile venue's content-length buys it no more than the bound.
        assert_eq!(body_capacity_hint(Some(1 << 40)), MAX_BODY_PREALLOCATION);
        assert_eq!(body_capacity_hint(Some(u64::MAX)), MAX_BODY_PREALLOCATION);
        assert_eq!(MAX_BODY_PREALLOCATION, 1 << 20);
    }

    #[test]
    fn only_the_auth_headers_are_marked_sensitive() {
        for name in ["authorization", "Authorization", "x-api-key", "X-API-KEY"] {
            let value = wiped_header_value(name, "Bearer abc").expect("valid");
            assert!(value.is_sensitive(), "{name} must never be HPACK-indexed");
            assert_eq!(value.as_bytes(), b"Bearer abc");
        }
        for name in ["content-type", "x-request-id", "authorization-hint"] {
            let value = wiped_header_value(name, "text").expect("valid");
            assert!(!value.is_sensitive(), "{name} is not an auth header");
        }
        let error = wiped_header_value("x-note", "a\r\nb").expect_err("not header text");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(
            !error.message().contains("a\r\nb"),
            "the value is not echoed"
        );
    }

    /// `Vec::with_capacity(n)` gives exactly `n` (documented), so these capacities show
    /// that every growth went through the wiping path, never through `Vec`'s own growth
    /// (which would free the old buffer unwiped, and rounds small sizes up to 8).
    #[test]
    fn a_body_grows_only_through_the_wiping_path() {
        // Room for the chunk, to the byte: the buffer is not replaced.
        let mut body = Vec::with_capacity(4);
        body.extend_from_slice(b"ab");
        let before = body.as_ptr();
        append_wiping(&mut body, b"cd");
        assert_eq!((body.as_slice(), body.capacity()), (&b"abcd"[..], 4));
        assert_eq!(
            body.as_ptr(),
            before,
            "a chunk that fits does not move the body"
        );

        // One byte short: doubled by the wiping path (Vec's own growth would give 8).
        let mut body = Vec::with_capacity(2);
        body.extend_from_slice(b"ab");
        append_wiping(&mut body, b"c");
        assert_eq!((body.as_slice(), body.capacity()), (&b"abc"[..], 4));

        // A chunk larger than the doubled buffer: exactly what is needed.
        let mut body = Vec::with_capacity(2);
        body.extend_from_slice(b"ab");
        append_wiping(&mut body, b"cdefg");
        assert_eq!((body.as_slice(), body.capacity()), (&b"abcdefg"[..], 7));

        // From nothing (no content-length).
        let mut body = Vec::new();
        append_wiping(&mut body, b"xyz");
        append_wiping(&mut body, b"");
        assert_eq!((body.as_slice(), body.capacity()), (&b"xyz"[..], 3));
    }

    #[test]
    fn a_chunk_whose_memory_is_its_own_is_wiped() {
        let chunk = bytes::Bytes::from(b"token-abc".to_vec());
        let address = chunk.as_ptr();
        let wiped = wipe_if_unique(chunk).expect("the chunk's memory is its own");
        assert_eq!(wiped.as_ptr(), address, "the same memory, not a copy");
        assert_eq!(&wiped[..], &[0u8; 9][..]);

        // Shared with another handle (as with the HTTP stack's read buffer): left alone.
        let chunk = bytes::Bytes::from(b"token-abc".to_vec());
        let other = chunk.clone();
        assert!(wipe_if_unique(chunk).is_none());
        assert_eq!(&other[..], b"token-abc");
    }
}
