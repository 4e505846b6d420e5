//! The session driver: one venue machine plus its I/O (tokio + reqwest).
//!
//! Data flows one way: a caller asks the [`Session`] for a credential or a request, the
//! session feeds the machine the clock and the venue's answers, and publishes the
//! machine's credential into an [`ArcSwapOption`] that the hot path reads without a lock.

mod cadenza;
mod cascade;
mod env;
mod exchange;
mod options;
mod partner;
mod shared;
pub(crate) mod tls;
mod ws;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::{Mutex, Notify, broadcast};
use tokio::task::JoinHandle;

pub use cadenza::{CADENZA_PRODUCTION_URL, CADENZA_UAT_URL};
pub use cascade::CASCADE_URL;
pub use exchange::EXCHANGE_URL;
pub use options::Options;
pub use ws::WsStream;

use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::machine::{
    CadenzaMachine, CascadeMachine, ExchangeMachine, Machine, PartnerMachine, Venue,
};
use crate::time::Now;

/// Reads both clocks once; the only place outside tests where machines get their time.
/// `unix_ms` is the venue's clock as far as its `Date` headers tell (local wall clock plus
/// the measured skew), so expiries it states and tokens we stamp agree with the venue
/// even when the two clocks disagree by minutes.
fn venue_now(skew_ms: i64) -> Now {
    let mut now = Now::capture();
    now.unix_ms = now.unix_ms.saturating_add_signed(skew_ms);
    now
}

/// One of the four venue machines; an enum rather than `dyn Machine` so that venue
/// accessors (Cadenza's refresh token, Cascade's claims) need no downcasting.
// One per session, behind its mutex: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VenueMachine {
    Cadenza(CadenzaMachine),
    Partner(PartnerMachine),
    Cascade(CascadeMachine),
    Exchange(ExchangeMachine),
}

impl VenueMachine {
    fn get(&self) -> &dyn Machine {
        match self {
            Self::Cadenza(m) => m,
            Self::Partner(m) => m,
            Self::Cascade(m) => m,
            Self::Exchange(m) => m,
        }
    }

    fn get_mut(&mut self) -> &mut dyn Machine {
        match self {
            Self::Cadenza(m) => m,
            Self::Partner(m) => m,
            Self::Cascade(m) => m,
            Self::Exchange(m) => m,
        }
    }
}

/// What the driver guards with its one async mutex: the machine and the last outcome.
struct State {
    machine: VenueMachine,
    /// Outcome of the last authentication attempt, handed to callers that queued behind it.
    last_failure: Option<Error>,
    /// Shared-store bookkeeping (unused without a store).
    sync: shared::SyncState,
}

/// Shared by every clone of a [`Session`].
struct Inner {
    venue: Venue,
    account: String,
    base_url: reqwest::Url,
    options: Options,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    /// The hot path: the credential the machine last produced, swapped in whole.
    current: ArcSwapOption<Credential>,
    state: Mutex<State>,
    /// Bumped after every authentication attempt; callers that waited on the lock compare
    /// it to know an attempt finished while they queued (single flight, shared failure).
    attempts: AtomicU64,
    /// The venue's clock minus ours (ms), from the last `Date` header it sent.
    skew_ms: AtomicI64,
    events: broadcast::Sender<AuthEvent>,
    /// Wakes the background refresher early (after a login, an invalidation).
    wake: Arc<Notify>,
    refresher: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The shared credential store, if configured (touched only by renewals).
    shared: Option<shared::Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.refresher.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

/// An authenticated connection to one venue account: `Send + Sync + Clone` (an `Arc`).
///
/// Reading the current credential ([`Session::current`]) is one atomic load; getting one
/// when none is valid ([`Session::credential`]) runs exactly one login or refresh however
/// many callers ask at once.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("venue", &self.inner.venue)
            .field("account", &self.inner.account)
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Wraps a machine; must be called inside a tokio runtime when background refresh is on.
    pub(crate) fn from_machine(
        machine: VenueMachine,
        default_base_url: Option<&str>,
        options: Options,
    ) -> Result<Self> {
        options.validate()?;
        let raw_url = options
            .base_url
            .as_deref()
            .or(default_base_url)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "this venue has no public default URL: set the base URL",
                )
            })?;
        let base_url = tls::parse_base_url(raw_url)?;
        let tls = tls::client_config(&options.extra_root_certs_pem)?;
        let http = tls::http_client(&tls, options.connect_timeout)?;
        let venue = machine.get().venue();
        let account = machine.get().account().to_owned();
        let shared = shared::Shared::from_options(&options, venue, base_url.as_str(), &account)?;
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            venue,
            account,
            base_url,
            http,
            tls,
            current: ArcSwapOption::empty(),
            state: Mutex::new(State {
                machine,
                last_failure: None,
                sync: shared::SyncState::default(),
            }),
            attempts: AtomicU64::new(0),
            skew_ms: AtomicI64::new(0),
            events,
            wake: Arc::new(Notify::new()),
            refresher: std::sync::Mutex::new(None),
            shared,
            options,
        });
        let session = Self { inner };
        if session.inner.options.background_refresh {
            session.spawn_refresher()?;
        }
        Ok(session)
    }

    /// Both clocks, with the venue's measured skew applied to the wall clock.
    fn now(&self) -> Now {
        venue_now(self.inner.skew_ms.load(Ordering::Relaxed))
    }

    /// How far the venue's clock is ahead of ours in ms (negative: behind), as last
    /// measured from its `Date` header.
    pub fn clock_skew_ms(&self) -> i64 {
        self.inner.skew_ms.load(Ordering::Relaxed)
    }

    /// Which venue this session talks to.
    pub fn venue(&self) -> Venue {
        self.inner.venue
    }

    /// The account label (email, client id, deposit address, username); never a secret.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The venue base URL requests are sent to.
    pub fn base_url(&self) -> &str {
        self.inner.base_url.as_str()
    }

    /// Subscribes to authentication events (`LoggedIn`, `Refreshed`, ...); they carry no secret.
    pub fn subscribe(&self) -> broadcast::Receiver<AuthEvent> {
        self.inner.events.subscribe()
    }

    /// The hot path: the current credential if one is cached and still valid. No lock, no
    /// I/O, no allocation beyond the `Arc` clone; never an expired credential.
    #[inline]
    pub fn current(&self) -> Option<Arc<Credential>> {
        let guard = self.inner.current.load();
        match guard.as_ref() {
            Some(credential) if credential.is_valid_now() => Some(Arc::clone(credential)),
            _ => None,
        }
    }

    /// The hot path without the `Arc` clone: calls `f` with the current credential if one
    /// is cached and still valid (else `None`), borrowed for the duration of `f` only. No
    /// lock, no I/O, no allocation and no write to memory other threads read, so it does
    /// not slow down as more threads call it. Keep `f` short (copy the header out):
    /// while it runs, a refresh cannot free the credential it borrows.
    #[inline]
    pub fn with_current<R>(&self, f: impl FnOnce(Option<&Credential>) -> R) -> R {
        let guard = self.inner.current.load();
        f(guard
            .as_deref()
            .filter(|credential| credential.is_valid_now()))
    }

    /// A valid credential: the cached one, or the result of the one login/refresh in flight.
    pub async fn credential(&self) -> Result<Arc<Credential>> {
        if let Some(credential) = self.current() {
            return Ok(credential);
        }
        self.authenticate(None).await
    }

    /// The caller's own transport saw the venue reject `rejected` (HTTP 401, "Invalid
    /// Bearer Token"): drop it so the next [`credential`](Self::credential) re-authenticates.
    /// Rejections of an already replaced credential are ignored, so N callers reporting the
    /// same 401 cause one re-authentication.
    pub async fn invalidate(&self, rejected: &Credential) {
        let mut state = self.inner.state.lock().await;
        self.invalidate_locked(&mut state, rejected);
    }

    fn invalidate_locked(&self, state: &mut State, rejected: &Credential) {
        let is_current = self
            .inner
            .current
            .load()
            .as_ref()
            .is_some_and(|c| c.header_value() == rejected.header_value());
        if is_current {
            let now = self.now();
            state.machine.get_mut().handle_unauthorized(now);
            self.publish(state, now);
            self.inner.wake.notify_one();
        }
    }

    /// Renews now, whatever the credential's age (a "forced refresh").
    pub async fn refresh(&self) -> Result<Arc<Credential>> {
        let mut state = self.inner.state.lock().await;
        let now = self.now();
        state.machine.get_mut().force_refresh(now);
        self.publish(&mut state, now);
        self.drive_bounded(&mut state).await
    }

    /// Wipes every credential; the next use logs in again.
    pub async fn logout(&self) {
        let mut state = self.inner.state.lock().await;
        state.machine.get_mut().logout();
        state.last_failure = None;
        self.inner.current.store(None);
        let now = self.now();
        self.publish(&mut state, now);
    }

    /// Single flight: one authentication runs; callers that queued behind it take its result.
    async fn authenticate(&self, rejected: Option<&Credential>) -> Result<Arc<Credential>> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let mut state = self.inner.state.lock().await;
        if let Some(rejected) = rejected {
            self.invalidate_locked(&mut state, rejected);
        }
        if let Some(credential) = self.current() {
            return Ok(credential);
        }
        if self.inner.attempts.load(Ordering::Acquire) != seen
            && let Some(failure) = &state.last_failure
        {
            return Err(failure.clone());
        }
        self.drive_bounded(&mut state).await
    }

    /// One authentication under the lock, bounded by `auth_timeout`; its outcome is
    /// recorded for the callers queued behind it.
    async fn drive_bounded(&self, state: &mut State) -> Result<Arc<Credential>> {
        let budget = self.inner.options.auth_timeout;
        let outcome = match tokio::time::timeout(budget, self.drive_shared(state, true)).await {
            Ok(Ok(Some(credential))) => Ok(credential),
            Ok(Ok(None)) => Err(Error::new(
                ErrorKind::Protocol,
                "authentication finished without a credential",
            )),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "authentication with {} did not finish within {budget:?}; check the venue's reachability or raise auth_timeout",
                    self.inner.venue.as_str()
                ),
            )),
        };
        state.last_failure = outcome.as_ref().err().cloned();
        self.inner.attempts.fetch_add(1, Ordering::AcqRel);
        self.inner.wake.notify_one();
        outcome
    }

    /// Runs the machine until it has a credential (`want_credential`) or nothing to send.
    async fn drive(
        &self,
        state: &mut State,
        want_credential: bool,
    ) -> Result<Option<Arc<Credential>>> {
        let mut retries = 0u32;
        // Shared store: whether a request went out, and whether the store was re-read
        // before a fallback login (see `adopt_before_login`).
        let (mut sent_any, mut reread) = (false, false);
        // A drive cancelled by a timeout leaves its request "in flight" in the machine.
        if state.machine.get().is_busy() {
            let error = Error::new(ErrorKind::Timeout, "previous request was abandoned");
            state
                .machine
                .get_mut()
                .handle_transport_error(self.now(), &error);
        }
        loop {
            let at = self.now();
            state.machine.get_mut().handle_timeout(at);
            self.publish(state, at);
            if sent_any && self.adopt_before_login(state, &mut reread).await {
                continue;
            }
            let request = state.machine.get_mut().poll_request(at);
            let Some(request) = request else {
                let credential = self.publish(state, at);
                if !want_credential || credential.is_some() {
                    return Ok(credential);
                }
                return Err(state
                    .machine
                    .get()
                    .last_error()
                    .cloned()
                    .unwrap_or_else(|| {
                        Error::new(ErrorKind::Protocol, "no credential and nothing to send")
                    }));
            };
            sent_any = true;
            let sent = self.send(request, None).await;
            let at = self.now();
            let failure = match sent {
                Ok(response) => state.machine.get_mut().handle_response(at, response).err(),
                Err(error) => {
                    state.machine.get_mut().handle_transport_error(at, &error);
                    Some(error)
                }
            };
            self.publish(state, at);
            if let Some(error) = failure {
                let retryable = error.is_retryable()
                    || matches!(error.kind(), ErrorKind::Transport | ErrorKind::Timeout);
                if !retryable || retries >= self.inner.options.max_retries {
                    return Err(error);
                }
                let delay = self.backoff(retries, error.retry_after());
                tracing::debug!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                    kind = error.kind().as_str(), ?delay, "retrying authentication");
                retries += 1;
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Exponential backoff with full jitter, honouring a venue's `Retry-After`.
    fn backoff(&self, retries: u32, retry_after: Option<Duration>) -> Duration {
        let options = &self.inner.options;
        let ceiling = options
            .retry_base_delay
            .saturating_mul(1u32 << retries.min(16))
            .min(options.retry_max_delay);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        match retry_after {
            Some(after) => after.max(jittered).min(options.auth_timeout),
            None => jittered,
        }
    }

    /// Publishes the machine's credential to the hot path, then forwards its events (in
    /// that order, so a subscriber woken by `Refreshed` reads the new credential).
    fn publish(&self, state: &mut State, at: Now) -> Option<Arc<Credential>> {
        let machine = state.machine.get_mut();
        let fresh = machine.credential(at.instant);
        let unchanged = {
            let current = self.inner.current.load();
            match (current.as_ref(), &fresh) {
                (Some(old), Some(new)) => {
                    old.header_value() == new.header_value()
                        && old.valid_until() == new.valid_until()
                }
                (None, None) => true,
                _ => false,
            }
        };
        if !unchanged {
            self.inner.current.store(fresh.map(Arc::new));
        }
        while let Some(event) = machine.poll_event() {
            match &event {
                AuthEvent::Failed { kind, message } => tracing::warn!(
                    venue = self.inner.venue.as_str(), account = %self.inner.account,
                    kind = kind.as_str(), %message, "authentication failed"),
                other => tracing::info!(
                    venue = self.inner.venue.as_str(), account = %self.inner.account,
                    event = ?other, "authentication event"),
            }
            // No receiver is not an error: events are optional.
            let _ = self.inner.events.send(event);
        }
        self.current()
    }

    /// Sends one request to the venue; no credential handling here.
    async fn send(
        &self,
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
        let mut builder = self
            .inner
            .http
            .request(method, url)
            .timeout(timeout.unwrap_or(self.inner.options.request_timeout));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !request.body.is_empty() {
            // Moved, not copied: the request's own Drop wipes what is left (nothing).
            builder = builder.body(std::mem::take(&mut request.body));
        }
        let response = builder.send().await.map_err(transport_error)?;
        self.observe_date(response.headers());
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Measures the venue's clock skew from its `Date` header. The header has whole
    /// seconds, so its midpoint is used and changes under 2 s are ignored (no flapping).
    fn observe_date(&self, headers: &reqwest::header::HeaderMap) {
        let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        else {
            return;
        };
        let Ok(server) = date.duration_since(std::time::UNIX_EPOCH) else {
            return;
        };
        let local = Now::capture().unix_ms as i64;
        let server_ms = server.as_millis() as i64 + 500;
        let skew = server_ms - local;
        let previous = self.inner.skew_ms.load(Ordering::Relaxed);
        if (skew - previous).abs() >= 2_000 {
            tracing::info!(
                venue = self.inner.venue.as_str(),
                skew_ms = skew,
                "venue clock skew measured"
            );
            self.inner.skew_ms.store(skew, Ordering::Relaxed);
        }
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

    fn spawn_refresher(&self) -> Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "background refresh needs a tokio runtime: build the session inside one, or turn background_refresh off",
            )
        })?;
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::clone(&self.inner.wake);
        let task = handle.spawn(refresher(weak, wake));
        if let Ok(mut slot) = self.inner.refresher.lock() {
            *slot = Some(task);
        }
        Ok(())
    }

    /// The rustls configuration this session trusts, for WebSocket connections.
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.inner.tls)
    }

    /// Runs `f` on the machine under the session lock (venue accessors).
    pub(crate) async fn with_machine<T>(&self, f: impl FnOnce(&mut VenueMachine) -> T) -> T {
        let mut state = self.inner.state.lock().await;
        let out = f(&mut state.machine);
        let at = self.now();
        self.publish(&mut state, at);
        out
    }
}

/// The background task: sleeps until the machine's next timeout, then drives it. Holds
/// only a `Weak`, so dropping the last `Session` ends it.
async fn refresher(weak: Weak<Inner>, wake: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let deadline = {
            let Some(inner) = weak.upgrade() else { return };
            let state = inner.state.lock().await;
            // A store retry (store unreachable) comes before the machine's own timer.
            state
                .sync
                .retry_at
                .or_else(|| state.machine.get().poll_timeout())
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let session = Session { inner };
        let outcome = {
            let mut state = session.inner.state.lock().await;
            let budget = session.inner.options.auth_timeout;
            match tokio::time::timeout(budget, session.drive_shared(&mut state, false)).await {
                Ok(result) => result.map(|_| ()),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    "background refresh timed out",
                )),
            }
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(error) => {
                // Back off so a venue outage does not turn into a tight loop; callers that
                // need a credential meanwhile drive the machine themselves.
                let delay = session
                    .backoff(failures.min(6), error.retry_after())
                    .max(Duration::from_millis(50));
                failures += 1;
                drop(session);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wake.notified() => {}
                }
            }
        }
    }
}

fn transport_error(error: reqwest::Error) -> Error {
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
            let outcome = session.send(attempt, self.timeout).await;
            match outcome {
                Ok(response) if response.status == 401 && !reauthenticated => {
                    let Some(rejected) = credential else {
                        return Ok(response);
                    };
                    if session.inner.venue == Venue::Exchange {
                        // A permanent key cannot be renewed; retrying would only repeat the 401.
                        return Ok(response);
                    }
                    reauthenticated = true;
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

impl Session {
    /// A credential for a request; `None` only for sessions that have none (Exchange public use).
    async fn credential_for_request(&self) -> Result<Option<Arc<Credential>>> {
        if let Some(credential) = self.current() {
            return Ok(Some(credential));
        }
        if self.inner.venue == Venue::Exchange {
            let state = self.inner.state.lock().await;
            if let VenueMachine::Exchange(machine) = &state.machine
                && machine.role() == "public"
            {
                return Ok(None);
            }
        }
        self.authenticate(None).await.map(Some)
    }
}
