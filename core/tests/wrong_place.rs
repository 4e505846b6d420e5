//! Issue #12, "no credential ever goes to the wrong place", as a hostile venue or a
//! careless caller would test it: WebSocket paths that leave the venue's origin, venue
//! texts that echo the credential, URLs with userinfo in `Debug`, and a file store in a
//! directory or behind symlinks that another local user controls.

mod support;

use tradeauth::store::FileStore;
use tradeauth::{ErrorKind, ExchangeConfig, ExchangeMachine, Machine, Now, Options, WsAuthReply};
use tradeauth_sim::{Fault, Venue, demo};

/// `host:port` of a simulator URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("https://")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_ws_refuses_paths_that_leave_the_origin() {
    let (sim, session) = support::on_demand(Venue::Cascade).await;
    let other = authority(&sim.urls().exchange).to_owned();
    for path in [
        format!("//{other}/ws"),
        format!("wss://{other}/ws"),
        format!("https://{other}/ws"),
        format!("http://{other}/ws"),
        "//evil.example/ws".to_owned(),
    ] {
        match session.connect_ws(&path).await {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{path}: {e}");
                assert!(e.message().contains("venue host"), "{path}: {e}");
            }
            Ok(_) => panic!("{path}: a WebSocket to another origin was opened"),
        }
        match session.connect_ws_authenticated(&path).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{path}: {e}"),
            Ok(_) => panic!("{path}: the credential was sent to another origin"),
        }
    }
    assert_eq!(
        sim.stats().exchange.requests,
        0,
        "nothing reached the other venue"
    );
    assert_eq!(sim.stats().cascade.logins, 0, "no login for a refused path");
    // The venue's own path, absolute or relative, still works.
    let (_ws, detail) = session
        .connect_ws_authenticated("/ws")
        .await
        .expect("own origin");
    assert_eq!(detail["authenticated"], true);
    let own = format!("wss://{}/ws", authority(&sim.urls().cascade));
    assert!(
        session.connect_ws(&own).await.is_err(),
        "wss:// is not the https origin"
    );
}

/// The same for HTTP: a caller's request path that names another host (absolute, or
/// scheme-relative) is refused before any credential is attached, with or without a query
/// (the query is merged into the URL first, which must not turn `https://other/x?a=1`
/// into the venue's own `/x?a=1` behind the caller's back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_paths_that_leave_the_origin_are_refused() {
    let (sim, session) = support::on_demand(Venue::Exchange).await;
    let other = authority(&sim.urls().cascade).to_owned();
    for path in [
        format!("//{other}/account/orders"),
        format!("https://{other}/account/orders"),
        format!("http://{other}/account/orders"),
        "//evil.example/api/v1/positions".to_owned(),
    ] {
        for query in [false, true] {
            let mut request = session.request(tradeauth::Method::Get, path.as_str());
            if query {
                request = request.query("symbol", "BTC");
            }
            match request.send().await {
                Err(e) => {
                    assert_eq!(
                        e.kind(),
                        ErrorKind::InvalidArgument,
                        "{path} ({query}): {e}"
                    );
                    assert!(e.message().contains("venue host"), "{path} ({query}): {e}");
                }
                Ok(response) => panic!(
                    "{path} (query: {query}): sent, answered {}",
                    response.status
                ),
            }
        }
    }
    let stats = sim.stats();
    assert_eq!(stats.cascade.requests, 0, "nothing reached the other venue");
    assert_eq!(stats.exchange.requests, 0, "nothing was sent in its place");
    // The venue's own paths, with and without a query, still work.
    let response = session
        .request(tradeauth::Method::Get, "/api/v1/positions")
        .query("symbol", "BTC-PERP")
        .send()
        .await
        .expect("own origin");
    assert_eq!(response.status, 200);
    let own = format!("{}/api/v1/positions", sim.urls().exchange);
    let response = session
        .request(tradeauth::Method::Get, own.as_str())
        .send()
        .await
        .expect("own origin, absolute");
    assert_eq!(response.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_ws_rejection_echoing_the_bearer_is_redacted() {
    let (sim, session) = support::on_demand(Venue::Cascade).await;
    let first = support::token(&session).await;
    sim.arm_fault(Fault::echo_credential(Venue::Cascade).on_path("/ws"));
    let error = session
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("rejected twice");
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
    let second = session.current().map(|c| c.token().to_owned());
    let shown = format!("{error} {error:?}");
    // No `{shown}` in these messages: on failure it would print the token.
    assert!(
        shown.contains("Invalid Bearer Token"),
        "not the venue's rejection"
    );
    assert!(
        shown.contains("[REDACTED]"),
        "the echoed bearer was not redacted"
    );
    // Whichever token the venue echoed (the second login's, here), no JWT is left.
    assert!(!shown.contains("eyJ"), "a JWT appeared in the error");
    // Compared by hand: an assert that printed the token would leak it into test output.
    assert!(
        !shown.contains(&first),
        "the first bearer appeared in the error"
    );
    if let Some(second) = second {
        assert!(
            !shown.contains(&second),
            "the second bearer appeared in the error"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_ws_rejection_echoing_the_key_is_redacted() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    sim.arm_fault(Fault::echo_credential(Venue::Exchange).on_path("/ws"));
    let error = session
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("rejected");
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("invalid api key"),
        "not the venue's rejection"
    );
    assert!(
        !shown.contains(demo::EXCHANGE_API_KEY),
        "the API key appeared in the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_ws_reply_redacts_the_credential_even_past_the_length_cap() {
    let (sim, cascade) = support::on_demand(Venue::Cascade).await;
    let exchange = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    let key = demo::EXCHANGE_API_KEY;
    // A prefix that puts the secret across the 200-character cap: redacting after the
    // cap would leave its first part in the message.
    let pad = "x".repeat(190);
    for prefix in ["Invalid Bearer Token ", pad.as_str()] {
        // As on a real connection, the reply answers the token just sent (a rejection
        // drops it, so each round logs in again).
        let token = support::token(&cascade).await;
        let reply = serde_json::json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": format!("{prefix}{token}")}});
        assert_redacted(cascade.handle_ws_reply(&reply.to_string()).await, &token);
    }
    // A reply answers an auth message, which is made from the session's credential.
    exchange.credential().await.expect("key");
    for prefix in ["invalid api key ", pad.as_str()] {
        let reply = serde_json::json!({"type": "error", "message": format!("{prefix}{key}")});
        assert_redacted(exchange.handle_ws_reply(&reply.to_string()).await, key);
    }
}

/// A rejection whose message holds neither `secret` nor its first 12 characters.
fn assert_redacted(reply: WsAuthReply, secret: &str) {
    match reply {
        WsAuthReply::Rejected { message } => {
            assert!(
                !message.contains(secret),
                "the secret appeared in the message"
            );
            assert!(
                !message.contains(&secret[..12]),
                "part of the secret appeared in the message"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn machine_ws_reply_is_redacted_against_its_key() {
    let mut machine =
        ExchangeMachine::new(ExchangeConfig::trader(demo::EXCHANGE_API_KEY)).expect("machine");
    let text = format!(
        r#"{{"type":"error","message":"invalid api key {}"}}"#,
        demo::EXCHANGE_API_KEY
    );
    match machine.handle_ws_reply(Now::capture(), &text) {
        WsAuthReply::Rejected { message } => {
            assert!(
                !message.contains(demo::EXCHANGE_API_KEY),
                "key in the message"
            );
            assert!(message.contains("[REDACTED]"), "not redacted");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn options_debug_hides_userinfo_anywhere() {
    let options = Options::new()
        .store("redis://app:p@ss@w0rd-PLANTED@redis.example:6379/0")
        .base_url("https://alice:base-PLANTED-pw@venue.example/api");
    let shown = format!("{options:?}");
    for part in ["p@ss", "w0rd-PLANTED", "base-PLANTED-pw", "alice", "app:"] {
        assert!(!shown.contains(part), "{part} shown in {shown}");
    }
    assert!(shown.contains("redis.example:6379"), "{shown}");
    assert!(shown.contains("venue.example"), "{shown}");
}

#[cfg(unix)]
#[test]
fn file_store_refuses_a_directory_others_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tradeauth-wrong-place-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = FileStore::open(&dir).expect_err("world-writable");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("chmod go-w"), "{error}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    FileStore::open(&dir).expect("0700 is fine");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[tokio::test]
async fn file_store_does_not_follow_a_symlink_planted_at_the_lock_file() {
    use tradeauth::CredentialStore;
    let dir = std::env::temp_dir().join(format!("tradeauth-wrong-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).expect("store");
    let key = "cadenza|https://h/|planted";
    let lock = store.record_path(key).with_extension("lock");
    let victim = dir.join("victim");
    std::os::unix::fs::symlink(&victim, &lock).expect("plant");
    let result = store.compare_and_swap(key, 0, b"sealed").await;
    assert!(result.is_err(), "a planted lock symlink must be refused");
    assert!(!victim.exists(), "the symlink was followed");
    let _ = std::fs::remove_dir_all(dir);
}
