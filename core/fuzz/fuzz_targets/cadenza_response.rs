//! Any Cadenza answer (status, headers, body) to a login or a refresh: no panic, and a
//! credential, if any, is valid and never past the venue's expiry.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tradeauth::{CadenzaConfig, CadenzaMachine, HttpResponse, Machine, Now};

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(4));
    let status = u16::from_le_bytes([*head.first().unwrap_or(&200), *head.get(1).unwrap_or(&0)]);
    let refresh_first = head.get(2).is_some_and(|b| b & 1 == 1);
    let retry_after = head.get(3).map(|b| b.to_string()).unwrap_or_default();
    let base = Instant::now();
    let now = Now::new(base, 1_700_000_000_000);
    let Ok(mut machine) = CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")) else {
        return;
    };
    if refresh_first {
        // Reach the refresh path with a well-formed login first.
        let _ = machine.poll_request(now);
        let login = format!(
            r#"{{"success":true,"data":{{"accessToken":"a","refreshToken":"r","expiresAt":{}}}}}"#,
            now.unix_ms + 3_600_000
        );
        let _ = machine.handle_response(now, HttpResponse::new(200, login));
        machine.force_refresh(now);
    }
    if machine.poll_request(now).is_some() {
        let response = HttpResponse::new(status, body.to_vec()).with_header("retry-after", retry_after);
        let _ = machine.handle_response(now, response);
    }
    for later in [0u64, 1, 60_000, 7_200_000] {
        let at = Now::new(base + Duration::from_millis(later), now.unix_ms + later);
        machine.handle_timeout(at);
        if let Some(credential) = machine.credential(at.instant) {
            assert!(credential.is_valid_at(at.instant));
            assert!(credential.expires_at_ms().is_none_or(|e| e > at.unix_ms));
        }
        while machine.poll_event().is_some() {}
    }
});
