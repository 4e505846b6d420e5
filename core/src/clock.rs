//! A coarse monotonic clock for the hot path's validity check.
//!
//! Every read of the current credential must check that it has not expired. A precise
//! `Instant::now()` (vDSO `clock_gettime(CLOCK_MONOTONIC)`: read the TSC, scale it) is
//! most of the hot path's cost; `CLOCK_MONOTONIC_COARSE` (vDSO too, but only the value
//! the kernel stored at its last tick) costs a few ns.
//!
//! Why that is safe. The coarse clock is the same clock as `CLOCK_MONOTONIC` (which is
//! what `std::time::Instant` reads on Linux) sampled at the last timer tick, so it is
//! never ahead of it and lags it by at most one tick (1-10 ms for HZ 1000..100). The
//! check below only ever uses the coarse clock to say "still valid", and only when the
//! deadline is more than [`SLACK`] (100 ms, ten ticks at the slowest HZ) ahead of the
//! coarse reading; within [`SLACK`] of the deadline, or when the coarse clock cannot be
//! read, it falls back to the precise clock. So a credential is never handed out past
//! its `valid_until`, and `valid_until` is itself the venue's deadline minus the safety
//! margin `min(10 s, lifetime / 10)`: even a coarse clock lagging by far more than a tick
//! would still be absorbed by that margin. The refresh window (minutes) means the hot
//! path practically never reaches the fallback.
//!
//! The deadline is converted once, when a credential is built ([`deadline_ns`]), from an
//! `Instant` to nanoseconds on `CLOCK_MONOTONIC`, rounding towards earlier.

use std::time::{Duration, Instant};

/// How far ahead of the coarse reading a deadline must be for the coarse clock alone to
/// say "valid"; closer than this, the precise clock decides.
pub(crate) const SLACK: Duration = Duration::from_millis(100);

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::ffi::c_int;

    /// `struct timespec` on 64-bit Linux (`time_t` and `long` are both 64-bit).
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }

    const CLOCK_MONOTONIC: c_int = 1;
    const CLOCK_MONOTONIC_COARSE: c_int = 6;

    unsafe extern "C" {
        // libc's, always linked by std; served by the vDSO (no syscall) for both clocks.
        fn clock_gettime(clock: c_int, tp: *mut Timespec) -> c_int;
    }

    fn read(clock: c_int) -> Option<u64> {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `struct timespec` for the call's duration.
        let rc = unsafe { clock_gettime(clock, &mut ts) };
        to_ns(rc, &ts)
    }

    /// A `clock_gettime` result in ns; `None` for a failed call or a time this clock
    /// cannot have (negative), so the caller falls back to the precise clock.
    fn to_ns(rc: c_int, ts: &Timespec) -> Option<u64> {
        if rc != 0 || ts.tv_sec < 0 || ts.tv_nsec < 0 {
            return None;
        }
        (ts.tv_sec as u64)
            .checked_mul(1_000_000_000)?
            .checked_add(ts.tv_nsec as u64)
    }

    /// `CLOCK_MONOTONIC` in ns (the clock `Instant` reads).
    pub(super) fn precise_ns() -> Option<u64> {
        read(CLOCK_MONOTONIC)
    }

    /// `CLOCK_MONOTONIC_COARSE` in ns: never ahead of [`precise_ns`].
    #[inline]
    pub(super) fn coarse_ns() -> Option<u64> {
        read(CLOCK_MONOTONIC_COARSE)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_a_successful_non_negative_reading_is_a_time() {
            let ts = |tv_sec, tv_nsec| Timespec { tv_sec, tv_nsec };
            assert_eq!(to_ns(0, &ts(0, 0)), Some(0));
            assert_eq!(to_ns(0, &ts(2, 5)), Some(2_000_000_005));
            assert_eq!(to_ns(-1, &ts(2, 5)), None, "a failed call");
            assert_eq!(to_ns(0, &ts(-1, 5)), None);
            assert_eq!(to_ns(0, &ts(2, -1)), None);
            assert_eq!(to_ns(0, &ts(0, -1)), None, "not u64::MAX ns");
            assert_eq!(to_ns(0, &ts(i64::MAX, 0)), None, "overflows u64 ns");
        }
    }
}

/// Elsewhere there is no coarse clock to read: every check asks the precise clock.
/// (Its own name, so mutation testing can tell it apart from the Linux functions.)
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod elsewhere {
    pub(super) fn precise_ns() -> Option<u64> {
        None
    }

    #[inline]
    pub(super) fn coarse_ns() -> Option<u64> {
        None
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
use elsewhere as imp;

/// `until` as nanoseconds on `CLOCK_MONOTONIC`, never later than the real value; 0 when
/// the coarse clock is not available here (then [`surely_before`] always says "ask the
/// precise clock").
pub(crate) fn deadline_ns(until: Instant) -> u64 {
    // Read the raw clock first: it is then not later than `now`, so the result is not
    // later than `until` on that clock (it may be earlier by the two reads' distance).
    let Some(raw) = imp::precise_ns() else {
        return 0;
    };
    let now = Instant::now();
    let deadline = match until.checked_duration_since(now) {
        Some(ahead) => raw.saturating_add(u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX)),
        None => {
            let behind = now.duration_since(until);
            raw.saturating_sub(u64::try_from(behind.as_nanos()).unwrap_or(u64::MAX))
        }
    };
    // 0 is the "unknown" marker; a deadline at the clock's origin is expired anyway.
    deadline.max(1)
}

/// True only if the coarse clock shows that `deadline_ns` (from [`deadline_ns`]) is more
/// than [`SLACK`] away; false means "not sure: ask the precise clock".
#[inline]
pub(crate) fn surely_before(deadline_ns: u64) -> bool {
    if deadline_ns == 0 {
        return false;
    }
    match imp::coarse_ns() {
        Some(now) => now.saturating_add(SLACK.as_nanos() as u64) < deadline_ns,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_never_ahead_of_precise() {
        for _ in 0..1000 {
            let coarse = imp::coarse_ns();
            let precise = imp::precise_ns();
            if let (Some(c), Some(p)) = (coarse, precise) {
                assert!(c <= p, "coarse {c} ahead of precise {p}");
            }
        }
    }

    #[test]
    fn deadlines_round_towards_earlier() {
        let now = Instant::now();
        let far = now + Duration::from_secs(3600);
        let near = now + Duration::from_millis(50);
        let past = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        if imp::precise_ns().is_none() {
            assert_eq!(deadline_ns(far), 0);
            assert!(!surely_before(deadline_ns(far)));
            return;
        }
        let after = imp::precise_ns().unwrap();
        // Not later than the real deadline (the raw clock read after it bounds "now").
        assert!(deadline_ns(far) <= after + 3_600_000_000_000);
        assert!(surely_before(deadline_ns(far)));
        // Within the slack, or in the past: the coarse clock never vouches for it.
        assert!(!surely_before(deadline_ns(near)));
        assert!(!surely_before(deadline_ns(past)));
        assert!(!surely_before(deadline_ns(now)));
        assert!(!surely_before(0));
    }
}
