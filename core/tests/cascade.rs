//! Cascade machine: challenge -> EIP-191 signature -> session, with a manual clock.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use tradeauth::machine::cascade::{self as cascade, parse_ws_reply, parse_ws_reply_with_id};
use tradeauth::{
    AuthEvent, CascadeConfig, CascadeMachine, Credential, ErrorKind, HttpResponse, Machine,
    MachineStatus, Method, Secret, WsAuthReply, eip191_sign,
};

/// Hardhat / anvil test account #0 (public test key), the delegate.
const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const DELEGATE: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// The deposit address (test account #1), lowercase as the venue writes it.
const DEPOSIT: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const NONCE: &str = "e1231189-12d6-4efc-867d-53a3075a1d8b";
const TIMESTAMP: &str = "2026-01-19T16:33:15.662842941+00:00";
const PAYLOAD: &str = r#"{"account":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8","nonce":"e1231189-12d6-4efc-867d-53a3075a1d8b","timestamp":"2026-01-19T16:33:15.662842941+00:00"}"#;
/// Cross-checked with Python eth_account 0.14.0:
/// `Account.sign_message(encode_defunct(text=PAYLOAD), private_key=KEY).signature.hex()`.
const PAYLOAD_SIGNATURE: &str = "0xab2433c366bbf1bd102b2c19c55ab7e19ace00f30b45dc68a4014f58c12294ce05df9bf943b7e1d5e4e707d8fc2585982d726fa3edc4e510b35391253e635f9d1b";
const SERVER_SIG: &str = "VJfLidgINtN1Q-EaTaR7U5nMy74";

/// The delegate key as bare hex (no `0x`).
fn key_hex() -> &'static str {
    KEY.strip_prefix("0x").expect("KEY is 0x-prefixed")
}

fn machine() -> CascadeMachine {
    CascadeMachine::new(CascadeConfig::new(DEPOSIT, KEY).with_jitter_seed(3)).unwrap()
}

fn challenge() -> Value {
    json!({
        "message": {"account": DEPOSIT, "nonce": NONCE, "timestamp": TIMESTAMP},
        "server_signature": SERVER_SIG,
        "signing_payload": PAYLOAD,
    })
}

/// An unsigned-looking JWT whose payload carries `exp` (or nothing).
fn jwt(exp: Option<u64>) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = match exp {
        Some(e) => json!({"sub": DEPOSIT, "exp": e}),
        None => json!({"sub": DEPOSIT}),
    };
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// Run challenge + answer at `now`, with the given session answer.
fn authenticate(
    m: &mut CascadeMachine,
    now: tradeauth::Now,
    session: HttpResponse,
) -> tradeauth::Result<()> {
    let req = m.poll_request(now).expect("challenge request");
    assert_eq!(req.method, Method::Get);
    m.handle_response(now, json(200, challenge()))?;
    let req = m.poll_request(now).expect("answer");
    assert_eq!(req.method, Method::Post);
    m.handle_response(now, session)
}

/// A fresh machine that asked for a challenge at `now` and got it: the signed answer is
/// its next request.
fn challenged(now: tradeauth::Now) -> CascadeMachine {
    let mut m = machine();
    let _ = m.poll_request(now).unwrap();
    m.handle_response(now, json(200, challenge())).unwrap();
    m
}

/// A fresh machine signed in at `now`, the venue's session answer being `session`.
fn signed_in(now: tradeauth::Now, session: HttpResponse) -> CascadeMachine {
    let mut m = machine();
    authenticate(&mut m, now, session).unwrap();
    m
}

/// A fresh machine whose sign-in at `now` ended with the session answer `answer`, an
/// error: the machine and that error.
fn refused(now: tradeauth::Now, answer: HttpResponse) -> (CascadeMachine, tradeauth::Error) {
    let mut m = machine();
    let e = authenticate(&mut m, now, answer).unwrap_err();
    (m, e)
}

#[test]
fn known_answer_matches_eth_account() {
    assert_eq!(
        eip191_sign(KEY, PAYLOAD.as_bytes()).unwrap(),
        PAYLOAD_SIGNATURE
    );
    // Without 0x, and upper-case hex, too.
    assert_eq!(
        eip191_sign(&key_hex().to_uppercase(), PAYLOAD.as_bytes()).unwrap(),
        PAYLOAD_SIGNATURE
    );
    let sig = eip191_sign(KEY, b"anything").unwrap();
    assert_eq!(sig.len(), 132);
    let v = u8::from_str_radix(&sig[130..], 16).unwrap();
    assert!(v == 27 || v == 28);
    assert_eq!(machine().delegate_address(), DELEGATE);
}

#[test]
fn full_flow() {
    let clock = Clock::new();
    let mut m = machine();
    assert_venue_and_account(&m, "cascade", DEPOSIT);
    assert_eq!(m.address(), DEPOSIT);
    assert_eq!(m.state_name(), "no_token");

    let now = clock.ms(0);
    let req = m.poll_request(now).unwrap();
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.path, format!("/auth?account={DEPOSIT}"));
    assert!(req.body.is_empty());
    assert!(m.is_busy());
    assert_eq!(m.state_name(), "awaiting_challenge");
    assert!(m.poll_request(now).is_none());

    m.handle_response(clock.ms(20), json(200, challenge()))
        .unwrap();
    assert_eq!(m.state_name(), "awaiting_session");
    let req = m.poll_request(clock.ms(25)).unwrap();
    assert_json_post(
        &req,
        "/auth",
        json!({
            "message": {"account": DEPOSIT, "nonce": NONCE, "timestamp": TIMESTAMP},
            "signature": PAYLOAD_SIGNATURE,
            "server_signature": SERVER_SIG,
        }),
    );

    let exp = 1_700_003_600u64;
    let token = jwt(Some(exp));
    m.handle_response(
        clock.ms(40),
        json(
            200,
            json!({"token": token, "claims": {"sub": DEPOSIT, "exp": exp}}),
        ),
    )
    .unwrap();
    assert_eq!(m.state_name(), "active");
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);
    let c = m.credential(clock.ms(40).instant).unwrap();
    assert_eq!(c.header_value(), format!("Bearer {token}"));
    assert_eq!(c.expires_at_ms(), Some(exp * 1000));
    assert_eq!(m.expires_at_ms(), Some(exp * 1000));
    assert_eq!(m.claims().unwrap()["sub"], DEPOSIT);
    assert!(m.poll_request(clock.ms(50)).is_none());
    assert!(m.last_error().is_none());

    // Proactive re-authentication at poll_timeout: old token still handed out meanwhile.
    let t = m.poll_timeout().unwrap();
    let deadline = clock.base + Duration::from_millis(3_600_000);
    assert!(t <= deadline - Duration::from_secs(60));
    assert!(t >= deadline - Duration::from_secs(66));
    assert!(
        m.poll_request(clock.at(t - Duration::from_millis(1)))
            .is_none()
    );
    let now = clock.at(t);
    let req = m.poll_request(now).unwrap();
    assert_eq!(req.method, Method::Get);
    assert_eq!(m.credential(now.instant).unwrap().token(), token);
    m.handle_response(now, json(200, challenge())).unwrap();
    let _ = m.poll_request(now).unwrap();
    let token2 = jwt(Some(exp + 3600));
    m.handle_response(
        now,
        json(200, json!({"token": token2, "claims": {"exp": exp + 3600}})),
    )
    .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::Refreshed]);
    assert_eq!(m.credential(now.instant).unwrap().token(), token2);
}

#[test]
fn expiry_sources() {
    let now = Clock::new().ms(0);
    // claims.exp wins over the JWT's exp.
    let m = signed_in(
        now,
        json(
            200,
            json!({"token": jwt(Some(1_700_009_999)), "claims": {"exp": 1_700_001_000u64}}),
        ),
    );
    assert_eq!(m.expires_at_ms(), Some(1_700_001_000_000));
    // No claims.exp: the JWT's own exp.
    let m = signed_in(
        now,
        json(
            200,
            json!({"token": jwt(Some(1_700_002_000)), "claims": {"sub": "x"}}),
        ),
    );
    assert_eq!(m.expires_at_ms(), Some(1_700_002_000_000));
    // Neither (opaque token, no claims): the configured default ttl.
    let mut m = CascadeMachine::new(
        CascadeConfig::new(DEPOSIT, KEY).with_default_token_ttl(Duration::from_secs(120)),
    )
    .unwrap();
    authenticate(&mut m, now, json(200, json!({"token": "opaque-token"}))).unwrap();
    assert_eq!(m.expires_at_ms(), Some(BASE_MS + 120_000));
    assert!(m.claims().is_none());
    let c = m.credential(now.instant).unwrap();
    assert_eq!(
        c.valid_until(),
        Some(now.instant + Duration::from_secs(110))
    );
    // JWT without exp: the default too (3600 s).
    let m = signed_in(now, json(200, json!({"token": jwt(None), "claims": {}})));
    assert_eq!(m.expires_at_ms(), Some(BASE_MS + 3_600_000));
    // Never an expired credential.
    let until = now.instant + Duration::from_secs(3590);
    assert!(m.credential(until - Duration::from_millis(1)).is_some());
    assert!(m.credential(until).is_none());
}

#[test]
fn stale_challenge_is_re_requested_never_posted() {
    let clock = Clock::new();
    let mut m = machine();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(clock.secs(1), json(200, challenge()))
        .unwrap();
    // Stale at receive + 300 s - 10 s.
    let stale_at = clock.secs(1).instant + Duration::from_secs(290);
    assert_eq!(m.poll_timeout(), Some(stale_at));
    let _ = events(&mut m);

    // Just before: still posted.
    let mut early = machine();
    let _ = early.poll_request(clock.ms(0)).unwrap();
    early
        .handle_response(clock.secs(1), json(200, challenge()))
        .unwrap();
    let req = early
        .poll_request(clock.at(stale_at - Duration::from_millis(1)))
        .unwrap();
    assert_eq!(req.method, Method::Post);

    // At the staleness instant: discarded by handle_timeout, a new GET instead.
    m.handle_timeout(clock.at(stale_at));
    assert_eq!(m.state_name(), "awaiting_challenge");
    assert!(matches!(
        events(&mut m).as_slice(),
        [AuthEvent::Failed {
            kind: ErrorKind::ChallengeExpired,
            ..
        }]
    ));
    let req = m.poll_request(clock.at(stale_at)).unwrap();
    assert_eq!(req.method, Method::Get);

    // Same when the driver only polls (no handle_timeout).
    let mut m = machine();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(clock.ms(0), json(200, challenge()))
        .unwrap();
    let req = m.poll_request(clock.secs(400)).unwrap();
    assert_eq!(req.method, Method::Get, "a stale challenge is never posted");

    // A shorter nonce lifetime shrinks the margin with it (1/10, at most 10 s).
    let mut m = CascadeMachine::new(
        CascadeConfig::new(DEPOSIT, KEY).with_nonce_lifetime(Duration::from_secs(20)),
    )
    .unwrap();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(clock.ms(0), json(200, challenge()))
        .unwrap();
    assert_eq!(m.poll_timeout(), Some(clock.base + Duration::from_secs(18)));
}

#[test]
fn malformed_challenges_are_protocol_errors() {
    let clock = Clock::new();
    let mut bad: Vec<(&str, HttpResponse)> = vec![
        ("not json", HttpResponse::new(200, "nope")),
        ("array", json(200, json!([]))),
    ];
    let mut push = |name: &'static str, f: &dyn Fn(&mut Value)| {
        let mut c = challenge();
        f(&mut c);
        bad.push((name, json(200, c)));
    };
    push("no message", &|c| {
        c.as_object_mut().unwrap().remove("message");
    });
    push("message string", &|c| c["message"] = json!("m"));
    push("no nonce", &|c| {
        c["message"].as_object_mut().unwrap().remove("nonce");
    });
    push("nonce number", &|c| c["message"]["nonce"] = json!(5));
    push("no timestamp", &|c| {
        c["message"].as_object_mut().unwrap().remove("timestamp");
    });
    push("no server_signature", &|c| {
        c.as_object_mut().unwrap().remove("server_signature");
    });
    push("server_signature number", &|c| {
        c["server_signature"] = json!(1)
    });
    push("no signing_payload", &|c| {
        c.as_object_mut().unwrap().remove("signing_payload");
    });
    push("payload not json", &|c| {
        c["signing_payload"] = json!("sign me")
    });
    push("payload without account", &|c| {
        c["signing_payload"] = json!(r#"{"nonce":"e1231189-12d6-4efc-867d-53a3075a1d8b"}"#)
    });
    push("wrong account in message", &|c| {
        c["message"]["account"] = json!("0x037466fe85a8042f2da8f912b585b2278f8f153c")
    });
    push("wrong account in payload", &|c| {
        c["signing_payload"] = json!(PAYLOAD.replace(
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "0x037466fe85a8042f2da8f912b585b2278f8f153c"
        ))
    });
    push("payload nonce differs", &|c| {
        c["signing_payload"] = json!(PAYLOAD.replace("e1231189", "ffffffff"))
    });
    for (name, response) in bad {
        let mut m = machine();
        let req = m.poll_request(clock.ms(0)).unwrap();
        let e = m.handle_response(clock.ms(0), response).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{name}: {e}");
        assert!(!e.is_retryable());
        assert_eq!(m.last_error().unwrap().kind(), ErrorKind::Protocol);
        assert_no_secret(&e.to_string(), &[key_hex()]);
        // Never signed or posted; a later demand asks for a fresh challenge.
        assert_eq!(m.poll_request(clock.ms(1)).unwrap(), req, "{name}");
    }
    // The account comparison is case-insensitive.
    let mut m = machine();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    let mut c = challenge();
    c["message"]["account"] = json!(DEPOSIT.to_uppercase().replacen("0X", "0x", 1));
    m.handle_response(clock.ms(0), json(200, c)).unwrap();
}

#[test]
fn malformed_sessions_are_protocol_errors() {
    let clock = Clock::new();
    let exp = 1_700_003_600u64;
    let cases = [
        ("not json", HttpResponse::new(200, "{")),
        ("no token", json(200, json!({"claims": {"exp": exp}}))),
        ("token number", json(200, json!({"token": 5}))),
        ("empty token", json(200, json!({"token": ""}))),
        (
            "header injection",
            json(200, json!({"token": "abc\r\nx-evil: 1"})),
        ),
        (
            "claims array",
            json(200, json!({"token": "t", "claims": []})),
        ),
        (
            "exp string",
            json(200, json!({"token": "t", "claims": {"exp": "later"}})),
        ),
        (
            "exp in the past",
            json(
                200,
                json!({"token": "t", "claims": {"exp": 1_600_000_000u64}}),
            ),
        ),
    ];
    for (name, response) in cases {
        let (mut m, e) = refused(clock.ms(0), response);
        assert_eq!(e.kind(), ErrorKind::Protocol, "{name}: {e}");
        assert!(m.credential(clock.ms(0).instant).is_none());
        // The nonce is spent: a fresh challenge next.
        assert_eq!(
            m.poll_request(clock.ms(1)).unwrap().method,
            Method::Get,
            "{name}"
        );
    }
}

#[test]
fn answer_rejections() {
    let clock = Clock::new();
    let now = clock.ms(0);
    // Nonce expired / used: a fresh challenge will do.
    for text in ["nonce expired", "Nonce already used"] {
        let (mut m, e) = refused(now, json(401, json!({"error": text})));
        assert_eq!(e.kind(), ErrorKind::ChallengeExpired, "{text}");
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(401));
        assert_eq!(m.poll_request(now).unwrap().method, Method::Get);
    }
    // Plain-text bodies are understood too.
    let (_, e) = refused(now, HttpResponse::new(401, "nonce expired"));
    assert_eq!(e.kind(), ErrorKind::ChallengeExpired);

    // Signer not authorized / bad signature: stop, never retried on its own.
    for text in ["signer is not authorized", "invalid signature"] {
        let (mut m, e) = refused(now, json(401, json!({"error": text})));
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{text}");
        assert!(!e.is_retryable());
        assert_eq!(m.state_name(), "stopped");
        assert!(m.poll_request(clock.secs(10)).is_none());
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(m.last_error().unwrap().kind(), ErrorKind::Unauthorized);
        m.handle_unauthorized(clock.secs(20));
        assert_eq!(m.poll_request(clock.secs(20)).unwrap().method, Method::Get);
    }
    let (_, e) = refused(now, json(401, json!({"error": "signer is not authorized"})));
    assert!(e.message().contains("delegate"), "{e}");

    // Busy: the same answer is re-posted while fresh.
    let mut m = challenged(now);
    let post = m.poll_request(now).unwrap();
    let busy = HttpResponse::new(503, "").with_header("Retry-After", "1");
    retryable_after(&mut m, now, busy, Duration::from_secs(1));
    assert_eq!(m.poll_request(clock.secs(1)).unwrap(), post);
    // Transport error: re-posted too.
    m.handle_transport_error(clock.secs(1), &tradeauth::Error::timeout("no answer"));
    assert_eq!(m.poll_request(clock.secs(2)).unwrap(), post);
    // A 400: a fresh challenge.
    let e = m
        .handle_response(clock.secs(2), json(400, json!({"error": "bad request"})))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ApiError);
    assert_eq!(m.poll_request(clock.secs(2)).unwrap().method, Method::Get);
    // Challenge endpoint busy: the GET is re-sent.
    let e = m
        .handle_response(clock.secs(2), HttpResponse::new(502, ""))
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(m.poll_request(clock.secs(3)).unwrap().method, Method::Get);
}

#[test]
fn unauthorized_and_ws() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut m = machine();
    // No credential yet: no WS message.
    let e = m.ws_auth_message(now.instant, json!(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    authenticate(
        &mut m,
        now,
        json(
            200,
            json!({"token": "tok.en.1", "claims": {"exp": 1_700_003_600u64}}),
        ),
    )
    .unwrap();
    let _ = events(&mut m);
    assert_eq!(
        m.ws_auth_message(now.instant, json!(1)).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"method":"auth","params":{"bearer":"tok.en.1"}}"#
    );
    let c = m.credential(now.instant).unwrap();
    assert_eq!(
        cascade::ws_auth_message(&c, "abc").unwrap(),
        r#"{"jsonrpc":"2.0","id":"abc","method":"auth","params":{"bearer":"tok.en.1"}}"#
    );
    let api_key = Credential::new("x-api-key", Secret::from("k"), None, None).unwrap();
    assert!(cascade::ws_auth_message(&api_key, 1).is_err());

    // Replies.
    let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"account":"0x7099"}}"#;
    assert_eq!(
        parse_ws_reply(ok),
        WsAuthReply::Authenticated {
            detail: json!({"account": "0x7099"})
        }
    );
    let bad =
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Invalid Bearer Token"}}"#;
    assert_eq!(
        parse_ws_reply(bad),
        WsAuthReply::Rejected {
            message: "Invalid Bearer Token".into()
        }
    );
    assert_eq!(parse_ws_reply("not json"), WsAuthReply::Unrelated);
    assert_eq!(
        parse_ws_reply(r#"{"jsonrpc":"2.0","method":"orderbook","params":{}}"#),
        WsAuthReply::Unrelated
    );
    assert_eq!(
        parse_ws_reply(r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"bad size"}}"#),
        WsAuthReply::Unrelated
    );
    assert_eq!(
        parse_ws_reply_with_id(ok, &json!(2)),
        WsAuthReply::Unrelated
    );
    assert!(matches!(
        parse_ws_reply_with_id(ok, &json!(1)),
        WsAuthReply::Authenticated { .. }
    ));
    assert!(matches!(
        parse_ws_reply_with_id(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"nope"}}"#,
            &json!(1)
        ),
        WsAuthReply::Rejected { .. }
    ));

    // An unrelated reply changes nothing; "Invalid Bearer Token" re-authenticates.
    let _ = m.handle_ws_reply(now, ok);
    assert!(m.credential(now.instant).is_some());
    let later = clock.secs(5);
    assert!(matches!(
        m.handle_ws_reply(later, bad),
        WsAuthReply::Rejected { .. }
    ));
    assert!(m.credential(later.instant).is_none());
    m.handle_unauthorized(later); // twice: harmless
    let req = m.poll_request(later).unwrap();
    assert_eq!(req.method, Method::Get);
    assert!(m.poll_request(later).is_none());
    m.handle_response(later, json(200, challenge())).unwrap();
    let _ = m.poll_request(later).unwrap();
    m.handle_response(later, json(200, json!({"token": "tok.en.2"})))
        .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::ReLoggedIn]);

    // logout wipes; the next demand starts over.
    m.logout();
    assert!(m.credential(later.instant).is_none());
    assert!(m.claims().is_none());
    assert_eq!(m.state_name(), "no_token");
    assert_eq!(m.poll_request(later).unwrap().method, Method::Get);
}

#[test]
fn invalid_addresses_and_keys() {
    let addresses = [
        "",
        "70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8aa",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79zz",
        KEY, // a private key pasted as the address is not echoed
    ];
    for a in addresses {
        let e = CascadeMachine::new(CascadeConfig::new(a, KEY)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{a}");
        assert!(e.message().contains("deposit address"), "{e}");
        assert_no_secret(&e.to_string(), &[key_hex()]);
    }
    // Mixed case (EIP-55 or not) is accepted.
    CascadeMachine::new(CascadeConfig::new(DELEGATE, KEY)).unwrap();
    CascadeMachine::new(CascadeConfig::new(DELEGATE.to_lowercase(), key_hex())).unwrap();

    let keys = [
        ("", "64 hex"),
        ("0x1234", "64 hex"),
        (DEPOSIT, "address"),
        (
            "0xzc0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            "hex digit",
        ),
        (
            "0x0000000000000000000000000000000000000000000000000000000000000000",
            "secp256k1",
        ),
        (
            "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "secp256k1",
        ),
    ];
    for (k, expect) in keys {
        let e = CascadeMachine::new(CascadeConfig::new(DEPOSIT, k)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("delegate private key"), "{e}");
        assert!(e.message().contains(expect), "{e}");
        if k.len() > 8 {
            assert_no_secret(&e.to_string(), &[k.trim_start_matches("0x")]);
        }
        assert!(eip191_sign(k, b"x").is_err());
    }
}

#[test]
fn nothing_prints_a_secret() {
    let clock = Clock::new();
    let cfg = CascadeConfig::new(DEPOSIT, KEY);
    let mut m = CascadeMachine::new(cfg.clone()).unwrap();
    let now = clock.ms(0);
    let _ = m.poll_request(now).unwrap();
    m.handle_response(now, json(200, challenge())).unwrap();
    let post = m.poll_request(now).unwrap();
    let token = jwt(Some(1_700_003_600));
    m.handle_response(now, json(200, json!({"token": token})))
        .unwrap();
    let c = m.credential(now.instant).unwrap();
    let secrets = [key_hex(), token.as_str(), &PAYLOAD_SIGNATURE[2..]];
    for text in [
        format!("{cfg:?}"),
        format!("{m:?}"),
        format!("{post:?}"),
        format!("{c:?}"),
        format!("{:?}", events(&mut m)),
    ] {
        assert_no_secret(&text, &secrets);
    }
    assert!(format!("{m:?}").contains(DELEGATE));
}

/// `eip191_sign` signs with the bare scalar (no public-key derivation); it must give
/// byte for byte what alloy's `PrivateKeySigner` gives, for any key and message, and
/// recover to the key's address.
#[test]
fn eip191_sign_matches_alloy_signer_for_many_keys_and_messages() {
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for round in 0..300 {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&next().to_le_bytes());
        }
        key[0] &= 0x7f; // below the curve order
        let key_hex = format!("0x{}", alloy_primitives::hex::encode(key));
        let message: Vec<u8> = (0..(next() % 300)).map(|_| next() as u8).collect();
        let ours = tradeauth::eip191_sign(&key_hex, &message).expect("signs");
        let signer = PrivateKeySigner::from_slice(&key).expect("valid key");
        let theirs = signer.sign_message_sync(&message).expect("alloy signs");
        let expected = format!("0x{}", alloy_primitives::hex::encode(theirs.as_bytes()));
        assert_eq!(ours, expected, "round {round}");
        let recovered = theirs.recover_address_from_msg(&message).expect("recovers");
        assert_eq!(recovered, signer.address());
    }
    // Zero is not a key.
    let zero = format!("0x{}", "0".repeat(64));
    assert!(tradeauth::eip191_sign(&zero, b"m").is_err());
}

/// The typed status a driver decides by at every step (challenge, answer, session,
/// rejection), and the WebSocket message built for a credential the machine did not
/// issue (a forked parent's, a store's).
#[test]
fn status_and_ws_message_for_a_given_credential() {
    let now = Clock::new().ms(0);
    let mut m = machine();
    assert_eq!(m.status(), MachineStatus::LoggedOut);
    assert!(m.status().wants_request());
    let _ = m.poll_request(now).expect("challenge request");
    assert_eq!(m.status(), MachineStatus::LoggingIn);
    m.handle_response(now, json(200, challenge())).unwrap();
    assert_eq!(m.status(), MachineStatus::Completing);
    assert!(m.status().wants_request());
    let _ = m.poll_request(now).expect("answer");
    assert_eq!(m.status(), MachineStatus::Completing);
    m.handle_response(now, json(200, json!({"token": "tok.en.1"})))
        .unwrap();
    assert_eq!(m.status(), MachineStatus::Active);
    assert!(!m.status().wants_request());
    assert!(!m.holds_refresh_token(), "Cascade has no refresh token");

    let other = Credential::bearer(&Secret::from("someone.elses.token"), None, None).unwrap();
    let message: Value =
        serde_json::from_str(&m.ws_auth_message_for(&other, json!(9)).unwrap()).unwrap();
    assert_eq!(message["params"]["bearer"], "someone.elses.token");
    assert_eq!(message["id"], 9);
    let key = Credential::new("x-api-key", Secret::from("exch_key"), None, None).unwrap();
    assert_eq!(
        m.ws_auth_message_for(&key, json!(1)).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // The right header with another scheme is no bearer either.
    let basic = Credential::new(
        "authorization",
        Secret::from("Basic dXNlcjpwdw=="),
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        m.ws_auth_message_for(&basic, json!(1)).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    let (stopped, _) = refused(now, json(401, json!({"error": "invalid signature"})));
    assert_eq!(stopped.status(), MachineStatus::Stopped);
    assert!(!stopped.status().wants_request());

    let caps = m.capabilities();
    assert!(caps.renewable && caps.shareable && caps.ws_auth && !caps.public);
}

/// The machine takes `reply` on the WebSocket at `now` for a rejection, and still holds
/// its token after it or not, as `kept` says (`why` names the case).
fn assert_ws_rejection(
    m: &mut CascadeMachine,
    now: tradeauth::Now,
    reply: &str,
    kept: bool,
    why: &str,
) {
    assert!(
        matches!(m.handle_ws_reply(now, reply), WsAuthReply::Rejected { .. }),
        "{why}: {reply}"
    );
    assert_eq!(m.credential(now.instant).is_some(), kept, "{why}");
}

/// The venue's invalid-token code alone (-32001, whatever the text says) is a rejection of
/// the bearer: the token is dropped. A different code with an unrelated text is neither.
#[test]
fn the_invalid_token_code_alone_drops_the_token() {
    let now = Clock::new().ms(0);
    let mut m = signed_in(now, json(200, json!({"token": "tok.en.1"})));
    let other = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"slow down"}}"#;
    assert_eq!(parse_ws_reply(other), WsAuthReply::Unrelated);
    let _ = m.handle_ws_reply(now, other);
    assert!(m.credential(now.instant).is_some());
    let coded = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"denied"}}"#;
    assert!(matches!(
        parse_ws_reply(coded),
        WsAuthReply::Rejected { .. }
    ));
    assert_ws_rejection(&mut m, now, coded, false, "the coded rejection drops it");
}

/// Only a rejection of the bearer drops it: an auth-related error that is not one keeps
/// the token; "Invalid Bearer Token" without the code drops it, as the code alone does.
#[test]
fn only_a_bearer_rejection_drops_the_token() {
    let now = Clock::new().ms(0);
    let mut m = signed_in(now, json(200, json!({"token": "tok.en.1"})));
    let limited = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"auth calls are rate limited"}}"#;
    assert_ws_rejection(&mut m, now, limited, true, "not a bearer rejection");
    let uncoded = r#"{"jsonrpc":"2.0","id":2,"error":{"message":"Invalid Bearer Token"}}"#;
    assert_ws_rejection(
        &mut m,
        now,
        uncoded,
        false,
        "the page's text alone drops it",
    );
}

/// Every challenge field must be a non-empty string, `timestamp` included (it is only
/// passed back, never read).
#[test]
fn an_empty_challenge_field_is_refused() {
    let now = Clock::new().ms(0);
    let mut m = machine();
    let _ = m.poll_request(now).expect("challenge request");
    let mut empty = challenge();
    empty["message"]["timestamp"] = json!("");
    let e = m.handle_response(now, json(200, empty)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.message().contains("empty"), "{e}");
}

#[test]
fn a_nonce_word_alone_or_a_server_error_is_not_an_expired_challenge() {
    let clock = Clock::new();
    let now = clock.ms(0);
    // "nonce" without "expired"/"used": the answer itself was refused.
    let (m, e) = refused(now, json(401, json!({"error": "nonce mismatch"})));
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert_eq!(m.status(), MachineStatus::Stopped);
    // "expired" without "nonce"/"challenge": not a challenge problem either.
    let (_, e) = refused(now, json(401, json!({"error": "key expired"})));
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    // A 5xx that mentions an expired nonce is the venue failing, not the nonce: the same
    // prepared answer is kept for the retry.
    let (mut m, e) = refused(now, json(503, json!({"error": "nonce store expired"})));
    assert_ne!(e.kind(), ErrorKind::ChallengeExpired, "{e}");
    assert!(e.is_retryable());
    assert_eq!(m.poll_request(clock.secs(1)).unwrap().method, Method::Post);
}

#[test]
fn claims_exp_numbers_are_unix_seconds_and_nothing_else() {
    let now = Clock::new().ms(0);
    let session = |exp: Value| {
        json(
            200,
            json!({"token": "opaque-token", "claims": {"exp": exp}}),
        )
    };
    // A float is rounded down to whole seconds.
    let m = signed_in(now, session(json!(1_700_001_000.7f64)));
    assert_eq!(m.expires_at_ms(), Some(1_700_001_000_000));
    // Zero, negative and beyond-u64 numbers are refused as `claims.exp`, never turned
    // into "expired" or into a lifetime of centuries.
    for exp in [
        json!(0.0f64),
        json!(-5.0f64),
        json!(-5),
        json!(1.8446744073709552e19f64),
    ] {
        let (m, e) = refused(now, session(exp.clone()));
        assert_eq!(e.kind(), ErrorKind::Protocol, "{exp}: {e}");
        assert!(e.message().contains("`claims.exp`"), "{exp}: {e}");
        assert!(m.credential(now.instant).is_none());
    }
}

#[test]
fn no_answer_deadline_while_the_answer_is_in_flight() {
    let now = Clock::new().ms(0);
    let mut m = challenged(now);
    assert!(m.poll_timeout().is_some(), "the prepared answer goes stale");
    let _ = m.poll_request(now).unwrap();
    // In flight: the venue's answer (or a transport error) comes next, not a stale check.
    assert_eq!(m.poll_timeout(), None);
}

/// A snapshot another process shared: obtained `age_s` seconds before `now`, valid for
/// `left_s` more.
fn shared(now: tradeauth::Now, age_s: u64, left_s: u64, token: &str) -> tradeauth::SessionSnapshot {
    tradeauth::SessionSnapshot {
        token: Secret::from(token),
        expires_at_ms: now.unix_ms + left_s * 1000,
        obtained_at_ms: now.unix_ms - age_s * 1000,
        refresh_token: None,
        claims: Some(json!({"sub": DEPOSIT})),
    }
}

#[test]
fn snapshots_round_trip_and_refuse_what_is_not_valid() {
    let clock = Clock::new();
    let now = clock.secs(4000);
    let mut m = machine();
    assert!(m.snapshot(now.instant).is_none(), "no session yet");
    authenticate(
        &mut m,
        now,
        json(
            200,
            json!({"token": "tok-1", "claims": {"exp": (BASE_MS / 1000) + 4000 + 600}}),
        ),
    )
    .unwrap();
    let snap = m.snapshot(now.instant).expect("a session worth sharing");
    assert_eq!(snap.token.expose(), "tok-1");
    assert_eq!(snap.expires_at_ms, BASE_MS + 4_600_000);
    assert_eq!(snap.obtained_at_ms, now.unix_ms);
    assert!(snap.refresh_token.is_none());
    assert_eq!(
        snap.claims.as_ref().unwrap()["exp"],
        json!((BASE_MS / 1000) + 4600)
    );
    // Past its safe deadline there is nothing to share.
    let late = clock.secs(4000 + 600 - 10);
    assert!(m.credential(late.instant).is_none());
    assert!(m.snapshot(late.instant).is_none());
}

#[test]
fn restore_adopts_a_shared_session_with_its_whole_lifetime() {
    let clock = Clock::new();
    let now = clock.secs(4000);
    let mut m = CascadeMachine::new(
        CascadeConfig::new(DEPOSIT, KEY)
            .with_jitter_seed(3)
            .with_refresh_window(Duration::from_secs(200)),
    )
    .unwrap();
    // Obtained 3000 s ago, 600 s left: a one-hour token, so the 200 s window applies in
    // full (a process that took its age for zero would see a 600 s token and a 150 s
    // window).
    m.restore(now, &shared(now, 3000, 600, "tok-shared"))
        .unwrap();
    assert_eq!(m.status(), MachineStatus::Active);
    assert_eq!(m.credential(now.instant).unwrap().token(), "tok-shared");
    assert_eq!(m.claims().unwrap()["sub"], DEPOSIT);
    assert_eq!(
        m.snapshot(now.instant).unwrap().obtained_at_ms,
        now.unix_ms - 3_000_000
    );
    let refresh = m.poll_timeout().expect("a refresh is scheduled");
    assert!(
        refresh > now.instant + Duration::from_secs(394),
        "{:?}",
        refresh - now.instant
    );
    assert!(
        refresh <= now.instant + Duration::from_secs(400),
        "{:?}",
        refresh - now.instant
    );
    assert!(m.poll_request(now).is_none(), "nothing to do until then");
    assert!(events(&mut m).is_empty());
    // A short token's safety margin is a tenth of its whole lifetime: obtained 60 s ago
    // with 20 s left, it is an 80 s token (8 s margin), not a 20 s one (2 s) nor a
    // token of unknown age (10 s).
    let mut short = machine();
    short
        .restore(now, &shared(now, 60, 20, "tok-short"))
        .unwrap();
    assert_eq!(
        short.credential(now.instant).unwrap().valid_until(),
        Some(now.instant + Duration::from_secs(12))
    );
    // The adopted session counts as had: the next one is a refresh.
    let later = clock.at(refresh);
    assert_eq!(m.poll_request(later).unwrap().method, Method::Get);
    m.handle_response(later, json(200, challenge())).unwrap();
    let _ = m.poll_request(later).unwrap();
    m.handle_response(later, json(200, json!({"token": "tok-2"})))
        .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::Refreshed]);
}

#[test]
fn restore_refuses_what_cannot_be_used() {
    let clock = Clock::new();
    let now = clock.secs(4000);
    // While a request is in flight: its answer would race the adopted token.
    let mut m = machine();
    let _ = m.poll_request(now).unwrap();
    let e = m.restore(now, &shared(now, 10, 600, "tok")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(m.credential(now.instant).is_none());
    // A token that cannot go into a header.
    let mut m = machine();
    let e = m
        .restore(now, &shared(now, 10, 600, "two words"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(m.credential(now.instant).is_none());
    // Expired already.
    let mut m = machine();
    let mut snap = shared(now, 700, 0, "tok");
    snap.expires_at_ms = now.unix_ms - 1000;
    assert!(m.restore(now, &snap).is_err());
    // Inside the safety margin (5 s left of an hour): unusable, refused.
    let mut m = machine();
    let e = m.restore(now, &shared(now, 3595, 5, "tok")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("too close to expiry"), "{e}");
    assert!(m.credential(now.instant).is_none());
    assert_eq!(m.status(), MachineStatus::LoggedOut);
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

#[test]
fn websocket_rules_hold_private_methods_and_own_channels_for_auth() {
    for private in [
        "orders.list",
        "positions.list",
        "order.create",
        "account.whatever",
    ] {
        assert!(
            cascade::ws_is_private(&rpc(1, private, json!({}))),
            "{private}"
        );
    }
    for channel in ["orders", "positions"] {
        for method in ["subscribe", "unsubscribe"] {
            let m = rpc(1, method, json!({"channel": channel}));
            assert!(cascade::ws_is_private(&m), "{method} {channel}");
        }
    }
    let book = rpc(
        1,
        "subscribe",
        json!({"channel": "orderbook", "market": "X"}),
    );
    for public in [
        book.clone(),
        rpc(1, "unsubscribe", json!({"channel": "orderbook"})),
        rpc(1, "subscribe", json!({})),
        rpc(1, "ping", json!({"channel": "orders"})),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
    ] {
        assert!(!cascade::ws_is_private(&public), "{public}");
    }

    let bearer = "Invalid Bearer Token";
    let refused = json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32001, "message": bearer}});
    assert!(cascade::ws_refuses_credential(&refused));
    let by_code = json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32001, "message": "x"}});
    assert!(cascade::ws_refuses_credential(&by_code));
    let by_text =
        json!({"jsonrpc": "2.0", "id": 4, "error": {"code": 1, "message": "invalid bearer token"}});
    assert!(cascade::ws_refuses_credential(&by_text));
    for not_refused in [
        json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32602, "message": "Invalid params"}}),
        json!({"jsonrpc": "2.0", "id": 4, "result": {"message": bearer}}),
        json!({"jsonrpc": "2.0", "method": "note", "error": {"code": -32001}}),
    ] {
        assert!(
            !cascade::ws_refuses_credential(&not_refused),
            "{not_refused}"
        );
    }

    assert_eq!(cascade::ws_reply_id(&refused), Some(&json!(4)));
    assert_eq!(
        cascade::ws_reply_id(&json!({"jsonrpc": "2.0", "method": "orderbook", "id": 3})),
        None
    );
    assert_eq!(
        cascade::ws_reply_id(&json!({"jsonrpc": "2.0", "id": null, "result": 1})),
        None
    );
    let renumbered = cascade::ws_with_id(&book, json!("tradeauth-sub-1")).expect("has an id");
    assert_eq!(renumbered["id"], "tradeauth-sub-1");
    assert_eq!(renumbered["params"], book["params"]);
    assert_eq!(renumbered["method"], "subscribe");
    assert!(cascade::ws_with_id(&json!({"jsonrpc": "2.0", "method": "x"}), json!(1)).is_none());
    assert!(cascade::ws_with_id(&json!([1]), json!(1)).is_none());

    // The machine hands out these rules.
    let rules = machine().ws_rules();
    assert!((rules.is_private)(&rpc(1, "order.create", json!({}))));
    assert!((rules.refuses_credential)(&refused));
    assert_eq!((rules.reply_id)(&refused), Some(&json!(4)));
    assert!((rules.with_id)(&book, json!(2)).is_some());
}

#[test]
fn websocket_auth_reply_is_only_the_one_with_the_auth_id() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut m = machine();
    authenticate(
        &mut m,
        now,
        json(
            200,
            json!({"token": "tok.en.1", "claims": {"exp": 1_700_003_600u64}}),
        ),
    )
    .unwrap();
    let id = json!("tradeauth-auth-1");
    let bad_other =
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"Invalid Bearer Token"}}"#;
    let ok_other = r#"{"jsonrpc":"2.0","id":7,"result":{"subscribed":"orders:x"}}"#;
    // Another request's answers (even a refusal) are not the auth reply: nothing changes.
    assert_eq!(
        m.handle_ws_auth_reply(now, ok_other, &id),
        WsAuthReply::Unrelated
    );
    assert_eq!(
        m.handle_ws_auth_reply(now, bad_other, &id),
        WsAuthReply::Unrelated
    );
    assert!(m.credential(now.instant).is_some());
    let ok = r#"{"jsonrpc":"2.0","id":"tradeauth-auth-1","result":{"authenticated":true}}"#;
    assert_eq!(
        m.handle_ws_auth_reply(now, ok, &id),
        WsAuthReply::Authenticated {
            detail: json!({"authenticated": true})
        }
    );
    // Refused for another reason: reported, the token kept.
    let other_reason = r#"{"jsonrpc":"2.0","id":"tradeauth-auth-1","error":{"code":-32602,"message":"Invalid params"}}"#;
    assert!(matches!(
        m.handle_ws_auth_reply(now, other_reason, &id),
        WsAuthReply::Rejected { .. }
    ));
    assert!(m.credential(now.instant).is_some());
    // The token refused, quoting it: redacted, and dropped.
    let echoed = r#"{"jsonrpc":"2.0","id":"tradeauth-auth-1","error":{"code":-32001,"message":"Invalid Bearer Token: tok.en.1"}}"#;
    match m.handle_ws_auth_reply(now, echoed, &id) {
        WsAuthReply::Rejected { message } => {
            assert!(message.contains("Invalid Bearer Token"), "{message}");
            assert!(!message.contains("tok.en.1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        m.credential(now.instant).is_none(),
        "the refused token is dropped"
    );
}

/// Test account #2 (public test key): not the delegate.
const STRANGER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// A machine whose challenges an external signer signs (the machine never calls it: the
/// driver does, so these tests answer `poll_sign` themselves).
fn external() -> CascadeMachine {
    let signer = tradeauth::signer::ExternalSigner::new(
        |_d: [u8; 32]| async { Err("the driver calls signers, not the machine".to_owned()) },
        DELEGATE,
    )
    .unwrap();
    CascadeMachine::new(CascadeConfig::with_signer(DEPOSIT, signer).with_jitter_seed(3)).unwrap()
}

/// The 65 bytes of `eip191_sign(key, PAYLOAD)`.
fn raw_signature(key: &str) -> [u8; 65] {
    let hex_sig = eip191_sign(key, PAYLOAD.as_bytes()).unwrap();
    let bytes = alloy_primitives::hex::decode(&hex_sig).unwrap();
    bytes.try_into().unwrap()
}

#[test]
fn an_external_signer_is_asked_for_the_digest_and_its_answer_posted() {
    let clock = Clock::new();
    let mut m = external();
    assert_eq!(m.delegate_address(), DELEGATE);
    let now = clock.ms(0);
    assert!(m.poll_sign(now).is_none(), "nothing to sign yet");
    let _ = m.poll_request(now).unwrap();
    m.handle_response(now, json(200, challenge())).unwrap();
    assert_eq!(m.state_name(), "awaiting_signature");
    assert_eq!(m.status(), MachineStatus::Completing);
    assert!(!m.is_busy());
    assert!(m.poll_request(now).is_none(), "the signature comes first");
    assert_eq!(
        m.poll_timeout(),
        Some(clock.base + Duration::from_secs(290)),
        "an unsigned challenge goes stale too"
    );
    let job = m.poll_sign(now).expect("asks");
    assert_eq!(
        job.digest,
        tradeauth::signer::eip191_digest(PAYLOAD.as_bytes())
    );
    assert_eq!(
        format!("{:#x}", job.signer.address()),
        DELEGATE.to_lowercase()
    );
    assert!(m.is_busy());
    assert!(m.poll_sign(now).is_none(), "asked once");
    assert_eq!(m.poll_timeout(), None, "no deadline while the signer works");
    // A response nobody asked for changes nothing.
    let e = m.handle_response(now, json(200, challenge())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(m.is_busy());
    assert_eq!(m.state_name(), "awaiting_signature");
    // A signer answering after the nonce's margin: still posted (the venue decides).
    m.handle_timeout(clock.secs(295));
    assert_eq!(m.state_name(), "awaiting_signature");
    m.handle_signature(clock.ms(5), Ok(raw_signature(KEY)))
        .unwrap();
    assert_eq!(m.state_name(), "awaiting_session");
    let req = m.poll_request(clock.ms(6)).expect("answer");
    assert_eq!(req.method, Method::Post);
    let body = body_json(&req);
    assert_eq!(body["signature"], PAYLOAD_SIGNATURE);
    assert_eq!(body["server_signature"], SERVER_SIG);
    assert_eq!(body["message"]["nonce"], NONCE);
    let e = m
        .handle_signature(clock.ms(7), Ok(raw_signature(KEY)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "not asked");
    m.handle_response(
        clock.ms(8),
        json(
            200,
            json!({"token": jwt(Some(BASE_MS / 1000 + 3600)), "claims": null}),
        ),
    )
    .unwrap();
    assert!(m.credential(clock.ms(8).instant).is_some());
    // The key is not here: no hex of it can be in Debug.
    assert!(!format!("{m:?}").contains(key_hex()));
}

#[test]
fn a_failed_or_foreign_signature_starts_over_with_a_fresh_challenge() {
    let clock = Clock::new();
    for (answer, says) in [
        (
            Err(tradeauth::Error::new(ErrorKind::Signing, "HSM offline")),
            "HSM offline",
        ),
        (Ok(raw_signature(STRANGER_KEY)), "does not recover"),
    ] {
        let mut m = external();
        let _ = m.poll_request(clock.ms(0)).unwrap();
        m.handle_response(clock.ms(0), json(200, challenge()))
            .unwrap();
        let _ = events(&mut m);
        let _ = m.poll_sign(clock.ms(1)).expect("asks");
        let e = m.handle_signature(clock.ms(2), answer).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signing);
        assert!(e.message().contains(says), "{e}");
        assert!(!m.is_busy());
        assert_eq!(m.state_name(), "awaiting_challenge");
        assert!(matches!(
            events(&mut m).as_slice(),
            [AuthEvent::Failed {
                kind: ErrorKind::Signing,
                ..
            }]
        ));
        assert_eq!(m.last_error().map(|e| e.kind()), Some(ErrorKind::Signing));
        let req = m.poll_request(clock.ms(3)).expect("a new challenge");
        assert_eq!(req.method, Method::Get, "nothing was posted");
    }
}

#[test]
fn an_abandoned_signature_is_asked_again_and_a_stale_one_never_asked() {
    let clock = Clock::new();
    let mut m = external();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(clock.ms(0), json(200, challenge()))
        .unwrap();
    let first = m.poll_sign(clock.ms(1)).expect("asks");
    // The driver gave up on it (its drive was cancelled): asked again, same digest.
    let timeout = tradeauth::Error::new(ErrorKind::Timeout, "abandoned");
    m.handle_transport_error(clock.ms(2), &timeout);
    assert!(!m.is_busy());
    let again = m.poll_sign(clock.ms(3)).expect("asks again");
    assert_eq!(again.digest, first.digest);
    m.handle_transport_error(clock.ms(4), &timeout);
    // Past the nonce's margin before being asked: a new challenge, never a signature.
    assert!(m.poll_sign(clock.secs(290)).is_none());
    assert_eq!(m.state_name(), "awaiting_challenge");
    let req = m.poll_request(clock.secs(290)).expect("challenge");
    assert_eq!(req.method, Method::Get);
    // A key in memory never asks anyone.
    let mut local = challenged(clock.ms(0));
    assert!(local.poll_sign(clock.ms(1)).is_none());
    let e = local
        .handle_signature(clock.ms(1), Ok(raw_signature(KEY)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(local.state_name(), "awaiting_session");
}

#[test]
fn a_forced_refresh_keeps_the_token_until_its_successor() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut m = signed_in(
        now,
        json(
            200,
            json!({"token": jwt(Some(BASE_MS / 1000 + 3600)), "claims": null}),
        ),
    );
    let _ = events(&mut m);
    m.force_refresh(clock.ms(1));
    assert_eq!(m.state_name(), "awaiting_challenge");
    assert!(m.credential(clock.ms(1).instant).is_some(), "no gap");
    let req = m.poll_request(clock.ms(2)).expect("challenge");
    assert_eq!(req.method, Method::Get);
    m.handle_response(clock.ms(2), json(200, challenge()))
        .unwrap();
    let _ = m.poll_request(clock.ms(3)).expect("answer");
    m.handle_response(
        clock.ms(3),
        json(
            200,
            json!({"token": jwt(Some(BASE_MS / 1000 + 7200)), "claims": null}),
        ),
    )
    .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::Refreshed]);
    // Forced again while a flow is under way: the token stays, the flow goes on.
    m.force_refresh(clock.ms(4));
    let _ = m.poll_request(clock.ms(4)).expect("challenge");
    m.force_refresh(clock.ms(5));
    assert!(m.is_busy());
    assert!(
        m.credential(clock.ms(5).instant).is_some(),
        "no gap mid-flow"
    );
    assert_eq!(m.state_name(), "awaiting_challenge");
    // With nothing to keep, it is a plain re-authentication.
    let mut fresh = machine();
    fresh.force_refresh(clock.ms(0));
    assert_eq!(fresh.state_name(), "awaiting_challenge");
    let (mut stopped, _) = refused(
        now,
        json(
            401,
            json!({"error": "signer is not authorized for this account"}),
        ),
    );
    assert_eq!(stopped.state_name(), "stopped");
    stopped.force_refresh(clock.ms(1));
    assert_eq!(stopped.state_name(), "awaiting_challenge", "re-armed");
}

#[test]
fn a_venue_echoing_the_delegate_key_is_redacted() {
    let clock = Clock::new();
    let now = clock.ms(0);
    for echoed in [KEY.to_owned(), key_hex().to_owned()] {
        let mut m = machine();
        let _ = m.poll_request(now).unwrap();
        let e = m
            .handle_response(
                now,
                json(
                    400,
                    json!({"error": format!("cannot use key {echoed} for {DEPOSIT}")}),
                ),
            )
            .unwrap_err();
        assert_no_secret(&e.to_string(), &[key_hex()]);
        assert!(e.message().contains("[REDACTED]"), "{e}");
        assert!(e.message().contains(DEPOSIT), "the rest is kept: {e}");
    }
    // With an external signer there is no key here: the text is kept as it is.
    let mut m = external();
    let _ = m.poll_request(now).unwrap();
    let e = m
        .handle_response(
            now,
            json(400, json!({"error": format!("no such account {DEPOSIT}")})),
        )
        .unwrap_err();
    assert!(
        e.message().contains(&format!("no such account {DEPOSIT}")),
        "{e}"
    );
}
