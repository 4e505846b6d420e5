//! Cascade matcher: `GET /auth?account=` issues an HMAC-signed challenge, `POST /auth`
//! checks the EIP-191 signature of its `signing_payload` by the account or a delegate
//! and returns a short-lived HS256 JWT, used as a bearer token on `/account/*` and in the
//! JSON-RPC `auth` message of the WebSocket.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alloy_primitives::{Address, Signature};
use aws_lc_rs::hmac;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::common::{
    Authed, Authorize, bearer, error_text, hs256_signature_only, invalid_body, json_body,
    json_response, lock, lowercase_status_error, text_fault_body,
};
use crate::config::{CascadeConfig, parse_address};
use crate::layer::venue_router;
use crate::state::Shared;
use crate::{Venue, ws};

const INVALID_BEARER: &str = "Invalid Bearer Token";
const NOT_AUTHENTICATED: &str = "Not authenticated";
/// Challenges that were never answered are forgotten this long after they expire.
const FORGET_AFTER_MS: i64 = 3600 * 1000;

/// Per-start random secrets: the HMAC key of server signatures and the JWT key.
pub(crate) struct Keys {
    hmac: hmac::Key,
    jwt_encoding: EncodingKey,
    jwt_decoding: DecodingKey,
}

impl Keys {
    pub(crate) fn generate() -> Self {
        let hmac_secret: [u8; 32] = rand::random();
        let jwt_secret: [u8; 32] = rand::random();
        Self {
            hmac: hmac::Key::new(hmac::HMAC_SHA256, &hmac_secret),
            jwt_encoding: EncodingKey::from_secret(&jwt_secret),
            jwt_decoding: DecodingKey::from_secret(&jwt_secret),
        }
    }
}

struct Challenge {
    issued_ms: i64,
}

/// Accounts, lifetimes, outstanding nonces, valid token ids and orders.
pub(crate) struct State {
    pub(crate) token_ttl_secs: u64,
    pub(crate) nonce_ttl_secs: u64,
    delegates: HashMap<Address, HashSet<Address>>,
    nonces: HashMap<String, Challenge>,
    /// `jti` of every JWT still honoured; revoking removes them.
    tokens: HashSet<String>,
    orders: HashMap<String, Vec<Value>>,
    /// Number of open challenges at which stale ones are next swept (amortised O(1)).
    sweep_at: usize,
}

impl State {
    pub(crate) fn new(config: &CascadeConfig) -> Self {
        let delegates = config
            .accounts
            .iter()
            .filter_map(|a| {
                let account = parse_address(&a.deposit_address)?;
                let delegates = a
                    .delegates
                    .iter()
                    .filter_map(|d| parse_address(d))
                    .collect();
                Some((account, delegates))
            })
            .collect();
        Self {
            token_ttl_secs: config.token_ttl_secs,
            nonce_ttl_secs: config.nonce_ttl_secs,
            delegates,
            nonces: HashMap::new(),
            tokens: HashSet::new(),
            orders: HashMap::new(),
            sweep_at: 1024,
        }
    }

    /// Invalidates every issued JWT (and, with `nonces`, every open challenge).
    pub(crate) fn revoke(&mut self, nonces: bool) -> usize {
        let mut n = self.tokens.len();
        self.tokens.clear();
        if nonces {
            n += self.nonces.len();
            self.nonces.clear();
        }
        n
    }

    fn may_sign(&self, account: Address, signer: Address) -> bool {
        signer == account
            || self
                .delegates
                .get(&account)
                .is_some_and(|d| d.contains(&signer))
    }
}

/// The challenge message. Field order is the order of the signed JSON text.
#[derive(Debug, Serialize, Deserialize)]
struct ChallengeMessage {
    account: String,
    nonce: String,
    timestamp: String,
}

impl ChallengeMessage {
    /// The compact JSON text that is signed, both by the server (HMAC) and the wallet.
    fn signing_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct JwtClaims {
    sub: String,
    signer: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A verified bearer token.
#[derive(Clone, Debug)]
struct Session {
    account: String,
    exp: i64,
    jti: String,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/auth", get(challenge).post(authenticate))
        .route("/account/orders", get(orders).post(create_order))
        .route("/account/positions", get(positions))
        .route("/ws", get(ws::upgrade::<JsonRpc>));
    venue_router(shared, Venue::Cascade, routes, lowercase_status_error)
}

fn lower(address: Address) -> String {
    address.to_string().to_ascii_lowercase()
}

/// RFC 3339 with nanoseconds and `+00:00`, exactly as the page's example.
fn challenge_timestamp(t: OffsetDateTime) -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(&format).unwrap_or_default()
}

async fn challenge(
    AxState(shared): AxState<Arc<Shared>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_text(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let Some(account) = query.get("account") else {
        return error_text(StatusCode::BAD_REQUEST, "missing query parameter: account");
    };
    let Some(account) = parse_address(account) else {
        return error_text(
            StatusCode::BAD_REQUEST,
            "invalid account: expected 0x followed by 40 hex digits",
        );
    };
    let now = shared.clock.now();
    let now_ms = crate::clock::unix_ms(now);
    let message = ChallengeMessage {
        account: lower(account),
        nonce: uuid::Uuid::new_v4().to_string(),
        timestamp: challenge_timestamp(now),
    };
    let payload = message.signing_payload();
    let server_signature =
        URL_SAFE_NO_PAD.encode(hmac::sign(&shared.cascade_keys.hmac, payload.as_bytes()));
    {
        let mut state = lock(&shared.cascade);
        let forget_ms = i64::try_from(state.nonce_ttl_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX / 2)
            .saturating_add(FORGET_AFTER_MS);
        if state.nonces.len() >= state.sweep_at {
            state
                .nonces
                .retain(|_, c| now_ms.saturating_sub(c.issued_ms) <= forget_ms);
            state.sweep_at = (state.nonces.len() * 2).max(1024);
        }
        state
            .nonces
            .insert(message.nonce.clone(), Challenge { issued_ms: now_ms });
    }
    shared.stats.update(Venue::Cascade, |s| s.challenges += 1);
    json_response(
        StatusCode::OK,
        json!({
            "message": message,
            "server_signature": server_signature,
            "signing_payload": payload,
        }),
    )
}

#[derive(Deserialize)]
struct AuthRequest {
    message: ChallengeMessage,
    signature: String,
    server_signature: String,
}

/// Parses `0x`-prefixed or bare hex of 65 bytes with v in {0, 1, 27, 28}.
fn parse_signature(text: &str) -> Option<Signature> {
    let bytes = alloy_primitives::hex::decode(text).ok()?;
    let bytes: [u8; 65] = bytes.try_into().ok()?;
    if !matches!(bytes[64], 0 | 1 | 27 | 28) {
        return None;
    }
    Signature::from_raw_array(&bytes).ok()
}

async fn authenticate(
    AxState(shared): AxState<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: AuthRequest = match json_body(body, invalid_body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let payload = request.message.signing_payload();
    let server_signature_ok = URL_SAFE_NO_PAD
        .decode(request.server_signature.as_bytes())
        .is_ok_and(|sig| hmac::verify(&shared.cascade_keys.hmac, payload.as_bytes(), &sig).is_ok());
    if !server_signature_ok {
        return error_text(StatusCode::UNAUTHORIZED, "invalid server signature");
    }
    // The HMAC covers account, nonce and timestamp, so from here the message is one the
    // server issued. Its nonce is spent now, whatever the outcome.
    let now_ms = shared.clock.now_unix_ms();
    let (token_ttl_secs, account, signer) = {
        let mut state = lock(&shared.cascade);
        let Some(challenge) = state.nonces.remove(&request.message.nonce) else {
            return error_text(StatusCode::UNAUTHORIZED, "nonce already used");
        };
        let ttl_ms = i64::try_from(state.nonce_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(challenge.issued_ms) > ttl_ms {
            return error_text(StatusCode::UNAUTHORIZED, "nonce expired");
        }
        let Some(signature) = parse_signature(&request.signature) else {
            return error_text(StatusCode::BAD_REQUEST, "malformed signature");
        };
        let Ok(signer) = signature.recover_address_from_msg(payload.as_bytes()) else {
            return error_text(StatusCode::BAD_REQUEST, "malformed signature");
        };
        let Some(account) = parse_address(&request.message.account) else {
            return error_text(StatusCode::BAD_REQUEST, "invalid account");
        };
        if !state.may_sign(account, signer) {
            return error_text(
                StatusCode::UNAUTHORIZED,
                "signer is not authorized for this account",
            );
        }
        (state.token_ttl_secs, account, signer)
    };
    let iat = shared.clock.now_unix_secs();
    let claims = JwtClaims {
        sub: lower(account),
        signer: lower(signer),
        iat,
        exp: iat.saturating_add(i64::try_from(token_ttl_secs).unwrap_or(i64::MAX / 2)),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let token = match jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &shared.cascade_keys.jwt_encoding,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("cannot sign a Cascade JWT: {e}");
            return error_text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    lock(&shared.cascade).tokens.insert(claims.jti.clone());
    shared.stats.update(Venue::Cascade, |s| {
        s.logins += 1;
        s.tokens_issued += 1;
        if s.signed.len() >= crate::stats::MAX_SIGNED {
            s.signed.remove(0);
        }
        s.signed.push(crate::stats::SignedPayload {
            payload: payload.clone(),
            signature: request.signature.clone(),
            signer: lower(signer),
        });
    });
    tracing::info!(account = %claims.sub, signer = %claims.signer, "cascade login");
    json_response(
        StatusCode::OK,
        json!({
            "token": token,
            "claims": {
                "sub": claims.sub,
                "signer": claims.signer,
                "iat": claims.iat,
                "exp": claims.exp,
            },
        }),
    )
}

/// A token is valid if the server signed it, it has not expired by the sim clock, and it
/// was not revoked.
fn verify(shared: &Shared, token: &str) -> Option<Session> {
    let validation = hs256_signature_only();
    let claims =
        jsonwebtoken::decode::<JwtClaims>(token, &shared.cascade_keys.jwt_decoding, &validation)
            .ok()?
            .claims;
    let session = Session {
        account: claims.sub,
        exp: claims.exp,
        jti: claims.jti,
    };
    still_valid(shared, &session).then_some(session)
}

fn still_valid(shared: &Shared, session: &Session) -> bool {
    session.exp > shared.clock.now_unix_secs()
        && lock(&shared.cascade).tokens.contains(&session.jti)
}

/// `Authed<Session>` is the session of a valid bearer token.
impl Authorize for Session {
    type Identity = Session;

    fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
        bearer(headers)
            .and_then(|token| verify(shared, token))
            .ok_or_else(|| error_text(StatusCode::UNAUTHORIZED, INVALID_BEARER))
    }
}

fn account_orders(shared: &Shared, account: &str) -> Vec<Value> {
    lock(&shared.cascade)
        .orders
        .get(account)
        .cloned()
        .unwrap_or_default()
}

fn account_positions(account: &str) -> Value {
    json!({
        "account": account,
        "positions": [
            { "market": "ETH-USD", "side": "long", "size": "1.5", "entry_price": "3012.50" },
        ],
    })
}

async fn orders(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(session): Authed<Session>,
) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "account": session.account,
            "orders": account_orders(&shared, &session.account),
        }),
    )
}

/// `POST /account/orders` `{"market","side","price","size"}`: places an order for the
/// token's account; 201 `{"order":..}`.
async fn create_order(
    AxState(shared): AxState<Arc<Shared>>,
    Authed(session): Authed<Session>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let params: Value = match json_body(body, invalid_body) {
        Ok(p) => p,
        Err(response) => return response,
    };
    match new_order(&session.account, &params) {
        Ok(order) => {
            store_order(&shared, &session.account, &order);
            json_response(StatusCode::CREATED, json!({ "order": order }))
        }
        Err(why) => error_text(StatusCode::BAD_REQUEST, &why),
    }
}

/// Keeps a new order and pushes it to the account's `orders` subscribers.
fn store_order(shared: &Shared, account: &str, order: &Value) {
    lock(&shared.cascade)
        .orders
        .entry(account.to_owned())
        .or_default()
        .push(order.clone());
    let message = json!({
        "jsonrpc": "2.0",
        "method": "orders",
        "params": {
            "channel": format!("orders:{account}"),
            "type": "placed",
            "order": order,
        },
    });
    shared.cascade_ws.push_private(account, "orders", &message);
}

async fn positions(Authed(session): Authed<Session>) -> Response {
    json_response(StatusCode::OK, account_positions(&session.account))
}

/// Cascade's WebSocket: JSON-RPC 2.0, authenticated by an `auth` message.
struct JsonRpc;

impl ws::Protocol for JsonRpc {
    const VENUE: Venue = Venue::Cascade;
    type Conn = Option<Session>;

    fn delta(market: &str, seq: u64) -> Value {
        // Prices move a little with `seq`, so consecutive deltas differ.
        let step = (seq % 20) as f64 * 0.5;
        json!({
            "jsonrpc": "2.0",
            "method": "orderbook",
            "params": {
                "channel": format!("orderbook:{market}"),
                "type": "delta",
                "market": market,
                "seq": seq,
                "bids": [[format!("{:.2}", 3011.5 - step), format!("{:.1}", 1.0 + (seq % 7) as f64)]],
                "asks": [[format!("{:.2}", 3012.0 + step), format!("{:.1}", 0.5 + (seq % 5) as f64)]],
            },
        })
    }

    fn binary_reply() -> Value {
        rpc_error(Value::Null, -32700, "Parse error: expected a text frame")
    }

    fn invalid_json_reply() -> Value {
        rpc_error(Value::Null, -32700, "Parse error")
    }

    /// Handles one JSON-RPC 2.0 message; returns the reply and any notifications after it.
    /// `echo`: an `echo_credential` fault was armed on the upgrade; every auth is rejected,
    /// quoting the token.
    fn handle(
        shared: &Shared,
        session: &mut Self::Conn,
        link: &mut ws::Link,
        request: Value,
        echo: bool,
    ) -> Vec<Value> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let method = match (
            request.get("jsonrpc").and_then(Value::as_str),
            request.get("method").and_then(Value::as_str),
        ) {
            (Some("2.0"), Some(method)) => method,
            _ => return vec![rpc_error(id, -32600, "Invalid Request")],
        };
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let reject = |reason: &str| shared.stats.reject(Venue::Cascade, reason);
        // A private message on a connection that is not authenticated right now (never
        // authenticated, or its token expired or was revoked since).
        let private_session = |session: &Option<Session>| {
            let result = private_session(shared, session);
            if result.is_err() {
                shared
                    .stats
                    .update(Venue::Cascade, |s| s.ws_private_before_auth += 1);
            }
            result
        };
        match method {
            "auth" => {
                let Some(token) = params.get("bearer").and_then(Value::as_str) else {
                    return vec![rpc_error(
                        id,
                        -32602,
                        "Invalid params: expected {\"bearer\": TOKEN}",
                    )];
                };
                if echo {
                    reject(INVALID_BEARER);
                    return vec![rpc_error(
                        id,
                        -32001,
                        &format!("{INVALID_BEARER}: {token} is not accepted here"),
                    )];
                }
                match verify(shared, token) {
                    Some(verified) => {
                        shared.stats.update(Venue::Cascade, |s| s.ws_auths += 1);
                        let result = json!({
                            "authenticated": true,
                            "account": verified.account,
                            "exp": verified.exp,
                        });
                        link.set_account(&verified.account);
                        *session = Some(verified);
                        vec![rpc_result(id, result)]
                    }
                    None => {
                        reject(INVALID_BEARER);
                        vec![rpc_error(id, -32001, INVALID_BEARER)]
                    }
                }
            }
            "subscribe" => {
                let channel = params.get("channel").and_then(Value::as_str);
                let market = params.get("market").and_then(Value::as_str);
                match (channel, market) {
                    (Some("orderbook"), Some(market)) if !market.is_empty() => {
                        link.subscribe_market(market);
                        vec![
                            rpc_result(id, json!({ "subscribed": format!("orderbook:{market}") })),
                            orderbook_snapshot(market),
                        ]
                    }
                    // User-scoped streams need an authenticated connection.
                    (Some(channel @ ("orders" | "positions")), _) => {
                        match private_session(session) {
                            Ok(s) => {
                                link.subscribe_private(channel);
                                vec![rpc_result(
                                    id,
                                    json!({ "subscribed": format!("{channel}:{}", s.account) }),
                                )]
                            }
                            Err((code, message)) => {
                                reject(message);
                                vec![rpc_error(id, code, message)]
                            }
                        }
                    }
                    _ => vec![rpc_error(
                        id,
                        -32602,
                        "Invalid params: expected {\"channel\": \"orderbook\", \"market\": MARKET}",
                    )],
                }
            }
            "orders.list" | "positions.list" | "order.create" => {
                let s = match private_session(session) {
                    Ok(s) => s,
                    Err((code, message)) => {
                        reject(message);
                        return vec![rpc_error(id, code, message)];
                    }
                };
                match method {
                    "orders.list" => vec![rpc_result(
                        id,
                        json!({ "orders": account_orders(shared, &s.account) }),
                    )],
                    "positions.list" => vec![rpc_result(id, account_positions(&s.account))],
                    _ => match new_order(&s.account, &params) {
                        Ok(order) => {
                            store_order(shared, &s.account, &order);
                            vec![rpc_result(id, json!({ "order": order }))]
                        }
                        Err(why) => vec![rpc_error(id, -32602, &format!("Invalid params: {why}"))],
                    },
                }
            }
            _ => vec![rpc_error(id, -32601, "Method not found")],
        }
    }
}

fn rpc_result(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn orderbook_snapshot(market: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "orderbook",
        "params": {
            "channel": format!("orderbook:{market}"),
            "type": "snapshot",
            "market": market,
            "bids": [["3011.50", "4.2"], ["3011.00", "10.0"]],
            "asks": [["3012.00", "3.1"], ["3012.50", "8.5"]],
        },
    })
}

/// The connection's session if it is still good, else the JSON-RPC error to answer.
fn private_session(
    shared: &Shared,
    session: &Option<Session>,
) -> Result<Session, (i64, &'static str)> {
    match session {
        None => Err((-32002, NOT_AUTHENTICATED)),
        Some(s) if still_valid(shared, s) => Ok(s.clone()),
        Some(_) => Err((-32001, INVALID_BEARER)),
    }
}

fn new_order(account: &str, params: &Value) -> Result<Value, String> {
    let market = params
        .get("market")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or("market is required")?;
    let side = params
        .get("side")
        .and_then(Value::as_str)
        .filter(|s| matches!(*s, "buy" | "sell"))
        .ok_or("side must be \"buy\" or \"sell\"")?;
    let positive = |name: &str| {
        params
            .get(name)
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
            .filter(|x: &f64| x.is_finite() && *x > 0.0)
            .ok_or(format!("{name} must be a positive number"))
    };
    let price = positive("price")?;
    let size = positive("size")?;
    Ok(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "account": account,
        "market": market,
        "side": side,
        "price": price,
        "size": size,
        "status": "open",
    }))
}

/// The body a status fault answers with; a 401 is the page's `Invalid Bearer Token`, so a
/// fault can force a client to re-run the challenge flow.
pub(crate) fn fault_body(status: StatusCode) -> Value {
    text_fault_body(status, INVALID_BEARER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_matches_page_format() {
        let t = time::macros::datetime!(2026-01-19 16:33:15.662842941 UTC);
        assert_eq!(
            challenge_timestamp(t),
            "2026-01-19T16:33:15.662842941+00:00"
        );
    }

    #[test]
    fn payload_matches_page() {
        let m = ChallengeMessage {
            account: "0x037466fe85a8042f2da8f912b585b2278f8f153c".into(),
            nonce: "e1231189-12d6-4efc-867d-53a3075a1d8b".into(),
            timestamp: "2026-01-19T16:33:15.662842941+00:00".into(),
        };
        assert_eq!(
            m.signing_payload(),
            r#"{"account":"0x037466fe85a8042f2da8f912b585b2278f8f153c","nonce":"e1231189-12d6-4efc-867d-53a3075a1d8b","timestamp":"2026-01-19T16:33:15.662842941+00:00"}"#
        );
    }

    /// Known answer cross-checked by the lead with Python eth_account 0.14.0
    /// (`Account.sign_message(encode_defunct(text=payload), key).signature.hex()`).
    #[test]
    fn eip191_known_answer() {
        let payload = r#"{"account":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8","nonce":"e1231189-12d6-4efc-867d-53a3075a1d8b","timestamp":"2026-01-19T16:33:15.662842941+00:00"}"#;
        let hex = "ab2433c366bbf1bd102b2c19c55ab7e19ace00f30b45dc68a4014f58c12294ce05df9bf943b7e1d5e4e707d8fc2585982d726fa3edc4e510b35391253e635f9d1b";
        let expected = parse_address(crate::config::demo::CASCADE_DELEGATE).unwrap();
        for text in [hex.to_owned(), format!("0x{hex}")] {
            let sig = parse_signature(&text).expect("parses");
            assert_eq!(sig.recover_address_from_msg(payload).unwrap(), expected);
        }
        // v = 0 / 1 encodes the same parity as 27 / 28.
        let mut bytes = alloy_primitives::hex::decode(hex).unwrap();
        bytes[64] -= 27;
        let sig = parse_signature(&alloy_primitives::hex::encode(&bytes)).unwrap();
        assert_eq!(sig.recover_address_from_msg(payload).unwrap(), expected);
        bytes[64] = 37;
        assert!(parse_signature(&alloy_primitives::hex::encode(&bytes)).is_none());
        assert!(parse_signature("0x1234").is_none());
        assert!(parse_signature("zz").is_none());
    }
}
