//! The one lazily built tokio runtime behind the blocking C and Python entry points.
//!
//! A runtime's worker threads do not survive `fork()`. The child must not drop the
//! parent's runtime either (its drop would try to join threads that do not exist in the
//! child), so the runtime is leaked and tagged with the pid that built it: a process
//! whose pid differs from the tag builds a fresh one and leaves the old one untouched.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use tokio::runtime::Runtime;

use crate::error::{Error, ErrorKind, Result};

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
static OWNER_PID: AtomicU32 = AtomicU32::new(0);

/// The shared runtime for this process, built on first use (and again in a forked child).
pub fn shared() -> Result<&'static Runtime> {
    let pid = std::process::id();
    let current = RUNTIME.load(Ordering::Acquire);
    if !current.is_null() && OWNER_PID.load(Ordering::Acquire) == pid {
        // SAFETY: every pointer stored in RUNTIME comes from Box::leak and is never freed.
        return Ok(unsafe { &*current });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tradeauth")
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("cannot start the tokio runtime: {e}"),
            )
        })?;
    let fresh: &'static mut Runtime = Box::leak(Box::new(runtime));
    let fresh_ptr: *mut Runtime = fresh;
    match RUNTIME.compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            OWNER_PID.store(pid, Ordering::Release);
            Ok(fresh)
        }
        Err(winner) => {
            // Another thread of this process built one first; this one was never used,
            // so shutting it down here joins only its own idle threads.
            // SAFETY: fresh_ptr came from Box::leak above and was never published.
            let unused = unsafe { Box::from_raw(fresh_ptr) };
            unused.shutdown_background();
            // SAFETY: as above, published pointers are leaked and never freed.
            Ok(unsafe { &*winner })
        }
    }
}

/// Runs a future to completion on the shared runtime from a plain (non-async) thread.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(shared()?.block_on(future))
}
