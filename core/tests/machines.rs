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
