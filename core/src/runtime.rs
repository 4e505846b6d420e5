//! The one lazily built tokio runtime behind the blocking C and Python entry points, and
//! the process-wide limits every session shares ([`ProcessConfig`]).
//!
//! The runtime has a fixed number of worker threads ([`ProcessConfig::worker_threads`],
//! default 2) and at most [`BLOCKING_THREADS`] blocking-pool threads, however many
//! sessions the process holds: sessions are tasks, not threads, and sessions to one venue
//! share one connection pool (see [`crate::session::Options::private_pool`]).
//!
//! A runtime's worker threads do not survive `fork()`. The child must not drop the
//! parent's runtime either (its drop would try to join threads that do not exist in the
//! child), so the runtime is leaked and tagged with the pid that built it: a process
//! whose pid differs from the tag builds a fresh one and leaves the old one untouched.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use tokio::runtime::Runtime;

use crate::error::{Error, ErrorKind, Result};

/// The most blocking-pool threads the library's runtime starts: file-store operations,
/// C and Python signer calls and DNS look-ups for new connections run there. Fixed, so
/// the thread count does not grow with the number of sessions.
pub const BLOCKING_THREADS: usize = 32;

/// The default [`ProcessConfig::worker_threads`].
pub const DEFAULT_WORKER_THREADS: usize = 2;

/// The default [`ProcessConfig::max_concurrent_renewals`].
pub const DEFAULT_MAX_CONCURRENT_RENEWALS: usize = 8;

/// The largest value either [`ProcessConfig`] field accepts.
const MAX_SETTING: usize = 4096;

/// Process-wide settings that no single session owns: the library runtime's threads and
/// how many renewal requests the process may have in flight to one venue at once.
///
/// Read from `TRADEAUTH_WORKER_THREADS` and `TRADEAUTH_MAX_CONCURRENT_RENEWALS` on first
/// use unless [`configure`] set them first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Worker threads of the runtime behind the blocking C and Python calls (default 2).
    /// Rust callers that run sessions in their own runtime size that runtime themselves.
    pub worker_threads: usize,
    /// Renewal requests (logins, refreshes, challenges, signed logins) in flight at once
    /// from this process to one venue origin (default 8): N sessions whose tokens were all
    /// issued in the same second, or N sessions logging in at start-up, never send the
    /// venue more than this many at a time; the rest queue in order. Each venue origin
    /// takes the value in force when the process first builds a session for it, and
    /// keeps it: set it before the first session.
    pub max_concurrent_renewals: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            worker_threads: DEFAULT_WORKER_THREADS,
            max_concurrent_renewals: DEFAULT_MAX_CONCURRENT_RENEWALS,
        }
    }
}

/// 0 until set by [`configure`] or read from the environment.
static WORKER_THREADS: AtomicUsize = AtomicUsize::new(0);
/// 0 until set by [`configure`] or read from the environment.
static MAX_CONCURRENT_RENEWALS: AtomicUsize = AtomicUsize::new(0);

/// One setting from the environment: `default` when unset, an error naming the variable
/// (and its text: these are counts, never secrets) when it is not a count in range.
fn from_env(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid_argument(format!(
            "{name} is not valid UTF-8"
        ))),
        Ok(text) => parse_setting(name, text.trim().parse().ok()),
    }
}

/// `value` if it is a count from 1 to [`MAX_SETTING`]; else an error naming `name`.
fn parse_setting(name: &str, value: Option<usize>) -> Result<usize> {
    match value {
        Some(n) if (1..=MAX_SETTING).contains(&n) => Ok(n),
        _ => Err(Error::invalid_argument(format!(
            "{name} must be a whole number from 1 to {MAX_SETTING}"
        ))),
    }
}

/// A setting's value: set, or read from the environment once (a race between two first
/// reads stores the same value twice).
fn setting(slot: &AtomicUsize, env: &str, default: usize) -> Result<usize> {
    match slot.load(Ordering::Acquire) {
        0 => {
            let value = from_env(env, default)?;
            // Keeps a value `configure` stored meanwhile.
            match slot.compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Ok(value),
                Err(set) => Ok(set),
            }
        }
        value => Ok(value),
    }
}

/// The settings in force: those given to [`configure`], else the environment's, else the
/// defaults. An environment variable that is not a count in range is `InvalidArgument`.
pub fn process_config() -> Result<ProcessConfig> {
    Ok(ProcessConfig {
        worker_threads: setting(
            &WORKER_THREADS,
            "TRADEAUTH_WORKER_THREADS",
            DEFAULT_WORKER_THREADS,
        )?,
        max_concurrent_renewals: setting(
            &MAX_CONCURRENT_RENEWALS,
            "TRADEAUTH_MAX_CONCURRENT_RENEWALS",
            DEFAULT_MAX_CONCURRENT_RENEWALS,
        )?,
    })
}

/// Sets the process-wide settings. Call it before the first session: the worker-thread
/// count cannot change once the library's runtime has started (asking for another count
/// then is `InvalidArgument`, and nothing changes), and a venue origin keeps the renewal
/// limit that was in force when the process built its first session for it (a new limit
/// reaches only venues not contacted yet). A value of 0 or above 4096 is
/// `InvalidArgument`.
pub fn configure(config: ProcessConfig) -> Result<()> {
    let workers = parse_setting("worker_threads", Some(config.worker_threads))?;
    let renewals = parse_setting(
        "max_concurrent_renewals",
        Some(config.max_concurrent_renewals),
    )?;
    if let Some(running) = running_workers()
        && running != workers
    {
        return Err(Error::invalid_argument(format!(
            "the library's runtime already runs {running} worker threads: set worker_threads \
             before the first session or blocking call (or with TRADEAUTH_WORKER_THREADS)"
        )));
    }
    WORKER_THREADS.store(workers, Ordering::Release);
    MAX_CONCURRENT_RENEWALS.store(renewals, Ordering::Release);
    Ok(())
}

/// [`configure`] with only the settings given (`None` keeps the one in force); returns the
/// settings now in force. The C and Python bindings' partial form.
pub fn configure_some(
    worker_threads: Option<usize>,
    max_concurrent_renewals: Option<usize>,
) -> Result<ProcessConfig> {
    let mut config = process_config()?;
    if let Some(n) = worker_threads {
        config.worker_threads = n;
    }
    if let Some(n) = max_concurrent_renewals {
        config.max_concurrent_renewals = n;
    }
    configure(config)?;
    Ok(config)
}

/// The worker threads of this process's runtime, if it has been built.
fn running_workers() -> Option<usize> {
    let current = RUNTIME.load(Ordering::Acquire);
    // SAFETY: every pointer stored in RUNTIME comes from Box::leak and is never freed.
    let owned = unsafe { current.as_ref() }?;
    (owned.pid == std::process::id()).then_some(owned.workers)
}

/// A runtime and the process that built it, published together so that a reader can never
/// pair one process's runtime with another's pid.
struct Owned {
    pid: u32,
    /// Its worker threads, as configured when it was built.
    workers: usize,
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
    let workers = process_config()?.worker_threads;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("tradeauth")
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("cannot start the tokio runtime: {e}"),
            )
        })?;
    let fresh: *mut Owned = Box::leak(Box::new(Owned {
        pid,
        workers,
        runtime,
    }));
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
