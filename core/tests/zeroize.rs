//! Secrets are wiped before their memory is freed. A scanning global allocator looks for
//! a planted marker in every block handed back to it; the control case shows it catches
//! a plain `String`, so a zero count for our types means they zeroized.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tradeauth::{CadenzaConfig, CadenzaMachine, Credential, Machine, Secret};

const MARKER: &str = "ZEROIZE-MARKER-93c1f0a7";

/// Counts freed blocks that still hold the marker.
struct Scanning;

static FOUND: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every allocation to `System`; `dealloc` only reads the block it is
// about to free, within its layout. `realloc` is the trait's default (alloc + copy +
// dealloc), so a moved block is scanned too.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so a block never shows a marker left behind by an earlier one in bytes
        // it did not write: what the scan finds was put there during the block's life.
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes until System frees it.
        let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
        if block.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
            FOUND.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// How many marker-holding blocks were freed while `f` ran.
fn freed_with_marker(f: impl FnOnce()) -> usize {
    let before = FOUND.load(Ordering::SeqCst);
    f();
    FOUND.load(Ordering::SeqCst) - before
}

// One test function: the counter is global, and parallel tests would mix their frees.
#[test]
fn secrets_are_zeroized_before_they_are_freed() {
    // Control: a plain String is freed with its contents, and the scanner sees it.
    let plain = String::from(MARKER);
    assert_eq!(freed_with_marker(|| drop(plain)), 1, "the scanner works");

    let secret = Secret::new(String::from(MARKER));
    assert_eq!(freed_with_marker(|| drop(secret)), 0, "Secret");

    let token = Secret::new(String::from(MARKER));
    let credential = Credential::bearer(&token, None, None).expect("valid token");
    assert_eq!(
        freed_with_marker(|| drop((token, credential))),
        0,
        "Credential"
    );

    let config = CadenzaConfig::new("a@b.c", String::from(MARKER));
    assert_eq!(freed_with_marker(|| drop(config)), 0, "CadenzaConfig");

    // A machine holding a password, an access token and a refresh token.
    let clock = common::Clock::new();
    let mut machine =
        CadenzaMachine::new(CadenzaConfig::new("a@b.c", String::from(MARKER))).expect("config");
    let now = clock.ms(0);
    let _login = machine.poll_request(now).expect("login request");
    let answer = common::json(
        200,
        json!({"success": true, "data": {
        "accessToken": MARKER, "refreshToken": format!("{MARKER}-r"),
        "expiresAt": common::BASE_MS + 3_600_000}}),
    );
    machine.handle_response(now, answer).expect("login");
    assert!(machine.credential(now.instant).is_some());
    assert_eq!(freed_with_marker(|| drop(machine)), 0, "CadenzaMachine");

    // logout() wipes in place too, before anything is freed.
    let mut machine = CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")).expect("config");
    let _login = machine.poll_request(now).expect("login request");
    let answer = common::json(
        200,
        json!({"success": true, "data": {
        "accessToken": MARKER, "refreshToken": "r", "expiresAt": common::BASE_MS + 3_600_000}}),
    );
    machine.handle_response(now, answer).expect("login");
    assert_eq!(freed_with_marker(|| machine.logout()), 0, "logout");
    assert!(machine.credential(now.instant).is_none());
}
