//! Cascade over real TLS: the challenge's exact shape, EIP-191 login by a delegate or the
//! account itself, every rejection text, nonce expiry by clock shift, protected routes and
//! the JSON-RPC WebSocket.

mod common;

use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Rejections as _, RequestExt as _, get_json, start_client, start_ws, status_json, ws_call,
    ws_connect, ws_recv, ws_send_text,
};
use serde_json::{Value, json};
use tradeauth_sim::{LifetimeUpdate, Revoke, Sim, Venue, demo};

fn sign(key: &str, payload: &str) -> [u8; 65] {
    let signer: PrivateKeySigner = key.parse().unwrap();
    // `as_bytes` puts v in Electrum notation (27/28), as wallets do.
    signer
        .sign_message_sync(payload.as_bytes())
        .unwrap()
        .as_bytes()
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", alloy_primitives::hex::encode(bytes))
}

async fn challenge(http: &reqwest::Client, sim: &Sim, account: &str) -> Value {
    let (status, body) = get_json(
        http,
        &format!("{}/auth?account={account}", sim.urls().cascade),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn post_auth(http: &reqwest::Client, sim: &Sim, body: &Value) -> (u16, Value) {
    status_json(
        http.post(format!("{}/auth", sim.urls().cascade))
            .json(body)
            .sent()
            .await,
    )
    .await
}

/// The `POST /auth` body for `c` signed with the private key `key`.
fn signed_proof(c: &Value, key: &str) -> Value {
    proof(c, hex0x(&sign(key, c["signing_payload"].as_str().unwrap())))
}

fn proof(challenge: &Value, signature: String) -> Value {
    json!({
        "message": challenge["message"],
        "signature": signature,
        "server_signature": challenge["server_signature"],
    })
}

/// A full login of the demo account signed by its delegate; returns the token.
async fn login(http: &reqwest::Client, sim: &Sim) -> (String, Value) {
    let c = challenge(http, sim, demo::CASCADE_ACCOUNT).await;
    let signed = signed_proof(&c, demo::CASCADE_DELEGATE_KEY);
    let (status, body) = post_auth(http, sim, &signed).await;
    assert_eq!(status, 200, "{body}");
    (body["token"].as_str().unwrap().to_owned(), body)
}

/// Known answer: eth_account 0.14.0 (`Account.sign_message(encode_defunct(text=...),
/// key).signature.hex()`), cross-checked by the lead. The test-side signing stack must
/// produce exactly this, and recovery must give Hardhat #0.
#[test]
fn eip191_known_answer() {
    let payload = r#"{"account":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8","nonce":"e1231189-12d6-4efc-867d-53a3075a1d8b","timestamp":"2026-01-19T16:33:15.662842941+00:00"}"#;
    let expected = "ab2433c366bbf1bd102b2c19c55ab7e19ace00f30b45dc68a4014f58c12294ce05df9bf943b7e1d5e4e707d8fc2585982d726fa3edc4e510b35391253e635f9d1b";
    let sig = sign(demo::CASCADE_DELEGATE_KEY, payload);
    assert_eq!(alloy_primitives::hex::encode(sig), expected);
    let parsed: alloy_primitives::Signature = expected.parse().unwrap();
    assert_eq!(
        parsed
            .recover_address_from_msg(payload)
            .unwrap()
            .to_string(),
        demo::CASCADE_DELEGATE
    );
}

#[tokio::test]
async fn challenge_has_the_pages_shape() {
    let (sim, http) = start_client().await;
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;

    let mut keys: Vec<_> = c.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["message", "server_signature", "signing_payload"]);
    let message = &c["message"];
    assert_eq!(message.as_object().unwrap().len(), 3);
    assert_eq!(
        message["account"],
        demo::CASCADE_ACCOUNT.to_ascii_lowercase()
    );
    let nonce = uuid::Uuid::parse_str(message["nonce"].as_str().unwrap()).unwrap();
    assert_eq!(nonce.get_version_num(), 4);
    // 2026-01-19T16:33:15.662842941+00:00: nine fractional digits and +00:00.
    let timestamp = message["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), 35, "{timestamp}");
    assert_eq!(&timestamp[19..20], ".");
    assert!(timestamp[20..29].bytes().all(|b| b.is_ascii_digit()));
    assert!(timestamp.ends_with("+00:00"));
    let parsed =
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let age_ms = sim.now_unix_ms() - (parsed.unix_timestamp_nanos() / 1_000_000) as i64;
    assert!((0..5000).contains(&age_ms), "{age_ms}");
    // The signed text is the compact JSON of the message, keys in page order.
    assert_eq!(
        c["signing_payload"].as_str().unwrap(),
        format!(
            r#"{{"account":"{}","nonce":"{}","timestamp":"{}"}}"#,
            message["account"].as_str().unwrap(),
            nonce,
            timestamp
        )
    );
    let server_signature = c["server_signature"].as_str().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(server_signature).unwrap().len(),
        32,
        "base64url without padding of an HMAC-SHA256"
    );

    // Any well-formed address gets a challenge, whatever its case.
    challenge(&http, &sim, &demo::CASCADE_STRANGER.to_ascii_lowercase()).await;
    assert_eq!(sim.venue_stats(Venue::Cascade).challenges, 2);
}

#[tokio::test]
async fn challenge_needs_a_well_formed_account() {
    let (sim, http) = start_client().await;
    let base = &sim.urls().cascade;
    for (query, text) in [
        ("", "missing query parameter: account"),
        ("?other=1", "missing query parameter: account"),
        (
            "?account=0x1234",
            "invalid account: expected 0x followed by 40 hex digits",
        ),
        (
            "?account=70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "invalid account: expected 0x followed by 40 hex digits",
        ),
        (
            "?account=0xZZ997970C51812dc3A010C7d01b50e0d17dc79C8",
            "invalid account: expected 0x followed by 40 hex digits",
        ),
    ] {
        assert_eq!(
            get_json(&http, &format!("{base}/auth{query}")).await,
            (400, json!({ "error": text })),
            "{query}"
        );
    }
    assert_eq!(sim.venue_stats(Venue::Cascade).challenges, 0);
}

#[tokio::test]
async fn delegate_login_issues_a_jwt() {
    let (sim, http) = start_client().await;
    let before = sim.now_unix_ms() / 1000;
    let (token, body) = login(&http, &sim).await;
    assert_eq!(token.split('.').count(), 3);
    let claims = &body["claims"];
    assert_eq!(claims["sub"], demo::CASCADE_ACCOUNT.to_ascii_lowercase());
    assert_eq!(
        claims["signer"],
        demo::CASCADE_DELEGATE.to_ascii_lowercase()
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..before + 5).contains(&iat));
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);
    assert_eq!(claims.as_object().unwrap().len(), 4);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);

    let stats = sim.venue_stats(Venue::Cascade);
    assert_eq!(
        (stats.challenges, stats.logins, stats.tokens_issued),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn signature_encodings_and_self_signing() {
    let (sim, http) = start_client().await;
    // Every combination of 0x-prefixed / bare hex and v = 27/28 / 0/1 is accepted.
    for prefixed in [true, false] {
        for electrum_v in [true, false] {
            let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
            let mut sig = sign(
                demo::CASCADE_DELEGATE_KEY,
                c["signing_payload"].as_str().unwrap(),
            );
            if !electrum_v {
                sig[64] -= 27;
            }
            let text = if prefixed {
                hex0x(&sig)
            } else {
                alloy_primitives::hex::encode(sig)
            };
            let (status, body) = post_auth(&http, &sim, &proof(&c, text)).await;
            assert_eq!(
                status, 200,
                "prefixed={prefixed} electrum_v={electrum_v}: {body}"
            );
        }
    }
    // The account may sign for itself.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let signed = signed_proof(&c, demo::CASCADE_ACCOUNT_KEY);
    let (status, body) = post_auth(&http, &sim, &signed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["claims"]["signer"],
        demo::CASCADE_ACCOUNT.to_ascii_lowercase()
    );
    assert_eq!(sim.venue_stats(Venue::Cascade).logins, 5);
}

#[tokio::test]
async fn rejections_use_the_documented_texts() {
    let (sim, http) = start_client().await;
    let error = |status: u16, text: &str| (status, json!({ "error": text }));

    // A signer that is not a delegate.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let signed = signed_proof(&c, demo::CASCADE_STRANGER_KEY);
    assert_eq!(
        post_auth(&http, &sim, &signed).await,
        error(401, "signer is not authorized for this account")
    );
    // ...and its nonce is spent even though the login failed.
    let signed = signed_proof(&c, demo::CASCADE_DELEGATE_KEY);
    assert_eq!(
        post_auth(&http, &sim, &signed).await,
        error(401, "nonce already used")
    );

    // Nonce reuse after a success.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let signed = signed_proof(&c, demo::CASCADE_DELEGATE_KEY);
    assert_eq!(post_auth(&http, &sim, &signed).await.0, 200);
    assert_eq!(
        post_auth(&http, &sim, &signed).await,
        error(401, "nonce already used")
    );

    // A wrong server signature, and a message altered after signing by the server.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let sig = hex0x(&sign(
        demo::CASCADE_DELEGATE_KEY,
        c["signing_payload"].as_str().unwrap(),
    ));
    let mut forged = proof(&c, sig.clone());
    forged["server_signature"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    assert_eq!(
        post_auth(&http, &sim, &forged).await,
        error(401, "invalid server signature")
    );
    forged["server_signature"] = json!("%%% not base64 %%%");
    assert_eq!(
        post_auth(&http, &sim, &forged).await,
        error(401, "invalid server signature")
    );
    let mut altered = proof(&c, sig.clone());
    altered["message"]["timestamp"] = json!("2099-01-01T00:00:00.000000000+00:00");
    assert_eq!(
        post_auth(&http, &sim, &altered).await,
        error(401, "invalid server signature")
    );
    // The untouched proof still works: failed server-signature checks do not spend it.
    assert_eq!(post_auth(&http, &sim, &proof(&c, sig)).await.0, 200);

    // Malformed signatures: short, bad v, not hex.
    for bad in [
        "0x1234".to_owned(),
        format!("0x{}25", "11".repeat(64)),
        "0xnothex".to_owned(),
    ] {
        let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
        assert_eq!(
            post_auth(&http, &sim, &proof(&c, bad.clone())).await,
            error(400, "malformed signature"),
            "{bad}"
        );
    }

    // Bad bodies.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let (status, body) = post_auth(&http, &sim, &json!({ "message": c["message"] })).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    let not_json = http
        .post(format!("{}/auth", sim.urls().cascade))
        .body("{")
        .sent()
        .await;
    assert_eq!(not_json.status(), 400);

    let stats = sim.venue_stats(Venue::Cascade);
    stats.assert_rejected("signer is not authorized for this account = 1; nonce already used = 2");
    stats.assert_rejected("invalid server signature = 3; malformed signature = 3");
    assert_eq!(stats.logins, 2);
}

#[tokio::test]
async fn nonce_expires_by_the_sim_clock() {
    let (sim, http) = start_client().await;

    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let sig = hex0x(&sign(
        demo::CASCADE_DELEGATE_KEY,
        c["signing_payload"].as_str().unwrap(),
    ));
    sim.advance_clock_secs(299);
    assert_eq!(post_auth(&http, &sim, &proof(&c, sig)).await.0, 200);

    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let sig = hex0x(&sign(
        demo::CASCADE_DELEGATE_KEY,
        c["signing_payload"].as_str().unwrap(),
    ));
    sim.advance_clock_secs(301);
    assert_eq!(
        post_auth(&http, &sim, &proof(&c, sig.clone())).await,
        (401, json!({ "error": "nonce expired" }))
    );
    // An expired nonce is spent too.
    sim.advance_clock_secs(-301);
    assert_eq!(
        post_auth(&http, &sim, &proof(&c, sig)).await,
        (401, json!({ "error": "nonce already used" }))
    );

    // A shorter nonce lifetime applies to challenges already issued.
    let c = challenge(&http, &sim, demo::CASCADE_ACCOUNT).await;
    let sig = hex0x(&sign(
        demo::CASCADE_DELEGATE_KEY,
        c["signing_payload"].as_str().unwrap(),
    ));
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cascade).nonce_ttl_secs(5))
        .unwrap();
    sim.advance_clock_secs(6);
    assert_eq!(
        post_auth(&http, &sim, &proof(&c, sig)).await,
        (401, json!({ "error": "nonce expired" }))
    );
    assert_eq!(sim.venue_stats(Venue::Cascade).rejected("nonce expired"), 2);
}

#[tokio::test]
async fn protected_routes_need_a_live_token() {
    let (sim, http) = start_client().await;
    let base = &sim.urls().cascade;
    let invalid = (401, json!({ "error": "Invalid Bearer Token" }));
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { status_json(request.sent().await).await }
    };

    assert_eq!(get("/account/orders", None).await, invalid);
    assert_eq!(get("/account/orders", Some("garbage")).await, invalid);
    let (token, _) = login(&http, &sim).await;
    for path in ["/account/orders", "/account/positions"] {
        let (status, body) = get(path, Some(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["account"], demo::CASCADE_ACCOUNT.to_ascii_lowercase());
    }
    // A token signed with another key is refused.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "signer": "x", "iat": 0, "exp": 9_999_999_999i64, "jti": "x" }),
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(get("/account/orders", Some(&forged)).await, invalid);

    // Expiry by the sim clock.
    sim.advance_clock_secs(3600);
    assert_eq!(get("/account/positions", Some(&token)).await, invalid);
    sim.set_clock_offset_secs(0);
    assert_eq!(get("/account/positions", Some(&token)).await.0, 200);

    // Revocation.
    assert_eq!(sim.revoke(Venue::Cascade, Revoke::AccessTokens).unwrap(), 1);
    assert_eq!(get("/account/positions", Some(&token)).await, invalid);
    assert!(sim.revoke(Venue::Cascade, Revoke::RefreshTokens).is_err());

    // A shorter token lifetime applies to the next token.
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cascade).token_ttl_secs(5))
        .unwrap();
    let (token, body) = login(&http, &sim).await;
    assert_eq!(
        body["claims"]["exp"].as_i64().unwrap() - body["claims"]["iat"].as_i64().unwrap(),
        5
    );
    sim.advance_clock_secs(5);
    assert_eq!(get("/account/orders", Some(&token)).await, invalid);
    assert_eq!(
        sim.venue_stats(Venue::Cascade)
            .rejected("Invalid Bearer Token"),
        6
    );
}

#[tokio::test]
async fn websocket_json_rpc() {
    let (sim, http, mut ws) = start_ws(Venue::Cascade).await;

    // Public market data needs no auth; a snapshot follows the subscription.
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": { "channel": "orderbook", "market": "ETH-USD" } }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "jsonrpc": "2.0", "id": 1, "result": { "subscribed": "orderbook:ETH-USD" } })
    );
    let snapshot = ws_recv(&mut ws).await;
    assert_eq!(snapshot["method"], "orderbook");
    assert_eq!(snapshot["params"]["market"], "ETH-USD");
    assert!(snapshot.get("id").is_none());

    // Private methods before auth.
    for method in ["orders.list", "positions.list", "order.create"] {
        let reply = ws_call(
            &mut ws,
            json!({ "jsonrpc": "2.0", "id": "p", "method": method, "params": {} }),
        )
        .await;
        assert_eq!(
            reply,
            json!({ "jsonrpc": "2.0", "id": "p", "error": { "code": -32002, "message": "Not authenticated" } })
        );
    }

    // A bad token.
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 2, "method": "auth", "params": { "bearer": "nope" } }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "jsonrpc": "2.0", "id": 2, "error": { "code": -32001, "message": "Invalid Bearer Token" } })
    );

    // A good token; string ids are echoed.
    let (token, body) = login(&http, &sim).await;
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": "auth-1", "method": "auth", "params": { "bearer": token } }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "jsonrpc": "2.0", "id": "auth-1", "result": {
            "authenticated": true,
            "account": demo::CASCADE_ACCOUNT.to_ascii_lowercase(),
            "exp": body["claims"]["exp"],
        } })
    );
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 3, "method": "order.create", "params": { "market": "ETH-USD", "side": "buy", "price": "3000", "size": "0.5" } }),
    )
    .await;
    let order = reply["result"]["order"].clone();
    assert_eq!(order["status"], "open", "{reply}");
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 4, "method": "orders.list" }),
    )
    .await;
    assert_eq!(reply["result"]["orders"], json!([order]));
    let (_, rest) = status_json(
        http.get(format!("{}/account/orders", sim.urls().cascade))
            .bearer_auth(&token)
            .sent()
            .await,
    )
    .await;
    assert_eq!(rest["orders"], json!([order]));
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 5, "method": "positions.list" }),
    )
    .await;
    assert!(reply["result"]["positions"].is_array(), "{reply}");

    // Protocol errors.
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 6, "method": "launch" }),
    )
    .await;
    assert_eq!(reply["error"]["code"], -32601);
    ws_send_text(&mut ws, "{not json").await;
    let reply = ws_recv(&mut ws).await;
    assert_eq!(reply["error"]["code"], -32700);
    assert_eq!(reply["id"], Value::Null);

    // After the token expires by the sim clock, private calls say Invalid Bearer Token.
    sim.advance_clock_secs(3600);
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 7, "method": "orders.list" }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "jsonrpc": "2.0", "id": 7, "error": { "code": -32001, "message": "Invalid Bearer Token" } })
    );
    sim.set_clock_offset_secs(0);

    // Re-auth with a fresh token, then revocation also ends it.
    let (token, _) = login(&http, &sim).await;
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 8, "method": "auth", "params": { "bearer": token } }),
    )
    .await;
    assert_eq!(reply["result"]["authenticated"], true);
    sim.revoke(Venue::Cascade, Revoke::All).unwrap();
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 9, "method": "positions.list" }),
    )
    .await;
    assert_eq!(reply["error"]["code"], -32001);

    let stats = sim.venue_stats(Venue::Cascade);
    assert_eq!(stats.ws_auths, 2);
    assert_eq!(stats.rejected("Not authenticated"), 3);
}

#[tokio::test]
async fn echo_credential_fault_quotes_the_bearer_in_the_ws_rejection() {
    let (sim, http) = start_client().await;
    let (token, _) = login(&http, &sim).await;
    sim.arm_fault(tradeauth_sim::Fault::echo_credential(Venue::Cascade).on_path("/ws"));
    let mut ws = ws_connect(&sim, &sim.urls().cascade).await;
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 7, "method": "auth", "params": { "bearer": token } }),
    )
    .await;
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["error"]["code"], -32001);
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Invalid Bearer Token"), "{message}");
    assert!(message.contains(&token), "{message}");
}
