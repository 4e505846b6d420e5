//! The session driver: one venue machine plus its I/O (tokio + reqwest).
//!
//! Data flows one way: a caller asks the [`Session`] for a credential or a request, the
//! session feeds the machine the clock and the venue's answers, and publishes the
//! machine's credential into an [`ArcSwapOption`] that the hot path reads without a lock.

mod cadenza;
mod cascade;
#[cfg(test)]
mod demo;
mod drive;
pub(crate) mod env;
mod exchange;
mod options;
mod partner;
mod pool;
mod refresher;
mod request;
mod shared;
mod skew;
pub(crate) mod tls;
mod ws;
mod ws_client;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{Mutex, Notify, broadcast};
use tokio::task::JoinHandle;

pub use cadenza::{CADENZA_PRODUCTION_URL, CADENZA_UAT_URL};
pub use cascade::CASCADE_URL;
pub use exchange::EXCHANGE_URL;
pub use options::{OptionSpec, Options};
pub use request::RequestBuilder;
pub use ws::WsStream;
pub use ws_client::{Privacy, WsBuilder, WsClient, WsState, parse_ws_message};

use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::machine::{Capabilities, Machine, Venue};

/// What the driver guards with its one async mutex: the machine and the last outcome.
struct State {
    /// Any venue's machine: the driver asks only the trait (venue accessors downcast, see
    /// [`Session::with_venue_machine`]), so adding a venue does not touch it.
    machine: Box<dyn Machine>,
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
    /// Renewal requests in flight to this venue from this process (shared by its sessions).
    renewals: Arc<tokio::sync::Semaphore>,
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
        machine: Box<dyn Machine>,
        inherited: Option<Arc<Credential>>,
    ) -> Result<Self> {
        let generation = crate::process::generation();
        let transport = pool::transport(options)?;
        let first_connection = transport.first_connection(base_url);
        let renewals = pool::renewal_limit(base_url)?;
        let shareable = machine.capabilities().shareable;
        let shared =
            shared::Shared::from_options(options, venue, shareable, base_url.as_str(), account)?
                .map(Arc::new);
        let (events, _) = broadcast::channel(64);
        let wake = Arc::new(Notify::new());
        let ctx = Ctx {
            http: transport.http.clone(),
            renewals,
            events: events.clone(),
            wake: Arc::clone(&wake),
            shared: shared.clone(),
        };
        Ok(Local {
            generation,
            transport,
            first_connection,
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

/// A renewing venue's config (Cadenza, Cascade): its refresh window, jitter seed and
/// lifetime cap, which the session options decide.
trait RenewalConfig: Clone + Send + Sync + 'static {
    /// The three fields, for [`Session::renewing`] to set.
    fn renewal(&mut self) -> (&mut Duration, &mut u64, &mut Duration);
}

/// Builds the session's machine: once when the session is made, again in a forked child.
type MachineFactory = Box<dyn Fn() -> Result<Box<dyn Machine>> + Send + Sync>;

/// Runs for the session in every process that uses it (see [`Session::on_each_process`]).
type ProcessHook = Arc<dyn Fn(&Session) + Send + Sync>;

/// What a session owns that belongs to the process that built it: the machine's lock,
/// the refresher task, its share of the process's connection pool and TLS session
/// cache, the event channel and the store connection. A forked child builds its own on
/// first use (see [`crate::process`]) and never drops, joins or awaits its parent's: those may hold a
/// lock that a thread of the parent held at fork time, or tasks of a runtime whose
/// threads do not exist in the child.
struct Local {
    /// The [`crate::process::generation`] that built these.
    generation: u64,
    /// The TLS configuration and connection pool (shared unless `private_pool`).
    transport: Arc<pool::Transport>,
    /// The pool's first-connection gate for this session's origin.
    first_connection: Arc<pool::FirstConnection>,
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
    /// Secrets replaced since the session was made ([`Session::update_credentials`]),
    /// the latest of each kind (the kinds are independent, so their order does not
    /// matter): a forked child's machine is built from the config and then given these,
    /// so it never goes back to a rotated-out secret, and none is kept once replaced.
    rotations: ArcSwap<BTreeMap<&'static str, crate::machine::NewSecret>>,
    /// What `metrics()` reports: counted where events are published.
    metrics: crate::metrics::Counters,
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

/// A reference to a [`Session`] that does not keep it alive: what a registry of live
/// sessions (for a metrics scrape) holds.
#[derive(Clone, Debug)]
pub struct WeakSession(std::sync::Weak<Inner>);

impl WeakSession {
    /// The session, if any clone of it is still alive.
    pub fn upgrade(&self) -> Option<Session> {
        self.0.upgrade().map(|inner| Session { inner })
    }
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
    /// A session of a renewing venue: the refresh window if the options set one, their
    /// lifetime cap, and a random jitter seed, so that processes of one account do not
    /// renew in lockstep (the configs' default seed is per account).
    fn renewing<C: RenewalConfig, M: Machine>(
        mut config: C,
        new: fn(C) -> Result<M>,
        default_base_url: &str,
        options: Options,
    ) -> Result<Self> {
        let (window, seed, max_lifetime) = config.renewal();
        if let Some(set) = options.refresh_window {
            *window = set;
        }
        *seed = rand::random();
        *max_lifetime = options.max_lifetime;
        Self::from_machine(move || new(config.clone()), Some(default_base_url), options)
    }

    /// Wraps the machine `make_machine` builds (it is called again in a forked child);
    /// must be called inside a tokio runtime when background refresh is on.
    pub(crate) fn from_machine<M: Machine>(
        make_machine: impl Fn() -> Result<M> + Send + Sync + 'static,
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
        let venue = machine.venue();
        let capabilities = machine.capabilities();
        let account = machine.account().to_owned();
        let local = Local::build(
            &options,
            venue,
            &base_url,
            &account,
            Box::new(machine),
            None,
        )?;
        let generation = local.generation;
        let inner = Arc::new(Inner {
            venue,
            capabilities,
            account,
            base_url,
            make_machine: Box::new(move || Ok(Box::new(make_machine()?) as Box<dyn Machine>)),
            current: ArcSwapOption::empty(),
            attempts: AtomicU64::new(0),
            skew_ms: AtomicI64::new(0),
            date_distrusted: AtomicBool::new(false),
            local: ArcSwapOption::from_pointee(local),
            local_generation: AtomicU64::new(generation),
            hooks: ArcSwap::from_pointee(Vec::new()),
            rotations: ArcSwap::from_pointee(BTreeMap::new()),
            metrics: crate::metrics::Counters::default(),
            options,
        });
        let session = Self { inner };
        #[cfg(feature = "metrics")]
        session
            .inner
            .metrics
            .label(session.inner.venue.as_str(), &session.inner.account);
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
        let mut machine = (inner.make_machine)()?;
        let at = self.now();
        for secret in inner.rotations.load().values() {
            machine.replace_secret(at, secret.clone())?;
        }
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
        // `stale` is never `None` here: only `Inner`'s drop empties the slot, and no
        // `Session` is left to call this then.
        let won = match (&previous, &stale) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
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
            state.machine.handle_unauthorized(now);
            self.publish(state, now);
            state.ctx.wake.notify_one();
        }
    }

    /// Renews now, whatever the credential's age (a "forced refresh").
    pub async fn refresh(&self) -> Result<Arc<Credential>> {
        let local = self.local()?;
        let mut state = local.state.lock().await;
        let now = self.now();
        state.machine.force_refresh(now);
        self.publish(&mut state, now);
        self.drive_bounded(&mut state).await
    }

    /// Replaces a secret in place (rotation without restart): a new Cadenza password,
    /// Partner secret, Exchange key or Cascade key/signer. The next renewal uses it; the
    /// credential served now stays valid until then (Exchange's new key is served at
    /// once), so readers never see a gap; the machine's copy of the old secret is wiped
    /// (the config the session was built with, kept for a forked child's machine, still
    /// holds the original until the session is dropped). Waits for a renewal in progress
    /// to finish first. A kind the venue does not use is `InvalidArgument`.
    pub async fn update_credentials(&self, secret: crate::machine::NewSecret) -> Result<()> {
        let local = self.local()?;
        let mut state = local.state.lock().await;
        let now = self.now();
        state.machine.replace_secret(now, secret.clone())?;
        self.inner.rotations.rcu(|kept| {
            let mut kept = BTreeMap::clone(kept);
            kept.insert(secret.kind_name(), secret.clone());
            kept
        });
        // A failure the old secret caused is not the new one's.
        state.last_failure = None;
        self.publish(&mut state, now);
        Ok(())
    }

    /// Wipes every credential; the next use logs in again.
    pub async fn logout(&self) {
        let Ok(local) = self.local() else {
            self.inner.current.store(None);
            return;
        };
        let mut state = local.state.lock().await;
        state.machine.logout();
        state.last_failure = None;
        state.inherited = None;
        self.inner.current.store(None);
        let now = self.now();
        self.publish(&mut state, now);
    }

    /// A snapshot of the session's counters and gauges: logins, refreshes, failures by
    /// kind, renewal latency, seconds until the served credential expires, clock skew,
    /// 401 re-auths, shared-store and WebSocket activity. Cheap: atomics and one clock
    /// read, no lock.
    pub fn metrics(&self) -> crate::Metrics {
        let now = self.now();
        let expires_in = self
            .current()
            .and_then(|c| c.valid_until())
            .map(|until| until.saturating_duration_since(now.instant).as_secs_f64());
        let skew = self.inner.skew_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        #[cfg(feature = "metrics")]
        self.inner.metrics.gauges(expires_in, skew);
        self.inner.metrics.snapshot(expires_in, skew)
    }

    /// A [`WeakSession`] to this session.
    pub fn downgrade(&self) -> WeakSession {
        WeakSession(Arc::downgrade(&self.inner))
    }

    /// Counts for `metrics()` (the store and request paths report here).
    pub(crate) fn counters(&self) -> &crate::metrics::Counters {
        &self.inner.metrics
    }

    /// Publishes `event` on the session's event stream (a WebSocket client's events).
    pub(crate) fn emit(&self, event: AuthEvent) {
        self.inner.metrics.on_event(&event);
        if let Ok(local) = self.local() {
            // No receiver is not an error: events are optional.
            let _ = local.events.send(event);
        }
    }

    /// When the credential the session serves will be replaced by a renewed one (the
    /// machine's renewal deadline, on the deadline clock), or `None` when nothing is
    /// scheduled: a WebSocket authenticated with the current credential authenticates
    /// again then, with the new one.
    pub async fn ws_reauth_due(&self) -> Option<std::time::Instant> {
        let local = self.local().ok()?;
        let state = local.state.lock().await;
        let renewal = state.machine.poll_timeout();
        let served = self.current().and_then(|c| c.valid_until());
        match (renewal, served) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The venue's WebSocket message rules ([`WsRules`](crate::machine::WsRules)): which
    /// messages are private, which answer refuses the credential, request ids. For callers
    /// that run their own WebSocket stack.
    pub async fn ws_rules(&self) -> Result<crate::machine::WsRules> {
        self.with_machine(|m| m.ws_rules()).await
    }

    /// The rustls configuration this session trusts, for WebSocket connections.
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::clone(&self.local()?.transport.tls))
    }

    /// Runs `f` on the machine under the session lock.
    pub(crate) async fn with_machine<T>(&self, f: impl FnOnce(&mut dyn Machine) -> T) -> Result<T> {
        let local = self.local()?;
        let mut state = local.state.lock().await;
        let out = f(&mut *state.machine);
        let at = self.now();
        self.publish(&mut state, at);
        Ok(out)
    }

    /// Runs `f` on the machine if it is an `M` (a venue's own accessors, such as
    /// Cadenza's refresh token): `None` for any other venue or a session in a bad state.
    pub(crate) async fn with_venue_machine<M: Machine, T>(
        &self,
        f: impl FnOnce(&mut M) -> T,
    ) -> Option<T> {
        self.with_machine(|machine| {
            let any: &mut dyn std::any::Any = machine;
            any.downcast_mut::<M>().map(f)
        })
        .await
        .ok()
        .flatten()
    }
}
