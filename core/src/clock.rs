//! The clock deadlines are kept on, and a cheap way to read it on the hot path.
//!
//! **The deadline clock counts suspended time.** `std::time::Instant` reads
//! `CLOCK_MONOTONIC` on Linux, which stops while the machine is suspended: after a laptop
//! or VM sleeps for 2 h, a 1 h token still looks valid against it. Every deadline here is
//! an `Instant` on a different timeline, [`now`]: `CLOCK_BOOTTIME` (which keeps counting
//! through a suspend) carried as an `Instant`, i.e. `Instant::now()` plus the time the
//! machine spent suspended since this module was first used. Elsewhere than 64-bit Linux
//! [`now`] is `Instant::now()`: on macOS that is `mach_absolute_time`, which does not count
//! sleep either, and on Windows `QueryPerformanceCounter`, which does; neither is tested
//! here, so on those platforms only the wall-clock bounds of the session (a token's
//! lifetime is the shortest of what our clock and the venue's `Date` say) stand between a
//! long sleep and a stale token.
//!
//! Timers (tokio's, `std::thread::sleep`) still run on `CLOCK_MONOTONIC`; a driver that
//! sleeps until a deadline sleeps in naps (see `Session`'s refresher) so that a suspend
//! makes it late by at most one nap, and the hot path below refuses an expired credential
//! immediately whatever the timers do.
//!
//! **The hot path reads two coarse clocks instead of one precise one.** A precise read
//! (vDSO `clock_gettime`: read the TSC, scale it) is 20-28 ns here, most of the hot path;
//! `CLOCK_MONOTONIC_COARSE` and `CLOCK_REALTIME_COARSE` (the values the kernel stored at
//! its last tick) cost a few ns each. There is no coarse `CLOCK_BOOTTIME`, so a credential
//! keeps its deadline on both coarse clocks ([`Coarse`]), computed once when it is built,
//! and the hot path says "valid" only if **both** are more than [`SLACK`] (100 ms, ten
//! ticks at the slowest HZ) ahead of the coarse readings:
//! - each coarse clock is its precise clock sampled at the last tick: never ahead of it,
//!   behind by at most a tick, so within [`SLACK`] of a deadline the precise
//!   `CLOCK_BOOTTIME` decides;
//! - a suspend stops `CLOCK_MONOTONIC` but the kernel moves `CLOCK_REALTIME` forward by the
//!   time slept before any process runs again, so the realtime deadline is reached and
//!   the precise clock decides; a wall-clock step backwards cannot make a credential look
//!   valid longer, because the monotonic deadline still holds. (Only a wall clock stepped
//!   back by as much as the machine slept, in the same tick, would hide a suspend.)
//! - a wall-clock step forwards only sends the check to the precise clock (slower, right).
//!
//! `valid_until` is itself the venue's deadline minus the safety margin
//! `min(10 s, lifetime / 10)`, so a coarse clock lagging by more than a tick would still be
//! absorbed by it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How far ahead of the coarse readings a deadline must be for the coarse clocks alone to
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

    const CLOCK_REALTIME: c_int = 0;
    const CLOCK_MONOTONIC: c_int = 1;
    const CLOCK_REALTIME_COARSE: c_int = 5;
    const CLOCK_MONOTONIC_COARSE: c_int = 6;
    const CLOCK_BOOTTIME: c_int = 7;

    unsafe extern "C" {
        // libc's, always linked by std; served by the vDSO (no syscall) for these clocks.
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

    /// `CLOCK_BOOTTIME` in ns: monotonic, and counts time suspended.
    pub(super) fn boot_ns() -> Option<u64> {
        read(CLOCK_BOOTTIME)
    }

    /// `CLOCK_MONOTONIC` in ns (the clock `Instant` reads; stops while suspended).
    pub(super) fn mono_ns() -> Option<u64> {
        read(CLOCK_MONOTONIC)
    }

    /// `CLOCK_REALTIME` in ns.
    pub(super) fn real_ns() -> Option<u64> {
        read(CLOCK_REALTIME)
    }

    /// `CLOCK_MONOTONIC_COARSE` in ns: never ahead of [`mono_ns`].
    #[inline]
    pub(super) fn coarse_mono_ns() -> Option<u64> {
        read(CLOCK_MONOTONIC_COARSE)
    }

    /// `CLOCK_REALTIME_COARSE` in ns: never ahead of [`real_ns`].
    #[inline]
    pub(super) fn coarse_real_ns() -> Option<u64> {
        read(CLOCK_REALTIME_COARSE)
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

        #[test]
        fn each_clock_is_the_one_named() {
            // Monotonic first: BOOTTIME read after it is then never behind it.
            let mono = mono_ns();
            let (Some(mono), Some(boot), Some(real)) = (mono, boot_ns(), real_ns()) else {
                panic!("clock_gettime failed");
            };
            // BOOTTIME = MONOTONIC + time suspended since boot: never behind it.
            assert!(boot >= mono, "boot {boot} behind monotonic {mono}");
            // The wall clock is decades past the epoch; the others count from boot.
            assert!(real > 1_600_000_000_000_000_000, "{real}");
            assert!(mono < real / 2 && boot < real / 2);
            let (Some(cm), Some(cr)) = (coarse_mono_ns(), coarse_real_ns()) else {
                panic!("coarse clock_gettime failed");
            };
            assert!(cr > real / 2 && cm < real / 2, "coarse clocks swapped");
        }
    }
}

/// Elsewhere there is no boot or coarse clock to read: deadlines are on `Instant` and
/// every check asks the precise clock. (Its own name, so mutation testing can tell it
/// apart from the Linux functions.)
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod elsewhere {
    pub(super) fn boot_ns() -> Option<u64> {
        None
    }

    pub(super) fn mono_ns() -> Option<u64> {
        None
    }

    pub(super) fn real_ns() -> Option<u64> {
        None
    }

    #[inline]
    pub(super) fn coarse_mono_ns() -> Option<u64> {
        None
    }

    #[inline]
    pub(super) fn coarse_real_ns() -> Option<u64> {
        None
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
use elsewhere as imp;

/// Where the deadline timeline starts: an `Instant` and `CLOCK_BOOTTIME` read together.
struct Origin {
    instant: Instant,
    boot_ns: u64,
}

static ORIGIN: OnceLock<Option<Origin>> = OnceLock::new();

/// The deadline clock: an `Instant` that keeps counting while the machine is suspended
/// (see the module docs). Every deadline a credential or machine keeps is on this clock.
pub fn now() -> Instant {
    let origin = ORIGIN.get_or_init(|| {
        imp::boot_ns().map(|boot_ns| Origin {
            instant: Instant::now(),
            boot_ns,
        })
    });
    let at = on_boot_timeline(origin.as_ref(), imp::boot_ns(), Instant::now);
    at.checked_add(crate::testing::suspended()).unwrap_or(at)
}

/// The deadline clock's reading for a `CLOCK_BOOTTIME` reading: `origin.instant` plus the
/// boot time since the origin; `fallback()` (`Instant::now`) when either is unknown.
fn on_boot_timeline(
    origin: Option<&Origin>,
    boot_ns: Option<u64>,
    fallback: impl FnOnce() -> Instant,
) -> Instant {
    match (origin, boot_ns) {
        (Some(origin), Some(boot)) => {
            let since = Duration::from_nanos(boot.saturating_sub(origin.boot_ns));
            origin.instant.checked_add(since).unwrap_or_else(fallback)
        }
        _ => fallback(),
    }
}

/// The wall clock in Unix ms (plus any pretended suspend, in tests).
pub(crate) fn wall_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ms.saturating_add(u64::try_from(crate::testing::suspended().as_millis()).unwrap_or(u64::MAX))
}

/// A deadline on the two coarse clocks, for the hot path; 0 in a field means unknown (the
/// precise clock then always decides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Coarse {
    mono_ns: u64,
    real_ns: u64,
}

/// `until` (on [`now`]'s timeline) as deadlines on `CLOCK_MONOTONIC` and
/// `CLOCK_REALTIME`, never later than the real values.
pub(crate) fn coarse_deadline(until: Instant) -> Coarse {
    // Read the raw clocks first: they are then not later than `now`, so each result is not
    // later than `until` on that clock (earlier by at most the reads' distance).
    let (Some(mono), Some(real)) = (imp::mono_ns(), imp::real_ns()) else {
        return Coarse::default();
    };
    let real = real.saturating_add(crate::testing::suspended_ns());
    let now = now();
    let shift = |raw: u64| -> u64 {
        let deadline = match until.checked_duration_since(now) {
            Some(ahead) => raw.saturating_add(u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX)),
            None => {
                let behind = now.duration_since(until);
                raw.saturating_sub(u64::try_from(behind.as_nanos()).unwrap_or(u64::MAX))
            }
        };
        // 0 is the "unknown" marker; a deadline at the clock's origin is expired anyway.
        deadline.max(1)
    };
    Coarse {
        mono_ns: shift(mono),
        real_ns: shift(real),
    }
}

/// True only if both coarse clocks show that `deadline` is more than [`SLACK`] away; false
/// means "not sure: ask the precise clock".
#[inline]
pub(crate) fn surely_before(deadline: &Coarse) -> bool {
    // An unknown (0) deadline needs no test of its own: no reading plus the slack is
    // below 0, so the comparisons below say "not sure".
    let slack = SLACK.as_nanos() as u64;
    match (imp::coarse_mono_ns(), imp::coarse_real_ns()) {
        (Some(mono), Some(real)) => {
            mono.saturating_add(slack) < deadline.mono_ns
                && real
                    .saturating_add(crate::testing::suspended_ns())
                    .saturating_add(slack)
                    < deadline.real_ns
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_never_ahead_of_precise() {
        for _ in 0..1000 {
            if let (Some(c), Some(p)) = (imp::coarse_mono_ns(), imp::mono_ns()) {
                assert!(c <= p, "coarse {c} ahead of precise {p}");
            }
            if let (Some(c), Some(p)) = (imp::coarse_real_ns(), imp::real_ns()) {
                assert!(c <= p, "coarse realtime {c} ahead of precise {p}");
            }
        }
    }

    #[test]
    fn the_deadline_clock_runs_with_instant_when_nothing_is_suspended() {
        let a = Instant::now();
        let n = now();
        // No suspend happens during a test run: the boot timeline is Instant's, give or
        // take the reads' distance (and any suspend since the origin, which only adds).
        assert!(
            n + Duration::from_millis(50) >= a,
            "deadline clock behind Instant"
        );
        let later = now();
        assert!(later >= n, "the deadline clock went backwards");
        std::thread::sleep(Duration::from_millis(20));
        let moved = now().duration_since(later);
        assert!(moved >= Duration::from_millis(20), "{moved:?}");
        assert!(moved < Duration::from_secs(5), "{moved:?}");
        let wall = wall_ms();
        assert!(wall > 1_600_000_000_000, "{wall}");
    }

    #[test]
    fn the_deadline_clock_follows_boottime_from_its_origin() {
        let t0 = Instant::now();
        let fallback = t0 + Duration::from_secs(1);
        let origin = Origin {
            instant: t0,
            boot_ns: 5_000_000_000,
        };
        // Two hours of boot time later (a suspend included or not): two hours later.
        let two_hours = 5_000_000_000 + 7_200_000_000_000;
        assert_eq!(
            on_boot_timeline(Some(&origin), Some(two_hours), || fallback),
            t0 + Duration::from_secs(7200)
        );
        assert_eq!(
            on_boot_timeline(Some(&origin), Some(5_000_000_001), || fallback),
            t0 + Duration::from_nanos(1)
        );
        // A reading before the origin (cannot happen: the clock is monotonic) stays at it.
        assert_eq!(on_boot_timeline(Some(&origin), Some(1), || fallback), t0);
        // Without a boot clock, or before the origin was read: Instant decides.
        assert_eq!(on_boot_timeline(Some(&origin), None, || fallback), fallback);
        assert_eq!(
            on_boot_timeline(None, Some(two_hours), || fallback),
            fallback
        );
    }

    #[test]
    fn deadlines_round_towards_earlier() {
        let now = now();
        let far = now + Duration::from_secs(3600);
        let near = now + Duration::from_millis(50);
        let past = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        if imp::mono_ns().is_none() {
            assert_eq!(coarse_deadline(far), Coarse::default());
            assert!(!surely_before(&coarse_deadline(far)));
            return;
        }
        let (Some(mono_after), Some(real_after)) = (imp::mono_ns(), imp::real_ns()) else {
            panic!("clock_gettime failed");
        };
        // Not later than the real deadline (the raw clocks read after it bound "now").
        let far_c = coarse_deadline(far);
        assert!(far_c.mono_ns <= mono_after + 3_600_000_000_000);
        assert!(far_c.real_ns <= real_after + 3_600_000_000_000);
        assert!(far_c.mono_ns + 3_500_000_000_000 > mono_after, "{far_c:?}");
        assert!(far_c.real_ns + 3_500_000_000_000 > real_after, "{far_c:?}");
        assert!(surely_before(&far_c));
        // Within the slack, or in the past: the coarse clocks never vouch for it.
        assert!(!surely_before(&coarse_deadline(near)));
        assert!(!surely_before(&coarse_deadline(past)));
        assert!(!surely_before(&coarse_deadline(now)));
        assert!(!surely_before(&Coarse::default()));
        // Either clock alone at its deadline is enough to refuse: a suspend moves only the
        // realtime one, a stuck wall clock only leaves the monotonic one.
        assert!(!surely_before(&Coarse {
            mono_ns: far_c.mono_ns,
            real_ns: coarse_deadline(near).real_ns,
        }));
        assert!(!surely_before(&Coarse {
            mono_ns: coarse_deadline(near).mono_ns,
            real_ns: far_c.real_ns,
        }));
        assert!(!surely_before(&Coarse {
            mono_ns: far_c.mono_ns,
            real_ns: 0,
        }));
        assert!(!surely_before(&Coarse {
            mono_ns: 0,
            real_ns: far_c.real_ns,
        }));
    }
}
