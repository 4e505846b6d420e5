//! WebSocket streaming over real TLS: orderbook deltas with per-connection `seq`,
//! `POST /ws/burst`, order events to `orders` subscribers, the `ws_drop` and `ws_silence`
//! faults, the WebSocket counters, and Cascade revocation of an authenticated connection.

mod common;

use std::time::{Duration, Instant};

use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use common::{
    RequestExt as _, Ws, client, get_json, start_client, start_client_with, status_json, ws_call,
    ws_connect, ws_recv, ws_send,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tradeauth_sim::{Fault, Sim, SimConfig, Venue, demo};

/// Long enough that a message that is coming arrives; only reached when none comes.
const QUIET: Duration = Duration::from_millis(300);

async fn control_post(http: &reqwest::Client, sim: &Sim, path: &str, body: Value) -> (u16, Value) {
    status_json(
        http.post(format!("{}{path}", sim.urls().control))
            .json(&body)
            .sent()
            .await,
    )
    .await
}

/// Authenticates an Exchange connection as the demo trader.
async fn exchange_auth(ws: &mut Ws) {
    let reply = ws_call(
        ws,
        json!({ "op": "authenticate", "api_key": demo::EXCHANGE_API_KEY }),
    )
    .await;
    assert_eq!(reply["type"], "authenticated", "{reply}");
}

/// Subscribes an Exchange connection to `market`'s orderbook and reads the snapshot.
async fn exchange_book(ws: &mut Ws, market: &str) {
    let reply = ws_call(
        ws,
        json!({ "op": "subscribe", "channel": "orderbook", "market": market }),
    )
    .await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert_eq!(ws_recv(ws).await["type"], "orderbook_snapshot");
}

/// Subscribes a Cascade connection to `market`'s orderbook and reads the snapshot.
async fn cascade_book(ws: &mut Ws, market: &str) {
    let reply = ws_call(
        ws,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": { "channel": "orderbook", "market": market } }),
    )
    .await;
    assert_eq!(reply["result"]["subscribed"], format!("orderbook:{market}"));
    assert_eq!(ws_recv(ws).await["params"]["type"], "snapshot");
}

/// A Cascade JWT for the demo account, signed by its delegate.
async fn cascade_token(http: &reqwest::Client, sim: &Sim) -> String {
    let url = format!(
        "{}/auth?account={}",
        sim.urls().cascade,
        demo::CASCADE_ACCOUNT
    );
    let (status, c) = get_json(http, &url).await;
    assert_eq!(status, 200, "{c}");
    let signer: PrivateKeySigner = demo::CASCADE_DELEGATE_KEY.parse().unwrap();
    let payload = c["signing_payload"].as_str().unwrap();
    let signature = signer.sign_message_sync(payload.as_bytes()).unwrap();
    let body = json!({
        "message": c["message"],
        "signature": format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes())),
        "server_signature": c["server_signature"],
    });
    let (status, body) = status_json(
        http.post(format!("{}/auth", sim.urls().cascade))
            .json(&body)
            .sent()
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn cascade_auth(ws: &mut Ws, token: &str) {
    let reply = ws_call(
        ws,
        json!({ "jsonrpc": "2.0", "id": "a", "method": "auth", "params": { "bearer": token } }),
    )
    .await;
    assert_eq!(reply["result"]["authenticated"], true, "{reply}");
}

/// Asserts that nothing arrives for a while (pings and pongs aside).
async fn assert_quiet(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + QUIET;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Proves nothing else is queued: an `{"op":"ping"}` is answered by the very next message.
async fn assert_exchange_drained(ws: &mut Ws) {
    assert_eq!(
        ws_call(ws, json!({ "op": "ping" })).await,
        json!({ "type": "pong" })
    );
}

/// Reads until the server ends the connection; returns the text messages read first.
/// Panics on a close frame: the simulator drops abruptly, without one.
async fn read_until_dropped(ws: &mut Ws) -> Vec<Value> {
    let mut texts = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the connection ends in time");
        match next {
            None | Some(Err(_)) => return texts,
            Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("expected an abrupt close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn exchange_deltas_arrive_with_consecutive_seq() {
    let mut config = SimConfig::default();
    config.exchange.ws_delta_interval_ms = 5;
    let (sim, _http) = start_client_with(config).await;
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_book(&mut ws, "BTC-USD").await;
    for seq in 1..=5u64 {
        let delta = ws_recv(&mut ws).await;
        assert_eq!(delta["type"], "orderbook_delta", "{delta}");
        assert_eq!(delta["market"], "BTC-USD");
        assert_eq!(delta["seq"], seq);
        for side in ["bids", "asks"] {
            let level = &delta[side][0];
            assert!(level[0].is_f64() && level[1].is_f64(), "{delta}");
        }
    }
    // A connection without a subscription gets no deltas.
    let mut idle = ws_connect(&sim, &sim.urls().exchange).await;
    assert_quiet(&mut idle).await;
}

#[tokio::test]
async fn cascade_deltas_count_seq_per_market() {
    let mut config = SimConfig::default();
    config.cascade.ws_delta_interval_ms = 5;
    let (sim, _http) = start_client_with(config).await;
    let mut ws = ws_connect(&sim, &sim.urls().cascade).await;
    cascade_book(&mut ws, "ETH-USD").await;
    // ETH-USD deltas may arrive before the second subscription's reply and snapshot.
    ws_send(
        &mut ws,
        &json!({ "jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": { "channel": "orderbook", "market": "BTC-USD" } }),
    )
    .await;
    let mut next_seq = std::collections::HashMap::from([("ETH-USD", 1u64), ("BTC-USD", 1u64)]);
    let mut deltas = 0;
    while deltas < 8 || next_seq["BTC-USD"] < 3 {
        let delta = ws_recv(&mut ws).await;
        if delta["id"] == 2 {
            assert_eq!(delta["result"]["subscribed"], "orderbook:BTC-USD");
            continue;
        }
        if delta["params"]["type"] == "snapshot" {
            assert_eq!(delta["params"]["market"], "BTC-USD");
            continue;
        }
        deltas += 1;
        assert_eq!(delta["jsonrpc"], "2.0");
        assert_eq!(delta["method"], "orderbook");
        assert!(delta.get("id").is_none());
        let params = &delta["params"];
        assert_eq!(params["type"], "delta", "{delta}");
        let market = params["market"].as_str().unwrap();
        assert_eq!(params["channel"], format!("orderbook:{market}"));
        assert!(params["bids"][0][0].is_string() && params["asks"][0][1].is_string());
        let expected = next_seq.get_mut(market).expect("a subscribed market");
        assert_eq!(params["seq"], *expected, "{delta}");
        *expected += 1;
    }
}

#[tokio::test]
async fn burst_delivers_exactly_n_per_subscription() {
    let (sim, http) = start_client().await;
    let mut two = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_book(&mut two, "BTC-USD").await;
    exchange_book(&mut two, "ETH-USD").await;
    let mut one = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_book(&mut one, "BTC-USD").await;
    let mut none = ws_connect(&sim, &sim.urls().exchange).await;
    let before = sim.venue_stats(Venue::Exchange).ws_messages_sent;

    let (status, body) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "exchange", "count": 200 }),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "sent": 600 })));

    let mut seqs = std::collections::HashMap::<String, Vec<u64>>::new();
    for _ in 0..400 {
        let delta = ws_recv(&mut two).await;
        assert_eq!(delta["type"], "orderbook_delta");
        let market = delta["market"].as_str().unwrap().to_owned();
        seqs.entry(market)
            .or_default()
            .push(delta["seq"].as_u64().unwrap());
    }
    let expected: Vec<u64> = (1..=200).collect();
    assert_eq!(seqs["BTC-USD"], expected);
    assert_eq!(seqs["ETH-USD"], expected);
    for seq in 1..=200u64 {
        assert_eq!(ws_recv(&mut one).await["seq"], seq);
    }
    assert_eq!(
        sim.venue_stats(Venue::Exchange).ws_messages_sent,
        before + 600
    );
    for ws in [&mut two, &mut one, &mut none] {
        assert_exchange_drained(ws).await;
    }

    // In process, and on Cascade; seq continues per connection.
    let mut cascade = ws_connect(&sim, &sim.urls().cascade).await;
    cascade_book(&mut cascade, "ETH-USD").await;
    assert_eq!(sim.burst(Venue::Cascade, 2).unwrap(), 2);
    assert_eq!(sim.burst(Venue::Cascade, 1).unwrap(), 1);
    for seq in 1..=3u64 {
        assert_eq!(ws_recv(&mut cascade).await["params"]["seq"], seq);
    }
    assert_quiet(&mut cascade).await;

    // Venues without WebSocket, and bad bodies, are refused.
    let (status, body) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "cadenza", "count": 1 }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("no WebSocket"),
        "{body}"
    );
    let (status, _) = control_post(&http, &sim, "/ws/burst", json!({ "venue": "exchange" })).await;
    assert_eq!(status, 400);
    assert!(sim.burst(Venue::Partner, 1).is_err());
}

#[tokio::test]
async fn exchange_orders_reach_orders_subscribers() {
    let (sim, http) = start_client().await;
    let mut subscriber = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_auth(&mut subscriber).await;
    let reply = ws_call(
        &mut subscriber,
        json!({ "op": "subscribe", "channel": "orders" }),
    )
    .await;
    assert_eq!(reply, json!({ "type": "subscribed", "channel": "orders" }));
    // Authenticated but not subscribed: no events.
    let mut other = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_auth(&mut other).await;

    let order = json!({ "market": "BTC-USD", "side": "buy", "price": 49000.0, "quantity": 0.1 });
    let (status, placed) = status_json(
        http.post(format!("{}/api/v1/orders", sim.urls().exchange))
            .header("x-api-key", demo::EXCHANGE_API_KEY)
            .json(&order)
            .sent()
            .await,
    )
    .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(
        ws_recv(&mut subscriber).await,
        json!({ "type": "order", "event": "placed", "order": placed })
    );

    let id = placed["order_id"].as_str().unwrap();
    let (status, cancelled) = status_json(
        http.delete(format!("{}/api/v1/orders/{id}", sim.urls().exchange))
            .header("x-api-key", demo::EXCHANGE_API_KEY)
            .sent()
            .await,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(
        ws_recv(&mut subscriber).await,
        json!({ "type": "order", "event": "cancelled", "order": cancelled })
    );

    // Over WebSocket too: the reply first, then the event.
    let mut ws_order = order.clone();
    ws_order["op"] = json!("place_order");
    let accepted = ws_call(&mut subscriber, ws_order).await;
    assert_eq!(accepted["type"], "order_accepted", "{accepted}");
    let event = ws_recv(&mut subscriber).await;
    assert_eq!(event["event"], "placed");
    assert_eq!(event["order"], accepted["order"]);
    let id = accepted["order"]["order_id"].clone();
    let reply = ws_call(
        &mut subscriber,
        json!({ "op": "cancel_order", "order_id": id }),
    )
    .await;
    assert_eq!(reply["type"], "order_cancelled");
    assert_eq!(ws_recv(&mut subscriber).await["event"], "cancelled");

    assert_exchange_drained(&mut subscriber).await;
    assert_exchange_drained(&mut other).await;
}

#[tokio::test]
async fn cascade_orders_reach_orders_subscribers() {
    let (sim, http) = start_client().await;
    let token = cascade_token(&http, &sim).await;
    let mut ws = ws_connect(&sim, &sim.urls().cascade).await;
    cascade_auth(&mut ws, &token).await;
    let account = demo::CASCADE_ACCOUNT.to_ascii_lowercase();
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": { "channel": "orders" } }),
    )
    .await;
    assert_eq!(reply["result"]["subscribed"], format!("orders:{account}"));

    let (status, body) = status_json(
        http.post(format!("{}/account/orders", sim.urls().cascade))
            .bearer_auth(&token)
            .json(&json!({ "market": "ETH-USD", "side": "sell", "price": "3100", "size": "1" }))
            .sent()
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        ws_recv(&mut ws).await,
        json!({ "jsonrpc": "2.0", "method": "orders", "params": {
            "channel": format!("orders:{account}"),
            "type": "placed",
            "order": body["order"],
        } })
    );

    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": "tradeauth-3", "method": "order.create", "params": { "market": "ETH-USD", "side": "buy", "price": 3000, "size": 2 } }),
    )
    .await;
    assert_eq!(reply["id"], "tradeauth-3");
    let event = ws_recv(&mut ws).await;
    assert_eq!(event["params"]["type"], "placed");
    assert_eq!(event["params"]["order"], reply["result"]["order"]);

    // An HTTP order without a valid token is refused and pushes nothing.
    let response = http
        .post(format!("{}/account/orders", sim.urls().cascade))
        .json(&json!({ "market": "ETH-USD", "side": "sell", "price": "1", "size": "1" }))
        .sent()
        .await;
    assert_eq!(response.status(), 401);
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn ws_drop_closes_every_open_connection_now() {
    let (sim, http) = start_client().await;
    let mut a = ws_connect(&sim, &sim.urls().exchange).await;
    let mut b = ws_connect(&sim, &sim.urls().exchange).await;
    let mut cascade = ws_connect(&sim, &sim.urls().cascade).await;
    let (status, body) = control_post(
        &http,
        &sim,
        "/faults",
        json!({ "venue": "exchange", "kind": "ws_drop" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connections"], 2);
    assert_eq!(body["armed"]["kind"], "ws_drop");
    assert!(read_until_dropped(&mut a).await.is_empty());
    assert!(read_until_dropped(&mut b).await.is_empty());
    // Not queued: nothing left armed, a new connection works, other venues untouched.
    assert_eq!(sim.armed_faults(), vec![]);
    let mut c = ws_connect(&sim, &sim.urls().exchange).await;
    assert_exchange_drained(&mut c).await;
    let reply = ws_call(
        &mut cascade,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "nope" }),
    )
    .await;
    assert_eq!(reply["error"]["code"], -32601);
    assert_eq!(sim.ws_open_connections(Venue::Exchange), 1);
}

#[tokio::test]
async fn ws_drop_after_messages_counts_every_sent_message() {
    let (sim, http) = start_client().await;
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_book(&mut ws, "BTC-USD").await;
    sim.arm_fault(Fault::ws_drop_after(Venue::Exchange, 3));
    // 2 pongs, then 1 of 5 burst deltas, then the drop.
    assert_exchange_drained(&mut ws).await;
    assert_exchange_drained(&mut ws).await;
    assert_eq!(sim.burst(Venue::Exchange, 5).unwrap(), 5);
    let rest = read_until_dropped(&mut ws).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0]["seq"], 1);

    // Armed at start (the `--fault` text form), it applies to the first connection.
    let config = SimConfig {
        faults: vec!["cascade=ws_drop,after_messages=2".parse().unwrap()],
        ..SimConfig::default()
    };
    let sim = common::start_with(config).await;
    let mut first = ws_connect(&sim, &sim.urls().cascade).await;
    let mut second = ws_connect(&sim, &sim.urls().cascade).await;
    for id in 1..=3 {
        ws_send(
            &mut first,
            &json!({ "jsonrpc": "2.0", "id": id, "method": "x" }),
        )
        .await;
    }
    let got = read_until_dropped(&mut first).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let reply = ws_call(
        &mut second,
        json!({ "jsonrpc": "2.0", "id": "tradeauth-1", "method": "x" }),
    )
    .await;
    assert_eq!(reply["id"], "tradeauth-1");
    drop(http);
}

#[tokio::test]
async fn ws_silence_stops_replies_and_pongs_for_the_period() {
    let (sim, http) = start_client().await;
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    let (status, body) = control_post(
        &http,
        &sim,
        "/faults",
        json!({ "venue": "exchange", "kind": "ws_silence", "secs": 1 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connections"], 1);
    let start = Instant::now();
    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    ws_send(&mut ws, &json!({ "op": "ping" })).await;
    // Nothing at all, not even the pong, while silent.
    let early = tokio::time::timeout(Duration::from_millis(600), ws.next()).await;
    assert!(early.is_err(), "got {early:?} during the silence");
    let mut pong_at = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the connection resumes")
            .expect("still open")
            .expect("a message")
        {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"are-you-there");
                pong_at = Some(start.elapsed());
            }
            Message::Text(text) => {
                assert_eq!(text.as_str(), r#"{"type":"pong"}"#);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let pong_at = pong_at.expect("the ping is answered after the silence");
    assert!(
        pong_at >= Duration::from_millis(900),
        "pong after {pong_at:?}"
    );
    assert_exchange_drained(&mut ws).await;

    // Bad specs say why.
    for (spec, needle) in [
        (
            json!({ "venue": "exchange", "kind": "ws_silence" }),
            "needs secs",
        ),
        (
            json!({ "venue": "exchange", "kind": "ws_silence", "secs": 0 }),
            "secs must be",
        ),
        (
            json!({ "venue": "cadenza", "kind": "ws_drop" }),
            "cascade or exchange",
        ),
        (
            json!({ "venue": "exchange", "kind": "ws_drop", "secs": 1 }),
            "secs does not apply to a ws_drop fault",
        ),
        (
            json!({ "venue": "exchange", "kind": "ws_drop", "after_messages": 0 }),
            "after_messages must be at least 1",
        ),
        (
            json!({ "venue": "exchange", "kind": "status", "status": 503, "after_messages": 1 }),
            "after_messages does not apply to a status fault",
        ),
    ] {
        let (status, body) = control_post(&http, &sim, "/faults", spec.clone()).await;
        assert_eq!(status, 400, "{spec}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(needle), "{spec}: {error}");
    }
}

#[tokio::test]
async fn exchange_ws_counters_count_exactly() {
    let (sim, http) = start_client().await;
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    let stats = sim.venue_stats(Venue::Exchange);
    assert_eq!(
        (
            stats.ws_connections,
            stats.ws_messages_sent,
            stats.ws_private_before_auth
        ),
        (1, 0, 0)
    );
    let reply = ws_call(&mut ws, json!({ "op": "subscribe", "channel": "orders" })).await;
    assert_eq!(reply["message"], "not authenticated");
    assert_eq!(sim.venue_stats(Venue::Exchange).ws_private_before_auth, 1);
    // Public messages are not private.
    exchange_book(&mut ws, "BTC-USD").await;
    assert_exchange_drained(&mut ws).await;
    assert_eq!(sim.venue_stats(Venue::Exchange).ws_private_before_auth, 1);
    exchange_auth(&mut ws).await;
    let reply = ws_call(&mut ws, json!({ "op": "subscribe", "channel": "fills" })).await;
    assert_eq!(reply["type"], "subscribed");
    let stats = sim.venue_stats(Venue::Exchange);
    assert_eq!(stats.ws_private_before_auth, 1);
    assert_eq!(stats.ws_auths, 1);
    // error, subscribed + snapshot, pong, authenticated, subscribed.
    assert_eq!(stats.ws_messages_sent, 6);

    let _second = ws_connect(&sim, &sim.urls().exchange).await;
    assert_eq!(sim.venue_stats(Venue::Exchange).ws_connections, 2);
    let (_, body) = get_json(&http, &format!("{}/stats", sim.urls().control)).await;
    for field in [
        "ws_connections",
        "ws_auths",
        "ws_private_before_auth",
        "ws_messages_sent",
    ] {
        assert!(body["exchange"][field].is_u64(), "{field} in {body}");
    }
    assert_eq!(body["exchange"]["ws_messages_sent"], 6);

    sim.reset();
    let stats = sim.venue_stats(Venue::Exchange);
    assert_eq!(
        (
            stats.ws_connections,
            stats.ws_messages_sent,
            stats.ws_private_before_auth,
            stats.ws_auths
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn cascade_revoke_ends_private_access_and_is_counted() {
    let sim = common::start().await;
    let http = client(&sim);
    let mut ws = ws_connect(&sim, &sim.urls().cascade).await;
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": "tradeauth-1", "method": "subscribe", "params": { "channel": "positions" } }),
    )
    .await;
    assert_eq!(
        reply,
        json!({ "jsonrpc": "2.0", "id": "tradeauth-1", "error": { "code": -32002, "message": "Not authenticated" } })
    );
    assert_eq!(sim.venue_stats(Venue::Cascade).ws_private_before_auth, 1);

    let token = cascade_token(&http, &sim).await;
    cascade_auth(&mut ws, &token).await;
    let reply = ws_call(
        &mut ws,
        json!({ "jsonrpc": "2.0", "id": "tradeauth-5", "method": "orders.list" }),
    )
    .await;
    assert_eq!(reply["id"], "tradeauth-5");
    assert!(reply["result"]["orders"].is_array(), "{reply}");
    assert_eq!(sim.venue_stats(Venue::Cascade).ws_private_before_auth, 1);

    let (status, body) = control_post(
        &http,
        &sim,
        "/revoke",
        json!({ "venue": "cascade", "what": "access_tokens" }),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "revoked": 1 })));
    for method in ["orders.list", "positions.list"] {
        let reply = ws_call(
            &mut ws,
            json!({ "jsonrpc": "2.0", "id": "tradeauth-7", "method": method }),
        )
        .await;
        assert_eq!(
            reply,
            json!({ "jsonrpc": "2.0", "id": "tradeauth-7", "error": { "code": -32001, "message": "Invalid Bearer Token" } })
        );
    }
    let stats = sim.venue_stats(Venue::Cascade);
    assert_eq!(stats.ws_private_before_auth, 3);
    assert_eq!(stats.ws_connections, 1);
    assert_eq!(stats.ws_auths, 1);
    // Public methods still work and are not counted as private.
    cascade_book(&mut ws, "ETH-USD").await;
    assert_eq!(sim.venue_stats(Venue::Cascade).ws_private_before_auth, 3);
}

/// The next text message, unparsed (pings and pongs skipped).
async fn ws_recv_text(ws: &mut Ws) -> String {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message arrives in time")
            .expect("WebSocket still open")
            .expect("WebSocket message");
        match next {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

fn unix_ns_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_nanos()).expect("fits in u64")
}

#[tokio::test]
async fn burst_stamp_and_interval_are_opt_in() {
    let (sim, http) = start_client().await;
    let mut ws = ws_connect(&sim, &sim.urls().exchange).await;
    exchange_book(&mut ws, "BTC-USD").await;

    // Without the new fields: the very bytes a burst always sent.
    let (status, body) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "exchange", "count": 1 }),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "sent": 1 })));
    let plain = json!({
        "type": "orderbook_delta",
        "market": "BTC-USD",
        "seq": 1,
        "bids": [[49989.5, 2.0]],
        "asks": [[50010.5, 1.5]],
    });
    assert_eq!(ws_recv_text(&mut ws).await, plain.to_string());
    // `stamp: false, interval_us: 0` are the defaults, spelled out.
    let (status, _) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "exchange", "count": 1, "stamp": false, "interval_us": 0 }),
    )
    .await;
    assert_eq!(status, 200);
    let second: Value = serde_json::from_str(&ws_recv_text(&mut ws).await).unwrap();
    assert_eq!(second["seq"], 2);
    assert!(second.get("sent_unix_ns").is_none(), "{second}");

    // Stamped and spaced: every delta carries the wall clock at sending, at least
    // interval_us apart, and is otherwise the same delta (seq continues).
    let before = unix_ns_now();
    let (status, body) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "exchange", "count": 5, "stamp": true, "interval_us": 3000 }),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "sent": 5 })));
    let mut stamps = Vec::new();
    for seq in 3..=7u64 {
        let mut delta = ws_recv(&mut ws).await;
        let received = unix_ns_now();
        let sent = delta["sent_unix_ns"].as_u64().expect("a u64 stamp");
        assert!(
            before <= sent && sent <= received,
            "{before} {sent} {received}"
        );
        stamps.push(sent);
        delta.as_object_mut().unwrap().remove("sent_unix_ns");
        assert_eq!(delta["seq"], seq);
        let keys: Vec<&String> = delta.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{delta}");
        assert_eq!(delta["type"], "orderbook_delta");
    }
    for pair in stamps.windows(2) {
        assert!(
            pair[1] - pair[0] >= 3_000_000,
            "spaced by >= 3 ms: {stamps:?}"
        );
    }
    assert_exchange_drained(&mut ws).await;

    // Cascade stamps inside the JSON-RPC params; stamp alone is back to back.
    let mut cascade = ws_connect(&sim, &sim.urls().cascade).await;
    cascade_book(&mut cascade, "ETH-USD").await;
    let (status, _) = control_post(
        &http,
        &sim,
        "/ws/burst",
        json!({ "venue": "cascade", "count": 2, "stamp": true }),
    )
    .await;
    assert_eq!(status, 200);
    for seq in 1..=2u64 {
        let delta = ws_recv(&mut cascade).await;
        assert_eq!(delta["params"]["seq"], seq);
        assert!(delta["params"]["sent_unix_ns"].is_u64(), "{delta}");
        assert!(delta.get("sent_unix_ns").is_none(), "{delta}");
    }

    // Out of range or mistyped: refused, and nothing is sent.
    for bad in [
        json!({ "venue": "exchange", "count": 1, "interval_us": 1_000_001 }),
        json!({ "venue": "exchange", "count": 1, "stamp": "yes" }),
    ] {
        let (status, body) = control_post(&http, &sim, "/ws/burst", bad).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_exchange_drained(&mut ws).await;
}
