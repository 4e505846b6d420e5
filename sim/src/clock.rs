//! The simulated clock: system time plus a settable offset. Every expiry the simulator
//! issues or checks is read from here, so tests move time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// Offsets are clamped to this many seconds (about 100 years) so that adding them to the
/// system time can never overflow.
const MAX_OFFSET_SECS: i64 = 100 * 366 * 24 * 3600;

/// System time + offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub(crate) fn new(offset_secs: i64) -> Self {
        let clock = Self::default();
        clock.set_offset_secs(offset_secs);
        clock
    }

    pub(crate) fn set_offset_secs(&self, secs: i64) {
        self.offset_secs.store(
            secs.clamp(-MAX_OFFSET_SECS, MAX_OFFSET_SECS),
            Ordering::SeqCst,
        );
    }

    pub(crate) fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::SeqCst)
    }

    /// The simulated now, in UTC.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::seconds(self.offset_secs())
    }

    pub(crate) fn now_unix_ms(&self) -> i64 {
        unix_ms(self.now())
    }

    pub(crate) fn now_unix_secs(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    // Within +-100 years of now the value always fits in an i64.
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 text of a time, for audit entries.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_now() {
        let clock = Clock::new(-600);
        let system = OffsetDateTime::now_utc().unix_timestamp();
        let diff = clock.now_unix_secs() - system;
        assert!((-601..=-599).contains(&diff), "{diff}");
        clock.set_offset_secs(i64::MIN);
        assert_eq!(clock.offset_secs(), -MAX_OFFSET_SECS);
        let _ = clock.now();
    }
}
