//! External signers (issue #17) against the simulator over TLS: every answer shape a KMS,
//! HSM or wallet gives is normalised into a signature the venue accepts, and every way a
//! signer can fail ends in `Signing`, promptly, with nothing posted.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Signature as EthSignature};
use alloy_signer::k256::ecdsa::{Signature, SigningKey};
use tradeauth::signer::{ExternalSigner, SignResult};
use tradeauth::{CascadeConfig, ErrorKind, Secret, Session};
use tradeauth_sim::{Sim, Venue, demo};

fn key(hex_key: &str) -> SigningKey {
    let bytes = alloy_primitives::hex::decode(hex_key).expect("hex");
    SigningKey::from_slice(&bytes).expect("key")
}

/// How a test signer shapes its answer.
#[derive(Clone, Copy)]
enum Shape {
    Der,
    HighSDer,
    Raw64,
    Raw65WrongV,
}

fn answer(key: &SigningKey, digest: [u8; 32], shape: Shape) -> SignResult {
    let (sig, _) = key
        .sign_prehash_recoverable(&digest)
        .map_err(|e| e.to_string())?;
    let high = || {
        let (r, s) = sig.split_scalars();
        Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).map_err(|e| e.to_string())
    };
    Ok(match shape {
        Shape::Der => sig.to_der().as_bytes().to_vec(),
        Shape::HighSDer => high()?.to_der().as_bytes().to_vec(),
        Shape::Raw64 => sig.to_bytes().to_vec(),
        Shape::Raw65WrongV => {
            let mut v = sig.to_bytes().to_vec();
            v.push(0);
            v
        }
    })
}

/// A signer with `signing_key` answering in `shape`, counting its calls.
fn signer(signing_key: SigningKey, shape: Shape, calls: Arc<AtomicU32>) -> ExternalSigner {
    ExternalSigner::new(
        move |digest: [u8; 32]| {
            calls.fetch_add(1, Ordering::SeqCst);
            let out = answer(&signing_key, digest, shape);
            async move { out }
        },
        demo::CASCADE_DELEGATE,
    )
    .expect("signer")
}

fn session(sim: &Sim, signer: ExternalSigner) -> Session {
    let config = CascadeConfig::with_signer(demo::CASCADE_ACCOUNT, signer);
    let options = support::options(sim, Venue::Cascade).background_refresh(false);
    Session::cascade(config, options).expect("session")
}

/// Every signature the venue accepted recovers, by alloy's own EIP-191 code, to the
/// declared delegate from the payload it signed.
fn assert_accepted_signatures(sim: &Sim, count: usize) {
    let signed = sim.stats().cascade.signed;
    assert_eq!(signed.len(), count);
    let delegate: Address = demo::CASCADE_DELEGATE.parse().expect("address");
    for s in signed {
        let sig: EthSignature = s.signature.parse().expect("65-byte signature");
        let recovered = sig
            .recover_address_from_msg(s.payload.as_bytes())
            .expect("recovers");
        assert_eq!(recovered, delegate);
        // Low s only (EIP-2): the upper half is what a KMS often returns.
        let half_order = alloy_primitives::U256::from_str_radix(
            "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0",
            16,
        )
        .expect("const");
        assert!(sig.s() <= half_order, "high s posted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_shape_logs_in() {
    let sim = support::sim().await;
    let mut logins = 0;
    for shape in [
        Shape::Der,
        Shape::HighSDer,
        Shape::Raw64,
        Shape::Raw65WrongV,
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let session = session(
            &sim,
            signer(key(demo::CASCADE_DELEGATE_KEY), shape, calls.clone()),
        );
        let response = support::get(&session, "/account/orders").await;
        assert_eq!(response.status, 200);
        logins += 1;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one signature per login");
        assert_eq!(sim.stats().cascade.logins, logins);
        // A forced renewal signs a new challenge.
        session.refresh().await.expect("renews");
        logins += 1;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
    assert_accepted_signatures(&sim, 8);
    assert_eq!(sim.stats().cascade.total_rejections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_holding_another_key_is_refused_before_the_venue_sees_it() {
    let sim = support::sim().await;
    let calls = Arc::new(AtomicU32::new(0));
    let session = session(
        &sim,
        signer(key(demo::CASCADE_STRANGER_KEY), Shape::Der, calls.clone()),
    );
    let e = session.credential().await.expect_err("wrong key");
    assert_eq!(e.kind(), ErrorKind::Signing);
    assert!(e.message().contains(demo::CASCADE_DELEGATE), "{e}");
    let stats = sim.stats().cascade;
    assert_eq!((stats.challenges, stats.logins), (1, 0));
    assert_eq!(stats.total_rejections(), 0, "nothing was posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_signer_is_named_and_asked_again_next_time() {
    let sim = support::sim().await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let good = key(demo::CASCADE_DELEGATE_KEY);
    let flaky = ExternalSigner::new(
        move |digest: [u8; 32]| {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            let out = if first {
                Err("HSM slot 3 is offline".to_owned())
            } else {
                answer(&good, digest, Shape::Der)
            };
            async move { out }
        },
        demo::CASCADE_DELEGATE,
    )
    .expect("signer");
    let session = session(&sim, flaky);
    let e = session.credential().await.expect_err("signer failed");
    assert_eq!(e.kind(), ErrorKind::Signing);
    assert!(e.message().contains("HSM slot 3 is offline"), "{e}");
    session.credential().await.expect("second try signs");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_accepted_signatures(&sim, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_past_its_timeout_fails_promptly() {
    let sim = support::sim().await;
    let hung = ExternalSigner::new(
        |_digest: [u8; 32]| async {
            std::future::pending::<()>().await;
            Ok(Vec::new())
        },
        demo::CASCADE_DELEGATE,
    )
    .expect("signer")
    .with_timeout(Duration::from_millis(300))
    .expect("timeout");
    let session = session(&sim, hung);
    let started = Instant::now();
    let e = session.credential().await.expect_err("times out");
    assert_eq!(e.kind(), ErrorKind::Signing);
    assert!(e.message().contains("did not answer within"), "{e}");
    // Bounded by the signer's timeout, not the session's 30 s auth timeout (a hang
    // would show as 30 s).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.stats().cascade.logins, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answers_are_signing_errors() {
    let sim = support::sim().await;
    for garbage in [vec![], vec![0x30, 2, 1], vec![7u8; 33], vec![0u8; 65]] {
        let g = garbage.clone();
        let s = ExternalSigner::new(
            move |_digest: [u8; 32]| {
                let g = g.clone();
                async move { Ok(g) }
            },
            demo::CASCADE_DELEGATE,
        )
        .expect("signer");
        let e = session(&sim, s).credential().await.expect_err("garbage");
        assert_eq!(e.kind(), ErrorKind::Signing, "{garbage:?}: {e}");
    }
    assert_eq!(sim.stats().cascade.logins, 0);
}

#[test]
fn exactly_one_key_source() {
    let calls = Arc::new(AtomicU32::new(0));
    let s = signer(key(demo::CASCADE_DELEGATE_KEY), Shape::Der, calls);
    let mut both = CascadeConfig::with_signer(demo::CASCADE_ACCOUNT, s);
    both.delegate_private_key = Secret::new(demo::CASCADE_DELEGATE_KEY);
    let e = tradeauth::CascadeMachine::new(both).expect_err("both");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("exactly one"), "{e}");
    let none = CascadeConfig::new(demo::CASCADE_ACCOUNT, "");
    let e = tradeauth::CascadeMachine::new(none).expect_err("none");
    assert!(e.message().contains("needs a delegate key source"), "{e}");
    assert!(ExternalSigner::new(|_d: [u8; 32]| async { Ok(vec![]) }, "0x1234").is_err());
}
