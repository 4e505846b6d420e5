//! Concurrency: many readers on the hot path during constant refreshes, and many callers
//! on a session with no credential while the venue fails.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tradeauth::Method;
use tradeauth_sim::{Fault, Venue};

const READERS: usize = 32;
const READS_PER_THREAD: usize = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_readers_never_see_an_expired_or_missing_credential_during_refreshes() {
    let sim = support::sim().await;
    let session = support::on_demand_on(&sim, Venue::Cadenza);
    session.credential().await.expect("login");

    // A refresher forces a new token every 50 ms while the readers run.
    let done = Arc::new(AtomicBool::new(false));
    let refresher = {
        let session = session.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            let mut refreshes = 0u64;
            while !done.load(Ordering::Relaxed) {
                ticks.tick().await;
                session.refresh().await.expect("forced refresh");
                refreshes += 1;
            }
            refreshes
        })
    };

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let session = session.clone();
            std::thread::spawn(move || {
                let mut missing = 0usize;
                let mut expired = 0usize;
                let mut seen = HashSet::new();
                let mut last: Option<Arc<tradeauth::Credential>> = None;
                for _ in 0..READS_PER_THREAD {
                    match session.current() {
                        Some(credential) => {
                            if !credential.is_valid_at(Instant::now()) {
                                expired += 1;
                            }
                            // Keep one copy per distinct token (by pointer: cheap), to
                            // check every one of them against the venue afterwards.
                            if last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &credential)) {
                                seen.insert(credential.header_value().to_owned());
                                last = Some(credential);
                            }
                        }
                        None => missing += 1,
                    }
                }
                (missing, expired, seen)
            })
        })
        .collect();

    let mut all_seen = HashSet::new();
    for reader in readers {
        let (missing, expired, seen) = tokio::task::spawn_blocking(move || reader.join())
            .await
            .expect("join task")
            .expect("reader thread");
        assert_eq!(missing, 0, "a reader found no credential");
        assert_eq!(expired, 0, "a reader got an expired credential");
        all_seen.extend(seen);
    }
    done.store(true, Ordering::Relaxed);
    let refreshes = refresher.await.expect("refresher");
    assert!(
        refreshes >= 2,
        "refreshes happened during the reads ({refreshes})"
    );
    assert!(all_seen.len() >= 2, "readers saw the tokens change");

    // Every token any reader saw is one the venue accepts.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("CA")])
        .build()
        .expect("client");
    for header in &all_seen {
        let status = client
            .get(format!("{}/api/v3/user/profile", sim.urls().cadenza))
            .header("authorization", header.as_str())
            .send()
            .await
            .expect("answer")
            .status();
        assert_eq!(
            status.as_u16(),
            200,
            "the venue refused a token a reader saw"
        );
    }
    assert_eq!(sim.stats().cadenza.rejected("INVALID_REFRESH_TOKEN"), 0);
}

/// A simulator whose Cadenza login answers 503 `times` times, and an on-demand Cadenza
/// session on it with its options `tune`d.
async fn failing_logins(
    times: u32,
    tune: fn(tradeauth::Options) -> tradeauth::Options,
) -> (tradeauth_sim::Sim, tradeauth::Session) {
    let sim = support::sim().await;
    sim.arm_fault(
        Fault::status(Venue::Cadenza, 503)
            .on_path("/api/v3/auth/login")
            .times(times),
    );
    let options = tune(support::options(&sim, Venue::Cadenza).background_refresh(false));
    let session = support::cadenza(&sim, options);
    (sim, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_during_an_outage_share_one_login_at_a_time() {
    let (sim, session) = failing_logins(3, |options| options).await;
    let answers = support::concurrently(&session, 200, |session| async move {
        session
            .request(Method::Get, "/api/v3/market/venue/list")
            .send()
            .await
    })
    .await;
    let mut statuses = HashSet::new();
    for answer in answers {
        statuses.insert(answer.expect("answer").status);
    }
    assert_eq!(
        statuses,
        HashSet::from([200]),
        "all callers got the same result"
    );
    let stats = sim.stats().cadenza;
    assert_eq!(stats.logins, 1);
    // Three refused logins, one accepted: one at a time, never in parallel.
    assert_eq!(stats.rejected("fault:503"), 3);
    assert_eq!(stats.requests, 4 + 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_shared_not_repeated_per_caller() {
    let (sim, session) = failing_logins(100, |options| options.max_retries(2)).await;
    let mut kinds = HashSet::new();
    for credential in support::credentials_at_once(&session, 200).await {
        let error = credential.expect_err("outage");
        kinds.insert(error.kind());
    }
    assert_eq!(kinds.len(), 1, "every caller got the same failure");
    let stats = sim.stats().cadenza;
    assert_eq!(stats.max_in_flight, 1, "one login request at a time");
    // One attempt (first try + 2 retries) served all 200 callers that queued behind it;
    // a caller that arrives after it failed may start one more.
    assert!(
        stats.requests <= 6,
        "{} login requests for 200 callers",
        stats.requests
    );
}
