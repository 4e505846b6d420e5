//! Forwards a session's authentication events to the Python `tradeauth` logger.
//!
//! A task per session on the library's runtime receives its events (which carry no
//! secret) and queues them, without the GIL, for the process's one forwarder thread,
//! which hands them to `logging` in batches. Runtime workers never wait for the GIL or
//! for a slow handler (files, sockets), and 10,000 sessions renewing at once do not need
//! a thread each to log it (they used to borrow blocking threads, up to the pool's cap).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use arc_swap::ArcSwapOption;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::broadcast::error::RecvError;
use tradeauth::{AuthEvent, Session};

/// `logging.INFO`.
const INFO: u8 = 20;
/// `logging.WARNING`.
const WARNING: u8 = 30;
/// Events waiting for the forwarder; beyond that they are counted and reported as lost.
const QUEUE: usize = 65_536;
/// Events handed to `logging` per GIL attach.
const BATCH: usize = 256;

/// One event on its way to `logging`.
struct Record {
    venue: &'static str,
    account: Arc<str>,
    text: (u8, &'static str, String),
}

/// The forwarder of this process (tagged with the fork generation: a forked child starts
/// its own, as the parent's thread does not exist in it).
static FORWARDER: ArcSwapOption<(u64, SyncSender<Record>)> = ArcSwapOption::const_empty();
/// Events dropped because the queue was full, reported by the forwarder.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The queue of this process's forwarder, starting its thread on first use.
fn queue() -> Option<SyncSender<Record>> {
    let generation = tradeauth::process::generation();
    if let Some(current) = FORWARDER.load_full()
        && current.0 == generation
    {
        return Some(current.1.clone());
    }
    let (sender, receiver) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("tradeauth-log".into())
        .spawn(move || run(receiver))
        .ok()?;
    // Two first callers at once start two threads; the one not stored ends when the
    // sessions holding its queue do.
    FORWARDER.store(Some(Arc::new((generation, sender.clone()))));
    Some(sender)
}

/// The forwarder thread: each batch goes to `logging` under one GIL attach.
fn run(receiver: Receiver<Record>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        batch.extend(receiver.try_iter().take(BATCH - 1));
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        // None: the interpreter is shutting down and logging is gone.
        let _ = crate::bridge::attach_from_worker(|py| {
            if dropped > 0 {
                let text = (
                    WARNING,
                    "lagged",
                    format!("{dropped} events were not logged"),
                );
                emit(py, "tradeauth", "-", &text);
            }
            for record in &batch {
                emit(py, record.venue, &record.account, &record.text);
            }
        });
    }
}

/// Starts forwarding `session`'s events to `logging.getLogger("tradeauth")`, on this
/// process's runtime (called again by core in a forked child).
pub(crate) fn forward(session: &Session) {
    let Ok(rt) = tradeauth::runtime::shared() else {
        // No runtime, no events to forward either: the session cannot run without one.
        return;
    };
    let Some(queue) = queue() else {
        // No thread could be started: the events stay unlogged (the session still works).
        return;
    };
    let mut events = session.subscribe();
    let venue = session.venue().as_str();
    let account: Arc<str> = Arc::from(session.account());
    rt.spawn(async move {
        loop {
            let text = match events.recv().await {
                Ok(event) => describe(&event),
                Err(RecvError::Lagged(missed)) => (
                    WARNING,
                    "lagged",
                    format!("{missed} events were not logged"),
                ),
                Err(RecvError::Closed) => return,
            };
            let record = Record {
                venue,
                account: Arc::clone(&account),
                text,
            };
            match queue.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
                // The forwarder is gone (it could not attach at exit): nothing to do.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    });
}

/// Level, event name and message for one event.
fn describe(event: &AuthEvent) -> (u8, &'static str, String) {
    let level = match event {
        AuthEvent::LoggedIn
        | AuthEvent::Refreshed
        | AuthEvent::ReLoggedIn
        | AuthEvent::WsConnected
        | AuthEvent::WsAuthenticated
        | AuthEvent::WsReconnecting { .. }
        | AuthEvent::WsResubscribed { .. } => INFO,
        AuthEvent::Distrusted { .. }
        | AuthEvent::Failed { .. }
        | AuthEvent::WsRejected { .. }
        | AuthEvent::WsDisconnected { .. } => WARNING,
    };
    // The text every binding uses (core's `Display`).
    (level, event.as_str(), event.to_string())
}

/// One `logger.log(level, "%s %s: %s", venue, account, message, extra={...})` call.
fn emit(py: Python<'_>, venue: &str, account: &str, text: &(u8, &'static str, String)) {
    let (level, name, message) = text;
    let result = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("tradeauth",))?;
        if !logger
            .call_method1("isEnabledFor", (*level,))?
            .is_truthy()?
        {
            return Ok(());
        }
        let extra = PyDict::new(py);
        extra.set_item("tradeauth_venue", venue)?;
        extra.set_item("tradeauth_account", account)?;
        extra.set_item("tradeauth_event", *name)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("extra", extra)?;
        logger.call_method(
            "log",
            (*level, "%s %s: %s", venue, account, message.as_str()),
            Some(&kwargs),
        )?;
        Ok(())
    })();
    if let Err(error) = result {
        // A failing handler must not kill the forwarder; report it the way Python does.
        error.write_unraisable(py, None);
    }
}
