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
            ]
        );
    }
}
