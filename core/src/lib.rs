//! tradeauth: trading venues' authentication, implemented once.
//!
//! The sans-IO machines and the session driver land with the core-library issue; this
//! crate is a placeholder so that the workspace builds.

/// The crate version, as the C and Python layers report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
