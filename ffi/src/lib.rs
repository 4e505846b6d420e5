//! C ABI for tradeauth: `libtradeauth.so` / `libtradeauth.a` and `include/tradeauth.h`.
//!
//! Conventions (modelled on rustls-ffi), stated once here and in the header:
//!
//! - Names are `tradeauth_<object>_<verb>`. Handles (`tradeauth_session`,
//!   `tradeauth_options`, `tradeauth_response`) are opaque; `_new` makes one, `_free`
//!   frees it and accepts NULL. No function consumes a handle except `_free`.
//! - Every fallible function returns a `tradeauth_status`. Outputs come last and are
//!   written only on `TRADEAUTH_OK` (one exception: the `*written` size on
//!   `TRADEAUTH_ERR_BUFFER_TOO_SMALL`). A NULL pointer argument gives
//!   `TRADEAUTH_ERR_INVALID_ARGUMENT` unless its documentation says NULL is allowed.
//! - Text in is NUL-terminated UTF-8 (else `TRADEAUTH_ERR_INVALID_ARGUMENT`). Text out
//!   goes into caller buffers `(buf, len, *written)`, NUL-terminated.
//! - Every export runs inside a panic boundary: a bug becomes `TRADEAUTH_ERR_PANIC` and
//!   never unwinds into C. `tradeauth_last_error_message` explains the last failure on
//!   the calling thread.
//! - Blocking calls run on one lazily built tokio runtime owned by the library (rebuilt
//!   in a forked child); they must not be called from a thread running a tokio runtime.
//! - Lifetime: `_free` may be called while other threads are inside calls on the same
//!   handle. Those calls return promptly (their own result, or `TRADEAUTH_ERR_CLOSED`)
//!   and `_free` returns only once none of them uses the handle; a call that starts after
//!   `_free` returned uses a freed pointer.
//! - Fork: sessions made before `fork()` work in the child; on first use there each
//!   builds its own runtime-bound parts (the parent's are left untouched). Event callbacks
//!   registered in the parent are not called in the child: register them again there.

#![deny(missing_docs)]
#![allow(non_camel_case_types)]
// Every export checks its pointers before use and states its contract in its doc comment
// (which becomes the header comment), so the per-function `# Safety` sections clippy
// asks for would only repeat "pointers must be NULL or valid".
#![allow(clippy::missing_safety_doc)]

mod events;
mod handle;
mod metrics;
mod options;
mod response;
mod session;
mod signer;
mod status;
mod text;
mod ws;

use std::ffi::c_char;

pub use events::{tradeauth_event_callback, tradeauth_event_kind};
pub use options::tradeauth_options;
pub use response::tradeauth_response;
pub use session::{tradeauth_session, tradeauth_ws_reply};
pub use signer::tradeauth_sign_fn;
pub use status::tradeauth_status;

/// The library version, e.g. `"0.1.0"`, as a static NUL-terminated string: never free
/// it. Thread safety: pure.
#[unsafe(no_mangle)]
pub extern "C" fn tradeauth_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Sets the process-wide settings: the worker threads of the library's runtime (default
/// 2, or `TRADEAUTH_WORKER_THREADS`) and how many renewal requests (logins, refreshes,
/// challenges) the process may have in flight to one venue at once (default 8, or
/// `TRADEAUTH_MAX_CONCURRENT_RENEWALS`). 0 keeps a setting as it is. Call it before the
/// first session: once the runtime runs, another worker count gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` and nothing changes; a venue keeps the renewal limit
/// in force when the process made its first session for it. A value above 4096 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn tradeauth_process_configure(
    worker_threads: u32,
    max_concurrent_renewals: u32,
) -> tradeauth_status {
    status::boundary("tradeauth_process_configure", || {
        // 0 keeps a setting.
        let given = |n: u32| (n != 0).then_some(n as usize);
        tradeauth::runtime::configure_some(given(worker_threads), given(max_concurrent_renewals))?;
        Ok(())
    })
}

/// TEST ONLY: panics inside the panic boundary and so always returns
/// `TRADEAUTH_ERR_PANIC` (with a last error message saying a panic was caught). It
/// exists so that tests of this library and of its bindings can check that a bug inside
/// tradeauth is reported as a status and never unwinds into the caller. It changes no
/// state. The panic message ("tradeauth_test_panic: deliberate panic") is printed to
/// stderr by Rust's default panic hook.
#[unsafe(no_mangle)]
pub extern "C" fn tradeauth_test_panic() -> tradeauth_status {
    status::boundary("tradeauth_test_panic", || {
        panic!("tradeauth_test_panic: deliberate panic")
    })
}
