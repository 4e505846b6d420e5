//! Exchange over real TLS: the key-protected routes, the order lifecycle, admin
//! provisioning, public market data and the WebSocket.

mod common;

use common::{
    Rejections as _, RequestExt as _, get_json, start, start_client, start_ws, status_json,
    ws_call, ws_connect, ws_recv,
};
use serde_json::{Value, json};
use tradeauth_sim::{Sim, Venue, demo};

fn url(sim: &Sim, path: &str) -> String {
    format!("{}{path}", sim.urls().exchange)
}

async fn get_key(http: &reqwest::Client, sim: &Sim, path: &str, key: &str) -> (u16, Value) {
    status_json(
        http.get(url(sim, path))
            .header("x-api-key", key)
            .sent()
            .await,
    )
    .await
}

async fn place(http: &reqwest::Client, sim: &Sim, key: &str, order: Value) -> (u16, Value) {
    status_json(
        http.post(url(sim, "/api/v1/orders"))
            .header("x-api-key", key)
            .json(&order)
            .sent()
            .await,
    )
    .await
}

async fn provision(
    http: &reqwest::Client,
    sim: &Sim,
    auth: Option<&str>,
    username: &str,
) -> (u16, Value) {
    let mut request = http
        .post(url(sim, "/api/v1/admin/traders"))
        .json(&json!({ "username": username }));
    if let Some(value) = auth {
        request = request.header("authorization", value);
    }
    status_json(request.sent().await).await
}

#[tokio::test]
async fn key_protected_routes() {
    let (sim, http) = start_client().await;

    let (status, body) = get_key(&http, &sim, "/api/v1/user", demo::EXCHANGE_API_KEY).await;
    assert_eq!(status, 200);
    // Exactly the page's example profile.
    assert_eq!(
        body,
        json!({
            "trader_id": "9d64e278-8b56-46e9-9cab-18c5b22f2fb9",
            "username": "team-alpha",
            "api_key": "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f",
            "created_at": "2024-01-15T10:00:00Z",
        })
    );
    for path in [
        "/api/v1/positions",
        "/api/v1/portfolio",
        "/api/v1/leaderboard",
        "/api/v1/open-orders",
        "/api/v1/fills",
    ] {
        let (status, body) = get_key(&http, &sim, path, demo::EXCHANGE_API_KEY).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_object(), "{path}: {body}");
    }

    let missing = (401, json!({ "error": "missing authentication" }));
    let invalid = (401, json!({ "error": "invalid api key" }));
    for path in ["/api/v1/user", "/api/v1/fills", "/api/v1/open-orders"] {
        assert_eq!(get_json(&http, &url(&sim, path)).await, missing, "{path}");
        assert_eq!(
            get_key(&http, &sim, path, "exch_00000000000000000000000000000000").await,
            invalid,
            "{path}"
        );
    }
    assert_eq!(
        place(&http, &sim, "not-a-key", json!({})).await,
        invalid,
        "authentication comes before body validation"
    );
    let no_key = http.delete(url(&sim, "/api/v1/orders/abc")).sent().await;
    assert_eq!(status_json(no_key).await, missing);

    let stats = sim.venue_stats(Venue::Exchange);
    stats.assert_rejected("missing authentication = 4; invalid api key = 4");
}

#[tokio::test]
async fn order_lifecycle() {
    let (sim, http) = start_client().await;
    let key = demo::EXCHANGE_API_KEY;

    let (status, order) = place(
        &http,
        &sim,
        key,
        json!({ "market": "BTC-USD", "side": "buy", "price": 50000.0, "quantity": 0.5 }),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "open");
    assert_eq!(order["trader_id"], demo::EXCHANGE_TRADER_ID);
    assert_eq!(order["market"], "BTC-USD");
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&order_id).unwrap().get_version_num(),
        4
    );

    let (_, open) = get_key(&http, &sim, "/api/v1/open-orders", key).await;
    assert_eq!(open["orders"], json!([order]));

    // Amend.
    let amend = |key: &str, body: Value| {
        let request = http
            .patch(url(&sim, &format!("/api/v1/orders/{order_id}")))
            .header("x-api-key", key)
            .json(&body);
        async move { request.sent().await }
    };
    let amended = amend(key, json!({ "price": 49000.0 })).await;
    let (status, amended) = status_json(amended).await;
    assert_eq!(status, 200, "{amended}");
    assert_eq!(amended["price"], 49000.0);
    assert_eq!(amended["quantity"], 0.5);
    let empty_amend = amend(key, json!({})).await;
    assert_eq!(empty_amend.status(), 400);

    // Another trader cannot see, amend or cancel it.
    let (_, other) = provision(
        &http,
        &sim,
        Some(&format!("Bearer {}", demo::EXCHANGE_ADMIN_TOKEN)),
        "team-beta",
    )
    .await;
    let other_key = other["api_key"].as_str().unwrap();
    let (_, open) = get_key(&http, &sim, "/api/v1/open-orders", other_key).await;
    assert_eq!(open["orders"], json!([]));
    let not_found = (404, json!({ "error": "order not found" }));
    let cancel = |key: String, id: String| {
        let request = http
            .delete(url(&sim, &format!("/api/v1/orders/{id}")))
            .header("x-api-key", key);
        async move { status_json(request.sent().await).await }
    };
    assert_eq!(
        cancel(other_key.to_owned(), order_id.clone()).await,
        not_found
    );
    let other_amend = amend(other_key, json!({ "quantity": 1.0 })).await;
    assert_eq!(status_json(other_amend).await, not_found);

    // Cancel: it leaves open-orders; a second cancel finds nothing.
    let (status, cancelled) = cancel(key.to_owned(), order_id.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["order_id"], order_id.as_str());
    let (_, open) = get_key(&http, &sim, "/api/v1/open-orders", key).await;
    assert_eq!(open["orders"], json!([]));
    assert_eq!(cancel(key.to_owned(), order_id).await, not_found);
    assert_eq!(
        cancel(key.to_owned(), "not-a-uuid".to_owned()).await,
        not_found
    );

    // Invalid orders.
    for bad in [
        json!({ "market": "BTC-USD", "side": "hold", "price": 1.0, "quantity": 1.0 }),
        json!({ "market": "BTC-USD", "side": "buy", "price": -1.0, "quantity": 1.0 }),
        json!({ "market": "BTC-USD", "side": "buy", "price": 1.0 }),
        json!({ "market": "", "side": "sell", "price": 1.0, "quantity": 1.0 }),
    ] {
        assert_eq!(place(&http, &sim, key, bad.clone()).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn admin_provisioning() {
    let (sim, http) = start_client().await;
    let admin = format!("Bearer {}", demo::EXCHANGE_ADMIN_TOKEN);

    let (status, trader) = provision(&http, &sim, Some(&admin), "team-gamma").await;
    assert_eq!(status, 201, "{trader}");
    assert_eq!(trader["username"], "team-gamma");
    let key = trader["api_key"].as_str().unwrap();
    let hex = key.strip_prefix("exch_").unwrap();
    assert_eq!(hex.len(), 32);
    assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    uuid::Uuid::parse_str(trader["trader_id"].as_str().unwrap()).unwrap();
    time::OffsetDateTime::parse(
        trader["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    // The new key works at once.
    let (status, profile) = get_key(&http, &sim, "/api/v1/user", key).await;
    assert_eq!(status, 200);
    assert_eq!(profile, trader);

    assert_eq!(
        provision(&http, &sim, None, "x").await,
        (401, json!({ "error": "missing authentication" }))
    );
    assert_eq!(
        provision(&http, &sim, Some("Bearer wrong"), "x").await,
        (401, json!({ "error": "invalid admin token" }))
    );
    assert_eq!(
        provision(&http, &sim, Some(&admin), "team-gamma").await.0,
        409
    );
    assert_eq!(
        provision(&http, &sim, Some(&admin), "team-alpha").await.0,
        409
    );
    assert_eq!(provision(&http, &sim, Some(&admin), "").await.0, 400);

    let (_, board) = get_key(&http, &sim, "/api/v1/leaderboard", key).await;
    assert_eq!(board["leaderboard"].as_array().unwrap().len(), 2);
    assert_eq!(sim.venue_stats(Venue::Exchange).tokens_issued, 1);
}

#[tokio::test]
async fn public_orderbook() {
    let (sim, http) = start_client().await;
    let (status, book) = get_json(&http, &url(&sim, "/api/v1/orderbook/BTC-USD")).await;
    assert_eq!(status, 200);
    assert_eq!(book["market"], "BTC-USD");
    assert!(!book["bids"].as_array().unwrap().is_empty());
    assert!(!book["asks"].as_array().unwrap().is_empty());
    let (status, _) = get_json(&http, &url(&sim, "/api/v1/nope")).await;
    assert_eq!(status, 404);
    // A plain GET of the WebSocket path is refused in the venue's error shape.
    let (status, body) = get_json(&http, &url(&sim, "/ws")).await;
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(body, json!({ "error": "expected a WebSocket upgrade" }));
}

#[tokio::test]
async fn websocket() {
    let (sim, http, mut ws) = start_ws(Venue::Exchange).await;

    // Market data before authenticating.
    let reply = ws_call(
        &mut ws,
        json!({ "op": "subscribe", "channel": "orderbook", "market": "BTC-USD" }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "type": "subscribed", "channel": "orderbook", "market": "BTC-USD" })
    );
    let snapshot = ws_recv(&mut ws).await;
    assert_eq!(snapshot["type"], "orderbook_snapshot");
    assert_eq!(snapshot["market"], "BTC-USD");

    let order = json!({ "op": "place_order", "market": "BTC-USD", "side": "sell", "price": 51000.0, "quantity": 0.1 });
    let not_authenticated = json!({ "type": "error", "message": "not authenticated" });
    assert_eq!(ws_call(&mut ws, order.clone()).await, not_authenticated);
    assert_eq!(
        ws_call(&mut ws, json!({ "op": "cancel_order", "order_id": "x" })).await,
        not_authenticated
    );
    assert_eq!(
        ws_call(&mut ws, json!({ "op": "authenticate" })).await,
        json!({ "type": "error", "message": "missing authentication" })
    );
    assert_eq!(
        ws_call(
            &mut ws,
            json!({ "op": "authenticate", "api_key": "exch_00000000000000000000000000000000" })
        )
        .await,
        json!({ "type": "error", "message": "invalid api key" })
    );
    assert_eq!(
        ws_call(
            &mut ws,
            json!({ "op": "authenticate", "api_key": demo::EXCHANGE_API_KEY })
        )
        .await,
        json!({
            "type": "authenticated",
            "trader_id": demo::EXCHANGE_TRADER_ID,
            "username": demo::EXCHANGE_USERNAME,
        })
    );

    let accepted = ws_call(&mut ws, order).await;
    assert_eq!(accepted["type"], "order_accepted", "{accepted}");
    assert_eq!(accepted["order"]["status"], "open");
    let order_id = accepted["order"]["order_id"].as_str().unwrap().to_owned();
    // Real state: the order is visible over REST.
    let (_, open) = get_key(&http, &sim, "/api/v1/open-orders", demo::EXCHANGE_API_KEY).await;
    assert_eq!(open["orders"][0]["order_id"], order_id.as_str());

    let cancelled = ws_call(
        &mut ws,
        json!({ "op": "cancel_order", "order_id": order_id }),
    )
    .await;
    assert_eq!(cancelled["type"], "order_cancelled");
    assert_eq!(cancelled["order"]["status"], "cancelled");
    assert_eq!(
        ws_call(
            &mut ws,
            json!({ "op": "cancel_order", "order_id": order_id })
        )
        .await,
        json!({ "type": "error", "message": "order not found" })
    );
    assert_eq!(
        ws_call(&mut ws, json!({ "op": "dance" })).await["type"],
        "error"
    );

    let stats = sim.venue_stats(Venue::Exchange);
    assert_eq!(stats.ws_auths, 1);
    stats.assert_rejected("not authenticated = 2; invalid api key = 1; missing authentication = 1");
}

#[tokio::test]
async fn echo_credential_fault_quotes_the_key_in_the_ws_rejection() {
    let sim = start().await;
    sim.arm_fault(tradeauth_sim::Fault::echo_credential(Venue::Exchange).on_path("/ws"));
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    let reply = ws_call(
        &mut ws,
        json!({ "op": "authenticate", "api_key": demo::EXCHANGE_API_KEY }),
    )
    .await;
    assert_eq!(reply["type"], "error");
    let message = reply["message"].as_str().unwrap();
    assert!(message.starts_with("invalid api key"), "{message}");
    assert!(message.contains(demo::EXCHANGE_API_KEY), "{message}");
    assert!(sim.armed_faults().is_empty(), "consumed by the upgrade");
    // The next connection is a normal one again.
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    let reply = ws_call(
        &mut ws,
        json!({ "op": "authenticate", "api_key": demo::EXCHANGE_API_KEY }),
    )
    .await;
    assert_eq!(reply["type"], "authenticated", "{reply}");
    // The text and JSON forms parse to the same fault.
    let text: tradeauth_sim::Fault = "exchange:/ws=echo_credential".parse().unwrap();
    assert_eq!(
        text,
        tradeauth_sim::Fault::echo_credential(Venue::Exchange).on_path("/ws")
    );
    let json: tradeauth_sim::Fault =
        serde_json::from_value(json!({"venue": "exchange", "kind": "echo_credential"})).unwrap();
    assert_eq!(json.kind, tradeauth_sim::FaultKind::EchoCredential);
    assert!(
        serde_json::from_value::<tradeauth_sim::Fault>(
            json!({"venue": "exchange", "kind": "echo_credential", "status": 401})
        )
        .is_err()
    );
}
