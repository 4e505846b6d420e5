//! Secrets are wiped before their memory is freed. A scanning global allocator looks for
//! a planted marker in every block handed back to it; the control case shows it catches
//! a plain `String`, so a zero count for our types means they zeroized.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tradeauth::{
    CadenzaConfig, CadenzaMachine, CascadeConfig, CascadeMachine, Credential, ExchangeConfig,
    Machine, Method, Options, Secret, Session,
};

const MARKER: &str = "ZEROIZE-MARKER-93c1f0a7";

/// The second needle: the simulator's demo trader key, which the driver section sends
/// over real TLS (it must be a valid `exch_` key, so it cannot be the marker).
const API_KEY: &str = tradeauth_sim::demo::EXCHANGE_API_KEY;

/// Counts freed blocks that still hold the marker or the API key.
struct Scanning;

static FOUND: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Set on the in-process simulator's threads: the venue's copies of the key are not
    // the library's. A const-initialised Cell: reading it never allocates.
    static VENUE_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn holds_needle(block: &[u8]) -> bool {
    [MARKER.as_bytes(), API_KEY.as_bytes()]
        .iter()
        .any(|needle| block.windows(needle.len()).any(|w| w == *needle))
}

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
        let venue = VENUE_THREAD.try_with(Cell::get).unwrap_or(false);
        if !venue && holds_needle(block) {
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

    cascade_answer_is_wiped_when_the_session_opens(&clock);
    driver_requests_free_no_block_holding_the_key();
}

/// Cascade's signed challenge answer (a proof the venue accepts until its nonce expires)
/// is held between the challenge and the session; opening the session frees it wiped.
fn cascade_answer_is_wiped_when_the_session_opens(clock: &common::Clock) {
    // Hardhat / anvil test accounts #1 (deposit) and #0 (delegate key): public test keys.
    let deposit = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let mut machine = CascadeMachine::new(CascadeConfig::new(deposit, key)).expect("config");
    let now = clock.ms(0);
    let _challenge = machine.poll_request(now).expect("challenge request");
    let timestamp = "2026-01-19T16:33:15Z";
    let payload = json!({"account": deposit, "nonce": MARKER, "timestamp": timestamp});
    let challenge = common::json(
        200,
        json!({"message": {"account": deposit, "nonce": MARKER, "timestamp": timestamp},
        "server_signature": "sig", "signing_payload": payload.to_string()}),
    );
    machine.handle_response(now, challenge).expect("challenge");
    let answer = machine.poll_request(now).expect("the signed answer");
    assert!(String::from_utf8_lossy(&answer.body).contains(MARKER));
    let session = common::json(200, json!({"token": "tok"}));
    assert_eq!(
        freed_with_marker(|| machine.handle_response(now, session).expect("session")),
        0,
        "the prepared answer"
    );
    assert!(machine.credential(now.instant).is_some());
    drop(answer);
}

/// A real `send()` against the simulator over TLS: once the connection is up, requests
/// carrying the API key free no block that still holds it — neither the library's own
/// copies (the request's header, the header value handed to reqwest, the answer's body)
/// nor, as measured here, the HTTP stack's per-request ones. What the stack keeps for
/// the connection's life (its write buffer, rustls' record buffers) is named in
/// RELIABILITY.md's secrets section.
fn driver_requests_free_no_block_holding_the_key() {
    let venue = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(|| VENUE_THREAD.with(|flag| flag.set(true)))
        .build()
        .expect("simulator runtime");
    let sim = venue
        .block_on(tradeauth_sim::Sim::start(
            tradeauth_sim::SimConfig::default(),
        ))
        .expect("simulator starts");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let options = Options::new()
        .base_url(sim.urls().venue(tradeauth_sim::Venue::Exchange))
        .add_root_pem(sim.ca_pem());
    let session = client.block_on(async {
        Session::exchange(ExchangeConfig::trader(API_KEY), options).expect("session")
    });
    let send = || {
        let response = client
            .block_on(session.request(Method::Get, "/api/v1/positions").send())
            .expect("request");
        assert_eq!(response.status, 200);
    };
    // Warm-up: the TLS handshake and the pooled connection.
    send();
    let freed = freed_with_marker(|| {
        for _ in 0..20 {
            send();
        }
    });
    assert_eq!(freed, 0, "blocks holding the API key freed by 20 requests");
    drop(session);
    drop(sim);
}
