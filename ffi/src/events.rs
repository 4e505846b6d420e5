//! Event callbacks: a library-owned thread per registered callback forwards the session's
//! `AuthEvent`s (LoggedIn, Refreshed, ReLoggedIn, Failed) to C.
//!
//! Why a plain thread and not a runtime task: the callback is foreign code that may block
//! or call blocking tradeauth functions (which `block_on` the shared runtime). Calling it
//! from a runtime worker would stall the runtime, and a nested `block_on` would panic.

use std::cell::Cell;
use std::ffi::{CString, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{Notify, broadcast};
use tradeauth::{AuthEvent, Session};

use crate::status::{Failure, tradeauth_status};

/// What happened, as passed to a `tradeauth_event_callback`. Values are fixed.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum tradeauth_event_kind {
    /// A first credential was obtained (login, first mint, first challenge).
    TRADEAUTH_EVENT_LOGGED_IN = 1,
    /// The credential was renewed before it expired.
    TRADEAUTH_EVENT_REFRESHED = 2,
    /// A full login replaced a session the venue stopped accepting.
    TRADEAUTH_EVENT_RE_LOGGED_IN = 3,
    /// An authentication attempt failed; the `error` argument says which kind.
    TRADEAUTH_EVENT_FAILED = 4,
    /// A venue statement was not believed (a `Date` header too far from our clock, a
    /// lifetime longer than the session's maximum) and what was used instead; nothing
    /// failed.
    TRADEAUTH_EVENT_DISTRUSTED = 5,
    /// A WebSocket client's connection opened (not yet authenticated).
    TRADEAUTH_EVENT_WS_CONNECTED = 6,
    /// The venue accepted a WebSocket client's auth message.
    TRADEAUTH_EVENT_WS_AUTHENTICATED = 7,
    /// The venue refused a WebSocket client's auth message; `message` has its reason.
    TRADEAUTH_EVENT_WS_REJECTED = 8,
    /// A WebSocket client's connection ended; `message` says why.
    TRADEAUTH_EVENT_WS_DISCONNECTED = 9,
    /// A WebSocket client reconnects after a backoff; `message` says when.
    TRADEAUTH_EVENT_WS_RECONNECTING = 10,
    /// A WebSocket client sent its subscriptions again on a new connection.
    TRADEAUTH_EVENT_WS_RESUBSCRIBED = 11,
}

/// An event callback.
///
/// `userdata` is the pointer given at registration. `kind` says what happened; `error`
/// is `TRADEAUTH_OK` except for `TRADEAUTH_EVENT_FAILED`. `message` is a NUL-terminated
/// human-readable description (venue, account, what failed); it never holds a secret
/// and is valid only during the call (copy it to keep it).
///
/// It is called on a thread owned by the library (one per registration), never on the
/// thread that registered it, one event at a time and in order. It may call tradeauth
/// functions, including blocking ones. It must return quickly (events queue behind it
/// and up to 64 are kept) and must not unwind (C++: do not throw out of it).
pub type tradeauth_event_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        kind: tradeauth_event_kind,
        error: tradeauth_status,
        message: *const c_char,
    ),
>;

/// A registered callback. The raw `userdata` is the caller's business: the caller
/// promises it may be used from the library's thread (documented on the export).
struct Registration {
    callback:
        unsafe extern "C" fn(*mut c_void, tradeauth_event_kind, tradeauth_status, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the registration is only used to call the callback from the dispatcher thread;
// the caller of tradeauth_session_set_event_callback guarantees userdata allows that.
unsafe impl Send for Registration {}

/// Source of dispatcher ids, so a thread can tell whether it is a given dispatcher.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // The id of the dispatcher this thread runs (0: not a dispatcher thread). Compared
    // instead of `thread::current()`, which would allocate a handle for foreign threads.
    static DISPATCHER_ID: Cell<u64> = const { Cell::new(0) };
}

/// State shared by a dispatcher thread and the session handle.
struct Hub {
    id: u64,
    /// The callback; held locked while it runs, so clearing it waits for a running call.
    slot: Mutex<Option<Registration>>,
    stopped: AtomicBool,
    stop: Notify,
}

/// One running dispatcher thread.
pub(crate) struct Dispatcher {
    hub: Arc<Hub>,
    thread: JoinHandle<()>,
    /// The process generation that started the thread (see `tradeauth::process`).
    generation: u64,
}

impl Dispatcher {
    /// Subscribes to `session`'s events and starts the thread that delivers them.
    pub(crate) fn start(
        session: &Session,
        callback: unsafe extern "C" fn(
            *mut c_void,
            tradeauth_event_kind,
            tradeauth_status,
            *const c_char,
        ),
        userdata: *mut c_void,
    ) -> Result<Self, Failure> {
        let runtime = tradeauth::runtime::shared()?;
        // Subscribed before returning, so no event after registration is missed.
        let mut events = session.subscribe();
        let label = format!("{} {}", session.venue().as_str(), session.account());
        let hub = Arc::new(Hub {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slot: Mutex::new(Some(Registration { callback, userdata })),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        });
        let thread_hub = Arc::clone(&hub);
        let thread = std::thread::Builder::new()
            .name("tradeauth-events".into())
            .spawn(move || {
                let hub = thread_hub;
                DISPATCHER_ID.with(|id| id.set(hub.id));
                while !hub.stopped.load(Ordering::Acquire) {
                    let next = runtime.block_on(async {
                        tokio::select! {
                            _ = hub.stop.notified() => None,
                            received = events.recv() => Some(received),
                        }
                    });
                    match next {
                        None | Some(Err(broadcast::error::RecvError::Closed)) => break,
                        // Events dropped while the callback was slow: skip to the newest.
                        Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                        Some(Ok(event)) => hub.deliver(&label, &event),
                    }
                }
            })
            .map_err(|e| {
                Failure::new(
                    tradeauth_status::TRADEAUTH_ERR_TRANSPORT,
                    format!("cannot start the event thread: {e}"),
                )
            })?;
        Ok(Dispatcher {
            hub,
            thread,
            generation: tradeauth::process::generation(),
        })
    }

    /// Stops delivery. After it returns no callback is running or will run, except when
    /// called from inside the callback itself: then the running call finishes and no
    /// other follows.
    pub(crate) fn stop(self) {
        self.hub.stopped.store(true, Ordering::Release);
        if self.generation != tradeauth::process::generation() {
            // Started by a parent process: the thread does not exist in this forked child,
            // and joining (or detaching) it would be undefined. Keep it untouched.
            tradeauth::process::keep_forever(self);
            return;
        }
        self.hub.stop.notify_one();
        let on_own_thread = DISPATCHER_ID.try_with(|id| id.get() == self.hub.id);
        if on_own_thread.unwrap_or(false) {
            // Called from the callback: joining ourselves would deadlock. The thread
            // sees `stopped` when the callback returns and exits on its own.
            return;
        }
        // A panic in the thread (none expected) is already contained; nothing to report.
        let _ = self.thread.join();
    }
}

impl Hub {
    fn deliver(&self, label: &str, event: &AuthEvent) {
        let (kind, error) = match event {
            AuthEvent::LoggedIn => (
                tradeauth_event_kind::TRADEAUTH_EVENT_LOGGED_IN,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::Refreshed => (
                tradeauth_event_kind::TRADEAUTH_EVENT_REFRESHED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::ReLoggedIn => (
                tradeauth_event_kind::TRADEAUTH_EVENT_RE_LOGGED_IN,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::Distrusted { .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_DISTRUSTED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::Failed { kind, .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_FAILED,
                tradeauth_status::from_kind(*kind),
            ),
            AuthEvent::WsConnected => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_CONNECTED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::WsAuthenticated => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_AUTHENTICATED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::WsRejected { .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_REJECTED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::WsDisconnected { .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_DISCONNECTED,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::WsReconnecting { .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_RECONNECTING,
                tradeauth_status::TRADEAUTH_OK,
            ),
            AuthEvent::WsResubscribed { .. } => (
                tradeauth_event_kind::TRADEAUTH_EVENT_WS_RESUBSCRIBED,
                tradeauth_status::TRADEAUTH_OK,
            ),
        };
        // The text every binding uses (core's `Display`), after the session's label.
        let text = format!("{label}: {event}");
        // An interior NUL cannot be passed as a C string; none is expected in messages.
        let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        if let Some(registration) = slot.as_ref() {
            // SAFETY: the caller registered a valid function pointer and userdata and
            // keeps them valid until the callback is replaced or the session freed;
            // `text` lives across the call.
            unsafe {
                (registration.callback)(registration.userdata, kind, error, text.as_ptr());
            }
        }
    }
}
