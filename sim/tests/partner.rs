//! Partner API over real TLS: HS256 verification with the client's secret, the page's
//! three error texts, expiry and future `iat` on the sim clock.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Rejections as _, RequestExt as _, client, offset_to, start_client, start_with, status_json,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tradeauth_sim::{PartnerClient, SimConfig, Venue, demo};

fn mint(claims: &Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn demo_token(iat: i64, exp: i64) -> String {
    mint(
        &json!({ "clientId": demo::PARTNER_CLIENT_ID, "iat": iat, "exp": exp }),
        demo::PARTNER_SECRET_KEY,
        Algorithm::HS256,
    )
}

async fn portfolio(http: &reqwest::Client, base: &str, auth: Option<&str>) -> (u16, Value) {
    let mut request = http.get(format!("{base}/portfolio"));
    if let Some(value) = auth {
        request = request.header("authorization", value);
    }
    status_json(request.sent().await).await
}

fn unix_now(sim: &tradeauth_sim::Sim) -> i64 {
    sim.now_unix_ms() / 1000
}

#[tokio::test]
async fn valid_tokens_are_accepted() {
    let (sim, http) = start_client().await;
    let base = &sim.urls().partner;
    let now = unix_now(&sim);
    let token = demo_token(now, now + 900);

    let (status, body) = portfolio(&http, base, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clientId"], demo::PARTNER_CLIENT_ID);
    assert!(body["positions"].is_array());

    let order = json!({ "symbol": "BTC-USD", "side": "buy", "quantity": 0.1, "price": 50000 });
    let response = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .json(&order)
        .sent()
        .await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, 201, "{body}");
    uuid::Uuid::parse_str(body["orderId"].as_str().unwrap()).unwrap();
    for key in ["symbol", "side", "quantity", "price"] {
        assert_eq!(body[key], order[key]);
    }
    let bad_body = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .body("not json")
        .sent()
        .await;
    assert_eq!(bad_body.status(), 400);

    // A token issued a little in the future (within 60 s of skew) is fine.
    let skewed = demo_token(now + 30, now + 900);
    assert_eq!(
        portfolio(&http, base, Some(&format!("Bearer {skewed}")))
            .await
            .0,
        200
    );

    let stats = sim.venue_stats(Venue::Partner);
    // Two distinct valid tokens were seen.
    assert_eq!(stats.logins, 2);
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.rejected("invalid request body"), 1);
    assert_eq!(stats.total_rejections(), 1);
}

/// Known answer: PyJWT 2.15.1 `jwt.encode({"clientId":"demo-client","iat":1700000000,
/// "exp":1700000900},"demo-secret-key",algorithm="HS256")`, cross-checked by the lead.
#[tokio::test]
async fn pyjwt_known_answer_is_accepted() {
    const PYJWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbGllbnRJZCI6ImRlbW8tY2xpZW50IiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA5MDB9.BE-IC7kS50cqi2J3JifZLuUQwGhIIMVcN5U90W58G3c";
    let mut config = SimConfig::default();
    config.partner.clients = vec![PartnerClient::new("demo-client", "demo-secret-key")];
    config.clock_offset_secs = offset_to(1_700_000_000);
    let sim = start_with(config).await;
    let http = client(&sim);
    let base = &sim.urls().partner;

    let (status, body) = portfolio(&http, base, Some(&format!("Bearer {PYJWT}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clientId"], "demo-client");

    // 900 s later by the sim clock it has expired.
    sim.set_clock_offset_secs(offset_to(1_700_000_900));
    assert_eq!(
        portfolio(&http, base, Some(&format!("Bearer {PYJWT}"))).await,
        (401, json!({ "error": "Token Expired" }))
    );
}

#[tokio::test]
async fn missing_or_non_bearer_header_is_unauthorized() {
    let (sim, http) = start_client().await;
    let base = &sim.urls().partner;
    let unauthorized = (401, json!({ "error": "Unauthorized" }));
    assert_eq!(portfolio(&http, base, None).await, unauthorized);
    assert_eq!(
        portfolio(&http, base, Some("Token abc")).await,
        unauthorized
    );
    assert_eq!(portfolio(&http, base, Some("Bearer ")).await, unauthorized);
    assert_eq!(sim.venue_stats(Venue::Partner).rejected("Unauthorized"), 3);
}

#[tokio::test]
async fn expired_and_invalid_tokens() {
    let (sim, http) = start_client().await;
    let base = &sim.urls().partner;
    let now = unix_now(&sim);
    let invalid = (401, json!({ "error": "Invalid Token" }));
    let expired = (401, json!({ "error": "Token Expired" }));
    let bearer = |t: &str| format!("Bearer {t}");

    // Expired: exp in the past, or exactly now.
    assert_eq!(
        portfolio(&http, base, Some(&bearer(&demo_token(now - 1000, now - 1)))).await,
        expired
    );
    // Valid now, expired after the sim clock moves past exp.
    let token = demo_token(now, now + 900);
    assert_eq!(portfolio(&http, base, Some(&bearer(&token))).await.0, 200);
    sim.advance_clock_secs(901);
    assert_eq!(portfolio(&http, base, Some(&bearer(&token))).await, expired);
    sim.set_clock_offset_secs(0);

    // Each of these is refused as an invalid token, in this order.
    let key = demo::PARTNER_SECRET_KEY;
    let claims = json!({ "clientId": demo::PARTNER_CLIENT_ID, "iat": now, "exp": now + 900 });
    let other_client = json!({ "clientId": "someone-else", "iat": now, "exp": now + 900 });
    let no_client = json!({ "iat": now, "exp": now + 900 });
    let float_iat =
        json!({ "clientId": demo::PARTNER_CLIENT_ID, "iat": now as f64 + 0.5, "exp": now + 900 });
    // alg: none, unsigned.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    for (what, token) in [
        (
            "iat more than 60 s in the future",
            demo_token(now + 120, now + 900),
        ),
        (
            "wrong secret",
            mint(&claims, "not-the-secret", Algorithm::HS256),
        ),
        ("unknown client", mint(&other_client, key, Algorithm::HS256)),
        (
            "another HMAC algorithm, right secret",
            mint(&claims, key, Algorithm::HS512),
        ),
        ("alg: none", unsigned),
        ("malformed", "not.a.jwt".to_owned()),
        ("not a JWT", "abc".to_owned()),
        ("missing clientId", mint(&no_client, key, Algorithm::HS256)),
        ("mistyped iat", mint(&float_iat, key, Algorithm::HS256)),
    ] {
        let answer = portfolio(&http, base, Some(&bearer(&token))).await;
        assert_eq!(answer, invalid, "{what}");
    }

    let stats = sim.venue_stats(Venue::Partner);
    stats.assert_rejected("Token Expired = 2; Invalid Token = 9");
    assert_eq!(stats.logins, 1);
}

#[tokio::test]
async fn unknown_path_is_404() {
    let (sim, http) = start_client().await;
    let response = http
        .get(format!("{}/nope", sim.urls().partner))
        .sent()
        .await;
    assert_eq!(response.status(), 404);
}
