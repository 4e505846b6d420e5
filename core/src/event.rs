//! What happened inside a machine, for logs, metrics and callbacks.

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
    /// `failed`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            AuthEvent::LoggedIn => "logged_in",
            AuthEvent::Refreshed => "refreshed",
            AuthEvent::ReLoggedIn => "re_logged_in",
            AuthEvent::Distrusted { .. } => "distrusted",
            AuthEvent::Failed { .. } => "failed",
        }
    }
}
