//! CPU-only benchmarks (issue #7): reading the current header (the hot path every order
//! pays), HS256 mint, EIP-191 sign and one full Cadenza machine step.
//!
//! Run: `cargo bench -p tradeauth --bench hot_path`; smoke: add
//! `-- --warm-up-time 0.1 --measurement-time 0.2`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tradeauth::{
    CadenzaConfig, CadenzaMachine, Credential, HttpResponse, Machine, Now, Secret, Session,
    eip191_sign, mint_token,
};
use tradeauth_sim::{Sim, SimConfig, Venue, demo};

/// A 1 h JWT-sized bearer token (Cadenza's are ~200 bytes).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZW1vQGNhZGVuemEudGVzdCIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwLCJqdGkiOiIwMTIzNDU2Nzg5YWJjZGVmIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2ln";

fn hot_path(c: &mut Criterion) {
    // A real session with a real credential, logged in against the in-process simulator
    // (the runtime stays up so the background refresher exists, as in production).
    let rt = common::runtime(1);
    // The same account once more with a file credential store: the store is touched only
    // when a renewal is due, so its hot path must cost what the in-memory one does.
    let store_dir = std::env::temp_dir().join(format!("tradeauth-bench-{}", std::process::id()));
    let (_sim, session, stored) = rt.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.expect("simulator");
        let options = common::options(&sim, Venue::Cadenza);
        let config = CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD);
        let session = Session::cadenza(config.clone(), options.clone()).expect("session");
        session.credential().await.expect("login");
        let store_url = format!("file://{}", store_dir.display());
        let stored = Session::cadenza(config, options.store(store_url).store_plaintext(true))
            .expect("session with a store");
        stored.credential().await.expect("login through the store");
        (sim, session, stored)
    });
    assert!(session.current().is_some());

    let mut g = c.benchmark_group("hot_path");
    // What the hot path replaced or is built from, for scale.
    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    let credential = session.current().expect("credential");
    g.bench_function("credential_is_valid_at(Instant::now)", |b| {
        b.iter(|| black_box(&credential).is_valid_at(Instant::now()))
    });
    g.bench_function("credential_is_valid_now", |b| {
        b.iter(|| black_box(&credential).is_valid_now())
    });
    // The two public hot paths: an Arc to keep, or a borrow for the duration of a closure.
    g.bench_function("session_current", |b| {
        b.iter(|| black_box(black_box(&session).current()))
    });
    g.bench_function("session_with_current", |b| {
        b.iter(|| {
            black_box(&session).with_current(|c| black_box(c.map(|c| c.header_value().len())))
        })
    });
    g.bench_function("session_current_with_file_store", |b| {
        b.iter(|| black_box(black_box(&stored).current()))
    });
    g.bench_function("session_with_current_with_file_store", |b| {
        b.iter(|| black_box(&stored).with_current(|c| black_box(c.map(|c| c.header_value().len()))))
    });
    // What a Rust engine does per order: read the header and copy it into its request.
    let mut buf = Vec::with_capacity(4096);
    g.bench_function("session_with_current+copy_header", |b| {
        b.iter(|| {
            black_box(&session).with_current(|c| {
                buf.clear();
                if let Some(c) = c {
                    buf.extend_from_slice(c.header_value().as_bytes());
                }
            });
            black_box(&buf);
        })
    });
    g.finish();
    drop((session, stored));
    drop(rt);
    let _ = std::fs::remove_dir_all(&store_dir);
}

fn crypto(c: &mut Criterion) {
    let mut g = c.benchmark_group("crypto");
    g.bench_function("hs256_mint_token", |b| {
        b.iter(|| {
            mint_token(
                black_box(demo::PARTNER_CLIENT_ID),
                black_box(demo::PARTNER_SECRET_KEY.as_bytes()),
                black_box(1_700_000_000),
                black_box(30),
            )
            .expect("mint")
        })
    });
    let message = b"Sign in to Cascade\nnonce: 6f0c1e2d3b4a59687766554433221100";
    g.bench_function("eip191_sign", |b| {
        b.iter(|| {
            eip191_sign(
                black_box(demo::CASCADE_DELEGATE_KEY),
                black_box(&message[..]),
            )
            .expect("sign")
        })
    });
    g.finish();
}

fn machine_step(c: &mut Criterion) {
    let base = Instant::now();
    let wall = 1_700_000_000_000u64;
    let answer = serde_json::json!({"success": true, "data": {
        "accessToken": TOKEN, "refreshToken": "R1-0123456789abcdef0123456789abcdef",
        "expiresAt": wall + 3_600_000}})
    .to_string();
    let mut g = c.benchmark_group("machine");
    // One full step of a fresh Cadenza machine: poll the login request, feed it the
    // venue's canned answer, read the credential and drain the events. No I/O, no clock.
    g.bench_function("cadenza_login_step", |b| {
        b.iter(|| {
            let now = Now::new(base, wall);
            let mut m = CadenzaMachine::new(
                CadenzaConfig::new("demo@cadenza.test", Secret::from("demo-password"))
                    .with_jitter_seed(7),
            )
            .expect("machine");
            let request = m.poll_request(now).expect("login request");
            black_box(&request);
            let response = HttpResponse::new(200, answer.clone())
                .with_header("content-type", "application/json");
            m.handle_response(now + Duration::from_millis(3), response)
                .expect("accepted");
            let credential: Option<Credential> = m.credential(base + Duration::from_millis(3));
            while m.poll_event().is_some() {}
            black_box(credential.expect("logged in"))
        })
    });
    g.finish();
}

/// Prototypes of leaner mint and sign paths (issue #7's "fix what can be fixed"; the
/// library's own `mint_token` / `eip191_sign` live in files this bench does not own).
/// Each is checked to give byte-for-byte the library's output before it is timed.
mod lean {
    use alloy_signer::k256::Scalar;
    use alloy_signer::k256::ecdsa::hazmat::SignPrimitive;
    use alloy_signer::k256::elliptic_curve::PrimeField;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// HS256 with aws-lc-rs' HMAC directly, into one preallocated string.
    pub fn mint(client_id: &str, secret: &[u8], iat: u64, ttl: u64) -> String {
        use std::fmt::Write;
        let mut claims = String::with_capacity(96);
        // Demo ids are plain ASCII without quotes; the library escapes like json.dumps.
        let _ = write!(
            claims,
            r#"{{"clientId":"{client_id}","iat":{iat},"exp":{}}}"#,
            iat + ttl
        );
        let mut out = String::with_capacity(256);
        out.push_str("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.");
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut out);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
        out
    }

    /// EIP-191 with the secret scalar directly: no public key / address derivation (one
    /// of the two scalar multiplications `PrivateKeySigner::from_slice` + sign pay).
    pub fn sign(key_hex: &str, message: &[u8]) -> String {
        let mut bytes = [0u8; 32];
        alloy_primitives::hex::decode_to_slice(key_hex.trim_start_matches("0x"), &mut bytes)
            .expect("hex key");
        let scalar = Option::<Scalar>::from(Scalar::from_repr(bytes.into())).expect("scalar");
        let hash = alloy_primitives::eip191_hash_message(message);
        let (signature, recid) = scalar
            .try_sign_prehashed_rfc6979::<alloy_signer::k256::sha2::Sha256>(&hash.0.into(), &[])
            .expect("sign");
        let mut raw = [0u8; 65];
        raw[..64].copy_from_slice(&signature.to_bytes());
        raw[64] = 27 + u8::from(recid.expect("recovery id").is_y_odd());
        format!("0x{}", alloy_primitives::hex::encode(raw))
    }
}

fn prototypes(c: &mut Criterion) {
    let key = demo::PARTNER_SECRET_KEY.as_bytes();
    let reference = mint_token(demo::PARTNER_CLIENT_ID, key, 1_700_000_000, 900).expect("mint");
    assert_eq!(
        lean::mint(demo::PARTNER_CLIENT_ID, key, 1_700_000_000, 900),
        reference.expose()
    );
    let message = b"Sign in to Cascade\nnonce: 6f0c1e2d3b4a59687766554433221100";
    assert_eq!(
        lean::sign(demo::CASCADE_DELEGATE_KEY, message),
        eip191_sign(demo::CASCADE_DELEGATE_KEY, message).expect("sign")
    );
    let mut g = c.benchmark_group("prototype");
    g.bench_function("hs256_mint_lean", |b| {
        b.iter(|| {
            lean::mint(
                black_box(demo::PARTNER_CLIENT_ID),
                black_box(key),
                black_box(1_700_000_000),
                black_box(900),
            )
        })
    });
    g.bench_function("eip191_sign_lean", |b| {
        b.iter(|| {
            lean::sign(
                black_box(demo::CASCADE_DELEGATE_KEY),
                black_box(&message[..]),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, hot_path, crypto, machine_step, prototypes);
criterion_main!(benches);
