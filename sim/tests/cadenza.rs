//! Cadenza over real TLS: login, protected routes, rotation, expiry by clock shift,
//! revocation, the error envelope, counters and the audit log.

mod common;

use common::{Rejections as _, RequestExt as _, get_json, start_client_with, status_json};
use serde_json::{Value, json};
use tradeauth_sim::{LifetimeUpdate, Revoke, Sim, SimConfig, Venue, demo};

async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> (u16, Value) {
    status_json(
        http.post(format!("{base}/api/v3/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .sent()
            .await,
    )
    .await
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str) -> (u16, Value) {
    status_json(
        http.post(format!("{base}/api/v3/auth/token/refresh"))
            .json(&json!({ "refreshToken": token }))
            .sent()
            .await,
    )
    .await
}

async fn get_auth(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    status_json(http.get(url).bearer_auth(token).sent().await).await
}

fn assert_error(actual: (u16, Value), status: u16, code: &str) {
    assert_eq!(actual.0, status, "{}", actual.1);
    assert_eq!(actual.1["success"], false, "{}", actual.1);
    assert_eq!(actual.1["error"]["code"], code, "{}", actual.1);
    assert!(actual.1["error"]["message"].is_string(), "{}", actual.1);
}

/// A fresh simulator and a client that trusts it, with Cadenza's base and profile URLs.
async fn start_cadenza(config: SimConfig) -> (Sim, reqwest::Client, String, String) {
    let (sim, http) = start_client_with(config).await;
    let base = sim.urls().cadenza.clone();
    let profile = format!("{base}/api/v3/user/profile");
    (sim, http, base, profile)
}

/// Asserts a 401 in the error envelope with `code`.
fn assert_401(actual: (u16, Value), code: &str) {
    assert_error(actual, 401, code);
}

/// Logs the demo user in; returns the new access token, refresh token and expiry.
async fn demo_login(http: &reqwest::Client, base: &str) -> (String, String, i64) {
    let (_, body) = login(http, base, demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD).await;
    tokens(&body)
}

/// Logs the second demo user (ops) in.
async fn ops_login(http: &reqwest::Client, base: &str) -> (u16, Value) {
    login(
        http,
        base,
        demo::CADENZA_OPS_EMAIL,
        demo::CADENZA_OPS_PASSWORD,
    )
    .await
}

/// Presents a refresh token; returns the rotated pair and expiry.
async fn rotate(http: &reqwest::Client, base: &str, token: &str) -> (String, String, i64) {
    let (_, body) = refresh(http, base, token).await;
    tokens(&body)
}

/// Asserts that presenting `token` is refused as an invalid refresh token.
async fn assert_refresh_refused(http: &reqwest::Client, base: &str, token: &str) {
    assert_401(refresh(http, base, token).await, "INVALID_REFRESH_TOKEN");
}

fn tokens(body: &Value) -> (String, String, i64) {
    let data = &body["data"];
    (
        data["accessToken"].as_str().unwrap().to_owned(),
        data["refreshToken"].as_str().unwrap().to_owned(),
        data["expiresAt"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn login_and_protected_routes() {
    let (sim, http, base, _) = start_cadenza(SimConfig::default()).await;

    let before = sim.now_unix_ms();
    let (status, body) = login(&http, &base, demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD).await;
    let after = sim.now_unix_ms();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let (access, refresh_token, expires_at) = tokens(&body);
    assert!(access.len() >= 40 && refresh_token.len() >= 40 && access != refresh_token);
    // expiresAt is Unix ms on the sim clock, one hour ahead.
    assert!((before + 3_600_000..=after + 3_600_000).contains(&expires_at));

    let (status, body) = get_auth(&http, &format!("{base}/api/v3/user/profile"), &access).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "success": true, "data": { "email": demo::CADENZA_EMAIL } })
    );
    for path in ["/api/v3/market/venue/list", "/api/v3/account/balances"] {
        let (status, body) = get_auth(&http, &format!("{base}{path}"), &access).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["success"], true);
        assert!(!body["data"].as_array().unwrap().is_empty());
    }

    // The second demo user logs in too, and gets its own identity.
    let (status, body) = ops_login(&http, &base).await;
    assert_eq!(status, 200);
    let (ops_access, _, _) = tokens(&body);
    let (_, body) = get_auth(&http, &format!("{base}/api/v3/user/profile"), &ops_access).await;
    assert_eq!(body["data"]["email"], demo::CADENZA_OPS_EMAIL);

    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, 2);
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.total_rejections(), 0);
}

#[tokio::test]
async fn login_errors() {
    let (sim, http, base, _) = start_cadenza(SimConfig::default()).await;
    let url = format!("{base}/api/v3/auth/login");

    assert_error(
        login(&http, &base, demo::CADENZA_EMAIL, "wrong").await,
        401,
        "INVALID_CREDENTIALS",
    );
    assert_error(
        login(&http, &base, "nobody@cadenza.test", "demo-password").await,
        401,
        "INVALID_CREDENTIALS",
    );
    let not_json = http.post(&url).body("email=a&password=b").sent().await;
    assert_error(status_json(not_json).await, 400, "BAD_REQUEST");
    let missing = http
        .post(&url)
        .json(&json!({ "email": "a@b.c" }))
        .sent()
        .await;
    let (status, body) = status_json(missing).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    assert_error((status, body), 400, "BAD_REQUEST");
    let mistyped = http
        .post(&url)
        .json(&json!({ "email": "a@b.c", "password": 12345 }))
        .sent()
        .await;
    assert_error(status_json(mistyped).await, 400, "BAD_REQUEST");
    let empty = http.post(&url).sent().await;
    assert_error(status_json(empty).await, 400, "BAD_REQUEST");

    let unknown_path = http.get(format!("{base}/api/v3/nope")).sent().await;
    assert_error(status_json(unknown_path).await, 404, "NOT_FOUND");
    let wrong_method = http.get(&url).sent().await;
    assert_eq!(wrong_method.status(), 405);

    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, 0);
    stats.assert_rejected("INVALID_CREDENTIALS = 2; BAD_REQUEST = 4; NOT_FOUND = 1");
}

#[tokio::test]
async fn bearer_errors_and_access_expiry() {
    let (sim, http, base, profile) = start_cadenza(SimConfig::default()).await;

    let (status, body) = get_json(&http, &profile).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({ "success": false, "error": { "code": "UNAUTHORIZED", "message": "Missing bearer token" } })
        )
    );
    let basic = http
        .get(&profile)
        .header("authorization", "Basic ZGVtbzpkZW1v")
        .sent()
        .await;
    let (status, body) = status_json(basic).await;
    assert_eq!(body["error"]["message"], "Missing bearer token");
    assert_error((status, body), 401, "UNAUTHORIZED");
    assert_401(
        get_auth(&http, &profile, "not-a-token").await,
        "INVALID_TOKEN",
    );

    let (access, _, _) = demo_login(&http, &base).await;
    sim.advance_clock_secs(3599);
    assert_eq!(get_auth(&http, &profile, &access).await.0, 200);
    sim.advance_clock_secs(2);
    assert_401(get_auth(&http, &profile, &access).await, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn refresh_rotates_and_expires() {
    let (sim, http, base, profile) = start_cadenza(SimConfig::default()).await;

    let (access1, refresh1, _) = demo_login(&http, &base).await;

    sim.advance_clock_secs(600);
    let before = sim.now_unix_ms();
    let (status, body) = refresh(&http, &base, &refresh1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let (access2, refresh2, expires2) = tokens(&body);
    assert_ne!(access1, access2);
    assert_ne!(refresh1, refresh2);
    assert!(expires2 >= before + 3_600_000);

    // Rotation: the spent refresh token is refused; the old access token still works.
    assert_refresh_refused(&http, &base, &refresh1).await;
    assert_eq!(get_auth(&http, &profile, &access1).await.0, 200);
    assert_eq!(get_auth(&http, &profile, &access2).await.0, 200);

    assert_refresh_refused(&http, &base, "never-issued").await;
    let bad = http
        .post(format!("{base}/api/v3/auth/token/refresh"))
        .json(&json!({ "refresh_token": refresh2 }))
        .sent()
        .await;
    assert_error(status_json(bad).await, 400, "BAD_REQUEST");

    // Seven days later the refresh token has expired.
    sim.advance_clock_secs(7 * 24 * 3600 + 1);
    assert_401(
        refresh(&http, &base, &refresh2).await,
        "REFRESH_TOKEN_EXPIRED",
    );

    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.refreshes, 1);
    assert_eq!(stats.tokens_issued, 2);
    stats.assert_rejected("INVALID_REFRESH_TOKEN = 2; REFRESH_TOKEN_EXPIRED = 1");
}

#[tokio::test]
async fn revocation_and_lifetimes() {
    let (sim, http, base, profile) = start_cadenza(SimConfig::default()).await;

    let (access, refresh_token, _) = demo_login(&http, &base).await;
    assert_eq!(
        sim.revoke(Venue::Cadenza, Revoke::RefreshTokens).unwrap(),
        1
    );
    assert_refresh_refused(&http, &base, &refresh_token).await;
    assert_eq!(get_auth(&http, &profile, &access).await.0, 200);
    assert_eq!(sim.revoke(Venue::Cadenza, Revoke::AccessTokens).unwrap(), 1);
    assert_401(get_auth(&http, &profile, &access).await, "INVALID_TOKEN");

    let lifetimes = sim
        .set_lifetimes(
            LifetimeUpdate::new(Venue::Cadenza)
                .access_ttl_secs(3)
                .refresh_ttl_secs(10),
        )
        .unwrap();
    assert_eq!(lifetimes.cadenza.access_ttl_secs, 3);
    let before = sim.now_unix_ms();
    let (access, refresh_token, expires_at) = demo_login(&http, &base).await;
    assert!((before + 3000..before + 4000).contains(&expires_at));
    sim.advance_clock_secs(4);
    assert_401(get_auth(&http, &profile, &access).await, "TOKEN_EXPIRED");
    assert_eq!(refresh(&http, &base, &refresh_token).await.0, 200);
    sim.advance_clock_secs(11);
    let (_, refresh_token, _) = demo_login(&http, &base).await;
    sim.advance_clock_secs(11);
    assert_401(
        refresh(&http, &base, &refresh_token).await,
        "REFRESH_TOKEN_EXPIRED",
    );

    assert!(
        sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).token_ttl_secs(5))
            .is_err()
    );
    assert!(
        sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(0))
            .is_err()
    );
}

#[tokio::test]
async fn audit_log_names_accounts_never_secrets() {
    let (sim, http, base, _) = start_cadenza(SimConfig::default()).await;

    let (access, refresh_token, _) = demo_login(&http, &base).await;
    let _ = get_auth(&http, &format!("{base}/api/v3/account/balances"), &access).await;
    let (access2, refresh2, _) = rotate(&http, &base, &refresh_token).await;
    let _ = login(&http, &base, demo::CADENZA_EMAIL, "guess-1").await;
    let _ = login(&http, &base, "stranger@x.test", "guess-2").await;
    let _ = get_json(&http, &format!("{base}/api/v3/user/profile")).await;

    let audit = sim.audit();
    let summary: Vec<_> = audit
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.path.as_str(),
                e.account.as_deref(),
                e.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST", "/api/v3/auth/login", Some(demo::CADENZA_EMAIL), 200),
            (
                "GET",
                "/api/v3/account/balances",
                Some(demo::CADENZA_EMAIL),
                200
            ),
            (
                "POST",
                "/api/v3/auth/token/refresh",
                Some(demo::CADENZA_EMAIL),
                200
            ),
            ("POST", "/api/v3/auth/login", Some(demo::CADENZA_EMAIL), 401),
            ("POST", "/api/v3/auth/login", None, 401),
            ("GET", "/api/v3/user/profile", None, 401),
        ]
    );
    for entry in &audit {
        assert_eq!(entry.source_ip, "127.0.0.1");
        time::OffsetDateTime::parse(&entry.time, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 time");
    }
    let text = serde_json::to_string(&audit).unwrap();
    for secret in [
        access.as_str(),
        refresh_token.as_str(),
        access2.as_str(),
        refresh2.as_str(),
        demo::CADENZA_PASSWORD,
        "guess-1",
        "guess-2",
    ] {
        assert!(!text.contains(secret), "audit leaks a secret");
    }
}

/// The config with `cadenza.revoke_family_on_reuse` on.
fn revoking_families() -> SimConfig {
    let mut config = SimConfig::default();
    config.cadenza.revoke_family_on_reuse = true;
    config
}

#[tokio::test]
async fn reused_refresh_token_is_only_refused_by_default() {
    let (sim, http, base, profile) = start_cadenza(SimConfig::default()).await;

    let (access1, refresh1, _) = demo_login(&http, &base).await;
    let (access2, refresh2, _) = rotate(&http, &base, &refresh1).await;
    let never_issued = refresh(&http, &base, "never-issued").await;

    // Reuse is refused like any invalid token, and nothing else happens.
    let reused = refresh(&http, &base, &refresh1).await;
    assert_eq!(reused, never_issued);
    assert_error(reused, 401, "INVALID_REFRESH_TOKEN");
    assert_eq!(get_auth(&http, &profile, &access1).await.0, 200);
    assert_eq!(get_auth(&http, &profile, &access2).await.0, 200);
    let (status, body) = refresh(&http, &base, &refresh2).await;
    assert_eq!(status, 200, "{body}");

    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.family_revocations, 0);
    assert_eq!(stats.refreshes, 2);
    assert_eq!(stats.rejected("INVALID_REFRESH_TOKEN"), 2);
    // The reuse is audited as before: the token is unknown, so no account is named.
    let audit = sim.audit();
    assert_eq!(audit[3].path, "/api/v3/auth/token/refresh");
    assert_eq!((audit[3].account.as_deref(), audit[3].status), (None, 401));
}

#[tokio::test]
async fn reuse_of_a_rotated_refresh_token_revokes_its_family() {
    let (sim, http, base, profile) = start_cadenza(revoking_families()).await;

    // One family: a login and two rotations.
    let (access1, refresh1, _) = demo_login(&http, &base).await;
    let (access2, refresh2, _) = rotate(&http, &base, &refresh1).await;
    let (access3, refresh3, _) = rotate(&http, &base, &refresh2).await;
    // Two other families: the same user logged in again, and another user.
    let (other_access, other_refresh, _) = demo_login(&http, &base).await;
    let (_, body) = ops_login(&http, &base).await;
    let (ops_access, ops_refresh, _) = tokens(&body);
    for access in [&access1, &access2, &access3] {
        assert_eq!(get_auth(&http, &profile, access).await.0, 200);
    }

    // The first refresh token, already rotated, is presented again: refused with the
    // invalid-refresh-token answer, and the whole family is revoked.
    let never_issued = refresh(&http, &base, "never-issued").await;
    let reused = refresh(&http, &base, &refresh1).await;
    assert_eq!(reused, never_issued);
    assert_error(reused, 401, "INVALID_REFRESH_TOKEN");
    assert_eq!(sim.venue_stats(Venue::Cadenza).family_revocations, 1);

    for access in [&access1, &access2, &access3] {
        let answer = get_auth(&http, &profile, access).await;
        assert_eq!(
            answer,
            (
                401,
                json!({ "success": false, "error": { "code": "INVALID_TOKEN", "message": "Invalid access token" } })
            )
        );
    }
    // The newest refresh token of the family is dead too, and so is the middle one;
    // presenting them again does not count a second revocation.
    assert_eq!(refresh(&http, &base, &refresh3).await, never_issued);
    assert_eq!(refresh(&http, &base, &refresh2).await, never_issued);
    assert_eq!(refresh(&http, &base, &refresh1).await, never_issued);

    // Other families are untouched.
    assert_eq!(get_auth(&http, &profile, &other_access).await.0, 200);
    let (_, body) = get_auth(&http, &profile, &ops_access).await;
    assert_eq!(body["data"]["email"], demo::CADENZA_OPS_EMAIL);
    assert_eq!(refresh(&http, &base, &other_refresh).await.0, 200);
    assert_eq!(refresh(&http, &base, &ops_refresh).await.0, 200);

    // A fresh password login starts a new family that works.
    let (status, body) = login(&http, &base, demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let (new_access, new_refresh, _) = tokens(&body);
    assert_eq!(get_auth(&http, &profile, &new_access).await.0, 200);
    let (status, body) = refresh(&http, &base, &new_refresh).await;
    assert_eq!(status, 200, "{body}");
    let (newer_access, _, _) = tokens(&body);
    assert_eq!(get_auth(&http, &profile, &newer_access).await.0, 200);

    // /stats names the counter; only Cadenza's moved.
    let raw = http
        .get(format!("{}/stats", sim.urls().control))
        .send_json::<Value>()
        .await;
    assert_eq!(raw["cadenza"]["family_revocations"], 1, "{raw}");
    for venue in ["partner", "cascade", "exchange"] {
        assert_eq!(raw[venue]["family_revocations"], 0, "{venue}");
    }
    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.family_revocations, 1);
    assert_eq!(stats.logins, 4);
    assert_eq!(stats.refreshes, 5);
    stats.assert_rejected("INVALID_REFRESH_TOKEN = 5; INVALID_TOKEN = 3");

    // The reuse is audited under the token's owner; no token appears in the log.
    let audit = sim.audit();
    let reuse = audit
        .iter()
        .filter(|e| e.path == "/api/v3/auth/token/refresh" && e.status == 401)
        .map(|e| e.account.as_deref())
        .collect::<Vec<_>>();
    assert_eq!(reuse, [None, Some(demo::CADENZA_EMAIL), None, None, None]);
    let text = serde_json::to_string(&audit).unwrap();
    for secret in [&access1, &refresh1, &refresh2, &refresh3] {
        assert!(!text.contains(secret.as_str()), "audit leaks a token");
    }

    // A reset zeroes the counter.
    sim.reset();
    assert_eq!(sim.venue_stats(Venue::Cadenza).family_revocations, 0);
}

#[tokio::test]
async fn reuse_detection_after_admin_revoke_and_expiry() {
    let (sim, http, base, profile) = start_cadenza(revoking_families()).await;

    // Presenting a token that was never rotated is an ordinary refresh; a token revoked
    // by the control API is just invalid, not a reuse.
    let (access1, refresh1, _) = demo_login(&http, &base).await;
    let (status, body) = refresh(&http, &base, &refresh1).await;
    assert_eq!(status, 200, "{body}");
    let (access2, refresh2, _) = tokens(&body);
    assert_eq!(
        sim.revoke(Venue::Cadenza, Revoke::RefreshTokens).unwrap(),
        1
    );
    assert_refresh_refused(&http, &base, &refresh2).await;
    assert_refresh_refused(&http, &base, &refresh1).await;
    assert_eq!(get_auth(&http, &profile, &access1).await.0, 200);
    assert_eq!(get_auth(&http, &profile, &access2).await.0, 200);

    // An expired, already rotated token still counts as reuse.
    let (access3, refresh3, _) = demo_login(&http, &base).await;
    let (_, refresh4, _) = rotate(&http, &base, &refresh3).await;
    sim.advance_clock_secs(7 * 24 * 3600 + 1);
    assert_refresh_refused(&http, &base, &refresh3).await;
    assert_refresh_refused(&http, &base, &refresh4).await;
    assert_401(get_auth(&http, &profile, &access3).await, "INVALID_TOKEN");
    assert_eq!(sim.venue_stats(Venue::Cadenza).family_revocations, 1);
}
