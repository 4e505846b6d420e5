//! `Session::metrics()` (issue #19) against the simulator over TLS: after a scripted
//! sequence (login, forced refresh, a revoked token met by a request, a wrong password, a
//! shared store, a WebSocket drop) the session's counters match what the venue counted.

mod support;

use std::time::{Duration, Instant};

use tradeauth::{AuthEvent, Session};
use tradeauth_sim::{Fault, LifetimeUpdate, Revoke, Venue, demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadenza_counters_match_the_venues_after_login_refresh_and_a_401() {
    let (sim, session) = support::on_demand(Venue::Cadenza).await;
    let fresh = session.metrics();
    assert_eq!((fresh.logins, fresh.refreshes, fresh.relogins), (0, 0, 0));
    assert_eq!(fresh.expires_in_seconds, None, "no credential yet");
    assert_eq!(fresh.renewal_seconds.count, 0);

    session.credential().await.expect("logs in");
    session.refresh().await.expect("forced refresh");
    sim.revoke(Venue::Cadenza, Revoke::AccessTokens)
        .expect("revoked");
    let r = support::get(&session, "/api/v3/user/profile").await;
    assert_eq!(r.status, 200, "re-authenticated and retried");

    let m = session.metrics();
    let stats = sim.stats().cadenza;
    // The revoked access token took its refresh token with it: the 401 became a full
    // login, which the venue counts as a login and the session as a re-login.
    assert_eq!(m.logins + m.relogins, stats.logins, "{m:?} vs {stats:?}");
    assert_eq!(m.refreshes, stats.refreshes, "{m:?} vs {stats:?}");
    assert_eq!((m.logins, m.refreshes, m.relogins), (1, 1, 1), "{m:?}");
    assert_eq!(m.reauths_after_401, 1);
    assert!(m.renewal_failures.is_empty(), "{m:?}");
    // Each renewal that went to the venue is one observation, in the +Inf bucket too.
    let h = &m.renewal_seconds;
    assert_eq!(h.count, 3, "{h:?}");
    assert_eq!(h.cumulative.len(), h.bounds.len() + 1);
    assert_eq!(h.cumulative.last(), Some(&3));
    assert!(h.cumulative.windows(2).all(|w| w[0] <= w[1]), "{h:?}");
    assert!(h.sum_seconds > 0.0 && h.sum_seconds < 30.0, "{h:?}");
    let left = m.expires_in_seconds.expect("a credential with an expiry");
    let lifetime = sim.lifetimes().cadenza.access_ttl_secs as f64;
    assert!(left > 0.0 && left <= lifetime, "{left} of {lifetime}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_counts_down_in_real_time() {
    let sim = support::sim().await;
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(30))
        .expect("lifetime set");
    let session = support::on_demand_on(&sim, Venue::Cadenza);
    session.credential().await.expect("logs in");
    let first = session.metrics().expires_in_seconds.expect("expiry");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = session.metrics().expires_in_seconds.expect("expiry");
    assert!(
        first - later >= 1.0 && first - later < 2.0,
        "{first} then {later}"
    );
    assert!(first <= 30.0, "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_failure_of_its_kind() {
    let sim = support::sim().await;
    let config = tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, "not-the-password");
    let session = Session::cadenza(
        config,
        support::options(&sim, Venue::Cadenza).background_refresh(false),
    )
    .expect("session");
    session.credential().await.expect_err("refused");
    let m = session.metrics();
    assert_eq!(m.logins, 0);
    assert_eq!(
        m.renewal_failures.into_iter().collect::<Vec<_>>(),
        vec![("unauthorized", 1)]
    );
    assert_eq!(m.renewal_seconds.count, 0, "a failure is not a renewal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_skew_is_the_venues_date_minus_ours() {
    let sim = support::sim().await;
    sim.set_clock_offset_secs(20);
    let session = support::on_demand_on(&sim, Venue::Cadenza);
    session.credential().await.expect("logs in");
    let skew = session.metrics().clock_skew_seconds;
    assert!((skew - 20.0).abs() <= 1.0, "{skew}");
    assert_eq!(skew, session.clock_skew_ms() as f64 / 1000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_key_has_no_expiry_and_counts_no_renewal() {
    let (_sim, session) = support::on_demand(Venue::Exchange).await;
    session.credential().await.expect("the key");
    let m = session.metrics();
    assert_eq!(m.expires_in_seconds, None);
    assert_eq!(m.renewal_seconds.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_counts_one_write_one_lease_wait_and_one_adoption() {
    let sim = support::sim().await;
    let dir = std::env::temp_dir().join(format!("tradeauth-metrics-{}", rand::random::<u64>()));
    let url = format!("file://{}", dir.display());
    let key = "6b8f0c3e2a1d4f5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";
    let shared = |sim: &tradeauth_sim::Sim| {
        support::cadenza(
            sim,
            support::options(sim, Venue::Cadenza)
                .background_refresh(false)
                .store(&url)
                .store_key(key),
        )
    };
    // The first one's login is slow, so the second finds the lease held and waits.
    sim.arm_fault(Fault::delay(Venue::Cadenza, 400).on_path("/api/v3/auth/login"));
    let (first, second) = (shared(&sim), shared(&sim));
    let one = first.clone();
    let leader = tokio::spawn(async move { one.credential().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(150)).await;
    second.credential().await.expect("second adopts");
    leader.await.expect("joins").expect("first logs in");
    let (a, b) = (first.metrics(), second.metrics());
    assert_eq!(sim.stats().cadenza.logins, 1, "one login for both");
    assert_eq!((a.logins, a.store_writes, a.store_adoptions), (1, 1, 0));
    assert_eq!((b.logins, b.store_writes, b.store_adoptions), (0, 0, 1));
    assert_eq!((a.store_lease_waits, b.store_lease_waits), (0, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connects_reconnects_and_auths_match_the_venues() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    let mut events = session.subscribe();
    let ws = session
        .websocket("/ws")
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .connect()
        .await
        .expect("connects");
    sim.arm_fault(Fault::ws_drop(Venue::Exchange));
    let until = Instant::now() + Duration::from_secs(10);
    let mut authenticated = 0;
    // The first connection's, then the replacement's.
    while authenticated < 2 && Instant::now() < until {
        if let Ok(Ok(AuthEvent::WsAuthenticated)) =
            tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            authenticated += 1;
        }
    }
    let m = session.metrics();
    let stats = sim.stats().exchange;
    assert_eq!(m.ws_connects, stats.ws_connections, "{m:?} vs {stats:?}");
    assert_eq!(m.ws_auths, stats.ws_auths, "{m:?} vs {stats:?}");
    assert_eq!((m.ws_connects, m.ws_auths), (2, 2), "{m:?}");
    assert!(m.ws_reconnects >= 1, "{m:?}");
    ws.close().await;
}
