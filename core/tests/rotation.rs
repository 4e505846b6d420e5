//! Rotation without restart (issue #17): a session's secret replaced in place. The
//! machine-level rules with a manual clock, then sessions against the simulator over
//! TLS, including readers on 8 threads that must never see a gap.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use tradeauth::signer::ExternalSigner;
use tradeauth::{
    CadenzaConfig, CadenzaMachine, CascadeConfig, CascadeMachine, ErrorKind, ExchangeConfig,
    ExchangeMachine, Machine, MachineStatus, Method, NewSecret, PartnerConfig, PartnerMachine,
    Secret, Session,
};
use tradeauth_sim::{Venue, demo};

const OTHER_KEY: &str = "exch_0123456789abcdef0123456789abcdef";

fn refused(m: &mut dyn Machine, secret: NewSecret, says: &str) {
    let e = m
        .replace_secret(Clock::new().ms(0), secret)
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains(says), "{e}");
}

fn never_called() -> ExternalSigner {
    ExternalSigner::new(
        |_d: [u8; 32]| async { Err("not used".to_owned()) },
        demo::CASCADE_DELEGATE,
    )
    .expect("signer")
}

#[test]
fn each_machine_takes_only_its_own_kind_of_secret() {
    let mut cadenza = CadenzaMachine::new(CadenzaConfig::new("a@b.test", "pw")).expect("cadenza");
    refused(
        &mut cadenza,
        NewSecret::ApiKey(OTHER_KEY.into()),
        "Cadenza has no api_key",
    );
    refused(&mut cadenza, NewSecret::Password("".into()), "empty");
    let mut partner = PartnerMachine::new(PartnerConfig::new("id", "secret")).expect("partner");
    refused(
        &mut partner,
        NewSecret::Password("x".into()),
        "Partner has no password",
    );
    refused(&mut partner, NewSecret::PartnerSecret("".into()), "empty");
    let mut exchange =
        ExchangeMachine::new(ExchangeConfig::trader(demo::EXCHANGE_API_KEY)).expect("exchange");
    refused(
        &mut exchange,
        NewSecret::PartnerSecret("x".into()),
        "Exchange has no secret_key",
    );
    refused(
        &mut exchange,
        NewSecret::ApiKey("exch_short".into()),
        "32 lowercase hex",
    );
    let mut admin = ExchangeMachine::new(ExchangeConfig::admin("tok")).expect("admin");
    refused(
        &mut admin,
        NewSecret::ApiKey(OTHER_KEY.into()),
        "admin or public",
    );
    let mut public = ExchangeMachine::new(ExchangeConfig::Public).expect("public");
    refused(
        &mut public,
        NewSecret::ApiKey(OTHER_KEY.into()),
        "admin or public",
    );
    let mut cascade = CascadeMachine::new(CascadeConfig::new(
        demo::CASCADE_ACCOUNT,
        demo::CASCADE_DELEGATE_KEY,
    ))
    .expect("cascade");
    refused(
        &mut cascade,
        NewSecret::Password("x".into()),
        "Cascade has no password",
    );
    refused(
        &mut cascade,
        NewSecret::DelegateKey("0x12".into()),
        "64 hex characters",
    );
    assert_eq!(
        cascade.delegate_address(),
        demo::CASCADE_DELEGATE,
        "unchanged"
    );
    // Debug of a replacement names its kind only.
    let debug = format!("{:?}", NewSecret::Password(Secret::new("hunter2")));
    assert_eq!(debug, "NewSecret::password([REDACTED])");
    assert_eq!(NewSecret::Signer(never_called()).kind_name(), "delegate");
    assert_eq!(NewSecret::DelegateKey("k".into()).kind_name(), "delegate");
    assert_eq!(
        NewSecret::PartnerSecret("k".into()).kind_name(),
        "secret_key"
    );
}

#[test]
fn an_exchange_key_is_served_at_once_and_a_refused_one_is_no_longer_withheld() {
    let clock = Clock::new();
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(demo::EXCHANGE_API_KEY)).unwrap();
    m.handle_unauthorized(clock.ms(0));
    assert!(
        m.credential(clock.ms(0).instant).is_none(),
        "withheld after a 401"
    );
    assert!(m.last_error().is_some());
    m.replace_secret(clock.ms(1), NewSecret::ApiKey(OTHER_KEY.into()))
        .unwrap();
    let c = m.credential(clock.ms(1).instant).expect("served at once");
    assert_eq!(c.header_value(), OTHER_KEY);
    assert!(m.last_error().is_none());
    assert_eq!(m.status(), MachineStatus::Active);
}

#[test]
fn a_cadenza_password_waits_for_the_next_login_and_rearms_a_stopped_machine() {
    let clock = Clock::new();
    let mut m = CadenzaMachine::new(CadenzaConfig::new("a@b.test", "old-pw")).unwrap();
    let _ = m.poll_request(clock.ms(0)).expect("login");
    let _ = m.handle_response(
        clock.ms(1),
        json(401, json!({"error": {"message": "invalid credentials"}})),
    );
    assert_eq!(m.status(), MachineStatus::Stopped);
    assert!(
        m.poll_request(clock.ms(2)).is_none(),
        "a refused password is not re-sent"
    );
    m.replace_secret(clock.ms(3), NewSecret::Password("new-pw".into()))
        .unwrap();
    assert!(m.last_error().is_none());
    let req = m
        .poll_request(clock.ms(4))
        .expect("login with the new password");
    assert_eq!(body_json(&req)["password"], "new-pw");
    // While a login is in flight, a replacement changes nothing of it.
    m.replace_secret(clock.ms(5), NewSecret::Password("newer-pw".into()))
        .unwrap();
    assert!(m.is_busy());
}

#[test]
fn a_partner_secret_signs_the_next_mint_only() {
    let clock = Clock::new();
    let mut m = PartnerMachine::new(PartnerConfig::new("id", "old-secret")).unwrap();
    m.handle_timeout(clock.ms(0));
    let old = m.credential(clock.ms(0).instant).expect("minted");
    m.replace_secret(clock.ms(1), NewSecret::PartnerSecret("new-secret".into()))
        .unwrap();
    let still = m.credential(clock.ms(1).instant).expect("kept");
    assert_eq!(
        still.header_value(),
        old.header_value(),
        "no gap, no re-mint"
    );
    // A forced refresh in the same second mints anew: the old token is the old secret's
    // (without the rotation, a same-second re-mint is skipped as identical).
    m.handle_unauthorized(clock.ms(2));
    let new = m.credential(clock.ms(2).instant).expect("re-minted");
    assert_ne!(new.header_value(), old.header_value());
    m.handle_unauthorized(clock.ms(3));
    assert_eq!(
        m.credential(clock.ms(3).instant).unwrap().header_value(),
        new.header_value(),
        "the new secret's token is not re-minted in its own second"
    );
    let token = new.token().to_owned();
    let key = jsonwebtoken::DecodingKey::from_secret(b"new-secret");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
        .expect("signed with the new secret");
}

#[test]
fn a_cascade_key_or_signer_signs_the_next_challenge() {
    let clock = Clock::new();
    let challenge = json!({
        "message": {"account": demo::CASCADE_ACCOUNT, "nonce": "n1", "timestamp": "t"},
        "server_signature": "c2ln",
        "signing_payload": format!(r#"{{"account":"{}","nonce":"n1"}}"#, demo::CASCADE_ACCOUNT),
    });
    // An active session keeps its token and schedule: the next renewal uses the new key.
    let mut active = CascadeMachine::new(CascadeConfig::new(
        demo::CASCADE_ACCOUNT,
        demo::CASCADE_DELEGATE_KEY,
    ))
    .unwrap();
    let _ = active.poll_request(clock.ms(0)).expect("challenge");
    active
        .handle_response(clock.ms(0), json(200, challenge.clone()))
        .unwrap();
    let _ = active.poll_request(clock.ms(0)).expect("answer");
    active
        .handle_response(
            clock.ms(0),
            json(
                200,
                json!({"token": "t0k3n", "claims": {"exp": BASE_MS / 1000 + 3600}}),
            ),
        )
        .unwrap();
    let _ = active.poll_event();
    let _ = active.poll_event();
    assert_eq!(active.state_name(), "active");
    let due = active.poll_timeout();
    active
        .replace_secret(clock.ms(1), NewSecret::Signer(never_called()))
        .unwrap();
    assert_eq!(
        active.state_name(),
        "active",
        "no renewal started by a rotation"
    );
    assert!(active.poll_request(clock.ms(2)).is_none());
    assert_eq!(active.poll_timeout(), due);
    assert!(active.credential(clock.ms(2).instant).is_some());

    let mut m = CascadeMachine::new(CascadeConfig::new(
        demo::CASCADE_ACCOUNT,
        demo::CASCADE_DELEGATE_KEY,
    ))
    .unwrap();
    let _ = m.poll_request(clock.ms(0)).expect("challenge");
    m.handle_response(clock.ms(1), json(200, challenge.clone()))
        .unwrap();
    assert_eq!(m.state_name(), "awaiting_session", "signed by the old key");
    // The old key's signed answer is dropped: the next challenge is signed afresh.
    m.replace_secret(clock.ms(2), NewSecret::Signer(never_called()))
        .unwrap();
    assert_eq!(m.state_name(), "awaiting_challenge");
    let req = m.poll_request(clock.ms(3)).expect("new challenge");
    assert_eq!(req.method, Method::Get);
    m.handle_response(clock.ms(4), json(200, challenge))
        .unwrap();
    assert_eq!(m.state_name(), "awaiting_signature");
    assert!(
        m.poll_sign(clock.ms(5)).is_some(),
        "the new signer is asked"
    );
    // Back to a key in memory, of another delegate: its address is the one shown.
    m.handle_transport_error(clock.ms(6), &tradeauth::Error::new(ErrorKind::Timeout, "t"));
    m.replace_secret(
        clock.ms(7),
        NewSecret::DelegateKey(demo::CASCADE_STRANGER_KEY.into()),
    )
    .unwrap();
    assert_eq!(m.delegate_address(), demo::CASCADE_STRANGER);
    assert_eq!(m.state_name(), "awaiting_challenge");
    // A challenge in flight is left alone (its answer is signed by the new key).
    let _ = m.poll_request(clock.ms(8)).expect("challenge");
    m.replace_secret(
        clock.ms(9),
        NewSecret::DelegateKey(demo::CASCADE_DELEGATE_KEY.into()),
    )
    .unwrap();
    assert!(m.is_busy());
    assert_eq!(m.state_name(), "awaiting_challenge");
}

/// Readers on 8 threads, each counting reads that found no credential, while `rotate`
/// runs; then the gap count.
async fn gaps_while(session: &Session, rotate: impl std::future::Future<Output = ()>) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let gaps = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (session, stop, gaps, reads) =
                (session.clone(), stop.clone(), gaps.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if session.current().is_none() {
                        gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    rotate.await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader");
    }
    assert!(reads.load(Ordering::Relaxed) > 1000, "the readers ran");
    gaps.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_key_rotated_under_8_reading_threads_never_leaves_a_gap() {
    let sim = support::sim().await;
    let admin = Session::exchange(
        ExchangeConfig::admin(demo::EXCHANGE_ADMIN_TOKEN),
        support::options(&sim, Venue::Exchange),
    )
    .unwrap();
    let made = admin
        .request(Method::Post, "/api/v1/admin/traders")
        .json(&json!({"username": "team-beta"}))
        .send()
        .await
        .expect("provision");
    assert!(made.is_success(), "{}", made.status);
    let body: serde_json::Value = serde_json::from_slice(&made.body).unwrap();
    let new_key = body["api_key"].as_str().expect("api_key").to_owned();
    let trader = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    trader.credential().await.expect("key");
    let gaps = gaps_while(&trader, async {
        for i in 0..50 {
            let key = if i % 2 == 0 {
                &new_key
            } else {
                demo::EXCHANGE_API_KEY
            };
            trader
                .update_credentials(NewSecret::ApiKey(Secret::new(key)))
                .await
                .expect("rotates");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert_eq!(gaps, 0, "a read found no credential during rotation");
    trader
        .update_credentials(NewSecret::ApiKey(Secret::new(new_key.as_str())))
        .await
        .unwrap();
    let me = support::get(&trader, "/api/v1/user").await;
    assert_eq!(me.status, 200);
    let me: serde_json::Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(me["username"], "team-beta", "the new key is the one sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cadenza_password_rotated_under_readers_keeps_the_session_and_logs_in_with_it() {
    let sim = support::sim().await;
    let session = support::logged_in_on(&sim, Venue::Cadenza, "login").await;
    let gaps = gaps_while(&session, async {
        session
            .update_credentials(NewSecret::Password(Secret::new("rotated-elsewhere")))
            .await
            .expect("rotates");
        // A refresh needs no password: it still works.
        session.refresh().await.expect("refresh");
    })
    .await;
    assert_eq!(gaps, 0);
    assert_eq!(support::cadenza_renewals(&sim), (1, 1));
    // A login now sends the new (here wrong) password; the right one re-arms it.
    session.logout().await;
    let e = session
        .credential()
        .await
        .expect_err("the venue refuses it");
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    session
        .update_credentials(NewSecret::Password(Secret::new(demo::CADENZA_PASSWORD)))
        .await
        .unwrap();
    session
        .credential()
        .await
        .expect("logs in with the new password");
    let e = session
        .update_credentials(NewSecret::ApiKey(Secret::new(OTHER_KEY)))
        .await
        .expect_err("wrong kind");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_session_moves_from_its_key_to_an_external_signer() {
    let sim = support::sim().await;
    let session = support::logged_in_on(&sim, Venue::Cascade, "login").await;
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let signer = ExternalSigner::new(
        move |digest: [u8; 32]| {
            counted.fetch_add(1, Ordering::SeqCst);
            let key = alloy_signer::k256::ecdsa::SigningKey::from_slice(
                &alloy_primitives::hex::decode(demo::CASCADE_DELEGATE_KEY).unwrap(),
            )
            .unwrap();
            let out = key
                .sign_prehash_recoverable(&digest)
                .map(|(sig, _)| sig.to_der().as_bytes().to_vec())
                .map_err(|e| e.to_string());
            async move { out }
        },
        demo::CASCADE_DELEGATE,
    )
    .unwrap();
    let gaps = gaps_while(&session, async {
        session
            .update_credentials(NewSecret::Signer(signer))
            .await
            .unwrap();
        session.refresh().await.expect("signed by the signer");
    })
    .await;
    assert_eq!(gaps, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(support::cascade_logins(&sim), (2, 2));
    // A key the venue does not know as a delegate: refused by the venue, not by us.
    session
        .update_credentials(NewSecret::DelegateKey(Secret::new(
            demo::CASCADE_STRANGER_KEY,
        )))
        .await
        .unwrap();
    let e = session.refresh().await.expect_err("not a delegate");
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    session
        .update_credentials(NewSecret::DelegateKey(Secret::new(
            demo::CASCADE_DELEGATE_KEY,
        )))
        .await
        .unwrap();
    session.refresh().await.expect("the demo key again");
}
