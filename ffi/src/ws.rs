//! `tradeauth_ws`: the core's WebSocket client that stays authenticated
//! (`Session::websocket`), with received messages delivered to a C callback on a
//! library-owned thread, one per connection.
//!
//! The handle follows the lifetime rule of `handle.rs`: calls enter its gate, take an
//! `Arc` of the client and the close signal, and leave; `_free` closes the gate, wakes
//! blocked calls, waits for the short copies, stops the dispatcher thread (as
//! `events.rs` stops an event callback) and closes the connection.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tradeauth::{Privacy, WsBuilder, WsClient, WsState};

use crate::handle::{Gate, closed, free};
use crate::session::{block_on, tradeauth_session};
use crate::status::{Failure, boundary, tradeauth_status};
use crate::text::{arg_out, arg_ref, arg_str};

/// Where a `tradeauth_ws` connection stands, as written by `tradeauth_ws_state` (the type
/// cannot share the function's name in C). Values are fixed.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum tradeauth_ws_connection_state {
    /// Opening the first connection.
    TRADEAUTH_WS_STATE_CONNECTING = 0,
    /// Connected; the auth message was sent and its answer is awaited (private messages
    /// are held).
    TRADEAUTH_WS_STATE_AUTHENTICATING = 1,
    /// The venue accepted the credential on this connection: private messages flow.
    TRADEAUTH_WS_STATE_AUTHENTICATED = 2,
    /// Connected without authentication (an Exchange public or admin session): private
    /// messages are refused.
    TRADEAUTH_WS_STATE_OPEN = 3,
    /// The connection was lost; a new one is being opened after a backoff.
    TRADEAUTH_WS_STATE_RECONNECTING = 4,
    /// Closed for good (after an error no retry can fix).
    TRADEAUTH_WS_STATE_CLOSED = 5,
}

impl From<WsState> for tradeauth_ws_connection_state {
    fn from(state: WsState) -> Self {
        match state {
            WsState::Connecting => Self::TRADEAUTH_WS_STATE_CONNECTING,
            WsState::Authenticating => Self::TRADEAUTH_WS_STATE_AUTHENTICATING,
            WsState::Authenticated => Self::TRADEAUTH_WS_STATE_AUTHENTICATED,
            WsState::Open => Self::TRADEAUTH_WS_STATE_OPEN,
            WsState::Reconnecting => Self::TRADEAUTH_WS_STATE_RECONNECTING,
            WsState::Closed => Self::TRADEAUTH_WS_STATE_CLOSED,
        }
    }
}

/// Whether an outgoing WebSocket message needs an authenticated connection. Values are
/// fixed; pass only these.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum tradeauth_ws_privacy {
    /// As the venue's rules classify it (see `tradeauth_session_ws_is_private`).
    TRADEAUTH_WS_PRIVACY_AUTO = 0,
    /// Public: sent as soon as the connection is open, authenticated or not.
    TRADEAUTH_WS_PRIVACY_PUBLIC = 1,
    /// Private: sent only on a connection the venue has authenticated.
    TRADEAUTH_WS_PRIVACY_PRIVATE = 2,
}

impl tradeauth_ws_privacy {
    /// The privacy a caller's raw value names. C passes the enum as a `uint32_t`, so any
    /// number can arrive: reading it as the Rust enum directly would be undefined
    /// behaviour for a value outside the three.
    fn from_raw(value: u32) -> Result<Privacy, Failure> {
        match value {
            v if v == Self::TRADEAUTH_WS_PRIVACY_AUTO as u32 => Ok(Privacy::Auto),
            v if v == Self::TRADEAUTH_WS_PRIVACY_PUBLIC as u32 => Ok(Privacy::Public),
            v if v == Self::TRADEAUTH_WS_PRIVACY_PRIVATE as u32 => Ok(Privacy::Private),
            _ => Err(Failure::invalid(
                "privacy must be TRADEAUTH_WS_PRIVACY_AUTO, _PUBLIC or _PRIVATE",
            )),
        }
    }
}

/// A received-message callback.
///
/// `userdata` is the pointer given to `tradeauth_ws_connect`. `json` is one message as
/// the venue sent it (its JSON text), `len` bytes long and NUL-terminated as well; it is
/// valid only during the call (copy it to keep it). The library's own auth replies are
/// not delivered.
///
/// It is called on a thread owned by the library (one per connection), never on the
/// thread that connected, one message at a time and in the order received. It may call
/// tradeauth functions, including blocking ones and `tradeauth_ws_free` on its own
/// connection. While it runs no further message is read (up to 4096 wait, then the socket
/// is not read): return quickly. It must not unwind (C++: do not throw out of it). Once the
/// connection has closed for good (`TRADEAUTH_WS_STATE_CLOSED`) no more calls come.
pub type tradeauth_ws_message_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, json: *const c_char, len: usize)>;

/// WebSocket client options (timeouts and bounds), copied by `tradeauth_ws_connect`.
/// Made by `tradeauth_ws_options_new`, freed by `tradeauth_ws_options_free`; safe to use
/// from any thread.
pub struct tradeauth_ws_options {
    gate: Gate,
    inner: Mutex<WsSettings>,
}

/// What a `tradeauth_ws_options` holds: only the settings that were set.
#[derive(Debug, Clone, Default)]
struct WsSettings {
    idle_timeout: Option<Duration>,
    ping_interval: Option<Duration>,
    backoff: Option<(Duration, Duration)>,
    max_held: Option<usize>,
    hold_timeout: Option<Duration>,
    auth_timeout: Option<Duration>,
    inbound_capacity: Option<usize>,
}

impl WsSettings {
    fn apply(self, mut builder: WsBuilder) -> WsBuilder {
        if let Some(timeout) = self.idle_timeout {
            builder = builder.idle_timeout(timeout);
        }
        if let Some(interval) = self.ping_interval {
            builder = builder.ping_interval(interval);
        }
        if let Some((initial, max)) = self.backoff {
            builder = builder.reconnect_backoff(initial, max);
        }
        if let Some(messages) = self.max_held {
            builder = builder.max_held(messages);
        }
        if let Some(timeout) = self.hold_timeout {
            builder = builder.hold_timeout(timeout);
        }
        if let Some(timeout) = self.auth_timeout {
            builder = builder.auth_timeout(timeout);
        }
        if let Some(messages) = self.inbound_capacity {
            builder = builder.inbound_capacity(messages);
        }
        builder
    }
}

/// One WebSocket connection that stays authenticated, made by `tradeauth_ws_connect` and
/// freed by `tradeauth_ws_free`. Usable from any thread; `tradeauth_ws_free` may run
/// while other threads are inside calls on it (see the header's lifetime rule). It keeps
/// its own reference to the session: freeing the session first is allowed.
pub struct tradeauth_ws {
    gate: Gate,
    client: Arc<WsClient>,
    /// Set to `true` when `_free` begins: blocked sends return `TRADEAUTH_ERR_CLOSED`.
    closing: watch::Sender<bool>,
    dispatcher: Mutex<Option<Dispatcher>>,
    /// The process generation that connected: the connection's task does not exist in a
    /// forked child.
    generation: u64,
}

/// What a call keeps of a ws handle once it has left it.
struct Held {
    client: Arc<WsClient>,
    closing: watch::Receiver<bool>,
}

impl tradeauth_ws {
    fn hold(&self) -> Result<Held, Failure> {
        let _inside = self.gate.enter("WebSocket")?;
        if self.generation != tradeauth::process::generation() {
            return Err(Failure::invalid(
                "this WebSocket was connected before fork(): connect again in the child",
            ));
        }
        Ok(Held {
            client: Arc::clone(&self.client),
            closing: self.closing.subscribe(),
        })
    }
}

impl Held {
    /// Runs `work` on the library's runtime, unless the handle is freed first
    /// (`TRADEAUTH_ERR_CLOSED`).
    fn block_on<F: Future>(
        &self,
        work: impl FnOnce(Arc<WsClient>) -> F,
    ) -> Result<F::Output, Failure> {
        let mut closing = self.closing.clone();
        let work = work(Arc::clone(&self.client));
        block_on(async move {
            tokio::select! {
                biased;
                _ = closing.wait_for(|closed| *closed) => Err(closed("WebSocket")),
                out = work => Ok(out),
            }
        })?
    }
}

/// The C callback and its userdata. The caller promises userdata may be used from the
/// dispatcher thread (documented on `tradeauth_ws_connect`).
struct Registration {
    callback: unsafe extern "C" fn(*mut c_void, *const c_char, usize),
    userdata: *mut c_void,
}

// SAFETY: only used to call the callback from the dispatcher thread, per the contract.
unsafe impl Send for Registration {}

/// Source of dispatcher ids, so a thread can tell whether it is a given dispatcher.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static DISPATCHER_ID: Cell<u64> = const { Cell::new(0) };
}

struct Hub {
    id: u64,
    stopped: AtomicBool,
    stop: Notify,
}

/// The thread that reads `WsClient::recv` and calls the callback.
struct Dispatcher {
    hub: Arc<Hub>,
    thread: JoinHandle<()>,
    generation: u64,
}

impl Dispatcher {
    fn start(client: Arc<WsClient>, registration: Registration) -> Result<Self, Failure> {
        let runtime = tradeauth::runtime::shared()?;
        let hub = Arc::new(Hub {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        });
        let thread_hub = Arc::clone(&hub);
        let thread = std::thread::Builder::new()
            .name("tradeauth-ws".into())
            .spawn(move || {
                let hub = thread_hub;
                let registration = registration;
                DISPATCHER_ID.with(|id| id.set(hub.id));
                while !hub.stopped.load(Ordering::Acquire) {
                    let next = runtime.block_on(async {
                        tokio::select! {
                            _ = hub.stop.notified() => None,
                            received = client.recv() => Some(received),
                        }
                    });
                    // None: stopped. An error: the client closed for good.
                    let Some(Ok(text)) = next else { break };
                    if hub.stopped.load(Ordering::Acquire) {
                        break;
                    }
                    let len = text.len();
                    let mut bytes = text.into_bytes();
                    bytes.push(0);
                    // SAFETY: the caller registered a valid function and userdata and keeps
                    // them valid until tradeauth_ws_free returns; `bytes` outlives the call.
                    unsafe {
                        (registration.callback)(registration.userdata, bytes.as_ptr().cast(), len)
                    };
                }
            })
            .map_err(|e| {
                Failure::new(
                    tradeauth_status::TRADEAUTH_ERR_TRANSPORT,
                    format!("cannot start the WebSocket thread: {e}"),
                )
            })?;
        Ok(Dispatcher {
            hub,
            thread,
            generation: tradeauth::process::generation(),
        })
    }

    /// Stops delivery. After it returns no callback is running or will run, except when
    /// called from inside the callback: then the running call finishes, no other follows.
    fn stop(self) {
        self.hub.stopped.store(true, Ordering::Release);
        if self.generation != tradeauth::process::generation() {
            // Started by a parent process: the thread does not exist in this child.
            tradeauth::process::keep_forever(self);
            return;
        }
        self.hub.stop.notify_one();
        let on_own_thread = DISPATCHER_ID.try_with(|id| id.get() == self.hub.id);
        if on_own_thread.unwrap_or(false) {
            // From the callback: the thread sees `stopped` when it returns and exits.
            return;
        }
        let _ = self.thread.join();
    }
}

/// Makes WebSocket options with the client's defaults (idle timeout 30 s, ping every
/// third of it, reconnect backoff 100 ms to 5 s, 1024 held messages, hold timeout 30 s,
/// auth timeout = the session's request timeout, 4096 queued received messages). On
/// `TRADEAUTH_OK` `*out_options` owns it: free it with `tradeauth_ws_options_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_new(
    out_options: *mut *mut tradeauth_ws_options,
) -> tradeauth_status {
    boundary("tradeauth_ws_options_new", || {
        let out = arg_out(out_options, "out_options")?;
        let options = Box::new(tradeauth_ws_options {
            gate: Gate::new(),
            inner: Mutex::new(WsSettings::default()),
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(Box::into_raw(options)) };
        Ok(())
    })
}

/// Frees WebSocket options. NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_free(options: *mut tradeauth_ws_options) {
    // SAFETY: a non-NULL pointer came from tradeauth_ws_options_new, freed once.
    unsafe { free("tradeauth_ws_options_free", options, |o| &o.gate) }
}

/// Checks `options` and the value, then applies it under the lock.
///
/// # Safety
/// `options` is NULL or a live handle.
unsafe fn set_ws(
    name: &str,
    options: *mut tradeauth_ws_options,
    ok: bool,
    what: &str,
    apply: impl FnOnce(&mut WsSettings),
) -> tradeauth_status {
    boundary(name, || {
        // SAFETY: forwarded contract.
        let options = unsafe { arg_ref(options, "options") }?;
        if !ok {
            return Err(Failure::invalid(what));
        }
        let _inside = options.gate.enter("WebSocket options")?;
        let mut guard = options
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apply(&mut guard);
        Ok(())
    })
}

/// A connection silent (no message, ping or pong) this long is replaced (0 is invalid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_idle_timeout_ms(
    options: *mut tradeauth_ws_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_idle_timeout_ms",
            options,
            timeout_ms > 0,
            "idle_timeout_ms must be above zero",
            |s| s.idle_timeout = Some(Duration::from_millis(timeout_ms)),
        )
    }
}

/// How often a ping goes out on a quiet connection; must be below the idle timeout
/// (0 is invalid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_ping_interval_ms(
    options: *mut tradeauth_ws_options,
    interval_ms: u64,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_ping_interval_ms",
            options,
            interval_ms > 0,
            "interval_ms must be above zero",
            |s| s.ping_interval = Some(Duration::from_millis(interval_ms)),
        )
    }
}

/// The reconnect backoff: first ceiling `initial_ms`, doubled per failed attempt up to
/// `max_ms` (0 < initial <= max).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_reconnect_backoff_ms(
    options: *mut tradeauth_ws_options,
    initial_ms: u64,
    max_ms: u64,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_reconnect_backoff_ms",
            options,
            initial_ms > 0 && initial_ms <= max_ms,
            "the reconnect backoff needs 0 < initial_ms <= max_ms",
            |s| {
                s.backoff = Some((
                    Duration::from_millis(initial_ms),
                    Duration::from_millis(max_ms),
                ))
            },
        )
    }
}

/// How many messages may wait for a connection or its auth; a send beyond that fails
/// at once (0 is invalid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_max_held(
    options: *mut tradeauth_ws_options,
    messages: usize,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_max_held",
            options,
            messages > 0,
            "max_held must be at least 1",
            |s| s.max_held = Some(messages),
        )
    }
}

/// How long a held message may wait before its send fails with a timeout (0 is invalid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_hold_timeout_ms(
    options: *mut tradeauth_ws_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_hold_timeout_ms",
            options,
            timeout_ms > 0,
            "hold_timeout_ms must be above zero",
            |s| s.hold_timeout = Some(Duration::from_millis(timeout_ms)),
        )
    }
}

/// How long the venue may take to answer the auth message (0 is invalid).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_auth_timeout_ms(
    options: *mut tradeauth_ws_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_auth_timeout_ms",
            options,
            timeout_ms > 0,
            "auth_timeout_ms must be above zero",
            |s| s.auth_timeout = Some(Duration::from_millis(timeout_ms)),
        )
    }
}

/// How many received messages may queue behind the callback before reading pauses
/// (0 is invalid; default 4096). While reading pauses the connection's sends wait too
/// (one library task owns it): a callback that blocks holds up `tradeauth_ws_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_options_set_inbound_capacity(
    options: *mut tradeauth_ws_options,
    messages: usize,
) -> tradeauth_status {
    // SAFETY: forwarded contract.
    unsafe {
        set_ws(
            "tradeauth_ws_options_set_inbound_capacity",
            options,
            messages > 0,
            "inbound_capacity must be at least 1",
            |s| s.inbound_capacity = Some(messages),
        )
    }
}

/// Connects a WebSocket to `path` (e.g. `"/ws"`) on the session's venue and authenticates
/// it with the session's credential, blocking until the venue accepts it.
///
/// A venue rejection gives `TRADEAUTH_ERR_UNAUTHORIZED` with the venue's reason in
/// `tradeauth_last_error_message` (never the credential); a connect failure its own
/// status. A session without WebSocket auth (Exchange public or admin) connects
/// unauthenticated (state `TRADEAUTH_WS_STATE_OPEN`). From then on the connection
/// authenticates again when the session renews its credential and reconnects by itself
/// (backoff, fresh credential, auth, subscriptions replayed in order).
///
/// Every received message goes to `on_message(userdata, json, len)` on a library thread
/// (see `tradeauth_ws_message_callback`) until `tradeauth_ws_free`; a message the venue
/// sends unasked may arrive before this function has returned. `userdata` may be NULL;
/// it must stay valid and usable from another thread until `tradeauth_ws_free` returns.
/// `options` may be NULL for the defaults. On `TRADEAUTH_OK` `*out_ws` owns the
/// connection. NULL `session`, `path`, `on_message` or `out_ws` gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_connect(
    session: *const tradeauth_session,
    path: *const c_char,
    options: *const tradeauth_ws_options,
    on_message: tradeauth_ws_message_callback,
    userdata: *mut c_void,
    out_ws: *mut *mut tradeauth_ws,
) -> tradeauth_status {
    boundary("tradeauth_ws_connect", || {
        // SAFETY: caller contract, NULL or valid pointers.
        let handle = unsafe { arg_ref(session, "session") }?;
        let path = unsafe { arg_str(path, "path") }?.to_owned();
        let callback = on_message.ok_or_else(|| Failure::null("on_message"))?;
        let out = arg_out(out_ws, "out_ws")?;
        let settings = match unsafe { options.as_ref() } {
            None => WsSettings::default(),
            Some(options) => {
                let _inside = options.gate.enter("WebSocket options")?;
                options
                    .inner
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone()
            }
        };
        let held = handle.hold()?;
        let client =
            held.block_on(|s| async move { settings.apply(s.websocket(&path)).connect().await })??;
        let client = Arc::new(client);
        let dispatcher =
            Dispatcher::start(Arc::clone(&client), Registration { callback, userdata })?;
        let ws = Box::new(tradeauth_ws {
            gate: Gate::new(),
            client,
            closing: watch::Sender::new(false),
            dispatcher: Mutex::new(Some(dispatcher)),
            generation: tradeauth::process::generation(),
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(Box::into_raw(ws)) };
        Ok(())
    })
}

/// Parses the caller's JSON message.
///
/// # Safety
/// `json` is NULL or a NUL-terminated string.
unsafe fn arg_json(json: *const c_char) -> Result<serde_json::Value, Failure> {
    // SAFETY: forwarded contract.
    let text = unsafe { arg_str(json, "json") }?;
    Ok(tradeauth::parse_ws_message(text)?)
}

/// Sends a subscription (JSON text), replayed on every new connection; blocks until it is
/// written to the socket.
///
/// `privacy` is one of the `tradeauth_ws_privacy` values (`TRADEAUTH_WS_PRIVACY_*`; any
/// other number gives `TRADEAUTH_ERR_INVALID_ARGUMENT`). A private message is held
/// until the connection is authenticated (bounded by the hold timeout:
/// `TRADEAUTH_ERR_TIMEOUT`), never sent unauthenticated; on a connection that cannot
/// authenticate it gives `TRADEAUTH_ERR_INVALID_ARGUMENT`. NULL arguments or text that is
/// not a JSON object give `TRADEAUTH_ERR_INVALID_ARGUMENT`; `tradeauth_ws_free` on another
/// thread makes it return `TRADEAUTH_ERR_CLOSED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_subscribe(
    ws: *mut tradeauth_ws,
    json: *const c_char,
    privacy: u32,
) -> tradeauth_status {
    boundary("tradeauth_ws_subscribe", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(ws, "ws") }?;
        let message = unsafe { arg_json(json) }?;
        let privacy = tradeauth_ws_privacy::from_raw(privacy)?;
        let held = handle.hold()?;
        held.block_on(|c| async move { c.subscribe_as(message, privacy).await })??;
        Ok(())
    })
}

/// Sends one message (JSON text: an order, a query) with `TRADEAUTH_WS_PRIVACY_AUTO`:
/// classified by the venue's rules, held until authenticated if private; blocks until it
/// is written to the socket.
///
/// Not replayed on a new connection. Statuses as `tradeauth_ws_subscribe`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_send(
    ws: *mut tradeauth_ws,
    json: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_ws_send", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(ws, "ws") }?;
        let message = unsafe { arg_json(json) }?;
        let held = handle.hold()?;
        held.block_on(|c| async move { c.send_as(message, Privacy::Auto).await })??;
        Ok(())
    })
}

/// Writes where the connection stands now to `*out_state`; never blocks. NULL arguments
/// give `TRADEAUTH_ERR_INVALID_ARGUMENT`. In a forked child a connection made before the
/// fork is `TRADEAUTH_WS_STATE_CLOSED` (and sends give `TRADEAUTH_ERR_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_state(
    ws: *const tradeauth_ws,
    out_state: *mut tradeauth_ws_connection_state,
) -> tradeauth_status {
    boundary("tradeauth_ws_state", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(ws, "ws") }?;
        let out = arg_out(out_state, "out_state")?;
        let state = {
            let _inside = handle.gate.enter("WebSocket")?;
            if handle.generation == tradeauth::process::generation() {
                tradeauth_ws_connection_state::from(handle.client.state())
            } else {
                // Connected before fork(): this process has no such connection.
                tradeauth_ws_connection_state::TRADEAUTH_WS_STATE_CLOSED
            }
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(state) };
        Ok(())
    })
}

/// Closes the connection (a close frame, bounded by a second) and frees the handle; NULL
/// is a no-op.
///
/// When it returns no message callback is running or will run, except when called from
/// inside that callback: then the running call finishes and no other follows. It may be
/// called while other threads are inside calls on `ws`: those return promptly (their own
/// result or `TRADEAUTH_ERR_CLOSED`; a held send is abandoned) and this returns once none
/// of them uses the handle. Call it once per connection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_ws_free(ws: *mut tradeauth_ws) {
    let _ = boundary("tradeauth_ws_free", || {
        if ws.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL pointer came from Box::into_raw in tradeauth_ws_connect and
        // is freed once, per the contract; until the box is rebuilt only shared references
        // to it exist (other threads' calls).
        let shared = unsafe { &*ws };
        shared.gate.close();
        shared.closing.send_replace(true);
        shared.gate.wait_empty();
        let dispatcher = shared
            .dispatcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(dispatcher) = dispatcher {
            dispatcher.stop();
        }
        // SAFETY: as above; no other thread can reach the handle any more.
        let handle = unsafe { Box::from_raw(ws) };
        if handle.generation != tradeauth::process::generation() {
            // The connection's task belongs to the parent's runtime: leave it untouched.
            tradeauth::process::keep_forever(handle.client);
            return Ok(());
        }
        // A close frame only on an open connection: while the client reconnects there is
        // nothing to close, and dropping it (below) aborts its task at once. From a thread
        // inside a runtime `block_on` is refused: then the drop ends the connection too,
        // without the close frame.
        let connected = matches!(
            handle.client.state(),
            WsState::Authenticating | WsState::Authenticated | WsState::Open
        );
        if connected {
            let client = Arc::clone(&handle.client);
            let _ = block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
            });
        }
        drop(handle);
        Ok(())
    });
}
