//! WebSocket authentication: the venue's auth message from the current credential, the
//! reply parsed, and an authenticated `wss://` connection built on the session's TLS trust.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::machine::WsAuthReply;

/// A WebSocket connection to a venue over TLS.
pub type WsStream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How many non-auth messages (snapshots, heartbeats) may arrive before the auth reply.
const MAX_UNRELATED_BEFORE_REPLY: usize = 64;

impl Session {
    /// The venue's WebSocket auth message for the current credential (logging in first if
    /// needed): Cascade's JSON-RPC `auth` with request `id`, Exchange's `authenticate` op.
    /// Sessions whose machine has none (Cadenza, Partner, Exchange admin and public) get
    /// the machine's refusal.
    pub async fn ws_auth_message(&self, id: u64) -> Result<String> {
        let id = serde_json::Value::from(id);
        if !self.inner.capabilities.ws_auth {
            let now = self.now();
            return self
                .with_machine(|m| m.ws_auth_message(now.instant, id))
                .await?;
        }
        // The session's credential, which may be one the machine did not issue (a forked
        // parent's): the machine builds the message, whoever obtained the token.
        let credential = self.credential().await?;
        self.with_machine(|m| m.ws_auth_message_for(&credential, id))
            .await?
    }

    /// Parses the venue's answer to the auth message, as the machine reads it: a
    /// rejection of the credential ("Invalid Bearer Token", "Invalid API key") drops it,
    /// so the next auth message carries a fresh one (or, for a permanent key, none).
    pub async fn handle_ws_reply(&self, text: &str) -> WsAuthReply {
        self.handle_ws_reply_with(text, |machine, now, text| {
            machine.handle_ws_reply(now, text)
        })
        .await
    }

    /// Like [`handle_ws_reply`](Self::handle_ws_reply), for the answer to the auth message
    /// sent with request `id` only (see [`Machine::handle_ws_auth_reply`]).
    ///
    /// [`Machine::handle_ws_auth_reply`]: crate::machine::Machine::handle_ws_auth_reply
    pub(crate) async fn handle_ws_auth_reply(
        &self,
        text: &str,
        id: &serde_json::Value,
    ) -> WsAuthReply {
        self.handle_ws_reply_with(text, |machine, now, text| {
            machine.handle_ws_auth_reply(now, text, id)
        })
        .await
    }

    async fn handle_ws_reply_with(
        &self,
        text: &str,
        parse: impl FnOnce(&mut dyn crate::machine::Machine, crate::time::Now, &str) -> WsAuthReply,
    ) -> WsAuthReply {
        let Ok(local) = self.local() else {
            return WsAuthReply::Unrelated;
        };
        let mut state = local.state.lock().await;
        let now = self.now();
        let served = self.current();
        // The machine redacts every secret it holds; the credential the hot path serves
        // may be one it does not (a forked parent's), so that one is blotted out first, in
        // case the venue echoed it.
        let text = match &served {
            Some(credential) => crate::machine::common::redact(text, &[credential.token()]),
            None => text.to_owned(),
        };
        let held_before = state.machine.credential(now.instant).is_some();
        let reply = parse(&mut *state.machine, now, &text);
        if rejects_unheld(&reply, held_before) {
            // Rejected while serving a credential this machine does not hold (a forked
            // parent's): that one is not served again either. While the machine holds
            // one, `publish` has already let the inherited one go.
            state.inherited = None;
        }
        let after = self.publish(&mut state, now);
        if served.is_some() && after.is_none() {
            // The reply took the served credential away: the refresher's deadline (that
            // credential's renewal time) no longer applies.
            state.ctx.wake.notify_one();
        }
        reply
    }

    /// Opens `wss://<venue host><path>` with the session's trust roots; no auth is sent.
    /// A path that leaves the venue's origin (`//other.host/ws`, `wss://other/ws`) is
    /// refused, as [`RequestBuilder::send`](super::RequestBuilder::send) refuses it: the
    /// auth message that follows would hand the credential to that host.
    pub async fn connect_ws(&self, path: &str) -> Result<WsStream> {
        let mut url = self.inner.base_url.join(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("bad WebSocket path: {e}"),
            )
        })?;
        if url.origin() != self.inner.base_url.origin() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "WebSocket path must stay on the session's venue host",
            ));
        }
        url.set_scheme("wss").map_err(|()| {
            Error::new(
                ErrorKind::InvalidArgument,
                "cannot make a wss:// URL from the base URL",
            )
        })?;
        // HTTP/2 must not be offered: the WebSocket upgrade is an HTTP/1.1 handshake.
        let mut tls = (*self.tls_config()?).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            Some(Connector::Rustls(Arc::new(tls))),
        );
        let (stream, _) = tokio::time::timeout(self.inner.options.request_timeout, connect)
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "WebSocket connect timed out"))?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Transport,
                    format!("WebSocket connect failed: {e}"),
                )
            })?;
        Ok(stream)
    }

    /// Opens the venue's WebSocket and authenticates it; on "Invalid Bearer Token" it
    /// re-authenticates the session once and tries again on the same connection.
    pub async fn connect_ws_authenticated(
        &self,
        path: &str,
    ) -> Result<(WsStream, serde_json::Value)> {
        let mut stream = self.connect_ws(path).await?;
        let timeout = self.inner.options.request_timeout;
        for attempt in 1..=2u64 {
            let message = self.ws_auth_message(attempt).await?;
            stream.send(Message::text(message)).await.map_err(|e| {
                Error::new(ErrorKind::Transport, format!("WebSocket send failed: {e}"))
            })?;
            match read_auth_reply(self, &mut stream, timeout).await? {
                WsAuthReply::Authenticated { detail } => return Ok((stream, detail)),
                WsAuthReply::Rejected { message } => {
                    if !self.inner.capabilities.renewable || attempt == 2 {
                        return Err(Error::new(
                            ErrorKind::Unauthorized,
                            format!("WebSocket authentication rejected: {message}"),
                        ));
                    }
                }
                WsAuthReply::Unrelated => {}
            }
        }
        Err(Error::new(
            ErrorKind::Unauthorized,
            "WebSocket authentication rejected",
        ))
    }
}

/// Whether `reply` rejects a credential the machine did not hold when it arrived: the
/// inherited one a forked child serves until its own login.
fn rejects_unheld(reply: &WsAuthReply, held_before: bool) -> bool {
    matches!(reply, WsAuthReply::Rejected { .. }) && !held_before
}

async fn read_auth_reply(
    session: &Session,
    stream: &mut WsStream,
    timeout: Duration,
) -> Result<WsAuthReply> {
    for _ in 0..MAX_UNRELATED_BEFORE_REPLY {
        let next = tokio::time::timeout(timeout, stream.next())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "no WebSocket auth reply in time"))?;
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Transport,
                    format!("WebSocket read failed: {e}"),
                ));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Transport,
                    "WebSocket closed before the auth reply",
                ));
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        let reply = session.handle_ws_reply(text.as_str()).await;
        if !matches!(reply, WsAuthReply::Unrelated) {
            return Ok(reply);
        }
    }
    Err(Error::new(
        ErrorKind::Protocol,
        "the venue never answered the WebSocket auth message",
    ))
}
