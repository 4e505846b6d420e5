//! The WebSocket client that stays authenticated (issue #15), against the simulator over
//! real TLS: public before private, re-auth before expiry and after a revocation,
//! reconnects after a drop or silence, nothing private ever sent unauthenticated.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeauth::{AuthEvent, ErrorKind, Privacy, Session, WsClient, WsState};
use tradeauth_sim::{Fault, FaultKind, LifetimeUpdate, Revoke, Venue};

const INVALID_BEARER: &str = "Invalid Bearer Token";

fn fault(venue: Venue, kind: FaultKind) -> Fault {
    Fault {
        venue,
        path: None,
        kind,
        count: 1,
    }
}

fn drop_now(venue: Venue) -> Fault {
    fault(
        venue,
        FaultKind::WsDrop {
            after_messages: None,
        },
    )
}

fn cascade_rpc(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

fn exchange_order() -> Value {
    json!({ "op": "place_order", "market": "BTC-USD", "side": "buy", "price": 50000.0, "quantity": 0.1 })
}

/// Receives messages until one satisfies `pred` (bounded); returns it and what came
/// before it.
async fn recv_until(
    ws: &WsClient,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = ws
            .recv_timeout(left)
            .await
            .unwrap_or_else(|e| panic!("no matching message in time ({e}); got {before:?}"));
        let value: Value = serde_json::from_str(&text).expect("the venue sends JSON");
        if pred(&value) {
            return (value, before);
        }
        before.push(value);
    }
}

/// Waits (bounded) for the client to reach `state`.
async fn wait_state(ws: &WsClient, state: WsState, within: Duration) {
    let mut watch = ws.watch_state();
    tokio::time::timeout(within, watch.wait_for(|s| *s == state))
        .await
        .unwrap_or_else(|_| panic!("state {state:?} in time (now {:?})", ws.state()))
        .expect("state channel open");
}

fn is_type(value: &Value, t: &str) -> bool {
    value.get("type").and_then(Value::as_str) == Some(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_sends_public_at_once_private_after_auth_and_consumes_its_auth_reply() {
    let (sim, session) = support::with_defaults(Venue::Cascade).await;
    let ws = session
        .websocket("/ws")
        .subscribe(cascade_rpc(
            1,
            "subscribe",
            json!({"channel": "orderbook", "market": "ETH-USD"}),
        ))
        .subscribe(cascade_rpc(2, "subscribe", json!({"channel": "orders"})))
        .connect()
        .await
        .expect("connects and authenticates");
    assert_eq!(ws.state(), WsState::Authenticated);
    let (orders, before) = recv_until(&ws, Duration::from_secs(5), |v| v["id"] == 2).await;
    assert!(
        orders.get("error").is_none(),
        "private subscribe after auth: {orders}"
    );
    assert_eq!(before[0]["id"], 1, "the public subscription answered first");
    assert!(
        before
            .iter()
            .chain([&orders])
            .all(|v| v["result"].get("authenticated").is_none()),
        "the library's own auth reply is consumed: {before:?}"
    );
    ws.send(cascade_rpc(3, "orders.list", json!({})))
        .await
        .expect("sent");
    let (list, _) = recv_until(&ws, Duration::from_secs(5), |v| v["id"] == 3).await;
    assert!(list["result"]["orders"].is_array(), "{list}");
    let stats = sim.stats().cascade;
    assert_eq!(
        (
            stats.ws_connections,
            stats.ws_auths,
            stats.ws_private_before_auth
        ),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_holds_a_private_send_until_authenticated_and_refuses_it_on_a_public_session() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    let ws = session
        .websocket("/ws")
        .subscribe(json!({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}))
        .subscribe(json!({"op": "subscribe", "channel": "fills"}))
        .connect()
        .await
        .expect("connects");
    ws.send(exchange_order()).await.expect("sent");
    let (accepted, before) = recv_until(&ws, Duration::from_secs(5), |v| {
        is_type(v, "order_accepted")
    })
    .await;
    assert_eq!(accepted["order"]["market"], "BTC-USD");
    assert!(
        before.iter().all(|v| !is_type(v, "authenticated")),
        "auth reply consumed"
    );
    assert!(before.iter().all(|v| !is_type(v, "error")), "{before:?}");
    assert_eq!(sim.stats().exchange.ws_private_before_auth, 0);

    // A public session has no WebSocket auth: its private send is refused, not sent.
    let public = Session::exchange(
        tradeauth::ExchangeConfig::public(),
        support::options(&sim, Venue::Exchange),
    )
    .expect("public session");
    let ws = public.websocket("/ws").connect().await.expect("connects");
    assert_eq!(ws.state(), WsState::Open);
    let err = ws.send(exchange_order()).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = ws
        .send_as(json!({"op": "ping"}), Privacy::Private)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    ws.send(json!({"op": "ping"})).await.expect("public goes");
    recv_until(&ws, Duration::from_secs(5), |v| is_type(v, "pong")).await;
    assert_eq!(sim.stats().exchange.ws_private_before_auth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_surfaces_the_venues_reason_within_a_round_trip() {
    let sim = support::sim().await;
    let bad = "exch_00000000000000000000000000000000";
    let session = Session::exchange(
        tradeauth::ExchangeConfig::trader(bad),
        support::options(&sim, Venue::Exchange).request_timeout(Duration::from_secs(5)),
    )
    .expect("session");
    let started = Instant::now();
    let err = session
        .websocket("/ws")
        .connect()
        .await
        .expect_err("rejected");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("invalid api key"), "{err}");
    assert!(!err.message().contains(bad), "no key in the error");
    assert!(
        took < Duration::from_secs(2),
        "a round trip, not the 5 s timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_that_echoes_the_token_in_its_rejection_gets_it_blotted_out() {
    let sim = support::sim().await;
    sim.arm_fault(Fault {
        venue: Venue::Cascade,
        path: Some("/ws".into()),
        kind: FaultKind::EchoCredential,
        count: 1,
    });
    let session = support::on_demand_on(&sim, Venue::Cascade);
    let mut events = session.subscribe();
    let err = session
        .websocket("/ws")
        .connect()
        .await
        .expect_err("rejected");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.message().contains(INVALID_BEARER), "{err}");
    let mut seen = vec![err.to_string(), format!("{err:?}")];
    while let Ok(event) = events.try_recv() {
        seen.push(event.to_string());
        seen.push(format!("{event:?}"));
    }
    assert!(seen.iter().any(|s| s.contains("rejected")), "{seen:?}");
    for text in &seen {
        assert!(!text.contains("eyJ"), "a JWT leaked: {text}");
    }
}

/// Drop mid-stream: reconnect, re-auth with a valid credential, the subscriptions again
/// in their order, nothing private before auth, and a private send issued during the
/// outage arriving after auth exactly once.
async fn drop_mid_stream(venue: Venue) {
    let (sim, session) = support::with_defaults(venue).await;
    let (subs, order, accepted): (Vec<Value>, Value, fn(&Value) -> bool) = match venue {
        Venue::Cascade => (
            vec![
                cascade_rpc(
                    1,
                    "subscribe",
                    json!({"channel": "orderbook", "market": "BTC-USD"}),
                ),
                cascade_rpc(2, "subscribe", json!({"channel": "orders"})),
                cascade_rpc(
                    3,
                    "subscribe",
                    json!({"channel": "orderbook", "market": "ETH-USD"}),
                ),
            ],
            cascade_rpc(
                9,
                "order.create",
                json!({"market": "ETH-USD", "side": "buy", "price": "3000", "size": "1"}),
            ),
            |v| v["id"] == 9 && v["result"].get("order").is_some(),
        ),
        _ => (
            vec![
                json!({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}),
                json!({"op": "subscribe", "channel": "orders"}),
                json!({"op": "subscribe", "channel": "orderbook", "market": "ETH-USD"}),
            ],
            exchange_order(),
            |v| is_type(v, "order_accepted"),
        ),
    };
    let mut builder = session
        .websocket("/ws")
        .reconnect_backoff(Duration::from_millis(400), Duration::from_secs(1));
    for sub in subs {
        builder = builder.subscribe(sub);
    }
    let mut events = session.subscribe();
    let ws = builder.connect().await.expect("connects");
    // The first connection's answers.
    let snapshot = |v: &Value, market: &str| match venue {
        Venue::Cascade => v["params"]["type"] == "snapshot" && v["params"]["market"] == market,
        _ => is_type(v, "orderbook_snapshot") && v["market"] == market,
    };
    recv_until(&ws, Duration::from_secs(5), |v| snapshot(v, "ETH-USD")).await;

    assert_eq!(
        sim.arm_fault_counted(drop_now(venue)),
        1,
        "one open connection dropped"
    );
    wait_state(&ws, WsState::Reconnecting, Duration::from_secs(5)).await;
    // Issued during the outage: held, then sent once the new connection is authenticated.
    let send = ws.send(order);
    let (sent, _) = tokio::join!(
        send,
        support::wait_for_event(&mut events, Duration::from_secs(10), |e| {
            matches!(e, AuthEvent::WsResubscribed { count: 3 })
        })
    );
    sent.expect("the held order was sent after auth");
    let (_, before) = recv_until(&ws, Duration::from_secs(5), accepted).await;
    // Replayed in order: the public BTC then ETH books (the private one after auth).
    let books: Vec<&str> = before
        .iter()
        .filter_map(|v| match venue {
            Venue::Cascade if v["params"]["type"] == "snapshot" => v["params"]["market"].as_str(),
            Venue::Exchange if is_type(v, "orderbook_snapshot") => v["market"].as_str(),
            _ => None,
        })
        .collect();
    assert_eq!(
        books,
        ["BTC-USD", "ETH-USD"],
        "replayed in order: {before:?}"
    );
    assert!(
        before
            .iter()
            .all(|v| v.get("error").is_none() && !is_type(v, "error")),
        "{before:?}"
    );
    let stats = sim.venue_stats(venue);
    assert_eq!(stats.ws_connections, 2);
    assert_eq!(stats.ws_auths, 2);
    assert_eq!(
        stats.ws_private_before_auth, 0,
        "nothing private before auth"
    );
    let orders = match venue {
        Venue::Cascade => {
            let r = support::get(&session, "/account/orders").await;
            let body: Value = serde_json::from_slice(&r.body).expect("JSON");
            body["orders"].as_array().map_or(0, Vec::len)
        }
        _ => {
            let r = support::get(&session, "/api/v1/open-orders").await;
            let body: Value = serde_json::from_slice(&r.body).expect("JSON");
            body.as_array()
                .or_else(|| body["orders"].as_array())
                .map_or(0, Vec::len)
        }
    };
    assert_eq!(
        orders, 1,
        "the order held during the outage arrived exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_reconnects_after_a_drop_and_replays_in_order() {
    drop_mid_stream(Venue::Cascade).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_reconnects_after_a_drop_and_replays_in_order() {
    drop_mid_stream(Venue::Exchange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_send_that_cannot_be_authenticated_in_time_fails_and_is_never_sent() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    let ws = session
        .websocket("/ws")
        .reconnect_backoff(Duration::from_secs(3), Duration::from_secs(3))
        .hold_timeout(Duration::from_millis(200))
        .connect()
        .await
        .expect("connects");
    sim.arm_fault(drop_now(Venue::Exchange));
    wait_state(&ws, WsState::Reconnecting, Duration::from_secs(5)).await;
    let started = Instant::now();
    let err = ws.send(exchange_order()).await.expect_err("not sent");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "bounded by the hold timeout"
    );
    wait_state(&ws, WsState::Authenticated, Duration::from_secs(10)).await;
    assert_eq!(sim.stats().exchange.ws_private_before_auth, 0);
    let r = support::get(&session, "/api/v1/open-orders").await;
    let body: Value = serde_json::from_slice(&r.body).expect("JSON");
    let n = body
        .as_array()
        .or_else(|| body["orders"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(n, 0, "the timed-out order was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_reauthenticates_on_the_open_connection_before_each_expiry() {
    let sim = support::sim().await;
    sim.set_lifetimes(LifetimeUpdate {
        venue: Venue::Cascade,
        access_ttl_secs: None,
        refresh_ttl_secs: None,
        token_ttl_secs: Some(5),
        nonce_ttl_secs: None,
    })
    .expect("lifetime set");
    let session = support::session(&sim, Venue::Cascade, support::options(&sim, Venue::Cascade));
    let ws = session
        .websocket("/ws")
        .subscribe(cascade_rpc(1, "subscribe", json!({"channel": "orders"})))
        .connect()
        .await
        .expect("connects");
    let until = Instant::now() + Duration::from_secs(20);
    let mut id = 100;
    while Instant::now() < until {
        id += 1;
        ws.send(cascade_rpc(id, "orders.list", json!({})))
            .await
            .expect("sent");
        let (reply, _) = recv_until(&ws, Duration::from_secs(5), |v| v["id"] == id).await;
        assert!(
            reply.get("error").is_none(),
            "private call refused at {id}: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stats = sim.stats().cascade;
    assert_eq!(stats.rejected(INVALID_BEARER), 0, "never an expired token");
    assert_eq!(stats.ws_connections, 1, "one connection throughout");
    assert!(
        stats.ws_auths >= 5,
        "re-authenticated before each expiry: {}",
        stats.ws_auths
    );
    assert_eq!(stats.ws_private_before_auth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_mid_connection_is_one_renewal_shared_with_http() {
    let (sim, session) = support::on_demand(Venue::Cascade).await;
    let ws = session.websocket("/ws").connect().await.expect("connects");
    assert_eq!(support::cascade_logins(&sim).1, 1);
    sim.revoke(Venue::Cascade, Revoke::AccessTokens)
        .expect("revoked");
    let mut events = session.subscribe();
    // The WebSocket and an HTTP caller meet the revocation at the same moment.
    let (sent, http) = tokio::join!(
        ws.send(cascade_rpc(7, "orders.list", json!({}))),
        session
            .request(tradeauth::Method::Get, "/account/orders")
            .send()
    );
    sent.expect("sent");
    assert_eq!(http.expect("HTTP renews and retries").status, 200);
    let (refused, _) = recv_until(&ws, Duration::from_secs(5), |v| v["id"] == 7).await;
    assert_eq!(
        refused["error"]["code"], -32001,
        "the caller sees its call's answer"
    );
    support::wait_for(
        &mut events,
        Duration::from_secs(10),
        AuthEvent::WsAuthenticated,
    )
    .await;
    ws.send(cascade_rpc(8, "orders.list", json!({})))
        .await
        .expect("sent");
    let (reply, _) = recv_until(&ws, Duration::from_secs(5), |v| v["id"] == 8).await;
    assert!(
        reply.get("error").is_none(),
        "the stream continues: {reply}"
    );
    assert_eq!(support::cascade_logins(&sim).1, 2, "one renewal, shared");
    assert_eq!(sim.stats().cascade.ws_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_longer_than_the_idle_timeout_is_a_reconnect() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    let idle = Duration::from_millis(800);
    let step = Duration::from_millis(100);
    let ws = session
        .websocket("/ws")
        .idle_timeout(idle)
        .ping_interval(Duration::from_millis(200))
        .reconnect_backoff(step, Duration::from_secs(1))
        .connect()
        .await
        .expect("connects");
    let mut events = session.subscribe();
    let started = Instant::now();
    sim.arm_fault(fault(Venue::Exchange, FaultKind::WsSilence { secs: 30 }));
    support::wait_for_event(
        &mut events,
        Duration::from_secs(10),
        |e| matches!(e, AuthEvent::WsDisconnected { reason } if reason.contains("silent")),
    )
    .await;
    let detected = started.elapsed();
    support::wait_for(
        &mut events,
        Duration::from_secs(10),
        AuthEvent::WsAuthenticated,
    )
    .await;
    let back = started.elapsed();
    println!("silence detected after {detected:?}, authenticated again after {back:?}");
    assert!(
        detected >= idle,
        "not before the idle timeout: {detected:?}"
    );
    // idle timeout + one backoff step, plus a connect and an auth round trip.
    assert!(back < idle + step + Duration::from_millis(900), "{back:?}");
    assert_eq!(ws.state(), WsState::Authenticated);
    assert_eq!(sim.stats().exchange.ws_connections, 2);
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reconnects_leave_fds_and_memory_flat() {
    let (sim, session) = support::with_defaults(Venue::Exchange).await;
    let ws = session
        .websocket("/ws")
        .subscribe(json!({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}))
        .reconnect_backoff(Duration::from_millis(2), Duration::from_millis(4))
        .connect()
        .await
        .expect("connects");
    let mut events = session.subscribe();
    let mut baseline = (0, 0);
    for cycle in 0..200 {
        if cycle == 20 {
            baseline = (open_fds(), rss_kib());
        }
        sim.arm_fault(drop_now(Venue::Exchange));
        support::wait_for(
            &mut events,
            Duration::from_secs(10),
            AuthEvent::WsAuthenticated,
        )
        .await;
    }
    let (fds, rss) = baseline;
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    println!("after 20 cycles: {fds} fds, {rss} KiB; after 200: {fds_after} fds, {rss_after} KiB");
    assert!(fds_after <= fds + 4, "fds grew: {fds} -> {fds_after}");
    assert!(
        rss_after <= rss + 8 * 1024,
        "RSS grew: {rss} -> {rss_after} KiB"
    );
    assert_eq!(sim.stats().exchange.ws_connections, 201);
    assert_eq!(ws.state(), WsState::Authenticated);
}

#[test]
fn an_outgoing_message_must_be_a_json_object() {
    let ok = tradeauth::parse_ws_message(r#"{"op":"ping"}"#).expect("an object");
    assert_eq!(ok["op"], "ping");
    for bad in ["", "not json", "[1]", "\"text\"", "42", "{\"op\":"] {
        let err = tradeauth::parse_ws_message(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
}
