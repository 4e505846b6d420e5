//! All four machines behind the one trait: what a venue-neutral driver relies on.

mod common;

use common::*;
use serde_json::json;
use tradeauth::{
    CadenzaConfig, CadenzaMachine, CascadeConfig, CascadeMachine, ErrorKind, ExchangeConfig,
    ExchangeMachine, Machine, PartnerConfig, PartnerMachine, Venue,
};

fn all() -> Vec<Box<dyn Machine>> {
    vec![
        Box::new(CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")).unwrap()),
        Box::new(PartnerMachine::new(PartnerConfig::new("client", "key")).unwrap()),
        Box::new(
            CascadeMachine::new(CascadeConfig::new(
                "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            ))
            .unwrap(),
        ),
        Box::new(
            ExchangeMachine::new(ExchangeConfig::trader(
                "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f",
            ))
            .unwrap(),
        ),
    ]
}

#[test]
fn trait_objects_and_labels() {
    let venues: Vec<(Venue, String)> = all()
        .iter()
        .map(|m| (m.venue(), m.account().to_owned()))
        .collect();
    assert_eq!(
        venues,
        vec![
            (Venue::Cadenza, "a@b.c".into()),
            (Venue::Partner, "client".into()),
            (
                Venue::Cascade,
                "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into()
            ),
            (Venue::Exchange, "trader".into()),
        ]
    );
    assert_eq!(Venue::Cascade.to_string(), "cascade");
    assert_eq!(Venue::Cadenza.display_name(), "Cadenza");
}

#[test]
fn machines_are_send() {
    fn is_send<T: Send + 'static>(_: &T) {}
    for m in all() {
        is_send(&m);
    }
}

#[test]
fn neutral_calls_are_harmless_everywhere() {
    let clock = Clock::new();
    for mut m in all() {
        let now = clock.ms(0);
        // Responses with nothing in flight are refused without changing anything.
        let e = m
            .handle_response(now, tradeauth::HttpResponse::new(200, "{}"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{:?}", m.venue());
        m.handle_transport_error(now, &tradeauth::Error::transport("x"));
        m.handle_timeout(now);
        m.handle_timeout(now);
        let _ = m.poll_request(now);
        m.logout();
        m.logout();
        assert!(m.last_error().is_none());
        while m.poll_event().is_some() {}
    }
}

#[test]
fn ws_only_where_the_venue_has_one() {
    let clock = Clock::new();
    for mut m in all() {
        let now = clock.ms(0);
        let _ = m.poll_request(now);
        let result = m.ws_auth_message(now.instant, json!(1));
        match m.venue() {
            Venue::Cadenza | Venue::Partner => {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidArgument);
                assert_eq!(
                    m.handle_ws_reply(now, r#"{"type":"authenticated"}"#),
                    tradeauth::WsAuthReply::Unrelated
                );
            }
            // Cascade has no token yet; Exchange's key is static.
            Venue::Cascade => assert_eq!(result.unwrap_err().kind(), ErrorKind::Unauthorized),
            Venue::Exchange => assert!(result.is_ok()),
        }
    }
}

#[test]
fn debug_says_which_machine_and_account_and_no_secret() {
    // A `Debug` that printed nothing would hide no secret either: these check that the
    // redacted output still tells an operator what they are looking at.
    let key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            format!(
                "{:?}",
                CadenzaMachine::new(CadenzaConfig::new("a@b.c", "hunter2-pw")).unwrap()
            ),
            "CadenzaMachine",
            "a@b.c",
            "hunter2-pw",
        ),
        (
            format!(
                "{:?}",
                PartnerMachine::new(PartnerConfig::new("client", "partner-secret")).unwrap()
            ),
            "PartnerMachine",
            "client",
            "partner-secret",
        ),
        (
            format!(
                "{:?}",
                CascadeMachine::new(CascadeConfig::new(
                    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                    key,
                ))
                .unwrap()
            ),
            "CascadeMachine",
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            key,
        ),
        (
            format!(
                "{:?}",
                ExchangeMachine::new(ExchangeConfig::trader(
                    "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"
                ))
                .unwrap()
            ),
            "ExchangeMachine",
            "trader",
            "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f",
        ),
    ];
    for (debug, name, account, secret) in cases {
        assert!(debug.starts_with(name), "{debug}");
        assert!(debug.contains(account), "{debug}");
        assert!(!debug.contains(secret), "{debug}");
    }
    let snapshot = tradeauth::SessionSnapshot {
        token: tradeauth::Secret::from("eyJ.snapshot.token"),
        expires_at_ms: 1_700_000_360_000,
        obtained_at_ms: 1_700_000_000_000,
        refresh_token: Some(tradeauth::Secret::from("refresh-secret")),
        claims: None,
    };
    let debug = format!("{snapshot:?}");
    assert!(debug.starts_with("SessionSnapshot"), "{debug}");
    assert!(debug.contains("1700000360000") && debug.contains("has_refresh_token: true"));
    assert!(!debug.contains("eyJ.snapshot.token") && !debug.contains("refresh-secret"));
}

#[test]
fn what_a_venue_does_not_have_is_refused_not_faked() {
    let clock = Clock::new();
    let snapshot = tradeauth::SessionSnapshot {
        token: tradeauth::Secret::from("eyJ.a.b"),
        expires_at_ms: BASE_MS + 3_600_000,
        obtained_at_ms: BASE_MS,
        refresh_token: None,
        claims: None,
    };
    for mut m in all() {
        let venue = m.venue();
        let shares = matches!(venue, Venue::Cadenza | Venue::Cascade);
        // What a driver is told matches what the machine does.
        assert_eq!(m.capabilities().shareable, shares, "{venue}");
        assert_eq!(
            m.capabilities().ws_auth,
            matches!(venue, Venue::Cascade | Venue::Exchange),
            "{venue}"
        );
        if !shares {
            // Nothing to share: no snapshot, and a restore is refused (never a silent Ok
            // that would leave a process thinking it adopted a session).
            assert!(m.snapshot(clock.ms(0).instant).is_none(), "{venue}");
            let err = m.restore(clock.ms(0), &snapshot).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{venue}");
            assert!(err.message().contains("cannot be restored"), "{venue}");
        }
        let has_ws = matches!(venue, Venue::Cascade | Venue::Exchange);
        if !has_ws {
            let err = m
                .ws_auth_message(clock.ms(0).instant, json!(1))
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{venue}");
            assert!(err.message().contains("no WebSocket"), "{venue}");
            // Not even for a credential handed in from elsewhere.
            let given =
                tradeauth::Credential::bearer(&tradeauth::Secret::from("eyJ.a.b"), None, None)
                    .unwrap();
            let err = m.ws_auth_message_for(&given, json!(1)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{venue}");
            assert!(err.message().contains("no WebSocket"), "{venue}");
            assert_eq!(
                m.handle_ws_reply(clock.ms(0), r#"{"type":"authenticated"}"#),
                tradeauth::WsAuthReply::Unrelated,
                "{venue}"
            );
        }
    }
}

#[test]
fn a_forced_refresh_of_a_minting_venue_mints_anew() {
    // Partner has no refresh call: the default forced refresh (as after a 401) mints a
    // fresh token at once instead of keeping the old one to its window.
    let clock = Clock::new();
    let mut m = PartnerMachine::new(PartnerConfig::new("client", "key")).unwrap();
    assert!(
        m.poll_request(clock.secs(0)).is_none(),
        "minting needs no request"
    );
    m.handle_timeout(clock.secs(0));
    let first = m.credential(clock.secs(0).instant).expect("minted");
    let later = clock.secs(5);
    m.force_refresh(later);
    m.handle_timeout(later);
    let second = m.credential(later.instant).expect("re-minted");
    assert_ne!(
        first.token(),
        second.token(),
        "a forced refresh kept the old token"
    );
}

#[test]
fn status_says_whether_a_request_may_follow() {
    use tradeauth::MachineStatus::*;
    for (status, wants) in [
        (LoggedOut, true),
        (LoggingIn, true),
        (Completing, true),
        (Refreshing, true),
        (Active, false),
        (Stopped, false),
    ] {
        assert_eq!(status.wants_request(), wants, "{status:?}");
    }
}

#[test]
fn venue_names_for_c() {
    for venue in [
        Venue::Cadenza,
        Venue::Partner,
        Venue::Cascade,
        Venue::Exchange,
    ] {
        assert_eq!(venue.as_cstr().to_str(), Ok(venue.as_str()));
    }
}
