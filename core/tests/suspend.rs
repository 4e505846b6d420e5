//! A machine suspended for longer than a token lives (issue #14): `CLOCK_MONOTONIC`, which
//! `Instant` and every timer run on, stops while suspended; the wall clock and
//! `CLOCK_BOOTTIME` do not. The suspend is pretended (the `testing` feature moves the
//! deadline clock and the wall clock forward together, as a resume does), so this binary
//! holds one test: the pretended suspend is process-wide.

mod support;

use std::time::Duration;

use tradeauth::AuthEvent;
use tradeauth_sim::{LifetimeUpdate, Venue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_two_hour_suspend_no_token_from_before_it_is_served() {
    let (sim, session) =
        support::renewing(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(600)).await;
    let (mut events, first) = support::subscribe_and_log_in(&session).await;
    assert!(first.is_valid_now());
    // Let the background refresher go back to sleep (on the monotonic clock) first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Two hours asleep: the venue's clock moved on too, so its tokens from before expired.
    tradeauth::time::pretend_suspended(Duration::from_secs(7200));
    sim.advance_clock_secs(7200);

    // The hot path refuses the token at once, on its own clocks (no timer has fired).
    assert!(
        !first.is_valid_now(),
        "a 10-minute token still valid after a 2-hour suspend"
    );

    // The background refresher, asleep on the monotonic clock, wakes within one nap (5 s)
    // and renews on its own, before anyone asks.
    support::wait_for_event(&mut events, Duration::from_secs(8), |e| {
        matches!(e, AuthEvent::Refreshed | AuthEvent::ReLoggedIn)
    })
    .await;
    let second = session.current().expect("renewed in the background");
    assert_ne!(second.header_value(), first.header_value());
    assert!(second.is_valid_now());
    let profile = support::get(&session, "/api/v3/user/profile").await;
    assert_eq!(profile.status, 200);
    let stats = sim.stats().cadenza;
    assert_eq!((stats.logins, stats.refreshes), (1, 1), "{stats:?}");
}
