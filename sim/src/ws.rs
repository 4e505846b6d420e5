//! The WebSocket side that Cascade and Exchange share: the upgrade, and the session loop
//! that hands each text message to the venue's protocol and sends back its replies, until
//! the client closes or the simulator shuts down.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::Value;

use crate::common::error_text;
use crate::faults::EchoCredential;
use crate::state::Shared;

/// One venue's WebSocket protocol: what a connection remembers, and the answers.
pub(crate) trait Protocol: Send + 'static {
    /// What a connection remembers between messages (who authenticated on it).
    type Conn: Default + Send;
    /// The reply to a binary frame: both venues speak text only.
    fn binary_reply() -> Value;
    /// The reply to a text message that is not JSON.
    fn invalid_json_reply() -> Value;
    /// The replies to one JSON message, in order. `echo`: an `echo_credential` fault was
    /// armed on the upgrade, so every auth message is rejected, quoting the credential.
    fn handle(shared: &Shared, conn: &mut Self::Conn, request: Value, echo: bool) -> Vec<Value>;
}

/// `GET /ws`: upgrades to a WebSocket that speaks `P`.
pub(crate) async fn upgrade<P: Protocol>(
    State(shared): State<Arc<Shared>>,
    echo: Option<Extension<EchoCredential>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let echo = echo.is_some();
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| session::<P>(shared, socket, echo)),
        Err(rejection) => error_text(rejection.status(), "expected a WebSocket upgrade"),
    }
}

async fn session<P: Protocol>(shared: Arc<Shared>, mut socket: WebSocket, echo: bool) {
    let mut shutdown = shared.shutdown.clone();
    let mut conn = P::Conn::default();
    loop {
        let message = tokio::select! {
            m = socket.recv() => m,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let replies = match message {
            Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                Ok(request) => P::handle(&shared, &mut conn, request, echo),
                Err(_) => vec![P::invalid_json_reply()],
            },
            Some(Ok(Message::Binary(_))) => vec![P::binary_reply()],
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
        };
        for reply in replies {
            if socket
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
