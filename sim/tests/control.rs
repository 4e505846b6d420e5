//! The control listener and the in-process API: faults of every kind, clock shifts,
//! lifetimes, revocation, exact counters, reset and the audit log.

mod common;

use std::time::{Duration, Instant};

use common::{client, get_json, start, status_json};
use serde_json::{Value, json};
use tradeauth_sim::{Fault, Sim, Stats, Venue, demo};

async fn control_post(http: &reqwest::Client, sim: &Sim, path: &str, body: Value) -> (u16, Value) {
    status_json(
        http.post(format!("{}{path}", sim.urls().control))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn control_get(http: &reqwest::Client, sim: &Sim, path: &str) -> (u16, Value) {
    get_json(http, &format!("{}{path}", sim.urls().control)).await
}

async fn login(http: &reqwest::Client, sim: &Sim) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{}/api/v3/auth/login", sim.urls().cadenza))
        .json(&json!({ "email": demo::CADENZA_EMAIL, "password": demo::CADENZA_PASSWORD }))
        .send()
        .await
}

#[tokio::test]
async fn status_fault_with_retry_after() {
    let sim = start().await;
    let http = client(&sim);
    let (status, armed) = control_post(
        &http,
        &sim,
        "/faults",
        json!({"venue":"cadenza","path":"/api/v3/auth/login","kind":"status","status":503,"count":2,"retry_after_secs":1}),
    )
    .await;
    assert_eq!(status, 200, "{armed}");
    assert_eq!(armed["armed"]["count"], 2);

    // Another path of the same venue is not affected.
    let other = http
        .get(format!("{}/api/v3/user/profile", sim.urls().cadenza))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);

    for _ in 0..2 {
        let response = login(&http, &sim).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    }
    assert_eq!(login(&http, &sim).await.unwrap().status(), 200);

    // 429 on the Exchange uses its own error shape, without Retry-After unless asked.
    sim.arm_fault(Fault::status(Venue::Exchange, 429));
    let response = http
        .get(format!("{}/api/v1/orderbook/BTC-USD", sim.urls().exchange))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "error": "Too Many Requests" })
    );

    let stats = sim.stats();
    assert_eq!(stats.cadenza.rejected("fault:503"), 2);
    assert_eq!(stats.cadenza.logins, 1);
    assert_eq!(stats.cadenza.requests, 4);
    assert_eq!(stats.exchange.rejected("fault:429"), 1);
    assert!(sim.armed_faults().is_empty());
}

#[tokio::test]
async fn delay_fault_delays_then_serves() {
    let sim = start().await;
    let http = client(&sim);
    // Warm the connection so the measurement is the fault, not the TLS handshake.
    assert_eq!(login(&http, &sim).await.unwrap().status(), 200);
    sim.arm_fault(Fault::delay(Venue::Cadenza, 300));
    let started = Instant::now();
    let response = login(&http, &sim).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(sim.venue_stats(Venue::Cadenza).logins, 2);
}

#[tokio::test]
async fn drop_fault_closes_the_connection() {
    let sim = start().await;
    let http = client(&sim);
    sim.arm_fault(Fault::drop_connection(Venue::Partner).on_path("/portfolio"));
    let error = http
        .get(format!("{}/portfolio", sim.urls().partner))
        .send()
        .await
        .expect_err("no response");
    assert!(!error.is_status(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    // The next request is served (on a new connection).
    let response = http
        .get(format!("{}/portfolio", sim.urls().partner))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // A drop on Cadenza is audited with status 0.
    sim.arm_fault(Fault::drop_connection(Venue::Cadenza));
    assert!(login(&http, &sim).await.is_err());
    let audit = sim.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].status, 0);

    let stats = sim.stats();
    assert_eq!(stats.partner.rejected("fault:drop"), 1);
    assert_eq!(stats.partner.requests, 2);
    assert_eq!(stats.cadenza.rejected("fault:drop"), 1);
    assert_eq!(stats.cadenza.logins, 0);
}

#[tokio::test]
async fn malformed_and_missing_field_faults() {
    let sim = start().await;
    let http = client(&sim);

    sim.arm_fault(Fault::malformed(Venue::Cadenza));
    let response = login(&http, &sim).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    // The handler did not run.
    assert_eq!(sim.venue_stats(Venue::Cadenza).logins, 0);

    sim.arm_fault(Fault::missing_field(Venue::Cadenza, "expiresAt"));
    let body: Value = login(&http, &sim).await.unwrap().json().await.unwrap();
    assert!(body["data"]["accessToken"].is_string(), "{body}");
    assert!(body["data"].get("expiresAt").is_none(), "{body}");
    // The handler ran.
    assert_eq!(sim.venue_stats(Venue::Cadenza).logins, 1);

    // Via the control API, on the Exchange profile.
    let (status, _) = control_post(
        &http,
        &sim,
        "/faults",
        json!({"venue":"exchange","path":"/api/v1/user","kind":"missing_field","field":"trader_id"}),
    )
    .await;
    assert_eq!(status, 200);
    let profile: Value = http
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .header("x-api-key", demo::EXCHANGE_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(profile.get("trader_id").is_none());
    assert_eq!(profile["username"], demo::EXCHANGE_USERNAME);
}

#[tokio::test]
async fn faults_are_consumed_in_arming_order() {
    let sim = start().await;
    let http = client(&sim);
    sim.arm_fault(Fault::status(Venue::Cadenza, 500));
    sim.arm_fault(Fault::status(Venue::Cadenza, 502).times(2));
    sim.arm_fault(Fault::status(Venue::Partner, 503));
    let (status, listed) = control_get(&http, &sim, "/faults").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(
        listed[1],
        json!({ "venue": "cadenza", "kind": "status", "status": 502, "count": 2 })
    );

    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(login(&http, &sim).await.unwrap().status().as_u16());
    }
    assert_eq!(seen, [500, 502, 502, 200]);
    assert_eq!(sim.armed_faults(), [Fault::status(Venue::Partner, 503)]);
    let cleared = http
        .delete(format!("{}/faults", sim.urls().control))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(cleared).await, (200, json!({ "cleared": 1 })));
    assert!(sim.armed_faults().is_empty());
}

#[tokio::test]
async fn bad_control_requests_say_why() {
    let sim = start().await;
    let http = client(&sim);
    for (path, body, needle) in [
        (
            "/faults",
            json!({"venue":"cadenza","kind":"drop","colour":"red"}),
            "colour",
        ),
        ("/faults", json!({"venue":"mars","kind":"drop"}), "mars"),
        (
            "/faults",
            json!({"venue":"cadenza","kind":"status"}),
            "status",
        ),
        (
            "/faults",
            json!({"venue":"cadenza","kind":"delay","delay_ms":5,"field":"x"}),
            "field",
        ),
        (
            "/revoke",
            json!({"venue":"partner","what":"all"}),
            "partner",
        ),
        (
            "/revoke",
            json!({"venue":"cadenza","what":"everything"}),
            "everything",
        ),
        ("/clock", json!({"offset":5}), "offset"),
        (
            "/lifetimes",
            json!({"venue":"cadenza","token_ttl_secs":5}),
            "token_ttl_secs",
        ),
        (
            "/lifetimes",
            json!({"venue":"exchange","access_ttl_secs":5}),
            "access_ttl_secs",
        ),
    ] {
        let (status, answer) = control_post(&http, &sim, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let text = answer["error"].as_str().unwrap();
        assert!(text.contains(needle), "{path} {body}: {text}");
    }
    assert_eq!(control_get(&http, &sim, "/nope").await.0, 404);
}

#[tokio::test]
async fn clock_lifetimes_and_revoke_over_http() {
    let sim = start().await;
    let http = client(&sim);

    let (status, clock) = control_post(&http, &sim, "/clock", json!({ "offset_secs": -600 })).await;
    assert_eq!(status, 200);
    assert_eq!(clock["offset_secs"], -600);
    assert_eq!(sim.clock_offset_secs(), -600);
    let system_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let skew = system_ms - sim.now_unix_ms();
    assert!((599_000..=601_000).contains(&skew), "{skew}");
    let (_, clock) = control_get(&http, &sim, "/clock").await;
    assert_eq!(clock["offset_secs"], -600);

    // Issued expiries follow the sim clock.
    let body: Value = login(&http, &sim).await.unwrap().json().await.unwrap();
    let expires_at = body["data"]["expiresAt"].as_i64().unwrap();
    let expected = system_ms - 600_000 + 3_600_000;
    assert!(
        (expires_at - expected).abs() < 5_000,
        "{expires_at} vs {expected}"
    );

    let (status, lifetimes) = control_post(
        &http,
        &sim,
        "/lifetimes",
        json!({ "venue": "cascade", "token_ttl_secs": 30, "nonce_ttl_secs": 10 }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        lifetimes,
        json!({
            "cadenza": { "access_ttl_secs": 3600, "refresh_ttl_secs": 604800 },
            "cascade": { "token_ttl_secs": 30, "nonce_ttl_secs": 10 },
        })
    );
    assert_eq!(control_get(&http, &sim, "/lifetimes").await.1, lifetimes);

    let (status, revoked) = control_post(
        &http,
        &sim,
        "/revoke",
        json!({ "venue": "cadenza", "what": "all" }),
    )
    .await;
    assert_eq!((status, revoked), (200, json!({ "revoked": 2 })));
    let refreshed = http
        .post(format!("{}/api/v3/auth/token/refresh", sim.urls().cadenza))
        .json(&json!({ "refreshToken": body["data"]["refreshToken"] }))
        .send()
        .await
        .unwrap();
    let (status, answer) = status_json(refreshed).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "INVALID_REFRESH_TOKEN");
}

#[tokio::test]
async fn stats_are_exact_and_reset_restores_the_start() {
    let sim = start().await;
    let http = client(&sim);

    let (status, stats) = control_get(&http, &sim, "/stats").await;
    assert_eq!(status, 200);
    let stats: Stats = serde_json::from_value(stats).unwrap();
    assert_eq!(stats, Stats::default());

    // Concurrent logins are all counted.
    let logins = (0..20).map(|_| login(&http, &sim));
    for response in futures_util::future::join_all(logins).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let (_, trader) = status_json(
        http.post(format!("{}/api/v1/admin/traders", sim.urls().exchange))
            .bearer_auth(demo::EXCHANGE_ADMIN_TOKEN)
            .json(&json!({ "username": "temp" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let temp_key = trader["api_key"].as_str().unwrap().to_owned();
    let body: Value = login(&http, &sim).await.unwrap().json().await.unwrap();
    let access = body["data"]["accessToken"].as_str().unwrap().to_owned();
    sim.arm_fault(Fault::status(Venue::Cascade, 500));
    sim.set_clock_offset_secs(1234);

    let (_, raw) = control_get(&http, &sim, "/stats").await;
    for venue in ["cadenza", "partner", "cascade", "exchange"] {
        let mut keys: Vec<_> = raw[venue].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "challenges",
                "in_flight",
                "logins",
                "max_in_flight",
                "refreshes",
                "rejections",
                "requests",
                "tokens_issued",
                "ws_auths"
            ],
            "{venue}"
        );
    }
    let stats: Stats = serde_json::from_value(raw).unwrap();
    assert_eq!(stats.cadenza.logins, 21);
    assert_eq!(stats.cadenza.requests, 21);
    assert_eq!(stats.exchange.tokens_issued, 1);
    assert_eq!(stats, sim.stats());
    let (_, audit) = control_get(&http, &sim, "/audit").await;
    assert_eq!(audit.as_array().unwrap().len(), 21);
    let audit_text = audit.to_string();
    assert!(!audit_text.contains(&access));
    assert!(!audit_text.contains(demo::CADENZA_PASSWORD));

    let (status, answer) = control_post(&http, &sim, "/reset", json!({})).await;
    assert_eq!((status, answer), (200, json!({ "reset": true })));
    assert_eq!(sim.stats(), Stats::default());
    assert!(sim.audit().is_empty());
    assert!(sim.armed_faults().is_empty());
    assert_eq!(sim.clock_offset_secs(), 0);
    // Issued tokens and provisioned traders are gone; demo accounts remain.
    let profile = http
        .get(format!("{}/api/v3/user/profile", sim.urls().cadenza))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_json(profile).await.1["error"]["code"],
        "INVALID_TOKEN"
    );
    let gone = http
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .header("x-api-key", &temp_key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);
    let demo_user = http
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .header("x-api-key", demo::EXCHANGE_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(demo_user.status(), 200);
    assert_eq!(login(&http, &sim).await.unwrap().status(), 200);
    let stats = sim.stats();
    assert_eq!((stats.cadenza.logins, stats.exchange.requests), (1, 2));
}

#[tokio::test]
async fn redirect_fault_answers_307_with_the_location() {
    let sim = common::start().await;
    let target = format!("{}/portfolio", sim.urls().partner);
    sim.arm_fault(tradeauth_sim::Fault::redirect(
        tradeauth_sim::Venue::Exchange,
        target.as_str(),
    ));
    let client = common::client_no_redirects(&sim);
    let response = client
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 307);
    assert_eq!(response.headers()["location"], target.as_str());
    assert_eq!(sim.stats().exchange.rejected("fault:redirect"), 1);
    let parsed: tradeauth_sim::Fault = "cascade:/auth=redirect,location=http://127.0.0.1:1/x"
        .parse()
        .expect("text form");
    assert!(matches!(
        parsed.kind,
        tradeauth_sim::FaultKind::Redirect { .. }
    ));
}

#[tokio::test]
async fn date_header_follows_the_simulated_clock() {
    let sim = common::start().await;
    sim.set_clock_offset_secs(-600);
    let client = common::client(&sim);
    let response = client
        .get(format!("{}/api/v1/orderbook/BTC-USD", sim.urls().exchange))
        .send()
        .await
        .expect("answer");
    let date = response.headers()["date"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let stated = httpdate::parse_http_date(&date).expect("HTTP date");
    let real = std::time::SystemTime::now();
    let behind = real.duration_since(stated).expect("venue clock is behind");
    assert!(
        (595..=605).contains(&behind.as_secs()),
        "Date is {behind:?} behind, expected ~600 s"
    );
}
