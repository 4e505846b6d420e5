//! Partner machine: local HS256 minting, re-minting in the window and after a 401.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use tradeauth::{
    AuthEvent, ErrorKind, HttpResponse, Machine, PartnerConfig, PartnerMachine, Secret, mint_token,
};

const SECRET_KEY: &str = "demo-secret-key";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The demo client's machine after its first token was minted at `clock.ms(0)` (its
/// events drained): the machine and that token.
fn minted(clock: &Clock) -> (PartnerMachine, tradeauth::Credential) {
    let mut m = PartnerMachine::new(PartnerConfig::new("demo-client", SECRET_KEY)).unwrap();
    m.handle_timeout(clock.ms(0));
    let _ = events(&mut m);
    let first = m.credential(clock.ms(0).instant).unwrap();
    (m, first)
}

#[test]
fn known_answer_matches_pyjwt() {
    // Computed with PyJWT 2.15.1:
    // jwt.encode({"clientId": "demo-client", "iat": 1700000000, "exp": 1700000900},
    //            "demo-secret-key", algorithm="HS256")
    let t = mint_token("demo-client", b"demo-secret-key", 1_700_000_000, 900).unwrap();
    assert_eq!(
        t.expose(),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
         eyJjbGllbnRJZCI6ImRlbW8tY2xpZW50IiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA5MDB9.\
         BE-IC7kS50cqi2J3JifZLuUQwGhIIMVcN5U90W58G3c"
    );
    // Non-ASCII and escaped characters are written the way Python's json.dumps does
    // (ensure_ascii). PyJWT 2.15.1: jwt.encode({"clientId": "d\u00e9mo-\u5ba2\u6237-\U0001F600\"q\\",
    // "iat": 1700000000, "exp": 1700000900}, "demo-secret-key", algorithm="HS256")
    let t = mint_token(
        "d\u{e9}mo-\u{5ba2}\u{6237}-\u{1F600}\"q\\",
        b"demo-secret-key",
        1_700_000_000,
        900,
    )
    .unwrap();
    assert_eq!(
        t.expose(),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
         eyJjbGllbnRJZCI6ImRcdTAwZTltby1cdTViYTJcdTYyMzctXHVkODNkXHVkZTAwXCJxXFwiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0.\
         RyMDareqbXwnnHJXeGjmyO_FaEKvvbXhs_Wv196sAAI"
    );
}

#[test]
fn mint_token_rejects_bad_input() {
    assert_eq!(
        mint_token("", b"k", 1, 1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        mint_token("c", b"", 1, 1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        mint_token("c", b"k", u64::MAX, 1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn mints_on_first_timeout_and_never_sends() {
    let clock = Clock::new();
    let mut m = PartnerMachine::new(PartnerConfig::new("demo-client", SECRET_KEY)).unwrap();
    assert_eq!(m.venue().as_str(), "partner");
    assert_eq!(m.account(), "demo-client");
    assert!(m.credential(clock.ms(0).instant).is_none());
    assert_eq!(m.poll_timeout(), None);
    assert!(m.poll_request(clock.ms(0)).is_none(), "never a request");
    // poll_request did the minting.
    let c = m.credential(clock.ms(0).instant).unwrap();
    assert_eq!(c.header_name(), "authorization");
    assert_eq!(
        c.token(),
        mint_token("demo-client", SECRET_KEY.as_bytes(), 1_700_000_000, 900)
            .unwrap()
            .expose()
    );
    assert_eq!(
        claims(c.token()),
        json!({"clientId": "demo-client", "iat": 1_700_000_000u64, "exp": 1_700_000_900u64})
    );
    assert_eq!(c.expires_at_ms(), Some(1_700_000_900_000));
    assert_eq!(m.issued_at(), Some(1_700_000_000));
    assert_eq!(m.expires_at(), Some(1_700_000_900));
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);
    assert!(!m.is_busy());
    assert_eq!(
        m.handle_response(clock.ms(0), HttpResponse::new(200, "{}"))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    m.handle_transport_error(clock.ms(0), &tradeauth::Error::transport("x"));
    assert!(m.credential(clock.ms(0).instant).is_some());
}

#[test]
fn re_mints_inside_the_window() {
    let clock = Clock::new();
    let (mut m, first) = minted(&clock);
    let t = m.poll_timeout().unwrap();
    assert_eq!(t, clock.base + Duration::from_secs(840), "60 s before exp");
    assert_eq!(
        first.valid_until(),
        Some(clock.base + Duration::from_secs(890))
    );

    m.handle_timeout(clock.at(t - Duration::from_millis(1)));
    assert_eq!(m.credential(t).unwrap().token(), first.token(), "not yet");
    m.handle_timeout(clock.at(t));
    let second = m.credential(t).unwrap();
    assert_ne!(second.token(), first.token());
    assert_eq!(claims(second.token())["iat"], json!(1_700_000_840u64));
    assert_eq!(events(&mut m), vec![AuthEvent::Refreshed]);
    assert_eq!(m.poll_timeout(), Some(t + Duration::from_secs(840)));
}

#[test]
fn short_ttl_window_is_capped_and_never_expired() {
    let clock = Clock::new();
    let mut m =
        PartnerMachine::new(PartnerConfig::new("c", SECRET_KEY).with_ttl(Duration::from_secs(4)))
            .unwrap();
    m.handle_timeout(clock.ms(0));
    // window = min(60 s, 4 s / 4) = 1 s; margin = 400 ms.
    assert_eq!(m.poll_timeout(), Some(clock.base + Duration::from_secs(3)));
    let c = m.credential(clock.ms(0).instant).unwrap();
    let until = clock.base + Duration::from_millis(3600);
    assert_eq!(c.valid_until(), Some(until));
    assert!(m.credential(until - Duration::from_millis(1)).is_some());
    assert!(m.credential(until).is_none());

    // iat is whole seconds: a token minted at .999 s lives 1 ms less; still fine.
    let mut m =
        PartnerMachine::new(PartnerConfig::new("c", SECRET_KEY).with_ttl(Duration::from_secs(1)))
            .unwrap();
    let now = clock.ms(999);
    m.handle_timeout(now);
    let t = m.poll_timeout().unwrap();
    assert!(t > now.instant);
    assert!(m.credential(now.instant).is_some());
    // Waking at poll_timeout repeatedly always moves forward (no busy loop).
    let mut last = t;
    for _ in 0..5 {
        m.handle_timeout(clock.at(last));
        let next = m.poll_timeout().unwrap();
        assert!(next > last);
        last = next;
    }
    // One LoggedIn, then one Refreshed per new second, never one per wake-up.
    let evs = events(&mut m);
    assert_eq!(evs[0], AuthEvent::LoggedIn);
    assert!(evs.len() <= 4, "{evs:?}");
    assert!(last >= clock.base + Duration::from_secs(2));
}

#[test]
fn unauthorized_mints_anew() {
    let clock = Clock::new();
    let (mut m, first) = minted(&clock);

    // In the same second the token would be identical: nothing to do.
    m.handle_unauthorized(clock.ms(500));
    assert_eq!(
        m.credential(clock.ms(500).instant).unwrap().token(),
        first.token()
    );
    assert!(events(&mut m).is_empty());

    let now = clock.secs(30);
    m.handle_unauthorized(now);
    m.handle_unauthorized(now); // twice: harmless
    let second = m.credential(now.instant).unwrap();
    assert_ne!(second.token(), first.token());
    assert_eq!(claims(second.token())["iat"], json!(1_700_000_030u64));
    assert_eq!(events(&mut m), vec![AuthEvent::ReLoggedIn]);
    assert_eq!(
        m.poll_timeout(),
        Some(now.instant + Duration::from_secs(840))
    );
    assert!(m.last_error().is_none());

    m.logout();
    assert!(m.credential(now.instant).is_none());
    m.handle_timeout(now);
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);
}

#[test]
fn config_is_validated_and_redacted() {
    for cfg in [
        PartnerConfig::new("", SECRET_KEY),
        PartnerConfig::new("c\n", SECRET_KEY),
        PartnerConfig::new("c", ""),
        PartnerConfig::new("c", SECRET_KEY).with_ttl(Duration::from_millis(500)),
    ] {
        let e = PartnerMachine::new(cfg).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_no_secret(&e.to_string(), &[SECRET_KEY]);
    }
    let clock = Clock::new();
    let cfg = PartnerConfig::new("demo-client", Secret::from(SECRET_KEY))
        .with_refresh_window(Duration::from_secs(30));
    let mut m = PartnerMachine::new(cfg.clone()).unwrap();
    m.handle_timeout(clock.ms(0));
    let c = m.credential(clock.ms(0).instant).unwrap();
    let token = c.token().to_owned();
    for text in [format!("{cfg:?}"), format!("{m:?}"), format!("{c:?}")] {
        assert_no_secret(&text, &[SECRET_KEY, &token]);
    }
    assert_eq!(
        m.poll_timeout(),
        Some(clock.base + Duration::from_secs(870))
    );
}

/// Every minted token verifies with an independent HS256 implementation (jsonwebtoken)
/// and carries exactly the claims given, whatever the client id holds.
#[test]
fn minted_tokens_verify_with_jsonwebtoken() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Claims {
        client_id: String,
        iat: u64,
        exp: u64,
    }
    let secret = b"demo-partner-secret-key-0123456789abcdef";
    for client_id in [
        "demo-client",
        "quote\"and\\slash",
        "tab\tnew\nline\u{1}",
        "caf\u{e9}-\u{1f511}",
    ] {
        let token = tradeauth::mint_token(client_id, secret, 1_700_000_000, 900).expect("mint");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let decoded = decode::<Claims>(
            token.expose(),
            &DecodingKey::from_secret(secret),
            &validation,
        )
        .expect("verifies");
        assert_eq!(decoded.claims.client_id, client_id);
        assert_eq!(
            (decoded.claims.iat, decoded.claims.exp),
            (1_700_000_000, 1_700_000_900)
        );
        let wrong = decode::<Claims>(
            token.expose(),
            &DecodingKey::from_secret(b"other"),
            &validation,
        );
        assert!(wrong.is_err(), "a wrong key does not verify");
    }
}

/// Minting needs no request: the status is logged out until the first mint, then active,
/// and never asks the driver to send anything.
#[test]
fn status_and_capabilities() {
    let clock = Clock::new();
    let mut m =
        tradeauth::PartnerMachine::new(tradeauth::PartnerConfig::new("client", "key")).unwrap();
    assert_eq!(m.status(), tradeauth::MachineStatus::LoggedOut);
    m.handle_timeout(clock.secs(0));
    assert_eq!(m.status(), tradeauth::MachineStatus::Active);
    assert!(!m.status().wants_request());
    m.logout();
    assert_eq!(m.status(), tradeauth::MachineStatus::LoggedOut);
    let c = m.capabilities();
    assert!(c.renewable && !c.shareable && !c.ws_auth && !c.public);
    assert!(!m.holds_refresh_token());
}
