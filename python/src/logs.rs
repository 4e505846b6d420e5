//! Forwards a session's authentication events to the Python `tradeauth` logger.
//!
//! A task on the library's runtime receives the events (which carry no secret) and
//! attaches to Python only to hand each one to `logging`; it holds no lock while doing
//! so, and stops when the session is dropped.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::broadcast::error::RecvError;
use tradeauth::{AuthEvent, Session};

/// `logging.INFO`.
const INFO: u8 = 20;
/// `logging.WARNING`.
const WARNING: u8 = 30;

/// Starts forwarding `session`'s events to `logging.getLogger("tradeauth")`, on this
/// process's runtime (called again by core in a forked child).
pub(crate) fn forward(session: &Session) {
    let Ok(rt) = tradeauth::runtime::shared() else {
        // No runtime, no events to forward either: the session cannot run without one.
        return;
    };
    let mut events = session.subscribe();
    let venue = session.venue().as_str();
    let account = session.account().to_owned();
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
            // Handlers may be slow (files, sockets): let other tasks move off this worker.
            tokio::task::block_in_place(|| {
                // None: the interpreter is shutting down and logging is gone.
                let _ = crate::bridge::attach_from_worker(|py| emit(py, venue, &account, &text));
            });
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
