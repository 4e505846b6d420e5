//! Exchange machine: static key/token, format checks, 401 handling, WebSocket messages.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tradeauth::machine::exchange::{self as exchange, parse_ws_reply, validate_api_key};
use tradeauth::{
    AuthEvent, Credential, ErrorKind, ExchangeConfig, ExchangeMachine, HttpResponse, Machine,
    MachineStatus, Secret, WsAuthReply,
};

const KEY: &str = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f";
const ADMIN: &str = "admin-token-Zq9";

#[test]
fn key_format() {
    validate_api_key(KEY).unwrap();
    let cases = [
        ("", "start with `exch_`"),
        ("1d4208be6fa84b8cb0a2e5cfa9508d5f", "start with `exch_`"),
        (
            "EXCH_1d4208be6fa84b8cb0a2e5cfa9508d5f",
            "start with `exch_`",
        ),
        ("exch_1D4208BE6FA84B8CB0A2E5CFA9508D5F", "lowercase"),
        ("exch_1d4208be6fa84b8cb0a2e5cfa9508d5", "has 31"),
        ("exch_1d4208be6fa84b8cb0a2e5cfa9508d5f0", "has 33"),
        ("exch_1d4208be-6fa8-4b8c-b0a2-e5cfa9508d5f", "hyphens"),
        (
            "exch_1d4208be6fa84b8cb0a2e5cfa9508d5g",
            "not a lowercase hex digit",
        ),
        (
            "exch_1d4208be6fa84b8cb0a2e5cfa9508d5\n",
            "not a lowercase hex digit",
        ),
        (
            " exch_1d4208be6fa84b8cb0a2e5cfa9508d5f",
            "start with `exch_`",
        ),
    ];
    for (key, expect) in cases {
        let e = ExchangeMachine::new(ExchangeConfig::trader(key)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{key:?}");
        assert!(e.message().contains(expect), "{key:?}: {e}");
        if key.len() > 5 {
            assert_no_secret(&e.to_string(), &[key, key.trim_start_matches("exch_")]);
        }
    }
}

#[test]
fn trader_credential_never_expires_and_sends_nothing() {
    let clock = Clock::new();
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    assert_eq!(m.venue().as_str(), "exchange");
    assert_eq!(m.account(), "trader");
    assert_eq!(m.role(), "trader");
    let c = m.credential(clock.ms(0).instant).unwrap();
    assert_eq!(c.header_name(), "x-api-key");
    assert_eq!(c.header_value(), KEY);
    assert_eq!(c.token(), KEY);
    assert_eq!(c.valid_until(), None);
    assert!(
        m.credential(clock.secs(10 * 365 * 24 * 3600).instant)
            .is_some()
    );
    m.handle_timeout(clock.ms(0));
    assert!(m.poll_request(clock.ms(0)).is_none());
    assert_eq!(m.poll_timeout(), None);
    assert!(!m.is_busy());
    assert!(
        m.handle_response(clock.ms(0), HttpResponse::new(200, ""))
            .is_err()
    );
    m.handle_transport_error(clock.ms(0), &tradeauth::Error::transport("x"));
    assert!(events(&mut m).is_empty());
}

#[test]
fn admin_and_public() {
    let clock = Clock::new();
    let m = ExchangeMachine::new(ExchangeConfig::admin(ADMIN)).unwrap();
    assert_eq!(m.account(), "admin");
    let c = m.credential(clock.ms(0).instant).unwrap();
    assert_eq!(c.header_name(), "authorization");
    assert_eq!(c.header_value(), format!("Bearer {ADMIN}"));
    assert_eq!(c.token(), ADMIN);
    assert_eq!(
        m.ws_auth_message(clock.ms(0).instant, json!(1))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    for bad in ["", "two words", "line\nbreak", "tab\t", "nul\u{0}"] {
        let e = ExchangeMachine::new(ExchangeConfig::admin(bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert!(e.message().contains("admin token"), "{e}");
    }

    let mut p = ExchangeMachine::new(ExchangeConfig::public()).unwrap();
    assert_eq!(p.account(), "public");
    assert!(p.credential(clock.ms(0).instant).is_none());
    assert!(p.ws_auth_message(clock.ms(0).instant, json!(1)).is_err());
    p.handle_unauthorized(clock.ms(0));
    assert_eq!(p.last_error().unwrap().kind(), ErrorKind::Unauthorized);
    assert!(p.last_error().unwrap().message().contains("public"));
}

#[test]
fn unauthorized_withholds_until_logout() {
    let clock = Clock::new();
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    assert!(!m.is_withheld());
    m.handle_unauthorized(clock.ms(0));
    m.handle_unauthorized(clock.ms(1)); // twice: one event
    assert!(m.is_withheld());
    assert!(m.credential(clock.ms(2).instant).is_none());
    let e = m.last_error().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(e.status(), Some(401));
    assert!(!e.is_retryable());
    assert!(e.message().contains("re-provision"));
    assert_no_secret(&e.to_string(), &[KEY]);
    let evs = events(&mut m);
    assert_eq!(evs.len(), 1);
    assert!(matches!(
        evs[0],
        AuthEvent::Failed {
            kind: ErrorKind::Unauthorized,
            ..
        }
    ));
    assert!(
        m.poll_request(clock.ms(3)).is_none(),
        "a permanent key cannot be renewed"
    );
    assert_eq!(
        m.ws_auth_message(clock.ms(3).instant, json!(null))
            .unwrap_err()
            .kind(),
        ErrorKind::Unauthorized
    );
    m.logout();
    assert!(m.last_error().is_none());
    assert!(!m.is_withheld());
    assert_eq!(
        m.credential(clock.ms(4).instant).unwrap().header_value(),
        KEY
    );
}

#[test]
fn websocket() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    let msg = m.ws_auth_message(now.instant, json!(7)).unwrap();
    assert_eq!(msg, format!(r#"{{"op":"authenticate","api_key":"{KEY}"}}"#));
    let c = m.credential(now.instant).unwrap();
    assert_eq!(exchange::ws_auth_message(&c).unwrap(), msg);
    let bearer = Credential::bearer(&Secret::from("t"), None, None).unwrap();
    assert!(exchange::ws_auth_message(&bearer).is_err());

    let ok = r#"{"type":"authenticated","trader_id":"9d64e278-8b56-46e9-9cab-18c5b22f2fb9","username":"team-alpha"}"#;
    match parse_ws_reply(ok) {
        WsAuthReply::Authenticated { detail } => assert_eq!(detail["username"], "team-alpha"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_ws_reply(r#"{"type":"error","message":"invalid api key"}"#),
        WsAuthReply::Rejected {
            message: "invalid api key".into()
        }
    );
    assert_eq!(
        parse_ws_reply(r#"{"type":"snapshot","bids":[]}"#),
        WsAuthReply::Unrelated
    );
    assert_eq!(parse_ws_reply("[1,2]"), WsAuthReply::Unrelated);
    assert_eq!(parse_ws_reply("garbage"), WsAuthReply::Unrelated);

    // The username becomes the account label.
    assert!(matches!(
        m.handle_ws_reply(now, ok),
        WsAuthReply::Authenticated { .. }
    ));
    assert_eq!(m.account(), "team-alpha");
    // An order-level error is not a key rejection.
    let _ = m.handle_ws_reply(now, r#"{"type":"error","message":"insufficient balance"}"#);
    assert!(m.credential(now.instant).is_some());
    // "invalid api key" is.
    let _ = m.handle_ws_reply(now, r#"{"type":"error","message":"invalid api key"}"#);
    assert!(m.credential(now.instant).is_none());
}

#[test]
fn nothing_prints_a_secret() {
    let clock = Clock::new();
    for cfg in [ExchangeConfig::trader(KEY), ExchangeConfig::admin(ADMIN)] {
        let mut m = ExchangeMachine::new(cfg.clone()).unwrap();
        let c = m.credential(clock.ms(0).instant).unwrap();
        m.handle_unauthorized(clock.ms(0));
        for text in [
            format!("{cfg:?}"),
            format!("{m:?}"),
            format!("{c:?}"),
            format!("{:?}", m.last_error()),
            format!("{:?}", events(&mut m)),
        ] {
            assert_no_secret(&text, &[KEY, ADMIN]);
        }
    }
    let _ = Duration::ZERO;
}

#[test]
fn a_config_from_what_the_caller_passed() {
    let key = || Some(Secret::from(KEY));
    let admin = || Some(Secret::from(ADMIN));
    assert!(matches!(
        ExchangeConfig::from_parts(key(), None),
        Ok(ExchangeConfig::Trader { .. })
    ));
    assert!(matches!(
        ExchangeConfig::from_parts(None, admin()),
        Ok(ExchangeConfig::Admin { .. })
    ));
    assert!(matches!(
        ExchangeConfig::from_parts(None, None),
        Ok(ExchangeConfig::Public)
    ));
    let e = ExchangeConfig::from_parts(key(), admin()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("not both"), "{e}");
    assert_no_secret(&e.to_string(), &[KEY, ADMIN]);
}

/// What each role can do, as a driver asks it (no venue or role names), its status
/// before and after a rejection, and the WebSocket message for a given credential.
#[test]
fn capabilities_status_and_ws_message_per_role() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut trader = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    let admin = ExchangeMachine::new(ExchangeConfig::admin(ADMIN)).unwrap();
    let public = ExchangeMachine::new(ExchangeConfig::public()).unwrap();
    let caps = |m: &ExchangeMachine| {
        let c = m.capabilities();
        (c.renewable, c.shareable, c.ws_auth, c.public)
    };
    assert_eq!(caps(&trader), (false, false, true, false));
    assert_eq!(caps(&admin), (false, false, false, false));
    assert_eq!(caps(&public), (false, false, false, true));
    for m in [&trader, &admin, &public] {
        assert_eq!(m.status(), MachineStatus::Active, "{}", m.role());
        assert!(!m.status().wants_request());
    }

    let key = trader.credential(now.instant).unwrap();
    let other = Credential::new("x-api-key", Secret::from(KEY), None, None).unwrap();
    assert_eq!(
        trader.ws_auth_message_for(&other, json!(1)).unwrap(),
        exchange::ws_auth_message(&key).unwrap()
    );
    for m in [&admin, &public] {
        let e = m.ws_auth_message_for(&other, json!(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("traders only"), "{e}");
    }

    trader.handle_unauthorized(now);
    assert_eq!(trader.status(), MachineStatus::Stopped);
    trader.logout();
    assert_eq!(trader.status(), MachineStatus::Active);
}

#[test]
fn websocket_rules_hold_trading_ops_and_own_channels_for_auth() {
    for private in [
        json!({"op": "place_order"}),
        json!({"op": "cancel_order", "order_id": "x"}),
        json!({"op": "subscribe", "channel": "orders"}),
        json!({"op": "unsubscribe", "channel": "fills"}),
        json!({"op": "something_new"}),
    ] {
        assert!(exchange::ws_is_private(&private), "{private}");
    }
    for public in [
        json!({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}),
        json!({"op": "unsubscribe", "channel": "orderbook"}),
        json!({"op": "subscribe"}),
        json!({"op": "ping"}),
        json!({"op": "authenticate", "api_key": "k"}),
        json!({"no_op": 1}),
    ] {
        assert!(!exchange::ws_is_private(&public), "{public}");
    }
    // Every role has the same rules (an admin's trading op is refused, never sent).
    for config in [
        ExchangeConfig::trader(KEY),
        ExchangeConfig::admin("admin-token"),
        ExchangeConfig::public(),
    ] {
        let rules = ExchangeMachine::new(config).unwrap().ws_rules();
        assert!((rules.is_private)(&json!({"op": "place_order"})));
        assert!(!(rules.is_private)(&json!({"op": "ping"})));
        assert!(!(rules.refuses_credential)(
            &json!({"type": "error", "message": "invalid api key"})
        ));
        assert!((rules.with_id)(&json!({"op": "ping"}), json!(1)).is_none());
        assert!((rules.reply_id)(&json!({"type": "pong"})).is_none());
    }
}

#[test]
fn websocket_auth_reply_is_only_an_error_about_the_key() {
    let clock = Clock::new();
    let now = clock.ms(0);
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    let id = json!("tradeauth-auth-1");
    // An error about a public subscription, while the auth reply is awaited: not it.
    for other in [
        r#"{"type":"error","message":"market is required"}"#,
        r#"{"type":"subscribed","channel":"orderbook"}"#,
    ] {
        assert_eq!(
            m.handle_ws_auth_reply(now, other, &id),
            WsAuthReply::Unrelated,
            "{other}"
        );
    }
    assert!(m.credential(now.instant).is_some());
    for about_the_key in [
        "invalid api key",
        "missing authentication",
        "bad api_key",
        "Unauthorized",
    ] {
        let text = json!({"type": "error", "message": about_the_key}).to_string();
        assert_eq!(
            m.handle_ws_auth_reply(now, &text, &id),
            WsAuthReply::Rejected {
                message: about_the_key.into()
            }
        );
    }
    let mut m = ExchangeMachine::new(ExchangeConfig::trader(KEY)).unwrap();
    assert!(matches!(
        m.handle_ws_auth_reply(now, r#"{"type":"authenticated","username":"u"}"#, &id),
        WsAuthReply::Authenticated { .. }
    ));
    assert_eq!(m.account(), "u");
    let _ = m.handle_ws_auth_reply(now, r#"{"type":"error","message":"invalid api key"}"#, &id);
    assert!(
        m.credential(now.instant).is_none(),
        "a refused key is withheld"
    );
}
