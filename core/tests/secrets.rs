//! The planted-secret test: every venue's flow, success and failure paths, with
//! recognisable secrets; all `tracing` output at TRACE (the simulator's included), every
//! error's Display and Debug, and the Debug of every session, config and credential are
//! captured, and none may contain a secret or any token the venues issued.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use tradeauth::{CadenzaConfig, CascadeConfig, ExchangeConfig, Method, PartnerConfig, Session};
use tradeauth_sim::{CadenzaUser, ExchangeTrader, PartnerClient, Sim, SimConfig, Venue, demo};

const PASSWORD: &str = "PLANTED-password-5be1f0";
const PARTNER_SECRET: &str = "PLANTED-partner-secret-0c9d2e7a41b3";
const API_KEY: &str = "exch_0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN: &str = "PLANTED-admin-token-77aa31";
/// A store password with `@` in it, and a base URL's userinfo password (issue #12).
const STORE_PASSWORD: &str = "PLANTED@store@pw-91c3";
const BASE_URL_PASSWORD: &str = "PLANTED-base-url-pw-3d0e";

/// Everything the test binary's tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config() -> SimConfig {
    let mut config = SimConfig::default();
    config
        .cadenza
        .users
        .push(CadenzaUser::new("planted@cadenza.test", PASSWORD));
    config
        .partner
        .clients
        .push(PartnerClient::new("planted-client", PARTNER_SECRET));
    config.exchange.admin_token = ADMIN_TOKEN.to_owned();
    config.exchange.traders.push(ExchangeTrader {
        username: "planted-trader".to_owned(),
        api_key: API_KEY.to_owned(),
        trader_id: None,
        created_at: None,
    });
    config
}

/// Adds `what` to what the test printed (scanned for secrets at the end).
fn keep(printed: &mut String, what: String) {
    printed.push_str(&what);
    printed.push('\n');
}

/// Keeps an error's Display and Debug.
fn keep_error(printed: &mut String, error: &tradeauth::Error) {
    keep(printed, format!("{error} {error:?}"));
}

/// The session's refresh token (`what` names it if there is none).
async fn refresh_token(session: &Session, what: &str) -> String {
    session
        .refresh_token()
        .await
        .expect(what)
        .expose()
        .to_owned()
}

/// A WebSocket authenticated, then one refused by a venue that echoes the bearer in its
/// rejection: the error is kept. Returns the first WebSocket, for the caller to keep open.
async fn ws_echo_refused(
    sim: &Sim,
    session: &Session,
    venue: Venue,
    printed: &mut String,
) -> tradeauth::WsStream {
    let (ws, _) = session.connect_ws_authenticated("/ws").await.expect("ws");
    sim.arm_fault(tradeauth_sim::Fault::echo_credential(venue).on_path("/ws"));
    let error = session
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("echoed rejection");
    keep_error(printed, &error);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // Global, not thread-local: the sessions and the simulator log from runtime workers.
    // This binary holds this one test, so nothing else installs a subscriber.
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let sim = Sim::start(config()).await.expect("simulator");
    let mut printed = String::new();
    let mut tokens: Vec<String> = Vec::new();

    // Cadenza: login, protected call, forced refresh, a 401 re-login, a wrong password.
    let options = support::options(&sim, Venue::Cadenza);
    let cadenza = Session::cadenza(
        CadenzaConfig::new("planted@cadenza.test", PASSWORD),
        options.clone(),
    )
    .expect("session");
    let credential = cadenza.credential().await.expect("login");
    tokens.push(credential.token().to_owned());
    tokens.push(refresh_token(&cadenza, "refresh token").await);
    support::get(&cadenza, "/api/v3/user/profile").await;
    let renewed = cadenza.refresh().await.expect("refresh");
    tokens.push(renewed.token().to_owned());
    tokens.push(refresh_token(&cadenza, "rotated").await);
    sim.revoke(Venue::Cadenza, tradeauth_sim::Revoke::All)
        .expect("revoke");
    support::get(&cadenza, "/api/v3/user/profile").await;
    tokens.push(cadenza.current().expect("fresh").token().to_owned());
    keep(
        &mut printed,
        format!("{cadenza:?} {credential:?} {renewed:?} {options:?}"),
    );
    let wrong = Session::cadenza(
        CadenzaConfig::new("planted@cadenza.test", format!("{PASSWORD}-wrong")),
        options,
    )
    .expect("session");
    let error = wrong.credential().await.expect_err("refused");
    keep_error(&mut printed, &error);

    // Partner: minted token, a call, a wrong secret (401, re-mint, 401).
    let partner = Session::partner(
        PartnerConfig::new("planted-client", PARTNER_SECRET),
        support::options(&sim, Venue::Partner),
    )
    .expect("session");
    support::get(&partner, "/portfolio").await;
    tokens.push(partner.current().expect("token").token().to_owned());
    keep(
        &mut printed,
        format!(
            "{partner:?} {:?}",
            PartnerConfig::new("planted-client", PARTNER_SECRET)
        ),
    );
    let forged = Session::partner(
        PartnerConfig::new("planted-client", format!("{PARTNER_SECRET}-wrong")),
        support::options(&sim, Venue::Partner),
    )
    .expect("session");
    let answer = support::get(&forged, "/portfolio").await;
    assert_eq!(answer.status, 401);
    keep(&mut printed, format!("{answer:?}"));

    // Cascade: wallet login, call, WebSocket auth, a refused signer.
    let cascade = Session::cascade(
        CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY),
        support::options(&sim, Venue::Cascade),
    )
    .expect("session");
    support::get(&cascade, "/account/orders").await;
    tokens.push(cascade.current().expect("token").token().to_owned());
    // A venue that echoes the bearer in its WebSocket rejection (twice: the session logs
    // in again and retries once), a path off the origin, and an echo handled directly.
    let _ws = ws_echo_refused(&sim, &cascade, Venue::Cascade, &mut printed).await;
    tokens.push(support::token(&cascade).await);
    let echoed = format!(
        r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":-32001,"message":"Invalid Bearer Token: {}"}}}}"#,
        cascade.current().expect("token").token()
    );
    keep(
        &mut printed,
        format!("{:?}", cascade.handle_ws_reply(&echoed).await),
    );
    tokens.push(support::token(&cascade).await);
    let other = sim
        .urls()
        .exchange
        .trim_start_matches("https://")
        .to_owned();
    let error = cascade
        .connect_ws_authenticated(&format!("//{other}/ws"))
        .await
        .expect_err("off-origin path");
    keep_error(&mut printed, &error);
    keep(
        &mut printed,
        format!(
            "{cascade:?} {:?}",
            CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY)
        ),
    );
    let stranger = Session::cascade(
        CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_STRANGER_KEY),
        support::options(&sim, Venue::Cascade),
    )
    .expect("session");
    let error = stranger.credential().await.expect_err("refused");
    keep_error(&mut printed, &error);
    let error = Session::cascade(
        CascadeConfig::new(demo::CASCADE_ACCOUNT, "0xnot-a-key-PLANTED"),
        support::options(&sim, Venue::Cascade),
    )
    .expect_err("malformed key");
    keep_error(&mut printed, &error);

    // Exchange: trader call + WebSocket, admin provisioning, malformed and unknown keys.
    let exchange = Session::exchange(
        ExchangeConfig::trader(API_KEY),
        support::options(&sim, Venue::Exchange),
    )
    .expect("session");
    support::get(&exchange, "/api/v1/user").await;
    let _ws = ws_echo_refused(&sim, &exchange, Venue::Exchange, &mut printed).await;
    let admin = Session::exchange(
        ExchangeConfig::admin(ADMIN_TOKEN),
        support::options(&sim, Venue::Exchange),
    )
    .expect("session");
    let created = admin
        .request(Method::Post, "/api/v1/admin/traders")
        .json(&serde_json::json!({"username": "planted-new"}))
        .send()
        .await
        .expect("provision");
    let new_key: serde_json::Value = serde_json::from_slice(&created.body).expect("JSON");
    tokens.push(new_key["api_key"].as_str().expect("key").to_owned());
    keep(
        &mut printed,
        format!(
            "{exchange:?} {admin:?} {:?}",
            ExchangeConfig::trader(API_KEY)
        ),
    );
    let error = Session::exchange(
        ExchangeConfig::trader("exch_PLANTED-not-hex"),
        support::options(&sim, Venue::Exchange),
    )
    .expect_err("malformed");
    keep_error(&mut printed, &error);
    let unknown = format!("exch_{}", "f".repeat(32));
    let session = Session::exchange(
        ExchangeConfig::trader(unknown.as_str()),
        support::options(&sim, Venue::Exchange),
    )
    .expect("session");
    let error = session
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("unknown key");
    keep_error(&mut printed, &error);
    keep(&mut printed, format!("{:?}", sim.audit()));

    // Options' Debug with userinfo in the store URL (a password containing '@') and in
    // the base URL; a file store refused for its directory's mode.
    let options = tradeauth::Options::new()
        .store(format!("redis://app:{STORE_PASSWORD}@127.0.0.1:6390/0"))
        .base_url(format!("https://trader:{BASE_URL_PASSWORD}@venue.example"));
    keep(&mut printed, format!("{options:?}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tradeauth-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        // Refusing is asserted in wrong_place.rs; here only its message is scanned.
        if let Err(error) = tradeauth::store::FileStore::open(&dir) {
            keep_error(&mut printed, &error);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    drop((cadenza, partner, cascade, exchange, admin, session));
    sim.shutdown().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture saw the library's logs"
    );

    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        PARTNER_SECRET.into(),
        API_KEY.into(),
        ADMIN_TOKEN.into(),
        STORE_PASSWORD.into(),
        "store@pw".into(),
        BASE_URL_PASSWORD.into(),
        demo::CASCADE_DELEGATE_KEY.into(),
        demo::CASCADE_DELEGATE_KEY.trim_start_matches("0x").into(),
        demo::CASCADE_STRANGER_KEY.trim_start_matches("0x").into(),
        unknown,
        "PLANTED-not-hex".into(),
        "not-a-key-PLANTED".into(),
    ];
    secrets.extend(tokens);
    for secret in &secrets {
        // Compared by hand: an assert that printed the secret would leak it into test output.
        let in_logs = logs.contains(secret.as_str());
        let in_printed = printed.contains(secret.as_str());
        assert!(
            !in_logs,
            "a planted secret or token ({} chars) appeared in the logs",
            secret.len()
        );
        assert!(
            !in_printed,
            "a planted secret or token ({} chars) appeared in Debug/Display output",
            secret.len()
        );
    }
}
