//! Time as the machines see it: passed in, never read.
//!
//! Venues state expiry in wall-clock terms (`expiresAt` in Unix ms, a JWT `exp`). The
//! machines convert it to a deadline on the deadline clock the moment a token arrives, so
//! a later wall-clock jump (NTP step, VM resume) cannot make an expired token look valid.
//! A stated expiry is measured against the latest of the clocks we trust ([`Now`]): our
//! wall clock, the venue's clock as learned from its `Date` headers, and the `Date` of the
//! answer that carried the token; so a lifetime is the shortest any of them gives, and a
//! clock that runs behind can only shorten it.

use std::ops::Add;
use std::time::{Duration, Instant};

/// The clocks, read once by the driver and handed to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The deadline clock: every deadline the machines keep is on it. In a live session
    /// it counts time the machine was suspended ([`deadline_now`]).
    pub instant: Instant,
    /// The venue's clock as far as we know it, in Unix ms: our wall clock plus the skew
    /// learned from the venue's `Date` headers (within the session's plausible bound).
    /// What the tokens we stamp use (Partner's `iat`).
    pub unix_ms: u64,
    /// Our own wall clock, in Unix ms.
    pub wall_ms: u64,
    /// The `Date` of the answer being handled, in Unix ms, when it is within the session's
    /// plausible bound of our wall clock; `None` otherwise and outside `handle_response`.
    pub answer_date_ms: Option<u64>,
}

impl Now {
    /// The clocks as given, all wall clocks at `unix_ms` (tests build these from a base
    /// instant plus offsets).
    pub fn new(instant: Instant, unix_ms: u64) -> Self {
        Now {
            instant,
            unix_ms,
            wall_ms: unix_ms,
            answer_date_ms: None,
        }
    }

    /// Read the clocks: the deadline clock and our wall clock. For drivers only: the
    /// machines never call this.
    pub fn capture() -> Self {
        Now::new(deadline_now(), crate::clock::wall_ms())
    }

    /// Whole Unix seconds of the venue's clock, rounded down (what JWT `iat` uses).
    pub fn unix_secs(&self) -> u64 {
        self.unix_ms / 1000
    }

    /// These clocks with an answer's `Date` (Unix ms), kept only if it is within `bound`
    /// of our wall clock: a `Date` further off is implausible (a stale cache, a CDN) and
    /// our clocks alone decide.
    pub fn with_answer_date(mut self, date_ms: Option<u64>, bound: Duration) -> Self {
        self.answer_date_ms = date_ms.filter(|&date| plausible(date, self.wall_ms, bound));
        self
    }

    /// The clock a stated expiry is measured against, in Unix ms: the latest of our wall
    /// clock, the venue's clock as learned, and this answer's `Date`, so the lifetime it
    /// gives is the shortest of theirs.
    pub fn expiry_base_ms(&self) -> u64 {
        self.unix_ms
            .max(self.wall_ms)
            .max(self.answer_date_ms.unwrap_or(0))
    }
}

impl Add<Duration> for Now {
    type Output = Now;

    /// Every clock moved forward together (a test clock advancing).
    fn add(self, rhs: Duration) -> Now {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Now {
            instant: self.instant + rhs,
            unix_ms: self.unix_ms.saturating_add(ms),
            wall_ms: self.wall_ms.saturating_add(ms),
            answer_date_ms: self.answer_date_ms.map(|d| d.saturating_add(ms)),
        }
    }
}

/// Whether a venue clock reading `venue_ms` is within `bound` of our wall clock `wall_ms`.
pub fn plausible(venue_ms: u64, wall_ms: u64, bound: Duration) -> bool {
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    venue_ms.abs_diff(wall_ms) <= bound_ms
}

/// The deadline clock of a live session: an `Instant` that keeps counting while the
/// machine is suspended (`CLOCK_BOOTTIME` on Linux; `Instant::now()` elsewhere).
/// `Credential::valid_until` and a machine's `poll_timeout` are on this clock.
pub fn deadline_now() -> Instant {
    crate::clock::now()
}

#[cfg(feature = "testing")]
#[doc(hidden)]
pub use crate::testing::pretend_suspended;

/// The farthest deadline we represent; an `Instant` cannot hold "never" and a venue
/// expiry a century away is as good as never.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now.instant + d`, saturating at a far-future instant instead of panicking.
pub fn instant_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Convert a wall-clock expiry (Unix ms) into a deadline, at the moment the token arrives:
/// `now.instant + (expiry_ms - now.expiry_base_ms())`. An expiry already in the past gives
/// `now.instant` (a deadline that is not in the future).
pub fn deadline_from_unix_ms(now: Now, expiry_ms: u64) -> Instant {
    match expiry_ms.checked_sub(now.expiry_base_ms()) {
        Some(ms) => instant_after(now.instant, Duration::from_millis(ms)),
        None => now.instant,
    }
}

/// The safety margin subtracted from a venue deadline before a credential is handed out:
/// `min(10 s, lifetime / 10)`, so network latency cannot make it arrive expired, while
/// short-lived tokens (seconds) stay usable for most of their life.
pub fn safety_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(10))
}

/// A tiny deterministic PRNG (splitmix64) for refresh jitter. Seeded from the config so
/// tests are reproducible and the machines never read randomness themselves.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration uniformly drawn (to the microsecond) from `[0, max]`.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        if max_us == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.next_u64() % (max_us.saturating_add(1)).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_conversion() {
        let base = Instant::now();
        let now = Now::new(base, 1_700_000_000_000);
        assert_eq!(
            deadline_from_unix_ms(now, 1_700_000_003_000),
            base + Duration::from_secs(3)
        );
        assert_eq!(deadline_from_unix_ms(now, 1_600_000_000_000), base);
        assert_eq!(deadline_from_unix_ms(now, now.unix_ms), base);
        // Absurd expiries saturate instead of panicking.
        assert!(deadline_from_unix_ms(now, u64::MAX) > base);
    }

    #[test]
    fn a_date_is_believed_only_within_the_bound() {
        let bound = Duration::from_secs(900);
        let wall = 1_700_000_000_000;
        assert!(plausible(wall, wall, bound));
        assert!(plausible(wall + 900_000, wall, bound), "the bound itself");
        assert!(plausible(wall - 900_000, wall, bound));
        assert!(!plausible(wall + 900_001, wall, bound));
        assert!(!plausible(wall - 900_001, wall, bound));
        assert!(!plausible(wall - 7_200_000, wall, bound), "a stale cache");
        assert!(plausible(u64::MAX, 0, Duration::MAX), "no overflow");
        let now = Now::new(Instant::now(), wall);
        assert_eq!(
            now.with_answer_date(Some(wall + 60_000), bound)
                .answer_date_ms,
            Some(wall + 60_000)
        );
        assert_eq!(
            now.with_answer_date(Some(wall + 7_200_000), bound)
                .answer_date_ms,
            None
        );
        assert_eq!(now.with_answer_date(None, bound).answer_date_ms, None);
        // Measured from our wall clock, not from the venue clock as learned.
        let mut skewed = now;
        skewed.unix_ms = wall + 7_200_000;
        assert_eq!(
            skewed
                .with_answer_date(Some(wall + 7_200_000), bound)
                .answer_date_ms,
            None
        );
        // The rest of the clocks are left as they were.
        let with = now.with_answer_date(Some(wall + 1), bound);
        assert_eq!(
            (with.instant, with.unix_ms, with.wall_ms),
            (now.instant, wall, wall)
        );
    }

    #[test]
    fn every_clock_moves_with_a_test_clock() {
        let base = Instant::now();
        let mut now = Now::new(base, 1_000_000);
        now.wall_ms = 2_000_000;
        now.answer_date_ms = Some(3_000_000);
        let later = now + Duration::from_millis(5);
        assert_eq!(later.instant, base + Duration::from_millis(5));
        assert_eq!((later.unix_ms, later.wall_ms), (1_000_005, 2_000_005));
        assert_eq!(later.answer_date_ms, Some(3_000_005));
        assert_eq!(later.expiry_base_ms(), 3_000_005);
        assert_eq!(Now::new(base, 7).wall_ms, 7);
        assert_eq!(Now::new(base, 7).answer_date_ms, None);
    }

    #[test]
    fn now_add_and_secs() {
        let base = Instant::now();
        let now = Now::new(base, 1_700_000_000_999) + Duration::from_millis(1);
        assert_eq!(now.instant, base + Duration::from_millis(1));
        assert_eq!(now.unix_secs(), 1_700_000_001);
        let real = Now::capture();
        assert!(real.unix_ms > 1_600_000_000_000);
    }

    #[test]
    fn margin() {
        assert_eq!(
            safety_margin(Duration::from_secs(3600)),
            Duration::from_secs(10)
        );
        assert_eq!(
            safety_margin(Duration::from_secs(3)),
            Duration::from_millis(300)
        );
        assert_eq!(safety_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn splitmix_is_deterministic_and_bounded() {
        // Reference values of splitmix64 seeded with 0 (Vigna's reference implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            let j = a.jitter(Duration::from_millis(5));
            assert_eq!(j, b.jitter(Duration::from_millis(5)));
            assert!(j <= Duration::from_millis(5));
        }
        assert_eq!(a.jitter(Duration::ZERO), Duration::ZERO);
        // The draws spread over the whole range (a jitter stuck at 0 or at the maximum
        // would put every session's refresh at the same moment).
        let mut r = SplitMix64::new(7);
        let draws: Vec<Duration> = (0..200)
            .map(|_| r.jitter(Duration::from_millis(10)))
            .collect();
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(
            distinct.len() > 150,
            "{} distinct draws of 200",
            distinct.len()
        );
        assert!(draws.iter().any(|d| *d < Duration::from_millis(2)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(8)));
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(10)));
        // One microsecond of range: both ends are drawn.
        let ends: std::collections::BTreeSet<_> = (0..64)
            .map(|_| r.jitter(Duration::from_micros(1)))
            .collect();
        assert_eq!(ends.len(), 2);
    }

    #[test]
    fn a_far_expiry_saturates_at_a_century() {
        let base = Instant::now();
        // A century, not less: callers compare far deadlines with real ones.
        assert_eq!(instant_after(base, Duration::MAX), base + FAR_FUTURE);
        assert!(FAR_FUTURE >= Duration::from_secs(99 * 365 * 24 * 3600));
        assert_eq!(
            instant_after(base, Duration::from_secs(60)),
            base + Duration::from_secs(60)
        );
        let now = Now::new(base, 1_700_000_000_000);
        assert_eq!(deadline_from_unix_ms(now, u64::MAX), base + FAR_FUTURE);
    }
}
