//! Environment variables the `*_from_env` constructors read (the pages recommend them).

use super::Options;
use crate::error::{Error, ErrorKind, Result};

/// A required variable; the message names it but never prints its value.
pub(crate) fn required(name: &str) -> Result<String> {
    optional(name).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("environment variable {name} is not set (or is empty / not UTF-8)"),
        )
    })
}

/// An optional variable; empty counts as unset.
pub(crate) fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Applies `<VENUE>_BASE_URL` and `TRADEAUTH_CA_CERT` unless the options already say.
pub(crate) fn apply_base_url(mut options: Options, name: &str) -> Result<Options> {
    if options.base_url.is_none() {
        options.base_url = optional(name);
    }
    options.with_env_roots()
}
