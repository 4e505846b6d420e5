//! The accept loop: TCP -> TLS -> hyper (HTTP/1.1 or HTTP/2, with upgrades for
//! WebSockets) -> the axum router. Owning the loop lets the simulator drop a connection on
//! purpose (the `drop` fault) and close everything at shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::Venue;
use crate::faults::DropConnection;
use crate::state::Shared;

/// A client that has not finished the TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS on `listener` until `shutdown` becomes true.
pub(crate) fn spawn(
    name: &'static str,
    counted: Option<(Arc<Shared>, Venue)>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(accept_loop(
        name, counted, listener, acceptor, router, shutdown,
    ))
}

/// Counts one open connection of a venue while it lives.
struct OpenConnection(Arc<Shared>, Venue);

impl OpenConnection {
    fn new(shared: Arc<Shared>, venue: Venue) -> Self {
        shared.stats.update(venue, |s| {
            s.connections += 1;
            s.open_connections += 1;
            s.max_open_connections = s.max_open_connections.max(s.open_connections);
        });
        Self(shared, venue)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.stats.update(self.1, |s| {
            s.open_connections = s.open_connections.saturating_sub(1)
        });
    }
}

async fn accept_loop(
    name: &'static str,
    counted: Option<(Arc<Shared>, Venue)>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                tokio::spawn(serve_connection(
                    counted.clone(),
                    tcp,
                    peer,
                    acceptor.clone(),
                    router.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Usually EMFILE or a connection reset before accept; back off briefly
                // instead of spinning.
                tracing::warn!(listener = name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!(listener = name, "listener closed");
}

async fn serve_connection(
    counted: Option<(Arc<Shared>, Venue)>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    // A plaintext request fails here: it is never answered over HTTP.
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let _open = counted.map(|(shared, venue)| OpenConnection::new(shared, venue));
    let kill = Arc::new(Notify::new());
    let kill_switch = kill.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let kill_switch = kill_switch.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                // Ask the connection task to drop the whole connection, and never answer.
                kill_switch.notify_one();
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(response)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        }
        () = kill.notified() => tracing::debug!(%peer, "connection dropped by fault"),
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}
