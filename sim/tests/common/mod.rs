//! Helpers shared by the integration tests: a simulator, an HTTPS client and a
//! WebSocket client that trust only the simulator's CA.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tradeauth_sim::{Sim, SimConfig};

/// A WebSocket connection to the simulator.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for a WebSocket message before failing (never reached when
/// the simulator works; it only turns a hang into a failure).
const WS_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn start() -> Sim {
    start_with(SimConfig::default()).await
}

pub async fn start_with(config: SimConfig) -> Sim {
    Sim::start(config).await.expect("simulator starts")
}

/// A reqwest client that trusts only the simulator's CA and refuses plain HTTP.
pub fn client(sim: &Sim) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .https_only(true)
        .build()
        .expect("client builds")
}

/// Like [`client`], but returns redirects instead of following them.
pub fn client_no_redirects(sim: &Sim) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

/// A rustls client config that trusts only the simulator's CA, for the given versions.
pub fn rustls_config(
    sim: &Sim,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(sim.ca_pem().as_bytes()) {
        roots
            .add(cert.expect("CA PEM parses"))
            .expect("CA is a valid root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions supported")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens `wss://` to a venue's `/ws`.
pub async fn ws_connect(sim: &Sim, base_url: &str) -> Ws {
    let url = format!("{}/ws", base_url.replacen("https://", "wss://", 1));
    let config = rustls_config(sim, rustls::DEFAULT_VERSIONS);
    let (ws, response) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(Connector::Rustls(config)),
    )
    .await
    .expect("WebSocket connects");
    assert_eq!(response.status(), 101);
    ws
}

pub async fn ws_send(ws: &mut Ws, message: &Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("WebSocket send");
}

pub async fn ws_send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into()))
        .await
        .expect("WebSocket send");
}

/// The next text message, parsed as JSON.
pub async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WS_TIMEOUT, ws.next())
            .await
            .expect("a WebSocket message arrives in time")
            .expect("WebSocket still open")
            .expect("WebSocket message");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("message is JSON");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

/// Sends a message and returns the first reply.
pub async fn ws_call(ws: &mut Ws, message: Value) -> Value {
    ws_send(ws, &message).await;
    ws_recv(ws).await
}

/// GET a URL and return status + JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("request succeeds");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Status and JSON body of a response.
pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Seconds from the system clock to `target` (Unix seconds), for setting the sim clock
/// so that `target` is "now".
pub fn offset_to(target: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    target - now
}

/// A simulator with the default config, and a client that trusts it.
pub async fn start_client() -> (Sim, reqwest::Client) {
    start_client_with(SimConfig::default()).await
}

/// A simulator with `config`, and a client that trusts it.
pub async fn start_client_with(config: SimConfig) -> (Sim, reqwest::Client) {
    let sim = start_with(config).await;
    let http = client(&sim);
    (sim, http)
}

/// Sending a request a test expects to reach the simulator (any failure to get an
/// answer fails the test).
pub trait RequestExt {
    /// The answer.
    fn sent(self) -> impl std::future::Future<Output = reqwest::Response>;
    /// The answer's JSON body.
    fn send_json<T: serde::de::DeserializeOwned>(self) -> impl std::future::Future<Output = T>;
}

impl RequestExt for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.expect("request succeeds")
    }

    async fn send_json<T: serde::de::DeserializeOwned>(self) -> T {
        self.sent().await.json().await.expect("JSON body")
    }
}

/// Checks of a venue's counters.
pub trait Rejections {
    /// Asserts how many rejections were counted under each reason of `expected`, written
    /// `reason = count; reason = count` (one line per table, however many reasons).
    fn assert_rejected(&self, expected: &str);
}

impl Rejections for tradeauth_sim::VenueStats {
    fn assert_rejected(&self, expected: &str) {
        for entry in expected.split("; ") {
            let (reason, count) = entry.rsplit_once(" = ").expect("reason = count");
            let count: u64 = count.parse().expect("a count");
            assert_eq!(self.rejected(reason), count, "rejections for {reason:?}");
        }
    }
}

/// A simulator, a client that trusts it, and a WebSocket to `venue`'s `/ws`.
pub async fn start_ws(venue: tradeauth_sim::Venue) -> (Sim, reqwest::Client, Ws) {
    let (sim, http) = start_client().await;
    let ws = ws_connect(&sim, sim.urls().venue(venue)).await;
    (sim, http, ws)
}
