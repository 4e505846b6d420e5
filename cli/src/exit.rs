//! Exit codes: one per error kind, so scripts can tell the key from the network.

use tradeauth::{Error, ErrorKind};

/// `check`: at least one line failed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Bad command line (clap's convention).
pub const EXIT_USAGE: i32 = 2;
/// `request`: the venue answered with a status other than 2xx (curl's `--fail` code).
pub const EXIT_HTTP_STATUS: i32 = 22;

/// The exit code for an error: 10 + the error kind's number (the C status).
pub fn exit_code(kind: ErrorKind) -> i32 {
    10 + kind as i32
}

/// Prints `error` (its message never holds a secret) on stderr; answers its exit code.
pub(crate) fn report(error: &Error) -> i32 {
    eprintln!(
        "tradeauth: {} error: {}",
        error.kind().as_str(),
        error.message()
    );
    exit_code(error.kind())
}
