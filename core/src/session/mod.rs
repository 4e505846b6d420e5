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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
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
    CadenzaMachine, Capabilities, CascadeMachine, ExchangeMachine, Machine, PartnerMachine, Venue,
};
use crate::time::Now;

/// Reads the clocks once; the only place outside tests where machines get their time.
/// `unix_ms` is the venue's clock as far as its `Date` headers tell (our wall clock plus
/// the measured skew, which [`Session::observe_date`] keeps within `max_date_skew`), so
/// tokens we stamp agree with the venue even when the two clocks disagree by minutes;
/// `wall_ms` stays ours, and a stated expiry is measured against the later of the two.
fn venue_now(skew_ms: i64) -> Now {
    let mut now = Now::capture();
    now.unix_ms = now.wall_ms.saturating_add_signed(skew_ms);
    now
}

/// An answer's `Date` header in Unix ms (whole seconds, as the header has them).
fn answer_date_ms(headers: &[(String, String)]) -> Option<u64> {
    let (_, value) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("date"))?;
    let date = httpdate::parse_http_date(value).ok()?;
    let since = date.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
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
    /// In a forked child: the credential inherited from the parent, served while valid
    /// until this process's own machine (built fresh, see [`Local`]) has one.
    inherited: Option<Arc<Credential>>,
    /// Handles to this process's parts that work under the lock needs (cheap clones).
    ctx: Ctx,
}

/// The [`Local`] parts that code holding the state lock uses.
struct Ctx {
    http: reqwest::Client,
    events: broadcast::Sender<AuthEvent>,
    wake: Arc<Notify>,
    shared: Option<Arc<shared::Shared>>,
}

impl Local {
    /// Builds the runtime-bound parts for the current process around `machine`.
    fn build(
        options: &Options,
        venue: Venue,
        base_url: &reqwest::Url,
        account: &str,
        machine: VenueMachine,
        inherited: Option<Arc<Credential>>,
    ) -> Result<Self> {
        let generation = crate::process::generation();
        let tls = tls::client_config(&options.extra_root_certs_pem)?;
        let http = tls::http_client(&tls, options.connect_timeout)?;
        let shareable = machine.get().capabilities().shareable;
        let shared =
            shared::Shared::from_options(options, venue, shareable, base_url.as_str(), account)?
                .map(Arc::new);
        let (events, _) = broadcast::channel(64);
        let wake = Arc::new(Notify::new());
        let ctx = Ctx {
            http: http.clone(),
            events: events.clone(),
            wake: Arc::clone(&wake),
            shared: shared.clone(),
        };
        Ok(Local {
            generation,
            tls,
            http,
            state: Mutex::new(State {
                machine,
                last_failure: None,
                sync: shared::SyncState::default(),
                inherited,
                ctx,
            }),
            events,
            wake,
            refresher: std::sync::Mutex::new(None),
            shared,
        })
    }
}

/// Builds the session's machine: once when the session is made, again in a forked child.
type MachineFactory = Box<dyn Fn() -> Result<VenueMachine> + Send + Sync>;

/// Runs for the session in every process that uses it (see [`Session::on_each_process`]).
type ProcessHook = Arc<dyn Fn(&Session) + Send + Sync>;

/// What a session owns that belongs to the process that built it: the machine's lock,
/// the refresher task, the connection pool and TLS session cache, the event channel and
/// the store connection. A forked child builds its own on first use (see
/// [`crate::process`]) and never drops, joins or awaits its parent's: those may hold a
/// lock that a thread of the parent held at fork time, or tasks of a runtime whose
/// threads do not exist in the child.
struct Local {
    /// The [`crate::process::generation`] that built these.
    generation: u64,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    state: Mutex<State>,
    events: broadcast::Sender<AuthEvent>,
    /// Wakes the background refresher early (after a login, an invalidation).
    wake: Arc<Notify>,
    refresher: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The shared credential store, if configured (touched only by renewals).
    shared: Option<Arc<shared::Shared>>,
}

/// Shared by every clone of a [`Session`].
struct Inner {
    venue: Venue,
    /// The machine's capabilities (fixed for its life; a forked child's machine is built
    /// from the same config).
    capabilities: Capabilities,
    account: String,
    base_url: reqwest::Url,
    options: Options,
    make_machine: MachineFactory,
    /// The hot path: the credential the machine last produced, swapped in whole. Plain
    /// data, so a forked child may keep serving it while it is valid.
    current: ArcSwapOption<Credential>,
    /// Bumped after every authentication attempt; callers that waited on the lock compare
    /// it to know an attempt finished while they queued (single flight, shared failure).
    attempts: AtomicU64,
    /// The venue's clock minus ours (ms), from the last plausible `Date` header it sent.
    skew_ms: AtomicI64,
    /// The last `Date` was implausible (its event was sent; the next is after a good one).
    date_distrusted: AtomicBool,
    /// This process's parts; `None` only while the session is being dropped.
    local: ArcSwapOption<Local>,
    /// The generation of `local`, for the hot path's one-load fork check.
    local_generation: AtomicU64,
    hooks: ArcSwap<Vec<ProcessHook>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(local) = self.local.swap(None) else {
            return;
        };
        if local.generation == crate::process::generation() {
            if let Ok(mut slot) = local.refresher.lock()
                && let Some(task) = slot.take()
            {
                task.abort();
            }
        } else {
            // Built by a parent process: its refresher, pool and locks are not this
            // process's to touch. Kept, never dropped (once per fork).
            crate::process::keep_forever(local);
        }
    }
}

/// An authenticated connection to one venue account: `Send + Sync + Clone` (an `Arc`).
///
/// Reading the current credential ([`Session::current`]) is one atomic load; getting one
/// when none is valid ([`Session::credential`]) runs exactly one login or refresh however
/// many callers ask at once.
///
/// Fork: a session made before `fork()` keeps working in the child. On its first use
/// there it builds its own machine, refresher, connection pool and store connection from
/// its configuration (the parent's are left untouched: leaked, never dropped), serves
/// the credential it inherited while that is valid, and logs in on its own before it
/// expires. The child never reuses the parent's refresh token. Use it in the child from
/// a plain thread (the library's runtime is rebuilt there) or from a runtime built in the
/// child.
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
    /// Wraps the machine `make_machine` builds (it is called again in a forked child);
    /// must be called inside a tokio runtime when background refresh is on.
    pub(crate) fn from_machine(
        make_machine: impl Fn() -> Result<VenueMachine> + Send + Sync + 'static,
        default_base_url: Option<&str>,
        options: Options,
    ) -> Result<Self> {
        crate::process::register();
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
        let machine = make_machine()?;
        let venue = machine.get().venue();
        let capabilities = machine.get().capabilities();
        let account = machine.get().account().to_owned();
        let local = Local::build(&options, venue, &base_url, &account, machine, None)?;
        let generation = local.generation;
        let inner = Arc::new(Inner {
            venue,
            capabilities,
            account,
            base_url,
            make_machine: Box::new(make_machine),
            current: ArcSwapOption::empty(),
            attempts: AtomicU64::new(0),
            skew_ms: AtomicI64::new(0),
            date_distrusted: AtomicBool::new(false),
            local: ArcSwapOption::from_pointee(local),
            local_generation: AtomicU64::new(generation),
            hooks: ArcSwap::from_pointee(Vec::new()),
            options,
        });
        let session = Self { inner };
        if session.inner.options.background_refresh {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "background refresh needs a tokio runtime: build the session inside one, or turn background_refresh off",
                )
            })?;
            session.spawn_refresher(&session.local()?, &handle);
        }
        Ok(session)
    }

    /// This process's parts of the session, built on first use in a forked child.
    fn local(&self) -> Result<Arc<Local>> {
        let generation = crate::process::generation();
        let stale = self.inner.local.load_full();
        match stale {
            Some(local) if local.generation == generation => Ok(local),
            _ => self.rebuild_local(stale, generation),
        }
    }

    /// The slow path of [`Session::local`]: this is a forked child using the session for
    /// the first time. Builds fresh parts, installs them unless another thread of this
    /// child did first, and leaks the parent's.
    #[cold]
    fn rebuild_local(&self, stale: Option<Arc<Local>>, generation: u64) -> Result<Arc<Local>> {
        let inner = &self.inner;
        let machine = (inner.make_machine)()?;
        // The parent's credential is plain data: keep serving it while it is valid.
        let inherited = inner
            .current
            .load_full()
            .filter(|credential| credential.is_valid_now());
        let fresh = Arc::new(Local::build(
            &inner.options,
            inner.venue,
            &inner.base_url,
            &inner.account,
            machine,
            inherited,
        )?);
        debug_assert_eq!(fresh.generation, generation);
        let previous = inner
            .local
            .compare_and_swap(&stale, Some(Arc::clone(&fresh)));
        let previous = arc_swap::Guard::into_inner(previous);
        let won = match (&previous, &stale) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !won {
            // Another thread of this child installed its parts first; ours never ran.
            return previous.ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, "the session is being dropped")
            });
        }
        // The parent's parts: never dropped here (see `Local`).
        crate::process::keep_forever((previous, stale));
        inner.local_generation.store(generation, Ordering::Release);
        tracing::debug!(
            venue = inner.venue.as_str(),
            account = %inner.account,
            "session rebuilt its runtime-bound parts in a forked child"
        );
        if inner.options.background_refresh {
            let handle = match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle,
                Err(_) => crate::runtime::shared()?.handle().clone(),
            };
            self.spawn_refresher(&fresh, &handle);
        }
        for hook in inner.hooks.load().iter() {
            hook(self);
        }
        Ok(fresh)
    }

    /// Runs `hook` for this session now and again in every forked child where the session
    /// is used (after it has rebuilt its parts there), e.g. to forward its events to a
    /// logger: [`Session::subscribe`] in the hook subscribes to that process's events.
    /// The hook must not keep a clone of the session (that would keep it alive forever).
    pub fn on_each_process(&self, hook: impl Fn(&Session) + Send + Sync + 'static) {
        let hook: ProcessHook = Arc::new(hook);
        self.inner.hooks.rcu(|hooks| {
            let mut hooks = Vec::clone(hooks);
            hooks.push(Arc::clone(&hook));
            hooks
        });
        hook(self);
    }

    /// On the hot path: whether this is a forked child that has not rebuilt yet. One
    /// relaxed load of a global and one of the session; on a mismatch the parts are
    /// rebuilt (so background refresh resumes even if the child only reads headers).
    #[inline]
    fn check_process(&self) {
        if self.inner.local_generation.load(Ordering::Relaxed) != crate::process::generation() {
            // A failure here is reported by the next call that needs the parts.
            let _ = self.local();
        }
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

    /// What this session's machine can do (renewal, sharing, WebSocket auth, public
    /// use): what bindings ask instead of deciding by venue.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities
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
    /// In a forked child it subscribes to the child's own events (see [`Session`]).
    pub fn subscribe(&self) -> broadcast::Receiver<AuthEvent> {
        match self.local() {
            Ok(local) => local.events.subscribe(),
            // Cannot happen short of running out of resources; a closed receiver says so.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// The hot path: the current credential if one is cached and still valid. No lock, no
    /// I/O, no allocation beyond the `Arc` clone; never an expired credential.
    #[inline]
    pub fn current(&self) -> Option<Arc<Credential>> {
        self.check_process();
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
        self.check_process();
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
        let Ok(local) = self.local() else { return };
        let mut state = local.state.lock().await;
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
            // An inherited credential the venue rejected is not served again either.
            state.inherited = None;
            let now = self.now();
            state.machine.get_mut().handle_unauthorized(now);
            self.publish(state, now);
            state.ctx.wake.notify_one();
        }
    }

    /// Renews now, whatever the credential's age (a "forced refresh").
    pub async fn refresh(&self) -> Result<Arc<Credential>> {
        let local = self.local()?;
        let mut state = local.state.lock().await;
        let now = self.now();
        state.machine.get_mut().force_refresh(now);
        self.publish(&mut state, now);
        self.drive_bounded(&mut state).await
    }

    /// Wipes every credential; the next use logs in again.
    pub async fn logout(&self) {
        let Ok(local) = self.local() else {
            self.inner.current.store(None);
            return;
        };
        let mut state = local.state.lock().await;
        state.machine.get_mut().logout();
        state.last_failure = None;
        state.inherited = None;
        self.inner.current.store(None);
        let now = self.now();
        self.publish(&mut state, now);
    }

    /// Single flight: one authentication runs; callers that queued behind it take its result.
    async fn authenticate(&self, rejected: Option<&Credential>) -> Result<Arc<Credential>> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let local = self.local()?;
        let mut state = local.state.lock().await;
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
        state.ctx.wake.notify_one();
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
            let http = state.ctx.http.clone();
            let sent = self.send(&http, request, None).await;
            let at = match &sent {
                Ok(response) => self.now_for(response),
                Err(_) => self.now(),
            };
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
        let mut fresh = machine.credential(at.instant).map(Arc::new);
        if fresh.is_some() {
            // This process's machine has its own: the parent's is no longer needed.
            state.inherited = None;
        } else if let Some(inherited) = state.inherited.take() {
            if inherited.is_valid_at(at.instant) {
                fresh = Some(Arc::clone(&inherited));
                state.inherited = Some(inherited);
            }
        }
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
            self.inner.current.store(fresh);
        }
        let machine = state.machine.get_mut();
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
            let _ = state.ctx.events.send(event);
        }
        self.current()
    }

    /// Sends one request to the venue; no credential handling here.
    async fn send(
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
        let mut builder = http
            .request(method, url)
            .timeout(timeout.unwrap_or(self.inner.options.request_timeout));
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
        self.observe_date(response.headers());
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        // Read chunk by chunk into one buffer that is wiped whenever it grows (answers
        // carry tokens); each chunk is wiped too when nothing else shares its memory.
        let hint = response.content_length().unwrap_or(0).min(1 << 20) as usize;
        let mut body = Vec::with_capacity(hint);
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            append_wiping(&mut body, &chunk);
            wipe_if_unique(chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Measures the venue's clock skew from its `Date` header. The header has whole
    /// seconds, so its midpoint is used and changes under 2 s are ignored (no flapping).
    /// A `Date` further than `max_date_skew` from our clock is implausible (a stale cache
    /// or CDN in front of the venue): it is ignored, with one `Distrusted` event until a
    /// plausible one arrives, and the skew learned so far stays.
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
        let local = Now::capture().wall_ms;
        let server_ms = u64::try_from(server.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(500);
        if !crate::time::plausible(server_ms, local, self.inner.options.max_date_skew) {
            if !self.inner.date_distrusted.swap(true, Ordering::Relaxed) {
                let message = format!(
                    "{} answered with a Date {} s from our clock, more than max_date_skew ({} s): \
                     ignored; our clock decides (check this machine's clock, or a proxy that \
                     caches answers)",
                    self.inner.venue.as_str(),
                    (server_ms as i128 - local as i128) / 1000,
                    self.inner.options.max_date_skew.as_secs()
                );
                tracing::warn!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                    %message, "implausible Date header");
                if let Ok(local) = self.local() {
                    let _ = local.events.send(AuthEvent::Distrusted { message });
                }
            }
            return;
        }
        self.inner.date_distrusted.store(false, Ordering::Relaxed);
        let skew = server_ms as i64 - local as i64;
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

    /// The clocks for handling `response`: [`Self::now`] plus the answer's own `Date` if
    /// it is plausible, so a token's lifetime is the shortest our clock, the learned skew
    /// and this answer give.
    fn now_for(&self, response: &HttpResponse) -> Now {
        self.now().with_answer_date(
            answer_date_ms(&response.headers),
            self.inner.options.max_date_skew,
        )
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

    /// Starts `local`'s background refresher on `runtime`.
    fn spawn_refresher(&self, local: &Arc<Local>, runtime: &tokio::runtime::Handle) {
        let weak = Arc::downgrade(&self.inner);
        let task = runtime.spawn(refresher(weak, Arc::downgrade(local)));
        if let Ok(mut slot) = local.refresher.lock() {
            *slot = Some(task);
        }
    }

    /// The rustls configuration this session trusts, for WebSocket connections.
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::clone(&self.local()?.tls))
    }

    /// Runs `f` on the machine under the session lock (venue accessors).
    pub(crate) async fn with_machine<T>(
        &self,
        f: impl FnOnce(&mut VenueMachine) -> T,
    ) -> Result<T> {
        let local = self.local()?;
        let mut state = local.state.lock().await;
        let out = f(&mut state.machine);
        let at = self.now();
        self.publish(&mut state, at);
        Ok(out)
    }
}

/// The background task: sleeps until the machine's next timeout, then drives it. Holds
/// only `Weak`s, so dropping the last `Session` ends it; it belongs to the process (the
/// [`Local`]) that started it.
async fn refresher(weak: Weak<Inner>, local: Weak<Local>) {
    let mut failures = 0u32;
    loop {
        let Some(parts) = local.upgrade() else { return };
        let wake = Arc::clone(&parts.wake);
        let deadline = {
            let state = parts.state.lock().await;
            // A store retry (store unreachable) comes before the machine's own timer; in
            // a forked child, a login before the inherited credential expires.
            state
                .sync
                .retry_at
                .or_else(|| state.machine.get().poll_timeout())
                .or_else(|| state.inherited.as_deref().and_then(inherited_renewal_at))
        };
        drop(parts);
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = sleep_until_deadline(deadline) => {}
                    _ = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let (Some(inner), Some(parts)) = (weak.upgrade(), local.upgrade()) else {
            return;
        };
        let session = Session { inner };
        let outcome = {
            let mut state = parts.state.lock().await;
            let budget = session.inner.options.auth_timeout;
            let outcome =
                match tokio::time::timeout(budget, session.drive_shared(&mut state, false)).await {
                    Ok(result) => result.map(|_| ()),
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        "background refresh timed out",
                    )),
                };
            // Like a caller's own attempt: callers that queued behind this one take its
            // failure instead of starting another (single flight holds for the refresher).
            state.last_failure = outcome.as_ref().err().cloned();
            session.inner.attempts.fetch_add(1, Ordering::AcqRel);
            outcome
        };
        drop(parts);
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

/// The longest one nap of [`sleep_until_deadline`]: how late a timer may fire after the
/// machine was suspended.
const MAX_NAP: Duration = Duration::from_secs(5);

/// Sleeps until `deadline` on the deadline clock (which counts suspended time). Timers run
/// on `CLOCK_MONOTONIC`, which does not, so it naps at most [`MAX_NAP`] at a time and
/// looks at the deadline clock again: after a resume it wakes within one nap.
async fn sleep_until_deadline(deadline: std::time::Instant) {
    loop {
        let left = deadline.saturating_duration_since(crate::time::deadline_now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_NAP)).await;
    }
}

/// When a forked child logs in on its own, while the credential it inherited is still
/// good: a minute before that expires, or halfway through what is left if that is sooner.
fn inherited_renewal_at(credential: &Credential) -> Option<std::time::Instant> {
    let until = credential.valid_until()?;
    let now = crate::time::deadline_now();
    let left = until.saturating_duration_since(now);
    Some(now + left.saturating_sub(Duration::from_secs(60).min(left / 2)))
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
/// the HTTP stack's read buffer, which the library cannot touch).
fn wipe_if_unique(chunk: bytes::Bytes) {
    if let Ok(mut unique) = chunk.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut unique[..]);
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
            let http = session.local()?.http.clone();
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
        if self.inner.capabilities.public {
            return Ok(None);
        }
        self.authenticate(None).await.map(Some)
    }
}
