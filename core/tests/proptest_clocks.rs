//! Property test (issue #14): the clocks move independently and the venue's clock is the
//! oracle. True time passes (the deadline clock counts it, suspended time included); our
//! wall clock jumps both ways (NTP steps, a wrong clock); each answer's `Date` is right,
//! stale (a cache) or ahead. Whatever they do, a Cadenza machine never hands out a token
//! once the venue's own clock has passed that token's expiry, provided that when the token
//! arrived at least one clock we trust was not behind the venue's: our wall clock, or a
//! `Date` the driver believed (within `max_date_skew` of our clock). No clock can save a
//! machine whose every clock runs behind, so the property does not ask for that.
//! (Checked to fail when a lifetime is measured from the learned venue clock alone, as it
//! was before issue #14.)

mod common;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tradeauth::{CadenzaConfig, CadenzaMachine, HttpResponse, Machine, Now};

use common::Clock;

/// The driver's default `max_date_skew`.
const BOUND: Duration = Duration::from_secs(15 * 60);
const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
enum Step {
    /// True time passes (awake or suspended: the deadline clock counts both).
    Pass(u64),
    /// Our wall clock is stepped by this many ms (either way); nothing else moves.
    JumpWall(i64),
    /// The request in flight is answered: a token living `ttl_secs` on the venue's
    /// clock, with a `Date` that is `date_off_ms` from the venue's clock.
    Answer { ttl_secs: u64, date_off_ms: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop_oneof![0u64..5_000, 0u64..8 * HOUR_MS as u64].prop_map(Step::Pass),
        2 => prop_oneof![-2 * HOUR_MS..2 * HOUR_MS, -20_000i64..20_000].prop_map(Step::JumpWall),
        // From 10 s: a `Date` has whole seconds, so when it is the clock that decides, a
        // token may be believed up to 1 s longer than it lives; the safety margin,
        // min(10 s, lifetime / 10), absorbs that from a 10 s lifetime on.
        4 => (
            10u64..4 * 3600,
            prop_oneof![Just(0i64), -2 * HOUR_MS..2 * HOUR_MS, -900_000i64..900_000],
        )
            .prop_map(|(ttl_secs, date_off_ms)| Step::Answer { ttl_secs, date_off_ms }),
    ]
}

fn answer(access: &str, expires_at: u64) -> HttpResponse {
    common::json(
        200,
        json!({"success": true, "data": {
            "accessToken": access, "refreshToken": format!("R-{access}"), "expiresAt": expires_at}}),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_token_is_served_past_the_venues_expiry_whatever_our_clocks_do(
        start_wall_off in -HOUR_MS..HOUR_MS,
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let clock = Clock::new();
        let mut elapsed = 0u64; // true time since the start
        let venue_start = common::BASE_MS;
        let mut wall_off = start_wall_off; // our wall clock minus the venue's, ms
        // Tokens that arrived while a trusted clock was not behind the venue's.
        let mut promised = std::collections::HashSet::new();
        let mut machine = CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")).expect("config");
        let mut n = 0u64;
        for step in &steps {
            let venue_ms = venue_start + elapsed;
            let wall_ms = venue_ms.saturating_add_signed(wall_off);
            let mut now = clock.ms(elapsed);
            now.wall_ms = wall_ms;
            now.unix_ms = wall_ms;
            match step {
                Step::Pass(ms) => {
                    elapsed += ms;
                }
                Step::JumpWall(ms) => wall_off += ms,
                Step::Answer { ttl_secs, date_off_ms } => {
                    if machine.poll_request(now).is_some() {
                        // Whole seconds, as the header has them.
                        let date = venue_ms.saturating_add_signed(*date_off_ms) / 1000 * 1000;
                        let at = now.with_answer_date(Some(date), BOUND);
                        let trusted_date = at.answer_date_ms.is_some_and(|d| d + 1000 > venue_ms);
                        n += 1;
                        let access = format!("A{n}");
                        if machine
                            .handle_response(at, answer(&access, venue_ms + ttl_secs * 1000))
                            .is_ok()
                            && (wall_ms >= venue_ms || trusted_date)
                        {
                            promised.insert(format!("Bearer {access}"));
                        }
                    }
                }
            }
            let venue_ms = venue_start + elapsed;
            let wall_ms = venue_ms.saturating_add_signed(wall_off);
            let mut now: Now = clock.ms(elapsed);
            now.wall_ms = wall_ms;
            now.unix_ms = wall_ms;
            machine.handle_timeout(now);
            if let Some(credential) = machine.credential(now.instant)
                && promised.contains(credential.header_value())
            {
                let expires = credential.expires_at_ms().expect("an expiring token");
                prop_assert!(
                    venue_ms < expires,
                    "served {} ms after the venue's expiry", venue_ms - expires
                );
            }
            while machine.poll_event().is_some() {}
        }
    }
}
