//! Per-venue renewal against the simulator: proactive refresh before expiry, single
//! flight under concurrency, exactly one re-authentication after a 401, retried faults.

mod support;

use std::time::{Duration, Instant};

use tradeauth::{AuthEvent, ErrorKind, PartnerConfig, Session};
use tradeauth_sim::{Fault, LifetimeUpdate, Revoke, Venue, demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_renews_before_expiry_with_a_new_challenge() {
    let (sim, session) =
        support::renewing(LifetimeUpdate::new(Venue::Cascade).token_ttl_secs(3)).await;
    let (mut events, first) = support::subscribe_and_log_in(&session).await;
    let first_valid_until = first.valid_until().expect("expiring token");
    support::wait_for_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, AuthEvent::Refreshed | AuthEvent::ReLoggedIn)
    })
    .await;
    assert!(
        Instant::now() < first_valid_until,
        "renewed while the old token was valid"
    );
    let second = session.current().expect("fresh token published");
    assert!(first.header_value() != second.header_value(), "a new token");
    assert_eq!(support::cascade_logins(&sim), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_two_hundred_callers_cause_one_challenge() {
    let (sim, session) = support::on_demand(Venue::Cascade).await;
    assert_eq!(support::distinct_credentials(&session, 200).await, 1);
    assert_eq!(support::cascade_logins(&sim), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_401_reruns_the_flow_once() {
    let (sim, session) = support::revoked_after_login(Venue::Cascade, Revoke::AccessTokens).await;
    let response = support::get(&session, "/account/positions").await;
    assert_eq!(response.status, 200);
    assert_eq!(support::cascade_logins(&sim), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_faults_on_the_challenge_are_retried() {
    let sim = support::sim().await;
    sim.arm_fault(Fault::status(Venue::Cascade, 503).on_path("/auth").times(2));
    let session = support::on_demand_on(&sim, Venue::Cascade);
    session.credential().await.expect("login after two 503s");
    assert_eq!(sim.stats().cascade.logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_a_stranger_key_is_refused_and_not_retried() {
    let sim = support::sim().await;
    let config = tradeauth::CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_STRANGER_KEY);
    let session = Session::cascade(
        config,
        support::options(&sim, Venue::Cascade).background_refresh(false),
    )
    .expect("session");
    let error = session.credential().await.expect_err("not a delegate");
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
    assert!(!error.to_string().contains(&demo::CASCADE_STRANGER_KEY[2..]));
    assert_eq!(
        sim.stats().cascade.challenges,
        1,
        "no retry of a refused signer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_an_expired_nonce_gets_a_fresh_challenge() {
    let sim = support::sim().await;
    // The delay covers the challenge GET and then the POST, so the venue sees the nonce
    // die in transit; the machine must fetch a new challenge, not re-post the old one.
    let nonce_ttl = LifetimeUpdate::new(Venue::Cascade).nonce_ttl_secs(1);
    sim.set_lifetimes(nonce_ttl).expect("ttl");
    sim.arm_fault(
        Fault::delay(Venue::Cascade, 1_200)
            .on_path("/auth")
            .times(2),
    );
    let _session =
        support::logged_in_on(&sim, Venue::Cascade, "login with a second challenge").await;
    let stats = sim.stats().cascade;
    assert_eq!((stats.challenges, stats.logins), (2, 1));
    assert_eq!(stats.rejected("nonce expired"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_remints_before_expiry() {
    let sim = support::sim().await;
    let config = PartnerConfig::new(demo::PARTNER_CLIENT_ID, demo::PARTNER_SECRET_KEY)
        .with_ttl(Duration::from_secs(4));
    let session =
        Session::partner(config, support::options(&sim, Venue::Partner)).expect("session");
    let mut events = session.subscribe();
    let first = session.credential().await.expect("minted");
    let first_valid_until = first.valid_until().expect("expiring token");
    support::wait_for(&mut events, Duration::from_secs(10), AuthEvent::Refreshed).await;
    assert!(
        Instant::now() < first_valid_until,
        "re-minted while the old token was valid"
    );
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 200);
    assert_eq!(sim.stats().partner.total_rejections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_two_hundred_callers_share_one_token() {
    let (_sim, session) = support::on_demand(Venue::Partner).await;
    assert_eq!(support::distinct_credentials(&session, 200).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_reads_the_pages_variables() {
    let sim = support::sim().await;
    // SAFETY: this test binary's other tests do not read these variables.
    unsafe {
        std::env::set_var("CADENZA_EMAIL", demo::CADENZA_EMAIL);
        std::env::set_var("CADENZA_PASSWORD", demo::CADENZA_PASSWORD);
        std::env::set_var("CADENZA_BASE_URL", &sim.urls().cadenza);
        std::env::set_var("TRADEAUTH_CA_CERT", sim.ca_path());
    }
    let session = Session::cadenza_from_env(tradeauth::Options::new()).expect("from env");
    session.credential().await.expect("login");
    assert_eq!(session.account(), demo::CADENZA_EMAIL);
    unsafe { std::env::remove_var("CADENZA_PASSWORD") };
    let error = Session::cadenza_from_env(tradeauth::Options::new()).expect_err("missing");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("CADENZA_PASSWORD"));
}
