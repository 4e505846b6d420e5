//! Test hooks, compiled in with the `testing` feature only (the crate's own tests enable
//! it through a dev-dependency on itself): a pretended suspend. This is scaffolding, not
//! decision code; without the feature every hook is a constant the compiler folds away.

use std::time::Duration;

#[cfg(feature = "testing")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    static SUSPENDED_NS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn add(d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        SUSPENDED_NS.fetch_add(ns, Ordering::SeqCst);
    }

    #[inline]
    pub(super) fn suspended_ns() -> u64 {
        SUSPENDED_NS.load(Ordering::Relaxed)
    }
}

#[cfg(not(feature = "testing"))]
mod imp {
    #[inline(always)]
    pub(super) fn suspended_ns() -> u64 {
        0
    }
}

/// The time a test pretended the machine was suspended, in ns (0 without the feature).
#[inline(always)]
pub(crate) fn suspended_ns() -> u64 {
    imp::suspended_ns()
}

/// [`suspended_ns`] as a `Duration`.
#[inline(always)]
pub(crate) fn suspended() -> Duration {
    Duration::from_nanos(suspended_ns())
}

/// Pretends the machine was suspended for `d`: the deadline clock and the wall clock move
/// forward by `d` at once, `CLOCK_MONOTONIC` and timers do not (what a real resume does).
/// For tests only (the `testing` feature); process-wide.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn pretend_suspended(d: Duration) {
    imp::add(d);
}
