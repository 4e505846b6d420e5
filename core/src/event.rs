//! What happened inside a machine, for logs, metrics and callbacks.

use std::fmt;

use crate::error::{Error, ErrorKind};

/// An authentication event. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    /// A first credential was obtained (login, first mint, first session).
    LoggedIn,
    /// The credential was renewed before it expired (refresh, re-mint, new challenge).
    Refreshed,
    /// A full login replaced a session the venue stopped accepting (rejected refresh or 401).
    ReLoggedIn,
    /// A statement from the venue was not believed, and what was done instead: a `Date`
    /// header too far from our clock (ignored), a stated lifetime longer than the
    /// session's `max_lifetime` (clamped). `message` says which; nothing failed.
    Distrusted {
        /// What was not believed and what was used instead (no secrets).
        message: String,
    },
    /// Something failed; `message` says what and what to check.
    Failed {
        /// The stable kind of the failure.
        kind: ErrorKind,
        /// The error message (no secrets).
        message: String,
    },
    /// A WebSocket client's connection to the venue opened (not yet authenticated).
    WsConnected,
    /// The venue accepted a WebSocket client's auth message (a first or a renewed
    /// credential on the open connection).
    WsAuthenticated,
    /// The venue refused a WebSocket client's auth message.
    WsRejected {
        /// The venue's reason, with any credential blotted out.
        reason: String,
    },
    /// A WebSocket client's connection ended (closed by the venue, failed, or silent
    /// longer than the idle timeout).
    WsDisconnected {
        /// Why (no secret).
        reason: String,
    },
    /// A WebSocket client reconnects after a delay.
    WsReconnecting {
        /// Which reconnect attempt since the last authenticated connection, from 1.
        attempt: u32,
        /// The backoff before it, in milliseconds.
        delay_ms: u64,
    },
    /// A WebSocket client sent its subscriptions again on a new connection.
    WsResubscribed {
        /// How many were replayed.
        count: usize,
    },
}

impl AuthEvent {
    /// The `Failed` event for an error.
    pub fn failed(error: &Error) -> Self {
        AuthEvent::Failed {
            kind: error.kind(),
            message: error.message().to_owned(),
        }
    }

    /// A stable snake_case name: `logged_in`, `refreshed`, `re_logged_in`, `distrusted`,
    /// `failed`, and the WebSocket client's `ws_connected`, `ws_authenticated`,
    /// `ws_rejected`, `ws_disconnected`, `ws_reconnecting`, `ws_resubscribed`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            AuthEvent::LoggedIn => "logged_in",
            AuthEvent::Refreshed => "refreshed",
            AuthEvent::ReLoggedIn => "re_logged_in",
            AuthEvent::Distrusted { .. } => "distrusted",
            AuthEvent::Failed { .. } => "failed",
            AuthEvent::WsConnected => "ws_connected",
            AuthEvent::WsAuthenticated => "ws_authenticated",
            AuthEvent::WsRejected { .. } => "ws_rejected",
            AuthEvent::WsDisconnected { .. } => "ws_disconnected",
            AuthEvent::WsReconnecting { .. } => "ws_reconnecting",
            AuthEvent::WsResubscribed { .. } => "ws_resubscribed",
        }
    }
}

/// The one human-readable text of an event, shared by every binding's logs and
/// callbacks: `logged in`, `credential refreshed`, ... (no secret: the messages carry none).
impl fmt::Display for AuthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthEvent::LoggedIn => f.write_str("logged in"),
            AuthEvent::Refreshed => f.write_str("credential refreshed"),
            AuthEvent::ReLoggedIn => {
                f.write_str("logged in again after the venue dropped the session")
            }
            AuthEvent::Distrusted { message } => f.write_str(message),
            AuthEvent::Failed { kind, message } => {
                write!(f, "authentication failed ({}): {message}", kind.as_str())
            }
            AuthEvent::WsConnected => f.write_str("WebSocket connected"),
            AuthEvent::WsAuthenticated => f.write_str("WebSocket authenticated"),
            AuthEvent::WsRejected { reason } => {
                write!(f, "WebSocket authentication rejected: {reason}")
            }
            AuthEvent::WsDisconnected { reason } => write!(f, "WebSocket disconnected: {reason}"),
            AuthEvent::WsReconnecting { attempt, delay_ms } => {
                write!(
                    f,
                    "WebSocket reconnecting in {delay_ms} ms (attempt {attempt})"
                )
            }
            AuthEvent::WsResubscribed { count } => {
                write!(f, "WebSocket resubscribed {count} subscription(s)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_has_its_text() {
        let failed = AuthEvent::Failed {
            kind: ErrorKind::Unauthorized,
            message: "bad key".into(),
        };
        let distrusted = AuthEvent::Distrusted {
            message: "Date ignored".into(),
        };
        let texts: Vec<String> = [
            AuthEvent::LoggedIn,
            AuthEvent::Refreshed,
            AuthEvent::ReLoggedIn,
            distrusted,
            failed,
            AuthEvent::WsConnected,
            AuthEvent::WsAuthenticated,
            AuthEvent::WsRejected {
                reason: "Invalid Bearer Token".into(),
            },
            AuthEvent::WsDisconnected {
                reason: "closed".into(),
            },
            AuthEvent::WsReconnecting {
                attempt: 2,
                delay_ms: 250,
            },
            AuthEvent::WsResubscribed { count: 3 },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            texts,
            [
                "logged in",
                "credential refreshed",
                "logged in again after the venue dropped the session",
                "Date ignored",
                "authentication failed (unauthorized): bad key",
                "WebSocket connected",
                "WebSocket authenticated",
                "WebSocket authentication rejected: Invalid Bearer Token",
                "WebSocket disconnected: closed",
                "WebSocket reconnecting in 250 ms (attempt 2)",
                "WebSocket resubscribed 3 subscription(s)",
            ]
        );
    }
}
