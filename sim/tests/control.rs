//! The control listener and the in-process API: faults of every kind, clock shifts,
//! lifetimes, revocation, exact counters, reset and the audit log.

mod common;

use std::time::{Duration, Instant};

use common::{RequestExt as _, get_json, start_client, status_json};
use serde_json::{Value, json};
use tradeauth_sim::{Fault, Sim, Stats, Venue, demo};

async fn control_post(http: &reqwest::Client, sim: &Sim, path: &str, body: Value) -> (u16, Value) {
    status_json(
        http.post(format!("{}{path}", sim.urls().control))
            .json(&body)
            .sent()
            .await,
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
    let (sim, http) = start_client().await;
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
        .sent()
        .await;
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
        .sent()
        .await;
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
    let (sim, http) = start_client().await;
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
    let (sim, http) = start_client().await;
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
        .sent()
        .await;
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
    let (sim, http) = start_client().await;

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
        .send_json()
        .await;
    assert!(profile.get("trader_id").is_none());
    assert_eq!(profile["username"], demo::EXCHANGE_USERNAME);
}

#[tokio::test]
async fn faults_are_consumed_in_arming_order() {
    let (sim, http) = start_client().await;
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
        .sent()
        .await;
    assert_eq!(status_json(cleared).await, (200, json!({ "cleared": 1 })));
    assert!(sim.armed_faults().is_empty());
}

#[tokio::test]
async fn bad_control_requests_say_why() {
    let (sim, http) = start_client().await;
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
    let (sim, http) = start_client().await;

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
        .sent()
        .await;
    let (status, answer) = status_json(refreshed).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "INVALID_REFRESH_TOKEN");
}

#[tokio::test]
async fn stats_are_exact_and_reset_restores_the_start() {
    let (sim, http) = start_client().await;

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
            .sent()
            .await,
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
                "connections",
                "family_revocations",
                "in_flight",
                "logins",
                "max_in_flight",
                "max_open_connections",
                "open_connections",
                "refreshes",
                "rejections",
                "requests",
                "signed",
                "tokens_issued",
                "ws_auths",
                "ws_connections",
                "ws_messages_sent",
                "ws_private_before_auth"
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
    // Every counter restarts; the live gauges stay true: this test's client still holds
    // its kept-alive connections (one per venue it called), and the peak restarts there.
    let mut after = sim.stats();
    assert_eq!(after.cadenza.open_connections, 1);
    assert_eq!(after.cadenza.max_open_connections, 1);
    assert_eq!(after.exchange.open_connections, 1);
    assert_eq!(
        after.exchange.connections, 0,
        "the cumulative count restarts"
    );
    for venue in [
        &mut after.cadenza,
        &mut after.partner,
        &mut after.cascade,
        &mut after.exchange,
    ] {
        assert_eq!(venue.max_open_connections, venue.open_connections);
        venue.open_connections = 0;
        venue.max_open_connections = 0;
    }
    assert_eq!(after, Stats::default());
    assert!(sim.audit().is_empty());
    assert!(sim.armed_faults().is_empty());
    assert_eq!(sim.clock_offset_secs(), 0);
    // Issued tokens and provisioned traders are gone; demo accounts remain.
    let profile = http
        .get(format!("{}/api/v3/user/profile", sim.urls().cadenza))
        .bearer_auth(&access)
        .sent()
        .await;
    assert_eq!(
        status_json(profile).await.1["error"]["code"],
        "INVALID_TOKEN"
    );
    let gone = http
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .header("x-api-key", &temp_key)
        .sent()
        .await;
    assert_eq!(gone.status(), 401);
    let demo_user = http
        .get(format!("{}/api/v1/user", sim.urls().exchange))
        .header("x-api-key", demo::EXCHANGE_API_KEY)
        .sent()
        .await;
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
        .sent()
        .await;
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
        .sent()
        .await;
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

/// Unix seconds stated by a response's `Date` header.
fn date_secs(headers: &reqwest::header::HeaderMap) -> i64 {
    let text = headers["date"].to_str().expect("ascii Date");
    let stated = httpdate::parse_http_date(text).expect("HTTP date");
    stated
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Every header except `Date`, as (name, value) text, in order.
fn headers_but_date(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name != reqwest::header::DATE)
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().expect("ascii").to_owned(),
            )
        })
        .collect()
}

/// One answer, with the sim clock's whole seconds read just before and just after it, so
/// an unshifted `Date` must lie in `before..=after`.
struct Stamped {
    before: i64,
    after: i64,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Stamped {
    /// The `Date` header's shift from the sim clock: `Date - now` at the moment stamped.
    /// Asserts it is exactly `offset` (the second boundary may fall between the reads).
    fn assert_date_shift(&self, offset: i64) {
        let date = date_secs(&self.headers);
        assert!(
            (self.before + offset..=self.after + offset).contains(&date),
            "Date {date} is not sim now ({}..={}) {offset:+}",
            self.before,
            self.after
        );
    }
}

async fn stamped_get(sim: &Sim, http: &reqwest::Client, url: &str, token: Option<&str>) -> Stamped {
    let before = sim.now_unix_ms().div_euclid(1000);
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.sent().await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    let after = sim.now_unix_ms().div_euclid(1000);
    Stamped {
        before,
        after,
        status,
        headers,
        body,
    }
}

async fn access_token(http: &reqwest::Client, sim: &Sim) -> String {
    let body: Value = login(http, sim).await.unwrap().json().await.unwrap();
    body["data"]["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn date_fault_shifts_only_the_date_header() {
    let (sim, http) = start_client().await;
    let access = access_token(&http, &sim).await;
    let profile = format!("{}/api/v3/user/profile", sim.urls().cadenza);

    let plain = stamped_get(&sim, &http, &profile, Some(&access)).await;
    assert_eq!(plain.status, 200);
    plain.assert_date_shift(0);

    // Negative, armed in the text form (what --fault and the config take).
    let fault: Fault = "cadenza:/api/v3/user/profile=date,offset_secs=-7200"
        .parse()
        .unwrap();
    assert_eq!(
        fault,
        Fault::date(Venue::Cadenza, -7200).on_path("/api/v3/user/profile")
    );
    sim.arm_fault(fault);
    let behind = stamped_get(&sim, &http, &profile, Some(&access)).await;
    behind.assert_date_shift(-7200);
    assert_eq!(behind.status, plain.status);
    assert_eq!(behind.body, plain.body);
    assert_eq!(
        headers_but_date(&behind.headers),
        headers_but_date(&plain.headers)
    );

    // Positive, armed over the control API in the JSON form.
    let (status, armed) = control_post(
        &http,
        &sim,
        "/faults",
        json!({"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":5400,"count":1}),
    )
    .await;
    assert_eq!(status, 200, "{armed}");
    assert_eq!(
        armed,
        json!({"armed":{"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":5400,"count":1}})
    );
    let ahead = stamped_get(&sim, &http, &profile, Some(&access)).await;
    ahead.assert_date_shift(5400);
    assert_eq!(ahead.status, plain.status);
    assert_eq!(ahead.body, plain.body);
    assert_eq!(
        headers_but_date(&ahead.headers),
        headers_but_date(&plain.headers)
    );

    // An error answer keeps its status and body too; only Date moves.
    sim.arm_fault(Fault::date(Venue::Cadenza, -30));
    let rejected_plain = stamped_get(&sim, &http, &profile, Some("not-a-token")).await;
    rejected_plain.assert_date_shift(-30);
    let rejected_again = stamped_get(&sim, &http, &profile, Some("not-a-token")).await;
    rejected_again.assert_date_shift(0);
    assert_eq!(rejected_plain.status, 401);
    assert_eq!(rejected_plain.body, rejected_again.body);
    assert_eq!(
        headers_but_date(&rejected_plain.headers),
        headers_but_date(&rejected_again.headers)
    );

    // The shift is on top of the simulated clock: the handler runs on sim time, so
    // expiresAt follows the clock offset while Date is clock offset + fault offset.
    sim.set_clock_offset_secs(-600);
    sim.arm_fault(Fault::date(Venue::Cadenza, 600).on_path("/api/v3/auth/login"));
    let before_ms = sim.now_unix_ms();
    let response = login(&http, &sim).await.unwrap();
    let after_ms = sim.now_unix_ms();
    assert_eq!(response.status(), 200);
    let date = date_secs(response.headers());
    assert!(
        (before_ms.div_euclid(1000) + 600..=after_ms.div_euclid(1000) + 600).contains(&date),
        "{date}"
    );
    let body: Value = response.json().await.unwrap();
    let expires_at = body["data"]["expiresAt"].as_i64().unwrap();
    assert!((before_ms + 3_600_000..=after_ms + 3_600_000).contains(&expires_at));

    // Nothing else changed: every request was handled and none counted as a rejection
    // of the fault; the audit log keeps the sim clock's time.
    let stats = sim.venue_stats(Venue::Cadenza);
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.logins, 2);
    assert_eq!(stats.rejected("INVALID_TOKEN"), 2);
    assert_eq!(stats.total_rejections(), 2);
    assert!(sim.armed_faults().is_empty());
    let audit = sim.audit();
    assert_eq!(audit.len(), 7);
    assert!(audit.iter().all(|e| e.status == 200 || e.status == 401));
    let last = time::OffsetDateTime::parse(
        &audit[6].time,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!((before_ms.div_euclid(1000)..=after_ms.div_euclid(1000)).contains(&last));
}

#[tokio::test]
async fn date_fault_count_and_path_are_respected() {
    let (sim, http) = start_client().await;
    let access = access_token(&http, &sim).await;
    let profile = format!("{}/api/v3/user/profile", sim.urls().cadenza);
    let balances = format!("{}/api/v3/account/balances", sim.urls().cadenza);

    let (status, _) = control_post(
        &http,
        &sim,
        "/faults",
        json!({"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":-7200,"count":2}),
    )
    .await;
    assert_eq!(status, 200);

    // Another path neither is shifted nor uses up the fault.
    let other = stamped_get(&sim, &http, &balances, Some(&access)).await;
    assert_eq!(other.status, 200);
    other.assert_date_shift(0);
    assert_eq!(
        control_get(&http, &sim, "/faults").await.1,
        json!([{"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":-7200,"count":2}])
    );

    let first = stamped_get(&sim, &http, &profile, Some(&access)).await;
    first.assert_date_shift(-7200);
    assert_eq!(
        control_get(&http, &sim, "/faults").await.1[0]["count"],
        1,
        "one use left"
    );
    let second = stamped_get(&sim, &http, &profile, Some(&access)).await;
    second.assert_date_shift(-7200);
    assert!(sim.armed_faults().is_empty());
    let third = stamped_get(&sim, &http, &profile, Some(&access)).await;
    third.assert_date_shift(0);
    for s in [&first, &second, &third] {
        assert_eq!((s.status, &s.body), (200, &third.body));
    }

    // Venue-wide on another venue (a public route), once by default.
    sim.arm_fault(Fault::date(Venue::Exchange, 86_400));
    let book = format!("{}/api/v1/orderbook/BTC-USD", sim.urls().exchange);
    let shifted = stamped_get(&sim, &http, &book, None).await;
    shifted.assert_date_shift(86_400);
    let unshifted = stamped_get(&sim, &http, &book, None).await;
    unshifted.assert_date_shift(0);
    assert_eq!((shifted.status, &shifted.body), (200, &unshifted.body));
    assert_eq!(sim.venue_stats(Venue::Exchange).total_rejections(), 0);
}

#[tokio::test]
async fn date_fault_bad_params_are_rejected() {
    let (sim, http) = start_client().await;
    for (body, needle) in [
        (
            json!({"venue":"cadenza","kind":"date"}),
            "a date fault needs offset_secs",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":"-7200"}),
            "invalid type",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":1.5}),
            "invalid type",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":9_999_999_999_i64}),
            "offset_secs must be within",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":-7200,"status":503}),
            "status does not apply to a date fault",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":-7200,"delay_ms":5}),
            "delay_ms does not apply to a date fault",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":-7200,"field":"x"}),
            "field does not apply to a date fault",
        ),
        (
            json!({"venue":"cadenza","kind":"date","offset_secs":-7200,"count":0}),
            "count must be at least 1",
        ),
        (
            json!({"venue":"cadenza","kind":"status","status":503,"offset_secs":-7200}),
            "offset_secs does not apply to a status fault",
        ),
        (
            json!({"venue":"cadenza","kind":"delay","delay_ms":5,"offset_secs":-7200}),
            "offset_secs does not apply to a delay fault",
        ),
        (
            json!({"venue":"cadenza","kind":"drop","offset_secs":1}),
            "offset_secs does not apply to a drop fault",
        ),
        (
            json!({"venue":"cadenza","kind":"datum","offset_secs":1}),
            "echo_credential or date",
        ),
    ] {
        let (status, answer) = control_post(&http, &sim, "/faults", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let text = answer["error"].as_str().unwrap();
        assert!(text.contains(needle), "{body}: {text}");
    }
    for (spec, needle) in [
        (
            "cadenza:/api/v3/user/profile=date",
            "a date fault needs offset_secs",
        ),
        (
            "cadenza=date,offset_secs=soon",
            "offset_secs must be an integer",
        ),
        (
            "cadenza=date,offset_secs=-7200,status=503",
            "status does not apply to a date fault",
        ),
        (
            "cadenza=date,offset_secs=-7200,retry_after=1",
            "retry_after_secs does not apply to a date fault",
        ),
        (
            "cadenza=malformed,offset_secs=-7200",
            "offset_secs does not apply to a malformed fault",
        ),
        (
            "cadenza=date,offset_secs=-99999999999",
            "offset_secs must be within",
        ),
    ] {
        let err = spec.parse::<Fault>().expect_err(spec).to_string();
        assert!(err.contains(needle), "{spec}: {err}");
    }
    assert!(sim.armed_faults().is_empty());
}
