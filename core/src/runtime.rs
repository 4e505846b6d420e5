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

/// A parent process's runtime, as a forked child keeps it (never used, never freed).
struct ParentRuntime(#[allow(dead_code)] *mut Owned);
// SAFETY: the pointer is only stored, never dereferenced.
unsafe impl Send for ParentRuntime {}
// SAFETY: as above.
unsafe impl Sync for ParentRuntime {}

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
        Ok(previous) => {
            if !previous.is_null() {
                // The parent's runtime: kept reachable (leak checkers see it as kept, not
                // lost) and never touched again.
                crate::process::keep_forever(ParentRuntime(previous));
            }
            // SAFETY: just leaked above; never freed once published.
            Ok(unsafe { &(*fresh).runtime })
        }
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
///
/// Refused (`InvalidArgument`, nothing run) on a thread that is already inside a tokio
/// runtime — an async task, a runtime worker, a callback the library runs there — where
/// tokio would panic: the blocking C and Python entry points all come through here.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a blocking tradeauth call was made from a thread that runs a tokio runtime \
             (an async task, or a callback on the library's own threads); call it from a \
             plain thread, or use the async API there",
        ));
    }
    Ok(shared()?.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_from_a_plain_thread_runs_the_future() {
        assert_eq!(block_on(async { 7 }).ok(), Some(7));
    }

    #[test]
    fn block_on_inside_a_runtime_is_refused_not_a_panic() {
        let outcome = block_on(async { block_on(async { 1 }) });
        let inner = outcome.expect("the outer call runs");
        let error = inner.expect_err("the nested call must be refused");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(
            error.message().contains("plain thread"),
            "{}",
            error.message()
        );
    }
}
