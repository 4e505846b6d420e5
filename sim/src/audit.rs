//! Cadenza's audit log (the page: timestamp, endpoint, account, source IP, status). It
//! never holds a token or a password: the layer only sees the method, path and status,
//! and the account is what a handler chose to name.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::common::lock;
use crate::faults::DropConnection;
use crate::state::Shared;

/// One audited Cadenza request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it was answered, RFC 3339, by the simulated clock.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Endpoint path, without the query string.
    pub path: String,
    /// The account's email when known, else `None`.
    pub account: Option<String>,
    /// The client's IP address.
    pub source_ip: String,
    /// Response status; 0 when a fault dropped the connection without a response.
    pub status: u16,
}

/// Put on a response by a handler to name the account it concerned.
#[derive(Clone, Debug)]
pub(crate) struct AuditAccount(pub(crate) String);

pub(crate) async fn audit_layer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let source_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let response = next.run(request).await;
    let status = if response.extensions().get::<DropConnection>().is_some() {
        0
    } else {
        response.status().as_u16()
    };
    let entry = AuditEntry {
        time: rfc3339(shared.clock.now()),
        method,
        path,
        account: response
            .extensions()
            .get::<AuditAccount>()
            .map(|a| a.0.clone()),
        source_ip,
        status,
    };
    lock(&shared.audit).push(entry);
    response
}
