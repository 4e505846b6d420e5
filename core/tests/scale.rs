//! Many accounts in one process (issue #21): sessions to one venue share one connection
//! pool, the venue never sees more renewal requests in flight than the process-wide limit
//! (at start-up or when every token was issued in the same second), no credential lapses
//! while renewals queue, and each session keeps its own timeout on the shared pool.
//! Against the simulator over TLS; its own counts (connections open, requests in flight)
//! are the evidence.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tradeauth::{CadenzaConfig, ErrorKind, Method, Options, Session};
use tradeauth_sim::{CadenzaUser, Fault, Sim, SimConfig, Venue};

const LOGIN: &str = "/api/v3/auth/login";
const REFRESH: &str = "/api/v3/auth/token/refresh";
const PROFILE: &str = "/api/v3/user/profile";

/// A simulator with `n` Cadenza users (`scale-{i}@scale.test` / `scale-pw-{i}`) whose
/// access tokens live `access_ttl_secs`.
async fn sim_with_users(n: usize, access_ttl_secs: u64) -> Sim {
    let mut config = SimConfig::default();
    config.cadenza.users = (0..n)
        .map(|i| CadenzaUser::new(format!("scale-{i}@scale.test"), format!("scale-pw-{i}")))
        .collect();
    config.cadenza.access_ttl_secs = access_ttl_secs;
    Sim::start(config).await.expect("simulator starts")
}

/// Session `i` of `sim`'s users, with `options`.
fn user(i: usize, options: Options) -> Session {
    let config = CadenzaConfig::new(format!("scale-{i}@scale.test"), format!("scale-pw-{i}"));
    Session::cadenza(config, options).expect("valid Cadenza session")
}

/// Logs every session in at once; panics on any failure.
async fn log_in_all(sessions: &[Session]) {
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.credential().await.map(|_| ()) })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .expect("login task")
            .unwrap_or_else(|e| panic!("session {i} failed to log in: {e}"));
    }
}

/// The process-wide renewal limit in force for this test binary.
fn limit() -> u64 {
    tradeauth::runtime::process_config()
        .expect("process config")
        .max_concurrent_renewals as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_to_one_venue_share_one_connection() {
    const N: usize = 200;
    let sim = sim_with_users(N, 3600).await;
    let sessions: Vec<Session> = (0..N)
        .map(|i| user(i, support::options(&sim, Venue::Cadenza)))
        .collect();
    log_in_all(&sessions).await;
    // And one authenticated call each, 50 at a time.
    let turn = Arc::new(tokio::sync::Semaphore::new(50));
    let calls: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (s, turn) = (s.clone(), Arc::clone(&turn));
            tokio::spawn(async move {
                let _turn = turn.acquire().await;
                s.request(Method::Get, PROFILE)
                    .send()
                    .await
                    .map(|r| r.status)
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("profile call"), 200);
    }
    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, N as u64);
    // HTTP/2 (the simulator offers it): every session's logins and calls share one
    // connection (the first request to the venue goes alone, so the burst behind it finds
    // the multiplexed connection instead of racing to open its own).
    assert!(
        stats.connections <= 2 && stats.max_open_connections <= 2,
        "{N} sessions opened {} connections ({} at once): they must share the pool",
        stats.connections,
        stats.max_open_connections
    );

    // The contrast that shows the count can fail: private pools, one connection each.
    const PRIVATE: usize = 20;
    let private: Vec<Session> = (0..PRIVATE)
        .map(|i| user(i, support::options(&sim, Venue::Cadenza).private_pool(true)))
        .collect();
    log_in_all(&private).await;
    let stats = sim.venue_stats(Venue::Cadenza);
    assert!(
        stats.connections >= PRIVATE as u64,
        "{PRIVATE} private pools opened only {} connections",
        stats.connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_stampede_never_has_more_logins_in_flight_than_the_limit() {
    const N: usize = 64;
    let sim = sim_with_users(N, 3600).await;
    // Each login takes 40 ms at the venue, so unbounded callers would all overlap.
    sim.arm_fault(
        Fault::delay(Venue::Cadenza, 40)
            .on_path(LOGIN)
            .times(N as u32),
    );
    let sessions: Vec<Session> = (0..N)
        .map(|i| user(i, support::options(&sim, Venue::Cadenza)))
        .collect();
    log_in_all(&sessions).await;
    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, N as u64, "every account logged in once");
    assert!(
        stats.max_in_flight <= limit(),
        "the venue saw {} logins in flight at once (limit {})",
        stats.max_in_flight,
        limit()
    );
    // The limit did the queueing (not a lack of concurrency in the test).
    assert_eq!(stats.max_in_flight, limit(), "the limit was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_in_the_same_second_all_renew_in_bounded_waves_before_they_expire() {
    const N: usize = 100;
    // 4 s tokens: the refresh window is a quarter (1 s), jitter up to 0.1 s; every session
    // logs in within the same second, so all of them want to renew at about the same time.
    let sim = sim_with_users(N, 4).await;
    // Every refresh takes 30 ms at the venue: 100 of them, 8 at a time, take ~0.4 s of
    // the 1 s window; unbounded they would all be in flight at once.
    sim.arm_fault(
        Fault::delay(Venue::Cadenza, 30)
            .on_path(REFRESH)
            .times(N as u32 * 4),
    );
    let sessions: Vec<Session> = (0..N)
        .map(|i| user(i, support::options(&sim, Venue::Cadenza)))
        .collect();
    log_in_all(&sessions).await;

    // A reader sweeps every session's hot path until each has renewed twice.
    let stop = Arc::new(AtomicBool::new(false));
    let (missing, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (sessions, stop) = (sessions.clone(), Arc::clone(&stop));
        let (missing, reads) = (Arc::clone(&missing), Arc::clone(&reads));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &sessions {
                    reads.fetch_add(1, Ordering::Relaxed);
                    if s.with_current(|c| c.is_none()) {
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let renewed = tokio::time::timeout(Duration::from_secs(15), async {
        while sessions.iter().any(|s| s.metrics().refreshes < 2) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    renewed.expect("every session renewed twice within 15 s");

    let stats = sim.venue_stats(Venue::Cadenza);
    assert!(reads.load(Ordering::Relaxed) > 10 * N as u64);
    assert_eq!(
        missing.load(Ordering::Relaxed),
        0,
        "a session had no valid credential while renewals queued"
    );
    assert!(
        stats.max_in_flight <= limit(),
        "{} renewals in flight at once (limit {})",
        stats.max_in_flight,
        limit()
    );
    assert_eq!(stats.max_in_flight, limit(), "the renewals did queue");
    assert_eq!(stats.logins, N as u64, "no session fell back to a login");
    assert_eq!(stats.total_rejections(), 0, "{:?}", stats.rejections);
    let failures: u64 = sessions
        .iter()
        .map(|s| s.metrics().renewal_failures.values().sum::<u64>())
        .sum();
    assert_eq!(failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_one_shared_pool_keep_their_own_timeouts() {
    let sim = sim_with_users(2, 3600).await;
    let patient = user(0, support::options(&sim, Venue::Cadenza));
    let hasty = user(
        1,
        support::options(&sim, Venue::Cadenza)
            .request_timeout(Duration::from_millis(300))
            .max_retries(0),
    );
    log_in_all(&[patient.clone(), hasty.clone()]).await;
    sim.arm_fault(Fault::delay(Venue::Cadenza, 1000).on_path(PROFILE).times(2));
    let (a, b) = tokio::join!(
        patient.request(Method::Get, PROFILE).send(),
        hasty.request(Method::Get, PROFILE).send()
    );
    assert_eq!(a.expect("the patient session waits").status, 200);
    let error = b.expect_err("the hasty session gives up at its own 300 ms");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(sim.venue_stats(Venue::Cadenza).connections <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_on_a_cold_pool_opens_one_connection() {
    // 64 Exchange traders (no renewal, so no renewal limit) call the venue at once before
    // any connection to it exists: the pool cannot know yet that it speaks HTTP/2.
    const N: usize = 64;
    let sim = support::sim().await;
    let sessions: Vec<Session> = (0..N)
        .map(|_| support::exchange(&sim, support::options(&sim, Venue::Exchange)))
        .collect();
    let calls: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move {
                s.request(Method::Get, "/api/v1/user")
                    .send()
                    .await
                    .map(|r| r.status)
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("call"), 200);
    }
    let stats = sim.venue_stats(Venue::Exchange);
    assert!(
        stats.connections <= 2,
        "{N} calls on a cold pool opened {} connections ({} at once)",
        stats.connections,
        stats.max_open_connections
    );
}
