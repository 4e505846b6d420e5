//! Authenticates to all four venues, makes a protected call on each, forces a refresh,
//! opens a WebSocket that stays authenticated on the two venues that have one, and prints
//! what happened — never a token, key or password.
//!
//! Reads the venues' base URLs from `SIM_CADENZA`, `SIM_PARTNER`, `SIM_CASCADE`,
//! `SIM_EXCHANGE` and the CA to trust from `SIM_CA` (what `scripts/demo.sh` exports after
//! starting the simulator), and the simulator's demo accounts.

use serde_json::{Value, json};
use std::time::Duration;
use tradeauth::{
    AuthEvent, CadenzaConfig, CascadeConfig, ExchangeConfig, Method, Options, PartnerConfig,
    Session, WsClient,
};

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("{name} is not set; run scripts/demo.sh").into())
}

fn options(url_var: &str) -> Result<Options, Box<dyn std::error::Error>> {
    Ok(Options::new()
        .base_url(env(url_var)?)
        .add_root_file(env("SIM_CA")?)?)
}

/// Prints a venue's heading, opens its session with `session` on that venue's options
/// (`url_var` names its base URL) and subscribes to the session's events.
fn open(
    heading: &str,
    url_var: &str,
    session: impl FnOnce(Options) -> tradeauth::Result<Session>,
) -> Result<(Session, tokio::sync::broadcast::Receiver<AuthEvent>), Box<dyn std::error::Error>> {
    println!("\n {heading}");
    let session = session(options(url_var)?)?;
    let events = session.subscribe();
    Ok((session, events))
}

/// Prints the events a session queued so far (they carry no secrets).
fn print_events(events: &mut tokio::sync::broadcast::Receiver<AuthEvent>, venue: &str) {
    while let Ok(event) = events.try_recv() {
        let text = match event {
            AuthEvent::Failed { kind, message } => {
                format!("failed ({}): {message}", kind.as_str())
            }
            other => format!("{other:?}"),
        };
        println!("    [{venue} event] {text}");
    }
}

/// Prints the WebSocket's messages (shortened) up to the first that `last` picks, waiting
/// at most 10 s for each.
async fn print_ws_until(ws: &WsClient, last: impl Fn(&Value) -> bool) -> tradeauth::Result<()> {
    loop {
        let text = ws.recv_timeout(Duration::from_secs(10)).await?;
        let shown: String = text.chars().take(100).collect();
        let more = if shown.len() < text.len() { "..." } else { "" };
        println!("    ws message: {shown}{more}");
        if serde_json::from_str::<Value>(&text).is_ok_and(|m| last(&m)) {
            return Ok(());
        }
    }
}

async fn show(label: &str, session: &Session, method: Method, path: &str) -> tradeauth::Result<()> {
    let response = session.request(method, path).send().await?;
    println!(
        "  {label}: {} {path} -> HTTP {}",
        method.as_str(),
        response.status
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Rust (crate tradeauth)");

    let heading = "Cadenza: email + password, rotating refresh token";
    let config = CadenzaConfig::new("demo@cadenza.test", "demo-password");
    let (cadenza, mut cadenza_events) = open(heading, "SIM_CADENZA", |options| {
        Session::cadenza(config, options)
    })?;
    let credential = cadenza.credential().await?;
    println!(
        "  logged in as {}; token expires at {:?} (Unix ms)",
        cadenza.account(),
        credential.expires_at_ms()
    );
    show(
        "protected call",
        &cadenza,
        Method::Get,
        "/api/v3/market/venue/list",
    )
    .await?;
    let renewed = cadenza.refresh().await?;
    println!(
        "  forced refresh: new token, expires at {:?}",
        renewed.expires_at_ms()
    );
    show(
        "after refresh",
        &cadenza,
        Method::Get,
        "/api/v3/user/profile",
    )
    .await?;
    print_events(&mut cadenza_events, "cadenza");

    let heading = "Partner: self-minted HS256 JWT";
    let config = PartnerConfig::new("demo-client", "demo-partner-secret-key-0123456789abcdef");
    let (partner, mut partner_events) = open(heading, "SIM_PARTNER", |options| {
        Session::partner(config, options)
    })?;
    show("protected call", &partner, Method::Get, "/portfolio").await?;
    partner.refresh().await?;
    println!("  forced re-mint done");
    print_events(&mut partner_events, "partner");

    let heading = "Cascade: wallet challenge signed by a delegate key (EIP-191)";
    let config = CascadeConfig::new(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        // The well-known public Hardhat test key #0, the simulator's demo delegate.
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    );
    let (cascade, mut cascade_events) = open(heading, "SIM_CASCADE", |options| {
        Session::cascade(config, options)
    })?;
    show("protected call", &cascade, Method::Get, "/account/orders").await?;
    // A WebSocket that stays authenticated: the public subscription goes out at once, the
    // private one and the query only once the venue accepted the JWT.
    let ws = cascade
        .websocket("/ws")
        .subscribe(json!({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                          "params": {"channel": "orderbook", "market": "ETH-USD"}}))
        .subscribe(json!({"jsonrpc": "2.0", "id": 2, "method": "subscribe",
                          "params": {"channel": "orders"}}))
        .connect()
        .await?;
    println!("  WebSocket: {}", ws.state().as_str());
    ws.send(json!({"jsonrpc": "2.0", "id": 3, "method": "orders.list", "params": {}}))
        .await?;
    print_ws_until(&ws, |m| m["id"] == 3).await?;
    ws.close().await;
    cascade.refresh().await?;
    println!("  forced re-login (new challenge) done");
    print_events(&mut cascade_events, "cascade");

    println!("\n Exchange: static x-api-key");
    let exchange = Session::exchange(
        ExchangeConfig::trader("exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"),
        options("SIM_EXCHANGE")?,
    )?;
    show("protected call", &exchange, Method::Get, "/api/v1/user").await?;
    let ws = exchange
        .websocket("/ws")
        .subscribe(json!({"op": "subscribe", "channel": "orderbook", "market": "BTC-USD"}))
        .subscribe(json!({"op": "subscribe", "channel": "fills"}))
        .connect()
        .await?;
    println!("  WebSocket: {}", ws.state().as_str());
    ws.send(
        json!({"op": "place_order", "market": "BTC-USD", "side": "buy",
                   "price": 50000.0, "quantity": 0.1}),
    )
    .await?;
    print_ws_until(&ws, |m| m["type"] == "order_accepted").await?;
    ws.close().await;
    match Session::exchange(
        ExchangeConfig::trader("exch_not-a-key"),
        options("SIM_EXCHANGE")?,
    ) {
        Ok(_) => println!("  a malformed key was accepted (unexpected)"),
        Err(e) => println!("  a malformed key is refused before sending: {e}"),
    }
    Ok(())
}
