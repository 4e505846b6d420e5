//! Any Cascade challenge or session answer: no panic, no expired credential, and a
//! challenge for another account is never signed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tradeauth::{CascadeConfig, CascadeMachine, HttpResponse, Machine, Now};

const DEPOSIT: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fuzz_target!(|data: &[u8]| {
    let (challenge, session) = match data.iter().position(|b| *b == 0) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &[][..]),
    };
    let base = Instant::now();
    let now = Now::new(base, 1_700_000_000_000);
    let Ok(mut machine) = CascadeMachine::new(CascadeConfig::new(DEPOSIT, KEY)) else {
        return;
    };
    if machine.poll_request(now).is_some() {
        let _ = machine.handle_response(now, HttpResponse::new(200, challenge.to_vec()));
    }
    if let Some(post) = machine.poll_request(now) {
        // Whatever the challenge said, the answer names our account only.
        if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&post.body)
            && let Some(account) = body["message"]["account"].as_str()
        {
            assert!(account.eq_ignore_ascii_case(DEPOSIT));
        }
        let _ = machine.handle_response(now, HttpResponse::new(200, session.to_vec()));
    }
    for later in [0u64, 1, 300_000, 7_200_000] {
        let at = Now::new(base + Duration::from_millis(later), now.unix_ms + later);
        machine.handle_timeout(at);
        if let Some(credential) = machine.credential(at.instant) {
            assert!(credential.is_valid_at(at.instant));
        }
        while machine.poll_event().is_some() {}
    }
});
