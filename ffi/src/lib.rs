//! C ABI for tradeauth. The full opaque-handle interface lands with the C ABI issue.

use std::ffi::c_char;

/// The library version as a NUL-terminated static string; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn tradeauth_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
