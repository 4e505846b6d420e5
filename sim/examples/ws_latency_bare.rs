//! The baseline of issue #16's C latency bench: a bare tokio-tungstenite + rustls reader
//! of the simulator's Exchange WebSocket, with none of tradeauth's machinery (no
//! reconnect, no auth state, no delivery thread). It authenticates with the demo trader's
//! key exactly as the venue page says (`{"op":"authenticate","api_key":..}`), subscribes
//! to `BTC-USD`'s orderbook, asks `POST /ws/burst` for stamped, spaced deltas
//! (`"stamp":true,"interval_us":..`) and records, per delta, the wall clock on receipt
//! minus the delta's `sent_unix_ns` (both `CLOCK_REALTIME`, same host). The stamp is
//! found by a string search, as `ffi/benches/ws_latency.c` does in its callback, so the
//! two differ only by what carries the message to the reader.
//!
//! Usage: `ws_latency_bare [COUNT] [INTERVAL_US] [ROUNDS]` (default 5000, 1000, 3), with
//! `SIM_EXCHANGE`, `SIM_CONTROL` and `SIM_CA` from `scripts/common.sh`'s `start_sim`.
//! Prints p50/p99/max per round and the medians over the rounds; never the key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tradeauth_sim::demo;

/// The connection type.
type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The first deltas of each round, left out of its figures (the reader and the sender
/// are still waking up; the C bench leaves out as many).
const WARMUP: usize = 10;

/// An environment variable that must be set.
fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set (source scripts/common.sh; start_sim)"))
}

/// Unix nanoseconds now (`CLOCK_REALTIME`).
fn unix_ns_now() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("fits in u64")
}

/// The `sent_unix_ns` of a delta's text, found the way the C bench finds it.
fn stamp_of(text: &str) -> Option<u64> {
    const KEY: &str = "\"sent_unix_ns\":";
    let at = text.find(KEY)? + KEY.len();
    let digits = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The `q`-th percentile of sorted values, by the index `(n - 1) * q / 100` (as the C
/// bench computes it).
fn percentile(sorted: &[u64], q: usize) -> u64 {
    sorted[(sorted.len() - 1) * q / 100]
}

/// The next text message (pings and pongs skipped).
async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")
            .expect("the connection stays open")
            .expect("a WebSocket message");
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message kind {other:?}"),
        }
    }
}

/// Sends `message` and reads until a message whose `type` is `until`.
async fn call(ws: &mut Ws, message: serde_json::Value, until: &str) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("WebSocket send");
    loop {
        let text = next_text(ws).await;
        let reply: serde_json::Value = serde_json::from_str(&text).expect("venue sends JSON");
        if reply["type"] == until {
            return;
        }
        // Only the type: an error reply could quote what was sent.
        assert_ne!(reply["type"], "error", "the venue refused a {until} step");
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number argument"))
    };
    let count = usize::try_from(arg(5000)).expect("count fits");
    let interval_us = arg(1000);
    let rounds = arg(3);
    let (exchange, control, ca) = (env("SIM_EXCHANGE"), env("SIM_CONTROL"), env("SIM_CA"));
    let pem = std::fs::read(&ca).expect("SIM_CA is readable");

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("CA PEM parses"))
            .expect("a valid root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = format!("{}/ws", exchange.replacen("https://", "wss://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        true,
        Some(Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("WebSocket connects");
    call(
        &mut ws,
        json!({ "op": "authenticate", "api_key": demo::EXCHANGE_API_KEY }),
        "authenticated",
    )
    .await;
    call(
        &mut ws,
        json!({ "op": "subscribe", "channel": "orderbook", "market": "BTC-USD" }),
        "orderbook_snapshot",
    )
    .await;

    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA parses")])
        .https_only(true)
        .build()
        .expect("HTTP client builds");
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Asked from another task, so the reader is already waiting when deltas come.
        let burst = http
            .post(format!("{control}/ws/burst"))
            .json(&json!({ "venue": "exchange", "count": count, "stamp": true, "interval_us": interval_us }))
            .send();
        let asked = tokio::spawn(async move {
            let answer = burst.await.expect("POST /ws/burst answers");
            assert_eq!(answer.status(), 200, "POST /ws/burst");
        });
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let text = next_text(&mut ws).await;
            if let Some(sent) = stamp_of(&text) {
                latencies.push(unix_ns_now().saturating_sub(sent));
            }
        }
        asked.await.expect("the burst request finished");
        let mut kept = if count > 2 * WARMUP {
            latencies.split_off(WARMUP)
        } else {
            latencies
        };
        kept.sort_unstable();
        let (p50, p99, max) = (
            percentile(&kept, 50),
            percentile(&kept, 99),
            kept[kept.len() - 1],
        );
        println!(
            "bare tokio-tungstenite: round {round}: {} deltas, interval {interval_us} us: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            kept.len(),
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3
        );
        p50s.push(p50);
        p99s.push(p99);
    }
    p50s.sort_unstable();
    p99s.sort_unstable();
    println!(
        "RESULT bare tokio-tungstenite: median of {rounds} rounds: p50 {:.1} us, p99 {:.1} us",
        p50s[p50s.len() / 2] as f64 / 1e3,
        p99s[p99s.len() / 2] as f64 / 1e3
    );
    ws.close(None).await.ok();
}
