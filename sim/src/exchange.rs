//! Exchange (`/api/v1`): permanent trader keys (`x-api-key: exch_<32 hex>`), a static
//! admin bearer token that provisions traders, public market data, and a WebSocket with
//! `{"op":"authenticate","api_key":..}`. Orders are real, minimal, per-trader state.

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::common::{
    Authed, Authorize, error_text, invalid_body, json_body, json_response, lock,
    lowercase_status_error, text_fault_body,
};
use crate::config::ExchangeConfig;
use crate::layer::venue_router;
use crate::state::Shared;
use crate::{Venue, ws};

/// The page's error texts.
const MISSING_AUTH: &str = "missing authentication";
const INVALID_KEY: &str = "invalid api key";
const INVALID_ADMIN: &str = "invalid admin token";
const ORDER_NOT_FOUND: &str = "order not found";
const NOT_AUTHENTICATED: &str = "not authenticated";

/// A trader account, serialised as the page's profile.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Trader {
    trader_id: String,
    username: String,
    api_key: String,
    created_at: String,
}

/// A resting order.
#[derive(Clone, Debug, Serialize)]
struct Order {
    order_id: String,
    trader_id: String,
    market: String,
    side: String,
    price: f64,
    quantity: f64,
    filled_quantity: f64,
    status: &'static str,
    created_at: String,
    updated_at: String,
}

/// Traders and their open orders.
pub(crate) struct State {
    admin_token: String,
    traders: Vec<Trader>,
    /// Open orders in placement order; cancelling removes one.
    orders: Vec<Order>,
}

/// `2024-01-15T10:00:00Z`, the page's `created_at` format.
pub(crate) fn format_created_at(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

impl State {
    pub(crate) fn new(config: &ExchangeConfig) -> Self {
        Self {
            admin_token: config.admin_token.clone(),
            traders: config
                .traders
                .iter()
                .map(|t| Trader {
                    // `SimConfig::resolve` filled both in at start.
                    trader_id: t.trader_id.clone().unwrap_or_default(),
                    username: t.username.clone(),
                    api_key: t.api_key.clone(),
                    created_at: t.created_at.clone().unwrap_or_default(),
                })
                .collect(),
            orders: Vec::new(),
        }
    }

    fn trader_by_key(&self, key: &str) -> Option<&Trader> {
        self.traders.iter().find(|t| t.api_key == key)
    }

    fn trader_by_id(&self, trader_id: &str) -> Option<&Trader> {
        self.traders.iter().find(|t| t.trader_id == trader_id)
    }

    fn open_order(&mut self, trader_id: &str, order_id: &str) -> Option<&mut Order> {
        self.orders
            .iter_mut()
            .find(|o| o.order_id == order_id && o.trader_id == trader_id)
    }

    fn cancel(&mut self, trader_id: &str, order_id: &str, now: &str) -> Option<Order> {
        let index = self
            .orders
            .iter()
            .position(|o| o.order_id == order_id && o.trader_id == trader_id)?;
        let mut order = self.orders.remove(index);
        order.status = "cancelled";
        order.updated_at = now.to_owned();
        Some(order)
    }
}

#[derive(Deserialize)]
struct NewOrder {
    market: String,
    side: String,
    price: f64,
    quantity: f64,
}

impl NewOrder {
    fn into_order(self, trader_id: &str, now: &str) -> Result<Order, String> {
        if self.market.trim().is_empty() {
            return Err("market must not be empty".into());
        }
        if !matches!(self.side.as_str(), "buy" | "sell") {
            return Err("side must be \"buy\" or \"sell\"".into());
        }
        check_positive("price", self.price)?;
        check_positive("quantity", self.quantity)?;
        Ok(Order {
            order_id: uuid::Uuid::new_v4().to_string(),
            trader_id: trader_id.to_owned(),
            market: self.market,
            side: self.side,
            price: self.price,
            quantity: self.quantity,
            filled_quantity: 0.0,
            status: "open",
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        })
    }
}

fn check_positive(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{name} must be a positive number"))
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/api/v1/user", get(user))
        .route("/api/v1/positions", get(positions))
        .route("/api/v1/portfolio", get(portfolio))
        .route("/api/v1/leaderboard", get(leaderboard))
        .route("/api/v1/open-orders", get(open_orders))
        .route("/api/v1/fills", get(fills))
        .route("/api/v1/orders", post(place_order))
        .route(
            "/api/v1/orders/{order_id}",
            patch(amend_order).delete(cancel_order),
        )
        .route("/api/v1/admin/traders", post(provision_trader))
        .route("/api/v1/orderbook/{market}", get(orderbook))
        .route("/ws", get(ws::upgrade::<Ops>));
    venue_router(shared, Venue::Exchange, routes, lowercase_status_error)
}

/// An `x-api-key` header: `Authed<ApiKey>` is the trader it names.
struct ApiKey;

impl Authorize for ApiKey {
    type Identity = Trader;

    /// The trader named by the `x-api-key` header, or the page's 401 answer.
    fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<Trader, Response> {
        let Some(key) = headers.get("x-api-key") else {
            return Err(error_text(StatusCode::UNAUTHORIZED, MISSING_AUTH));
        };
        key.to_str()
            .ok()
            .and_then(|key| lock(&shared.exchange).trader_by_key(key).cloned())
            .ok_or_else(|| error_text(StatusCode::UNAUTHORIZED, INVALID_KEY))
    }
}

fn now_text(shared: &Shared) -> String {
    crate::clock::rfc3339(shared.clock.now())
}

async fn user(Authed(trader): Authed<ApiKey>) -> Response {
    json_response(StatusCode::OK, json!(trader))
}

async fn positions(Authed(trader): Authed<ApiKey>) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "trader_id": trader.trader_id,
            "positions": [
                { "market": "BTC-USD", "quantity": 0.5, "average_price": 50000.0, "unrealized_pnl": 125.0 },
            ],
        }),
    )
}

async fn portfolio(Authed(trader): Authed<ApiKey>) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "trader_id": trader.trader_id,
            "cash": 75000.0,
            "equity": 100125.0,
            "realized_pnl": 0.0,
            "unrealized_pnl": 125.0,
            "positions": [
                { "market": "BTC-USD", "quantity": 0.5, "average_price": 50000.0, "unrealized_pnl": 125.0 },
            ],
        }),
    )
}

async fn leaderboard(AxState(shared): AxState<Arc<Shared>>, _trader: Authed<ApiKey>) -> Response {
    let entries: Vec<Value> = lock(&shared.exchange)
        .traders
        .iter()
        .enumerate()
        .map(|(i, t)| json!({ "rank": i + 1, "username": t.username, "pnl": 0.0 }))
        .collect();
    json_response(StatusCode::OK, json!({ "leaderboard": entries }))
}

async fn open_orders(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(trader): Authed<ApiKey>,
) -> Response {
    let orders: Vec<Order> = lock(&shared.exchange)
        .orders
        .iter()
        .filter(|o| o.trader_id == trader.trader_id)
        .cloned()
        .collect();
    json_response(StatusCode::OK, json!({ "orders": orders }))
}

async fn fills(Authed(trader): Authed<ApiKey>) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "trader_id": trader.trader_id, "fills": [] }),
    )
}

async fn place_order(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(trader): Authed<ApiKey>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let new: NewOrder = match json_body(body, invalid_body) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let order = match new.into_order(&trader.trader_id, &now_text(&shared)) {
        Ok(o) => o,
        Err(why) => return error_text(StatusCode::BAD_REQUEST, &why),
    };
    lock(&shared.exchange).orders.push(order.clone());
    push_order_event(&shared, "placed", &order);
    json_response(StatusCode::CREATED, json!(order))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Amendment {
    price: Option<f64>,
    quantity: Option<f64>,
}

async fn amend_order(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(trader): Authed<ApiKey>,
    order_id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path(order_id)) = order_id else {
        return error_text(StatusCode::NOT_FOUND, ORDER_NOT_FOUND);
    };
    let amendment: Amendment = match json_body(body, invalid_body) {
        Ok(a) => a,
        Err(response) => return response,
    };
    if amendment.price.is_none() && amendment.quantity.is_none() {
        return error_text(
            StatusCode::BAD_REQUEST,
            "nothing to amend: give price and/or quantity",
        );
    }
    for (name, value) in [("price", amendment.price), ("quantity", amendment.quantity)] {
        if let Some(Err(why)) = value.map(|v| check_positive(name, v)) {
            return error_text(StatusCode::BAD_REQUEST, &why);
        }
    }
    let now = now_text(&shared);
    let mut state = lock(&shared.exchange);
    let Some(order) = state.open_order(&trader.trader_id, &order_id) else {
        return error_text(StatusCode::NOT_FOUND, ORDER_NOT_FOUND);
    };
    if let Some(price) = amendment.price {
        order.price = price;
    }
    if let Some(quantity) = amendment.quantity {
        order.quantity = quantity;
    }
    order.updated_at = now;
    json_response(StatusCode::OK, json!(order))
}

async fn cancel_order(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(trader): Authed<ApiKey>,
    order_id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(order_id)) = order_id else {
        return error_text(StatusCode::NOT_FOUND, ORDER_NOT_FOUND);
    };
    let now = now_text(&shared);
    let cancelled = lock(&shared.exchange).cancel(&trader.trader_id, &order_id, &now);
    match cancelled {
        Some(order) => {
            push_order_event(&shared, "cancelled", &order);
            json_response(StatusCode::OK, json!(order))
        }
        None => error_text(StatusCode::NOT_FOUND, ORDER_NOT_FOUND),
    }
}

#[derive(Deserialize)]
struct NewTrader {
    username: String,
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn provision_trader(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(token) = crate::common::bearer(&headers) else {
        return error_text(StatusCode::UNAUTHORIZED, MISSING_AUTH);
    };
    let admin_ok = verify_slices_are_equal(
        token.as_bytes(),
        lock(&shared.exchange).admin_token.as_bytes(),
    )
    .is_ok();
    if !admin_ok {
        return error_text(StatusCode::UNAUTHORIZED, INVALID_ADMIN);
    }
    let new: NewTrader = match json_body(body, invalid_body) {
        Ok(n) => n,
        Err(response) => return response,
    };
    if !valid_username(&new.username) {
        return error_text(
            StatusCode::BAD_REQUEST,
            "username must be 1-64 characters of letters, digits, '-', '_' or '.'",
        );
    }
    let trader = Trader {
        trader_id: uuid::Uuid::new_v4().to_string(),
        api_key: format!("exch_{}", uuid::Uuid::new_v4().simple()),
        username: new.username,
        created_at: format_created_at(shared.clock.now()),
    };
    {
        let mut state = lock(&shared.exchange);
        if state.traders.iter().any(|t| t.username == trader.username) {
            return error_text(StatusCode::CONFLICT, "username already exists");
        }
        state.traders.push(trader.clone());
    }
    shared
        .stats
        .update(Venue::Exchange, |s| s.tokens_issued += 1);
    tracing::info!(username = %trader.username, "exchange trader provisioned");
    json_response(StatusCode::CREATED, json!(trader))
}

fn orderbook_body(market: &str) -> Value {
    json!({
        "market": market,
        "bids": [[49990.0, 1.25], [49985.5, 3.0], [49980.0, 5.5]],
        "asks": [[50010.0, 0.75], [50015.0, 2.0], [50020.5, 4.0]],
    })
}

async fn orderbook(market: Result<Path<String>, PathRejection>) -> Response {
    match market {
        Ok(Path(market)) if !market.trim().is_empty() => {
            json_response(StatusCode::OK, orderbook_body(&market))
        }
        _ => error_text(StatusCode::NOT_FOUND, "market not found"),
    }
}

/// Exchange's WebSocket: `{"op": ..}` messages, authenticated by `authenticate`; a
/// connection remembers the trader id it authenticated as.
struct Ops;

impl ws::Protocol for Ops {
    const VENUE: Venue = Venue::Exchange;
    type Conn = Option<String>;

    fn delta(market: &str, seq: u64) -> Value {
        // Prices move a little with `seq`, so consecutive deltas differ.
        let step = (seq % 20) as f64 * 0.5;
        json!({
            "type": "orderbook_delta",
            "market": market,
            "seq": seq,
            "bids": [[49990.0 - step, 1.0 + (seq % 7) as f64]],
            "asks": [[50010.0 + step, 0.5 + (seq % 5) as f64]],
        })
    }

    fn binary_reply() -> Value {
        ws_error("expected a text frame")
    }

    fn invalid_json_reply() -> Value {
        ws_error("invalid JSON")
    }

    /// Handles one WebSocket message; returns the messages to send back, in order. `echo`: an
    /// `echo_credential` fault was armed on the upgrade; every authenticate is rejected,
    /// quoting the key.
    fn handle(
        shared: &Shared,
        conn: &mut Self::Conn,
        link: &mut ws::Link,
        request: Value,
        echo: bool,
    ) -> Vec<Value> {
        let Some(op) = request.get("op").and_then(Value::as_str) else {
            return vec![ws_error("missing op")];
        };
        let reject = |reason: &str| {
            shared.stats.reject(Venue::Exchange, reason);
            vec![ws_error(reason)]
        };
        // The connection's trader, if it authenticated and still exists (a reset may have
        // removed a provisioned one).
        let current = conn.as_deref().and_then(|id| {
            lock(&shared.exchange)
                .trader_by_id(id)
                .map(|t| t.trader_id.clone())
        });
        let private = match op {
            "subscribe" => matches!(
                request.get("channel").and_then(Value::as_str),
                Some("orders" | "fills")
            ),
            "place_order" | "cancel_order" => true,
            _ => false,
        };
        if private && current.is_none() {
            shared
                .stats
                .update(Venue::Exchange, |s| s.ws_private_before_auth += 1);
        }
        match op {
            "ping" => vec![json!({ "type": "pong" })],
            "subscribe" => {
                let market = request.get("market").and_then(Value::as_str);
                match request.get("channel").and_then(Value::as_str) {
                    Some("orderbook") => match market {
                        Some(market) if !market.trim().is_empty() => {
                            let mut snapshot = orderbook_body(market);
                            snapshot["type"] = json!("orderbook_snapshot");
                            link.subscribe_market(market);
                            vec![
                                json!({ "type": "subscribed", "channel": "orderbook", "market": market }),
                                snapshot,
                            ]
                        }
                        _ => vec![ws_error("market is required")],
                    },
                    // User-scoped streams need a successful authenticate first.
                    Some(channel @ ("orders" | "fills")) => match current {
                        Some(_) => {
                            link.subscribe_private(channel);
                            vec![json!({ "type": "subscribed", "channel": channel })]
                        }
                        None => reject(NOT_AUTHENTICATED),
                    },
                    _ => vec![ws_error("unknown channel")],
                }
            }
            "authenticate" => {
                let Some(key) = request.get("api_key").and_then(Value::as_str) else {
                    return reject(MISSING_AUTH);
                };
                if echo {
                    shared.stats.reject(Venue::Exchange, INVALID_KEY);
                    return vec![ws_error(&format!("{INVALID_KEY}: {key}"))];
                }
                let Some(trader) = lock(&shared.exchange).trader_by_key(key).cloned() else {
                    return reject(INVALID_KEY);
                };
                shared.stats.update(Venue::Exchange, |s| s.ws_auths += 1);
                *conn = Some(trader.trader_id.clone());
                link.set_account(&trader.trader_id);
                vec![json!({
                    "type": "authenticated",
                    "trader_id": trader.trader_id,
                    "username": trader.username,
                })]
            }
            "place_order" | "cancel_order" => {
                let Some(current) = current else {
                    return reject(NOT_AUTHENTICATED);
                };
                let now = now_text(shared);
                if op == "place_order" {
                    let new: NewOrder = match serde_json::from_value(request.clone()) {
                        Ok(n) => n,
                        Err(e) => return vec![ws_error(&format!("invalid order: {e}"))],
                    };
                    match new.into_order(&current, &now) {
                        Ok(order) => {
                            lock(&shared.exchange).orders.push(order.clone());
                            push_order_event(shared, "placed", &order);
                            vec![json!({ "type": "order_accepted", "order": order })]
                        }
                        Err(why) => vec![ws_error(&why)],
                    }
                } else {
                    let order_id = request
                        .get("order_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let cancelled = lock(&shared.exchange).cancel(&current, order_id, &now);
                    match cancelled {
                        Some(order) => {
                            push_order_event(shared, "cancelled", &order);
                            vec![json!({ "type": "order_cancelled", "order": order })]
                        }
                        None => reject(ORDER_NOT_FOUND),
                    }
                }
            }
            other => vec![ws_error(&format!("unknown op: {other}"))],
        }
    }
}

/// Pushes `{"type":"order","event":event,"order":..}` to the `orders` subscribers of the
/// order's trader.
fn push_order_event(shared: &Shared, event: &str, order: &Order) {
    let message = json!({ "type": "order", "event": event, "order": order });
    shared
        .exchange_ws
        .push_private(&order.trader_id, "orders", &message);
}

fn ws_error(message: &str) -> Value {
    json!({ "type": "error", "message": message })
}

/// The body a status fault answers with; a 401 is the venue's `invalid api key`.
pub(crate) fn fault_body(status: StatusCode) -> Value {
    text_fault_body(status, INVALID_KEY)
}
