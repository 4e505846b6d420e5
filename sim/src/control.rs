//! The control listener (HTTPS, same CA): counters, faults, revocation, the clock,
//! lifetimes, reset and the audit log, for tests written in any language.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{
    error_text, json_body, json_response, lock, lowercase_status_error, with_fallbacks,
};
use crate::faults::Fault;
use crate::state::{LifetimeUpdate, Shared};
use crate::ws::Pace;
use crate::{Revoke, SimError, Venue};

/// A request body as the handler receives it, parsed by `json_body`.
type RawBody = Result<Bytes, BytesRejection>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/stats", get(stats))
        .route(
            "/faults",
            get(list_faults).post(arm_fault).delete(clear_faults),
        )
        .route("/revoke", post(revoke))
        .route("/ws/burst", post(burst))
        .route("/clock", get(clock).post(set_clock))
        .route("/lifetimes", get(lifetimes).post(set_lifetimes))
        .route("/reset", post(reset))
        .route("/audit", get(audit));
    with_fallbacks(routes, lowercase_status_error).with_state(shared)
}

/// 400 `{"error": why}`: the control API's answer to a request it cannot carry out.
fn bad_request(why: &str) -> Response {
    error_text(StatusCode::BAD_REQUEST, why)
}

/// The answer to a change the simulator refused or made: `done` builds the JSON body.
fn outcome<T>(result: Result<T, SimError>, done: impl FnOnce(T) -> Value) -> Response {
    match result {
        Ok(value) => json_response(StatusCode::OK, done(value)),
        Err(e) => bad_request(&e.to_string()),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, json!(shared.stats.snapshot()))
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, json!(shared.faults.list()))
}

async fn arm_fault(
    State(shared): State<Arc<Shared>>,
    request: RawBody,
) -> Result<Response, Response> {
    let fault: Fault = json_body(request, bad_request)?;
    let body = if fault.is_ws() {
        let connections = shared.arm_fault(fault.clone());
        json!({ "armed": fault, "connections": connections })
    } else {
        shared.arm_fault(fault.clone());
        json!({ "armed": fault })
    };
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /ws/burst`'s body: `{"venue","count"}`, and two opt-in latency aids that are
/// off when absent (then the deltas are exactly the unstamped, back-to-back ones).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BurstRequest {
    venue: Venue,
    count: u64,
    /// `true`: each delta carries `"sent_unix_ns"`, Unix nanoseconds of the system's wall
    /// clock (`CLOCK_REALTIME`, not the offset sim clock) read just before it is sent.
    #[serde(default)]
    stamp: bool,
    /// At least this many microseconds between consecutive deltas (0, the default: as
    /// fast as possible). Rounded up to tokio's 1 ms timer tick; at most 1 s.
    #[serde(default)]
    interval_us: u64,
}

/// The longest `interval_us` a burst may ask for (1 s).
const MAX_INTERVAL_US: u64 = 1_000_000;

/// `POST /ws/burst`: `count` deltas per orderbook subscription on the venue's WebSocket,
/// optionally stamped (`stamp`) and spaced (`interval_us`).
async fn burst(State(shared): State<Arc<Shared>>, request: RawBody) -> Result<Response, Response> {
    let request: BurstRequest = json_body(request, bad_request)?;
    if request.interval_us > MAX_INTERVAL_US {
        return Err(bad_request(&format!(
            "interval_us must be at most {MAX_INTERVAL_US}, got {}",
            request.interval_us
        )));
    }
    let pace = Pace {
        stamp: request.stamp,
        interval: Duration::from_micros(request.interval_us),
    };
    let sent = shared.burst_paced(request.venue, request.count, pace);
    Ok(outcome(sent, |sent| json!({ "sent": sent })))
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

async fn revoke(State(shared): State<Arc<Shared>>, request: RawBody) -> Result<Response, Response> {
    let request: RevokeRequest = json_body(request, bad_request)?;
    let revoked = shared.revoke(request.venue, request.what);
    Ok(outcome(revoked, |revoked| json!({ "revoked": revoked })))
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
    request: RawBody,
) -> Result<Response, Response> {
    let request: ClockRequest = json_body(request, bad_request)?;
    shared.clock.set_offset_secs(request.offset_secs);
    Ok(clock_body(&shared))
}

async fn lifetimes(State(shared): State<Arc<Shared>>) -> Json<crate::Lifetimes> {
    Json(shared.lifetimes())
}

async fn set_lifetimes(
    State(shared): State<Arc<Shared>>,
    request: RawBody,
) -> Result<Response, Response> {
    let update: LifetimeUpdate = json_body(request, bad_request)?;
    Ok(outcome(shared.set_lifetimes(&update), |lifetimes| {
        json!(lifetimes)
    }))
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, json!({ "reset": true }))
}

async fn audit(State(shared): State<Arc<Shared>>) -> Response {
    let entries = lock(&shared.audit).clone();
    json_response(StatusCode::OK, json!(entries))
}
