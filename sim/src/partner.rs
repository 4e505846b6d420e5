//! Partner API: the client mints an HS256 JWT `{clientId, iat, exp}` with its secret key
//! and sends it as a bearer token; the server checks it with that client's secret.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lc_rs::digest;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Venue;
use crate::common::{
    Authed, Authorize, bearer, error_text, hs256_signature_only, invalid_body, json_body,
    json_response, lock, text_fault_body,
};
use crate::config::PartnerConfig;
use crate::layer::venue_router;
use crate::state::Shared;

/// A token whose `iat` is further than this in the future is refused (clock skew bound).
const MAX_IAT_SKEW_SECS: i64 = 60;

/// The page's three error texts.
const UNAUTHORIZED: &str = "Unauthorized";
const INVALID_TOKEN: &str = "Invalid Token";
const TOKEN_EXPIRED: &str = "Token Expired";

/// The clients' verification keys and the tokens seen so far.
pub(crate) struct State {
    keys: HashMap<String, DecodingKey>,
    /// SHA-256 of every valid token seen, to count distinct tokens as logins without
    /// keeping the tokens themselves.
    seen: HashSet<[u8; 32]>,
}

impl State {
    pub(crate) fn new(config: &PartnerConfig) -> Self {
        Self {
            keys: config
                .clients
                .iter()
                .map(|c| {
                    (
                        c.client_id.clone(),
                        DecodingKey::from_secret(c.secret_key.as_bytes()),
                    )
                })
                .collect(),
            seen: HashSet::new(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(rename = "clientId")]
    client_id: String,
    iat: i64,
    exp: i64,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/portfolio", get(portfolio))
        .route("/orders", post(create_order));
    venue_router(shared, Venue::Partner, routes, |status| {
        error_text(status, status.canonical_reason().unwrap_or("Error"))
    })
}

/// A client-minted bearer JWT: `Authed<Jwt>` is its verified `clientId`.
struct Jwt;

impl Authorize for Jwt {
    type Identity = String;

    /// Checks the bearer JWT; returns the client id or the page's error answer.
    fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<String, Response> {
        let Some(token) = bearer(headers) else {
            return Err(error_text(StatusCode::UNAUTHORIZED, UNAUTHORIZED));
        };
        let invalid = || error_text(StatusCode::UNAUTHORIZED, INVALID_TOKEN);
        // The secret depends on who the token claims to be, so read the claims unverified
        // first, then verify the signature with that client's secret. Only HS256 is accepted
        // (`alg: none` does not even parse as a jsonwebtoken header).
        let claimed: Claims =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| invalid())?;
        // Expiry is checked below against the simulated clock.
        let validation = hs256_signature_only();
        let claims = {
            let state = lock(&shared.partner);
            let key = state.keys.get(&claimed.client_id).ok_or_else(invalid)?;
            jsonwebtoken::decode::<Claims>(token, key, &validation)
                .map_err(|_| invalid())?
                .claims
        };
        let now = shared.clock.now_unix_secs();
        if claims.exp <= now {
            return Err(error_text(StatusCode::UNAUTHORIZED, TOKEN_EXPIRED));
        }
        if claims.iat > now + MAX_IAT_SKEW_SECS {
            return Err(invalid());
        }
        let fingerprint: [u8; 32] = digest::digest(&digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        if lock(&shared.partner).seen.insert(fingerprint) {
            shared.stats.update(Venue::Partner, |s| s.logins += 1);
        }
        Ok(claims.client_id)
    }
}

async fn portfolio(Authed(client_id): Authed<Jwt>) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "clientId": client_id,
            "currency": "USD",
            "totalValue": 152340.25,
            "cash": 50000.0,
            "positions": [
                { "symbol": "BTC-USD", "quantity": 1.5, "averagePrice": 42000.0, "marketValue": 97500.0 },
                { "symbol": "ETH-USD", "quantity": 2.0, "averagePrice": 2100.0, "marketValue": 4840.25 },
            ],
        }),
    )
}

async fn create_order(
    Authed(client_id): Authed<Jwt>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let order: serde_json::Map<String, Value> = json_body(body, invalid_body)?;
    let mut answer = json!({
        "orderId": uuid::Uuid::new_v4().to_string(),
        "clientId": client_id,
        "status": "accepted",
    });
    if let Value::Object(answer) = &mut answer {
        for (k, v) in order {
            answer.entry(k).or_insert(v);
        }
    }
    Ok(json_response(StatusCode::CREATED, answer))
}

/// The body a status fault answers with; a 401 is the page's `Invalid Token`, so a fault
/// can force a client to mint again.
pub(crate) fn fault_body(status: StatusCode) -> Value {
    text_fault_body(status, INVALID_TOKEN)
}
