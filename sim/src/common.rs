//! Small helpers shared by the venues: JSON responses, the rejection marker the venue
//! layer counts, bearer-header parsing, random tokens.

use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Put on a response that rejects a request; the venue layer counts it under this reason.
#[derive(Clone, Debug)]
pub(crate) struct Rejected(pub(crate) String);

/// Locks a mutex; a panic in another request must not take the simulator down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An error response that is counted as a rejection with `reason`.
pub(crate) fn rejected(status: StatusCode, body: Value, reason: &str) -> Response {
    let mut response = json_response(status, body);
    response
        .extensions_mut()
        .insert(Rejected(reason.to_owned()));
    response
}

/// `{"error": text}`, the error shape of Partner, Cascade, Exchange and the control API.
pub(crate) fn error_text(status: StatusCode, text: &str) -> Response {
    rejected(status, json!({ "error": text }), text)
}

/// 400 `{"error": detail}` for a body that is not the JSON expected, counted under the
/// one reason "invalid request body" so the counters do not depend on the parser's text.
pub(crate) fn invalid_body(detail: &str) -> Response {
    rejected(
        StatusCode::BAD_REQUEST,
        json!({ "error": detail }),
        "invalid request body",
    )
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, as in
/// RFC 9110); `None` when the header is missing, not Bearer, or empty.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 32 random bytes, base64url without padding: an opaque token.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Parses a JSON request body; the error text says what is wrong with it.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    if body.is_empty() {
        return Err("request body must be a JSON object".to_owned());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))
}
