//! The control listener (HTTPS, same CA): counters, faults, revocation, the clock,
//! lifetimes, reset and the audit log, for tests written in any language.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::common::{error_text, json_response, lock, parse_json};
use crate::faults::Fault;
use crate::state::{LifetimeUpdate, Shared};
use crate::{Revoke, Venue};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route(
            "/faults",
            get(list_faults).post(arm_fault).delete(clear_faults),
        )
        .route("/revoke", post(revoke))
        .route("/clock", get(clock).post(set_clock))
        .route("/lifetimes", get(lifetimes).post(set_lifetimes))
        .route("/reset", post(reset))
        .route("/audit", get(audit))
        .fallback(|| async { error_text(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            error_text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(shared)
}

fn body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Response> {
    body.map_err(|e| e.body_text())
        .and_then(|b| parse_json(&b))
        .map_err(|e| error_text(StatusCode::BAD_REQUEST, &e))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, json!(shared.stats.snapshot()))
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, json!(shared.faults.list()))
}

async fn arm_fault(
    State(shared): State<Arc<Shared>>,
    request: Result<Bytes, BytesRejection>,
) -> Response {
    match body::<Fault>(request) {
        Ok(fault) => {
            shared.faults.arm(fault.clone());
            json_response(StatusCode::OK, json!({ "armed": fault }))
        }
        Err(response) => response,
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    let cleared = shared.faults.list().len();
    shared.faults.clear();
    json_response(StatusCode::OK, json!({ "cleared": cleared }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    venue: Venue,
    what: Revoke,
}

async fn revoke(
    State(shared): State<Arc<Shared>>,
    request: Result<Bytes, BytesRejection>,
) -> Response {
    let request: RevokeRequest = match body(request) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match shared.revoke(request.venue, request.what) {
        Ok(revoked) => json_response(StatusCode::OK, json!({ "revoked": revoked })),
        Err(e) => error_text(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    offset_secs: i64,
}

fn clock_body(shared: &Shared) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "offset_secs": shared.clock.offset_secs(),
            "now_unix_ms": shared.clock.now_unix_ms(),
        }),
    )
}

async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    clock_body(&shared)
}

async fn set_clock(
    State(shared): State<Arc<Shared>>,
    request: Result<Bytes, BytesRejection>,
) -> Response {
    match body::<ClockRequest>(request) {
        Ok(r) => {
            shared.clock.set_offset_secs(r.offset_secs);
            clock_body(&shared)
        }
        Err(response) => response,
    }
}

async fn lifetimes(State(shared): State<Arc<Shared>>) -> Json<crate::Lifetimes> {
    Json(shared.lifetimes())
}

async fn set_lifetimes(
    State(shared): State<Arc<Shared>>,
    request: Result<Bytes, BytesRejection>,
) -> Response {
    let update: LifetimeUpdate = match body(request) {
        Ok(u) => u,
        Err(response) => return response,
    };
    match shared.set_lifetimes(&update) {
        Ok(lifetimes) => json_response(StatusCode::OK, json!(lifetimes)),
        Err(e) => error_text(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, json!({ "reset": true }))
}

async fn audit(State(shared): State<Arc<Shared>>) -> Response {
    let entries = lock(&shared.audit).clone();
    json_response(StatusCode::OK, json!(entries))
}
