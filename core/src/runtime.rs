//! The one lazily built tokio runtime behind the blocking C and Python entry points.
//!
//! A runtime's worker threads do not survive `fork()`. The child must not drop the
//! parent's runtime either (its drop would try to join threads that do not exist in the
//! child), so the runtime is leaked and tagged with the pid that built it: a process
//! whose pid differs from the tag builds a fresh one and leaves the old one untouched.

use std::sync::atomic::{AtomicPtr, Ordering};

use tokio::runtime::Runtime;

use crate::error::{Error, ErrorKind, Result};

/// A runtime and the process that built it, published together so that a reader can never
/// pair one process's runtime with another's pid.
struct Owned {
    pid: u32,
    runtime: Runtime,
}

static RUNTIME: AtomicPtr<Owned> = AtomicPtr::new(std::ptr::null_mut());

/// The shared runtime for this process, built on first use (and again in a forked child).
pub fn shared() -> Result<&'static Runtime> {
    let pid = std::process::id();
    let current = RUNTIME.load(Ordering::Acquire);
    // SAFETY: every pointer stored in RUNTIME comes from Box::leak and is never freed.
    if let Some(owned) = unsafe { current.as_ref() }
        && owned.pid == pid
    {
        return Ok(&owned.runtime);
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
    let fresh: *mut Owned = Box::leak(Box::new(Owned { pid, runtime }));
    match RUNTIME.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just leaked above; never freed once published.
        Ok(_) => Ok(unsafe { &(*fresh).runtime }),
        Err(winner) => {
            // Another thread of this process published one first; ours was never used,
            // so shutting it down joins only its own idle threads.
            // SAFETY: `fresh` came from Box::leak above and was never published.
            let unused = unsafe { Box::from_raw(fresh) };
            unused.runtime.shutdown_background();
            // SAFETY: published pointers are leaked and never freed. The winner was built
            // by this process: a forked child has one thread until it starts more, and any
            // thread it starts runs after the fork.
            Ok(unsafe { &(*winner).runtime })
        }
    }
}

/// Runs a future to completion on the shared runtime from a plain (non-async) thread.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(shared()?.block_on(future))
}
