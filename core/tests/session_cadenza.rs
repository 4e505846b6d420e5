//! Cadenza sessions against the simulator over real TLS.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeauth::{AuthEvent, ErrorKind};
use tradeauth_sim::{Fault, LifetimeUpdate, Revoke, Venue, demo};

fn access_ttl(secs: u64) -> LifetimeUpdate {
    LifetimeUpdate {
        venue: Venue::Cadenza,
        access_ttl_secs: Some(secs),
        refresh_ttl_secs: None,
        token_ttl_secs: None,
        nonce_ttl_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_and_calls_a_protected_endpoint() {
    let (sim, session) = support::with_defaults(Venue::Cadenza).await;
    assert!(
        session.current().is_none(),
        "no credential before the first use"
    );
    let response = support::get(&session, "/api/v3/market/venue/list").await;
    assert_eq!(response.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON body");
    assert_eq!(body["success"], true);
    assert_eq!(support::cadenza_renewals(&sim), (1, 0));
    let credential = session.current().expect("credential cached after login");
    let expires = credential.expires_at_ms().expect("expiry known") as i64;
    assert!(
        (expires - sim.now_unix_ms() - 3_600_000).abs() < 5_000,
        "1 h token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_in_the_background_before_expiry() {
    let (sim, session) = support::renewing(access_ttl(3)).await;
    let (mut events, first) = support::subscribe_and_log_in(&session).await;
    let first_valid_until = first.valid_until().expect("expiring token");
    let refreshed = support::wait_for_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, AuthEvent::Refreshed)
    })
    .await;
    assert!(matches!(refreshed, AuthEvent::Refreshed));
    // The refresh landed while the first token was still being handed out: no caller waited.
    assert!(
        Instant::now() < first_valid_until,
        "refresh came before expiry"
    );
    let second = session.current().expect("fresh credential published");
    // Compared without assert_ne!, whose failure message would print both tokens.
    assert!(
        first.header_value() != second.header_value(),
        "a new access token"
    );
    assert_eq!(support::cadenza_renewals(&sim), (1, 1));
    // And the rotated token keeps working: a second background refresh uses it.
    support::wait_for(&mut events, Duration::from_secs(10), AuthEvent::Refreshed).await;
    assert_eq!(support::cadenza_renewals(&sim), (1, 2));
    assert_eq!(sim.stats().cadenza.rejected("INVALID_REFRESH_TOKEN"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_refreshes_rotate_the_refresh_token() {
    let (sim, session) = support::on_demand(Venue::Cadenza).await;
    session.credential().await.expect("login");
    let first = session.refresh_token().await.expect("refresh token held");
    session.refresh().await.expect("refresh 1");
    let second = session.refresh_token().await.expect("rotated");
    session
        .refresh()
        .await
        .expect("refresh 2 uses the rotated token");
    assert!(first.expose() != second.expose(), "refresh token rotated");
    assert_eq!(support::cadenza_renewals(&sim), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_falls_back_to_a_full_login() {
    let (sim, session) = support::on_demand(Venue::Cadenza).await;
    let mut events = session.subscribe();
    session.credential().await.expect("login");
    sim.revoke(Venue::Cadenza, Revoke::RefreshTokens)
        .expect("revoked");
    session
        .refresh()
        .await
        .expect("re-login after the rejected refresh");
    support::wait_for(&mut events, Duration::from_secs(5), AuthEvent::ReLoggedIn).await;
    assert_eq!(support::cadenza_renewals(&sim), (2, 0));
    assert_eq!(sim.stats().cadenza.rejected("INVALID_REFRESH_TOKEN"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_causes_exactly_one_reauthentication_and_one_retry() {
    let (sim, session) = support::revoked_after_login(Venue::Cadenza, Revoke::AccessTokens).await;
    let before = sim.stats().cadenza;
    let response = support::get(&session, "/api/v3/user/profile").await;
    assert_eq!(response.status, 200);
    let after = sim.stats().cadenza;
    let reauths = (after.logins + after.refreshes) - (before.logins + before.refreshes);
    assert_eq!(reauths, 1, "one re-authentication");
    // The rejected call, one refresh, one retry.
    assert_eq!(after.requests - before.requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_cause_one_login() {
    let (sim, session) = support::on_demand(Venue::Cadenza).await;
    assert_eq!(
        support::distinct_credentials(&session, 200).await,
        1,
        "every caller got the same credential"
    );
    assert_eq!(sim.stats().cadenza.logins, 1);
    assert_eq!(sim.stats().cadenza.requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_failure() {
    let sim = support::sim().await;
    let config = tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, "wrong-password");
    let session = tradeauth::Session::cadenza(
        config,
        support::options(&sim, Venue::Cadenza).background_refresh(false),
    )
    .expect("session");
    for credential in support::credentials_at_once(&session, 50).await {
        let error = credential.expect_err("rejected");
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert!(!error.to_string().contains("wrong-password"));
    }
    // A rejected password is never re-sent on its own.
    assert_eq!(sim.stats().cadenza.requests, 1);
    assert_eq!(sim.stats().cadenza.rejected("INVALID_CREDENTIALS"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_then_succeed() {
    let sim = support::sim().await;
    let login = "/api/v3/auth/login";
    sim.arm_fault(Fault::status(Venue::Cadenza, 503).on_path(login).times(1));
    sim.arm_fault(
        Fault::drop_connection(Venue::Cadenza)
            .on_path(login)
            .times(1),
    );
    sim.arm_fault(Fault::status(Venue::Cadenza, 500).on_path(login).times(1));
    let _session =
        support::logged_in_on(&sim, Venue::Cadenza, "login after three transient failures").await;
    let stats = sim.stats().cadenza;
    assert_eq!((stats.logins, stats.requests), (1, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let sim = support::sim().await;
    let login = "/api/v3/auth/login";
    sim.arm_fault(
        Fault::status(Venue::Cadenza, 429)
            .on_path(login)
            .retry_after_secs(1),
    );
    let session = support::on_demand_on(&sim, Venue::Cadenza);
    let started = Instant::now();
    session.credential().await.expect("login after 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(sim.stats().cadenza.requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let sim = support::sim().await;
    sim.arm_fault(Fault::status(Venue::Cadenza, 503).times(10));
    let session = support::cadenza(
        &sim,
        support::options(&sim, Venue::Cadenza)
            .background_refresh(false)
            .max_retries(2),
    );
    let error = session.credential().await.expect_err("gives up");
    assert_eq!(error.kind(), ErrorKind::ApiError);
    assert_eq!(error.status(), Some(503));
    assert_eq!(sim.stats().cadenza.requests, 3, "first try + 2 retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_protocol_errors() {
    let sim = support::sim().await;
    sim.arm_fault(Fault::malformed(Venue::Cadenza).times(1));
    let options = support::options(&sim, Venue::Cadenza)
        .background_refresh(false)
        .max_retries(0);
    let session = support::cadenza(&sim, options);
    let error = session.credential().await.expect_err("bad JSON");
    assert_eq!(error.kind(), ErrorKind::Protocol);

    sim.arm_fault(Fault::missing_field(Venue::Cadenza, "expiresAt").times(1));
    let error = session.credential().await.expect_err("missing field");
    assert_eq!(error.kind(), ErrorKind::Protocol);
    assert!(error.message().contains("expiresAt"), "{}", error.message());
    // Nothing armed any more: the next attempt works.
    session.credential().await.expect("recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_venue_hits_the_timeout() {
    let sim = support::sim().await;
    sim.arm_fault(Fault::delay(Venue::Cadenza, 2_000).times(1));
    let options = support::options(&sim, Venue::Cadenza)
        .background_refresh(false)
        .max_retries(0)
        .request_timeout(Duration::from_millis(300));
    let session = support::cadenza(&sim, options);
    let started = Instant::now();
    let error = session.credential().await.expect_err("timed out");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "bounded by request_timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_debug_or_errors() {
    let (_sim, session) = support::on_demand(Venue::Cadenza).await;
    let credential: Arc<tradeauth::Credential> = session.credential().await.expect("login");
    let refresh = session.refresh_token().await.expect("refresh token");
    let printed = format!("{session:?} {credential:?} {refresh:?}");
    for secret in [demo::CADENZA_PASSWORD, credential.token(), refresh.expose()] {
        assert!(!printed.contains(secret), "secret leaked into Debug output");
    }
}

/// What a session shows of itself (`Debug`, `base_url`): the venue, the account and the
/// base URL, so a log line says which connection it is about; and `logout` forgets the
/// credential, so the next use logs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_names_its_venue_and_account_and_logout_forgets_the_credential() {
    let (sim, session) = support::on_demand(Venue::Cadenza).await;
    let base = session.base_url().to_owned();
    assert_eq!(
        base.trim_end_matches('/'),
        sim.urls().cadenza.trim_end_matches('/')
    );
    let printed = format!("{session:?}");
    for part in ["Session", "Cadenza", demo::CADENZA_EMAIL, base.as_str()] {
        assert!(printed.contains(part), "{part} missing from {printed}");
    }
    let first = session.credential().await.expect("login");
    session.logout().await;
    assert!(session.current().is_none(), "logout forgot the credential");
    let second = session.credential().await.expect("login again");
    assert_ne!(first.token(), second.token());
    assert_eq!(support::cadenza_renewals(&sim), (2, 0));
}

/// A background refresh that fails is shared with the callers queued behind it, like a
/// caller's own attempt: before, each queued caller started an attempt of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_background_refresh_is_shared_with_the_callers_queued_behind_it() {
    let sim = support::sim().await;
    sim.set_lifetimes(access_ttl(3)).expect("ttl");
    let refresh = tradeauth::machine::cadenza::REFRESH_PATH;
    let session = support::cadenza(&sim, support::options(&sim, Venue::Cadenza).max_retries(1));
    let first = session.credential().await.expect("login");
    // The refresher's attempt: 503, a 1 s Retry-After, 503 again, given up.
    sim.arm_fault(
        Fault::status(Venue::Cadenza, 503)
            .retry_after_secs(1)
            .on_path(refresh)
            .times(2),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.stats().cadenza.rejected("fault:503") == 0 || first.is_valid_now() {
        assert!(
            Instant::now() < deadline,
            "the background refresh never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The token has expired and the refresher is inside its attempt: this caller queues.
    let error = session
        .credential()
        .await
        .expect_err("the refresher's failure, not a second attempt");
    assert_eq!(error.kind(), ErrorKind::ApiError, "{error}");
    let stats = sim.stats().cadenza;
    assert_eq!(stats.rejected("fault:503"), 2, "{stats:?}");
    assert_eq!(stats.refreshes, 0, "{stats:?}");
    // The next caller starts a new attempt, which succeeds.
    let second = session.credential().await.expect("renewed");
    assert_ne!(second.header_value(), first.header_value());
}

/// A store nobody answers costs no credential (the session logs in on its own) and is
/// reported: `store_available()` is what an operator's health check reads. A session
/// without a store has nothing to report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_reported_unavailable() {
    let sim = support::sim().await;
    let plain = support::cadenza(&sim, support::options(&sim, Venue::Cadenza));
    assert_eq!(plain.store_available(), None);
    let options = support::options(&sim, Venue::Cadenza)
        .background_refresh(false)
        // Nothing listens on port 1: every store call is refused at once.
        .store("redis://127.0.0.1:1/0")
        .store_plaintext(true)
        .store_lease_ttl(Duration::from_millis(100))
        .store_timeout(Duration::from_millis(200));
    let session = support::cadenza(&sim, options);
    let credential = session
        .credential()
        .await
        .expect("a login without the store");
    assert!(credential.is_valid_now());
    assert_eq!(session.store_available(), Some(false));
    assert_eq!(sim.stats().cadenza.logins, 1);
}

/// A dropped session's background refresher stops with it: a process that opens and
/// closes sessions (one per strategy run, per trading day) keeps no task behind for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_leaves_no_refresher_task_behind() {
    let (sim, first) = support::with_defaults(Venue::Cadenza).await;
    // The shared connection exists before counting: only the refreshers change the count.
    first.credential().await.expect("logs in");
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    for round in 0..3 {
        let session = support::cadenza(&sim, support::options(&sim, Venue::Cadenza));
        assert!(
            tasks() > before,
            "round {round}: the session runs its refresher"
        );
        drop(session);
        let gone = Instant::now() + Duration::from_secs(2);
        while tasks() > before {
            assert!(
                Instant::now() < gone,
                "round {round}: {} tasks 2 s after the drop, {before} before the session",
                tasks()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    drop(first);
}

/// When a WebSocket authenticated with the served credential must authenticate again
/// (what `WsClient` waits for): at the renewal, after now and before the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_reauth_is_due_at_the_renewal_before_expiry() {
    let (_sim, session) = support::on_demand(Venue::Cadenza).await;
    let credential = session.credential().await.expect("logs in");
    let until = credential.valid_until().expect("expiring token");
    let due = session
        .ws_reauth_due()
        .await
        .expect("a renewal is scheduled");
    let now = Instant::now();
    assert!(
        due > now && due < until,
        "due in {:?}, the token expires in {:?}",
        due.saturating_duration_since(now),
        until.saturating_duration_since(now)
    );
}

/// Publishing an unchanged credential keeps the one readers hold (the same `Arc`): the
/// hot path's readers and the renewal count see a change only when there is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_credential_is_not_published_again() {
    let (_sim, session) = support::on_demand(Venue::Cadenza).await;
    let first = session.credential().await.expect("logs in");
    // `ws_rules` runs the machine under the lock and publishes its credential.
    session.ws_rules().await.expect("rules");
    let again = session.current().expect("still valid");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the same credential, republished"
    );
    assert_eq!(session.metrics().renewal_seconds.count, 1);
    session.logout().await;
    assert!(
        session.current().is_none(),
        "a dropped credential is unpublished"
    );
}
