//! Property tests: any sequence of venue answers, failures and clock steps leaves every
//! machine without panics and never lets it hand out an expired credential.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tradeauth::{
    CadenzaConfig, CadenzaMachine, CascadeConfig, CascadeMachine, Error, ErrorKind, HttpResponse,
    Machine, Now, PartnerConfig, PartnerMachine,
};

use common::{BASE_MS, Clock};

#[derive(Clone, Debug)]
enum Step {
    /// Move both clocks forward.
    Advance(u64),
    /// Answer the request in flight (if any) with canned answer number `n`, whose
    /// lifetime (when it carries a token) is `ttl_secs` (negative: already expired).
    Answer {
        n: u8,
        ttl_secs: i64,
    },
    Transport,
    Unauthorized,
    ForceRefresh,
    Logout,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..4_000_000).prop_map(Step::Advance),
        6 => (0u8..12, -120i64..8_000).prop_map(|(n, ttl_secs)| Step::Answer { n, ttl_secs }),
        1 => Just(Step::Transport),
        1 => Just(Step::Unauthorized),
        1 => Just(Step::ForceRefresh),
        1 => Just(Step::Logout),
    ]
}

fn expiry_ms(now: Now, ttl_secs: i64) -> i64 {
    now.unix_ms as i64 + ttl_secs * 1000
}

fn cadenza_answer(n: u8, ttl_secs: i64, now: Now) -> HttpResponse {
    let ok = |access: &str| {
        common::json(
            200,
            json!({"success": true, "data": {
            "accessToken": access, "refreshToken": format!("R-{access}"),
            "expiresAt": expiry_ms(now, ttl_secs)}}),
        )
    };
    match n {
        0..=3 => ok(&format!("A{}", now.unix_ms)),
        4 => common::json(
            401,
            json!({"success": false, "error": {"code": "INVALID_REFRESH_TOKEN", "message": "spent"}}),
        ),
        5 => common::json(
            401,
            json!({"success": false, "error": {"code": "INVALID_CREDENTIALS", "message": "no"}}),
        ),
        6 => HttpResponse::new(503, "busy").with_header("retry-after", "2"),
        7 => HttpResponse::new(200, "{\"success\":tru"),
        8 => common::json(200, json!({"success": false, "data": null})),
        9 => common::json(200, json!({"success": true, "data": {"accessToken": 5}})),
        10 => common::json(
            200,
            json!({"success": true, "data": {"accessToken": "x\ny", "refreshToken": "r", "expiresAt": expiry_ms(now, ttl_secs)}}),
        ),
        _ => HttpResponse::new(307, "").with_header("location", "http://elsewhere/"),
    }
}

const DEPOSIT: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const DELEGATE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn cascade_answer(n: u8, ttl_secs: i64, now: Now) -> HttpResponse {
    let message = json!({"account": DEPOSIT, "nonce": format!("n-{}", now.unix_ms), "timestamp": "2026-01-19T16:33:15.662842941+00:00"});
    match n {
        0..=2 => common::json(
            200,
            json!({"message": message, "server_signature": "sig",
            "signing_payload": message.to_string()}),
        ),
        3..=5 => common::json(
            200,
            json!({"token": format!("T{}", now.unix_ms),
            "claims": {"sub": DEPOSIT, "exp": expiry_ms(now, ttl_secs) / 1000}}),
        ),
        6 => common::json(200, json!({"token": "T-no-claims"})),
        7 => common::json(401, json!({"error": "nonce expired"})),
        8 => common::json(
            401,
            json!({"error": "signer is not authorized for this account"}),
        ),
        9 => HttpResponse::new(429, "slow down"),
        10 => HttpResponse::new(200, "not json"),
        _ => common::json(
            200,
            json!({"message": {"account": "0x0000000000000000000000000000000000000001", "nonce": "x", "timestamp": "t"}, "server_signature": "s", "signing_payload": "{}"}),
        ),
    }
}

/// Drives `machine` through `steps`, checking the invariant after every step.
fn run(
    machine: &mut dyn Machine,
    steps: &[Step],
    answer: fn(u8, i64, Now) -> HttpResponse,
) -> Result<(), TestCaseError> {
    let clock = Clock::new();
    let mut elapsed = 0u64;
    let mut in_flight = false;
    for step in steps {
        let now = clock.ms(elapsed);
        match step {
            Step::Advance(ms) => {
                elapsed += ms;
                machine.handle_timeout(clock.ms(elapsed));
            }
            Step::Answer { n, ttl_secs } => {
                if !in_flight {
                    in_flight = machine.poll_request(now).is_some();
                }
                if in_flight {
                    let _ = machine.handle_response(now, answer(*n, *ttl_secs, now));
                    in_flight = false;
                }
            }
            Step::Transport => {
                if in_flight {
                    machine.handle_transport_error(now, &Error::new(ErrorKind::Transport, "reset"));
                    in_flight = false;
                }
            }
            Step::Unauthorized => machine.handle_unauthorized(now),
            Step::ForceRefresh => machine.force_refresh(now),
            Step::Logout => {
                machine.logout();
                in_flight = false;
            }
        }
        let now = clock.ms(elapsed);
        prop_assert_eq!(
            machine.is_busy(),
            in_flight,
            "busy flag matches what was sent"
        );
        if let Some(credential) = machine.credential(now.instant) {
            prop_assert!(
                credential.is_valid_at(now.instant),
                "expired credential handed out"
            );
            if let Some(expires) = credential.expires_at_ms() {
                // Never past the venue's own expiry either.
                prop_assert!(expires > now.unix_ms, "credential past the venue's expiry");
            }
        }
        while machine.poll_event().is_some() {}
        let _ = machine.poll_timeout();
    }
    let _ = BASE_MS;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn cadenza_never_hands_out_an_expired_credential(steps in prop::collection::vec(step(), 1..60)) {
        let mut machine = CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")).expect("config");
        run(&mut machine, &steps, cadenza_answer)?;
    }

    #[test]
    fn cascade_never_hands_out_an_expired_credential(steps in prop::collection::vec(step(), 1..60)) {
        let mut machine = CascadeMachine::new(CascadeConfig::new(DEPOSIT, DELEGATE_KEY)).expect("config");
        run(&mut machine, &steps, cascade_answer)?;
    }

    #[test]
    fn partner_never_hands_out_an_expired_credential(
        steps in prop::collection::vec(step(), 1..60),
        ttl in 1u64..2_000,
    ) {
        let config = PartnerConfig::new("cid", "secret").with_ttl(Duration::from_secs(ttl));
        let mut machine = PartnerMachine::new(config).expect("config");
        run(&mut machine, &steps, |_, _, _| HttpResponse::new(200, ""))?;
    }
}
