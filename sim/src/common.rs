//! Small helpers shared by the venues: JSON responses and bodies, the rejection marker the
//! venue layer counts, the fallbacks, authentication as an extractor, bearer-header
//! parsing, random tokens.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::state::Shared;

/// Put on a response that rejects a request; the venue layer counts it under this reason.
#[derive(Clone, Debug)]
pub(crate) struct Rejected(pub(crate) String);

/// Locks a mutex; a panic in another request must not take the simulator down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON response with this status.
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

/// The body of an injected status fault at Partner, Cascade and Exchange:
/// `{"error": reason}`, except that a 401 says `unauthorized`, the venue's own
/// "credential rejected" text, so a fault can force a client to authenticate again.
pub(crate) fn text_fault_body(status: StatusCode, unauthorized: &str) -> Value {
    if status == StatusCode::UNAUTHORIZED {
        return json!({ "error": unauthorized });
    }
    json!({ "error": status.canonical_reason().unwrap_or("Error") })
}

/// `routes` answering an unknown path with `status_error(404)` and a method a route does
/// not take with `status_error(405)`, each listener in its own error shape.
pub(crate) fn with_fallbacks(
    routes: Router<Arc<Shared>>,
    status_error: fn(StatusCode) -> Response,
) -> Router<Arc<Shared>> {
    routes
        .fallback(move || async move { status_error(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(
            move || async move { status_error(StatusCode::METHOD_NOT_ALLOWED) },
        )
}

/// `{"error": "not found"}` and the like: the answer to a bare status of Cascade, Exchange
/// and the control API, the status's reason in lowercase.
pub(crate) fn lowercase_status_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("error");
    error_text(status, &reason.to_ascii_lowercase())
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

/// Checks an HS256 JWT's signature only: `alg` must be HS256 (a token of any other
/// algorithm, `none` included, is refused), and expiry is left to the caller, who checks
/// it against the simulated clock rather than the system clock.
pub(crate) fn hs256_signature_only() -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
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

/// The request body parsed as JSON, or `bad(why)`: the listener's own answer to a body
/// that is not the JSON it expects (the text says what is wrong with it).
pub(crate) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    bad: impl FnOnce(&str) -> Response,
) -> Result<T, Response> {
    body.map_err(|e| e.body_text())
        .and_then(|b| parse_json(&b))
        .map_err(|e| bad(&e))
}

/// How a venue authenticates a request from its headers alone, before any body is read.
pub(crate) trait Authorize {
    /// Who the request is from: an email, a client id, a session or a trader.
    type Identity;
    /// The identity, or the venue's error answer.
    fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<Self::Identity, Response>;
}

/// The identity `A` found; extracting it authenticates the request.
pub(crate) struct Authed<A: Authorize>(pub(crate) A::Identity);

impl<A: Authorize> FromRequestParts<Arc<Shared>> for Authed<A>
where
    A::Identity: Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        A::authorize(shared, &parts.headers).map(Authed)
    }
}
