//! The one error type shared by every layer (Rust, C, Python), with a stable kind.

use std::fmt;
use std::time::Duration;

/// What kind of failure happened. The numeric values are fixed and never reused, so the
/// C ABI and the Python exception hierarchy can map them one to one (0 is left for "ok").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ErrorKind {
    /// Bad input from the caller (malformed key, address, URL, non-UTF-8).
    InvalidArgument = 1,
    /// A URL that is not `https://`.
    InsecureUrl = 2,
    /// Connect / TLS / DNS failure: the request got no answer.
    Transport = 3,
    /// No answer in time.
    Timeout = 4,
    /// The venue rejected the credentials (wrong password, bad signature, unknown key).
    Unauthorized = 5,
    /// The venue answered with an error (error envelope, 4xx/5xx, JSON-RPC error).
    ApiError = 6,
    /// The venue's answer was not what its documentation says (bad JSON, missing field).
    Protocol = 7,
    /// The key could not sign.
    Signing = 8,
    /// A wallet challenge outlived its nonce.
    ChallengeExpired = 9,
    /// C only: the caller's buffer cannot hold the result.
    BufferTooSmall = 10,
    /// C only: a bug was caught at the boundary.
    Panic = 11,
}

impl ErrorKind {
    /// Every kind, in numeric order (for bindings that generate one class per kind).
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::InvalidArgument,
        ErrorKind::InsecureUrl,
        ErrorKind::Transport,
        ErrorKind::Timeout,
        ErrorKind::Unauthorized,
        ErrorKind::ApiError,
        ErrorKind::Protocol,
        ErrorKind::Signing,
        ErrorKind::ChallengeExpired,
        ErrorKind::BufferTooSmall,
        ErrorKind::Panic,
    ];

    /// A stable snake_case name, e.g. `"invalid_argument"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InsecureUrl => "insecure_url",
            ErrorKind::Transport => "transport",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Signing => "signing",
            ErrorKind::ChallengeExpired => "challenge_expired",
            ErrorKind::BufferTooSmall => "buffer_too_small",
            ErrorKind::Panic => "panic",
        }
    }

    /// The fixed numeric code (the `#[repr(u32)]` discriminant).
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The kind for a numeric code, if it is one.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether a failure of this kind is worth retrying by default (network trouble is).
    pub const fn default_retryable(self) -> bool {
        matches!(self, ErrorKind::Transport | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure. The message says what went wrong and what to check, and never
/// contains a secret (passwords, tokens, keys are never formatted into it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    retryable: bool,
}

impl Error {
    /// A new error; retryable by default only for `Transport` and `Timeout`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            retryable: kind.default_retryable(),
        }
    }

    /// Shorthand for `Error::new(ErrorKind::InvalidArgument, ..)`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for `Error::new(ErrorKind::Protocol, ..)`.
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    /// Shorthand for `Error::new(ErrorKind::Transport, ..)` (retryable).
    pub fn transport(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Transport, message)
    }

    /// Shorthand for `Error::new(ErrorKind::Timeout, ..)` (retryable).
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// Attach the HTTP status the venue answered with.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    setters! {
        /// Attach how long the venue asked us to wait (`Retry-After`).
        with_retry_after(value: Option<Duration>) => retry_after = value;
        /// Override whether the failure is worth retrying.
        with_retryable(value: bool) => retryable = value;
    }

    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (no secrets).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status, when the venue answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How long the venue asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the same request may succeed if sent again (after backoff / `retry_after`).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_fixed_and_round_trip() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.code(), i as u32 + 1);
            assert_eq!(ErrorKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_code(12), None);
        assert_eq!(ErrorKind::ChallengeExpired.as_str(), "challenge_expired");
    }

    #[test]
    fn builder_and_display() {
        let e = Error::new(ErrorKind::ApiError, "venue busy")
            .with_status(503)
            .with_retry_after(Some(Duration::from_secs(2)))
            .with_retryable(true);
        assert_eq!(e.kind(), ErrorKind::ApiError);
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "api_error: venue busy");
        assert!(Error::transport("x").is_retryable());
        assert!(!Error::protocol("x").is_retryable());
    }
}
