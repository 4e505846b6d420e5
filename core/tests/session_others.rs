//! Partner, Cascade and Exchange sessions against the simulator over real TLS, and the
//! transport rules every session follows (HTTPS only, the right CA, same-origin paths).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tradeauth::{ErrorKind, Method, Options, Session, WsAuthReply};
use tradeauth_sim::{Revoke, Sim, Venue, demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_mints_and_calls_portfolio() {
    let (sim, session) = support::with_defaults(Venue::Partner).await;
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 200);
    let response = session
        .request(Method::Post, "/orders")
        .json(&serde_json::json!({"symbol": "BTC-USD", "quantity": 1}))
        .send()
        .await
        .expect("post");
    assert!(
        response.status == 200 || response.status == 201,
        "{}",
        response.status
    );
    // The token is cached: both calls used the same one.
    assert_eq!(sim.stats().partner.total_rejections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_401_remints_on_the_venue_clock_and_retries_once() {
    let sim = support::sim().await;
    let partner = |options: tradeauth::Options| {
        let config =
            tradeauth::PartnerConfig::new(demo::PARTNER_CLIENT_ID, demo::PARTNER_SECRET_KEY)
                .with_ttl(Duration::from_secs(300));
        Session::partner(config, options.background_refresh(false)).expect("session")
    };
    // The venue's clock runs 6 minutes ahead: a 5-minute token minted on our clock looks
    // expired to it. The 401's Date header tells the venue's time (within max_date_skew,
    // 15 min), so the one re-mint is stamped on the venue's clock and the one retry
    // succeeds.
    sim.set_clock_offset_secs(360);
    let session = partner(support::options(&sim, Venue::Partner));
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 200);
    let stats = sim.stats().partner;
    assert_eq!(stats.requests, 2, "one rejected call, one retry");
    assert_eq!(stats.rejected("Token Expired"), 1);
    // A clock further off than max_date_skew is not believed (it looks like a stale
    // cache): the retry is stamped on our clock and refused too, until the bound is
    // raised for a venue known to run that far off.
    sim.reset();
    sim.set_clock_offset_secs(960);
    let session = partner(support::options(&sim, Venue::Partner));
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 401);
    sim.reset();
    sim.set_clock_offset_secs(960);
    let session =
        partner(support::options(&sim, Venue::Partner).max_date_skew(Duration::from_secs(1200)));
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_persistent_401_is_retried_exactly_once() {
    let sim = support::sim().await;
    let config = tradeauth::PartnerConfig::new(
        demo::PARTNER_CLIENT_ID,
        "not-the-secret-key-0123456789abcdef",
    );
    let options = support::options(&sim, Venue::Partner).background_refresh(false);
    let session = Session::partner(config, options).expect("session");
    let response = support::get(&session, "/portfolio").await;
    assert_eq!(response.status, 401);
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(body["error"], "Invalid Token");
    assert_eq!(sim.stats().partner.requests, 2, "one retry, no loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_wallet_login_and_protected_routes() {
    let (sim, session) = support::with_defaults(Venue::Cascade).await;
    for path in ["/account/orders", "/account/positions"] {
        let response = support::get(&session, path).await;
        assert_eq!(response.status, 200, "{path}");
    }
    assert_eq!(support::cascade_logins(&sim), (1, 1));
    let claims = session.claims().await.expect("claims kept");
    assert_eq!(claims["sub"], demo::CASCADE_ACCOUNT.to_lowercase());
}

/// Sends the session's auth message `id` on `stream` and reads the venue's reply by the
/// session's rules.
async fn auth_round(session: &Session, stream: &mut tradeauth::WsStream, id: u64) -> WsAuthReply {
    stream
        .send(Message::text(
            session.ws_auth_message(id).await.expect("message"),
        ))
        .await
        .expect("send");
    let reply = next_text(stream).await;
    session.handle_ws_reply(&reply).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_websocket_auth_round_trip_and_rejection() {
    let (sim, session) = support::on_demand(Venue::Cascade).await;
    let (_stream, detail) = session
        .connect_ws_authenticated("/ws")
        .await
        .expect("ws auth");
    assert_eq!(detail["authenticated"], true);

    // The venue forgets every token: the next auth message is rejected with the page's
    // text, which drops the token, so the one after carries a fresh login's token.
    let mut stream = session.connect_ws("/ws").await.expect("ws connect");
    sim.revoke(Venue::Cascade, Revoke::AccessTokens)
        .expect("revoked");
    match auth_round(&session, &mut stream, 7).await {
        WsAuthReply::Rejected { message } => assert_eq!(message, "Invalid Bearer Token"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(session.current().is_none(), "rejected token dropped");
    assert!(matches!(
        auth_round(&session, &mut stream, 8).await,
        WsAuthReply::Authenticated { .. }
    ));
    assert_eq!(sim.stats().cascade.logins, 2);
}

/// `connect_ws_authenticated` re-authenticates a renewable session once on the same
/// connection when its token is refused, and gives up after that second refusal; a
/// permanent key refused is refused at once (sending it again would change nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_connect_logs_in_again_once_and_a_refused_key_is_sent_once() {
    let (sim, cascade) = support::on_demand(Venue::Cascade).await;
    cascade.credential().await.expect("login");
    sim.revoke(Venue::Cascade, Revoke::AccessTokens)
        .expect("revoked");
    let (_stream, detail) = cascade
        .connect_ws_authenticated("/ws")
        .await
        .expect("authenticated with a fresh login");
    assert_eq!(detail["authenticated"], true);
    assert_eq!(support::cascade_logins(&sim).1, 2);
    // Every auth message of the next connection refused: two tries, two logins, an error.
    sim.arm_fault(tradeauth_sim::Fault::echo_credential(Venue::Cascade).on_path("/ws"));
    let error = cascade
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("refused twice");
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    assert_eq!(support::cascade_logins(&sim).1, 3);

    let exchange = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    sim.arm_fault(tradeauth_sim::Fault::echo_credential(Venue::Exchange).on_path("/ws"));
    let error = exchange
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    assert_eq!(
        sim.stats().exchange.ws_messages_sent,
        1,
        "one auth message, one refusal"
    );
    // The error is the venue's refusal of that message, not a later attempt's failure.
    assert!(
        error
            .message()
            .starts_with("WebSocket authentication rejected: invalid api key"),
        "{error}"
    );
}

/// The session reads a WebSocket reply by its machine's rules, not its own: a Cascade
/// error that is not about the bearer keeps the token (the driver used to drop it on any
/// rejection), and Exchange's "Invalid API key" withholds the key (the driver used to
/// bypass the machine and keep serving it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_replies_follow_the_machine() {
    let (sim, cascade) = support::on_demand(Venue::Cascade).await;
    let token = cascade.credential().await.expect("login");
    let other = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"auth calls are rate limited"}}"#;
    assert!(matches!(
        cascade.handle_ws_reply(other).await,
        WsAuthReply::Rejected { .. }
    ));
    let kept = cascade
        .current()
        .expect("a rejection not about the bearer keeps it");
    assert_eq!(kept.header_value(), token.header_value());
    let invalid =
        r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32001,"message":"Invalid Bearer Token"}}"#;
    assert!(matches!(
        cascade.handle_ws_reply(invalid).await,
        WsAuthReply::Rejected { .. }
    ));
    assert!(
        cascade.current().is_none(),
        "the rejected bearer is dropped"
    );
    assert!(cascade.capabilities().ws_auth && cascade.capabilities().renewable);

    let exchange = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    assert!(exchange.credential().await.is_ok());
    let _ = exchange
        .handle_ws_reply(r#"{"type":"error","message":"insufficient balance"}"#)
        .await;
    assert!(
        exchange.current().is_some(),
        "an order error is not a key rejection"
    );
    let reply = exchange
        .handle_ws_reply(r#"{"type":"error","message":"Invalid API key"}"#)
        .await;
    assert!(matches!(reply, WsAuthReply::Rejected { .. }));
    assert!(exchange.current().is_none(), "the rejected key is withheld");
    let err = exchange.ws_auth_message(1).await.expect_err("withheld");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!exchange.capabilities().renewable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_key_header_and_websocket() {
    let (_sim, session) = support::with_defaults(Venue::Exchange).await;
    let response = support::get(&session, "/api/v1/user").await;
    assert_eq!(response.status, 200);
    let profile: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(profile["username"], demo::EXCHANGE_USERNAME);
    let (_stream, detail) = session
        .connect_ws_authenticated("/ws")
        .await
        .expect("ws auth");
    assert_eq!(detail["type"], "authenticated");
    assert_eq!(detail["trader_id"], demo::EXCHANGE_TRADER_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_unknown_key_is_rejected_without_retry_loops() {
    let sim = support::sim().await;
    let unknown = format!("exch_{}", "0".repeat(32));
    let session = Session::exchange(
        tradeauth::ExchangeConfig::trader(unknown.as_str()),
        support::options(&sim, Venue::Exchange),
    )
    .expect("well-formed key");
    let response = support::get(&session, "/api/v1/user").await;
    assert_eq!(response.status, 401);
    assert!(String::from_utf8_lossy(&response.body).contains("invalid api key"));
    assert_eq!(sim.stats().exchange.requests, 1);
    let error = session
        .connect_ws_authenticated("/ws")
        .await
        .expect_err("rejected");
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
    assert!(error.message().contains("invalid api key"));
    assert!(!error.to_string().contains(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_rejects_a_malformed_key_before_sending() {
    let sim = support::sim().await;
    let error = Session::exchange(
        tradeauth::ExchangeConfig::trader("exch_NOT-A-KEY"),
        support::options(&sim, Venue::Exchange),
    )
    .expect_err("malformed");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(!error.to_string().contains("NOT-A-KEY"));
    assert_eq!(sim.stats().exchange.requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_public_session_reads_market_data() {
    let sim = support::sim().await;
    let session = Session::exchange(
        tradeauth::ExchangeConfig::public(),
        support::options(&sim, Venue::Exchange),
    )
    .expect("public session");
    let response = support::get(&session, "/api/v1/orderbook/BTC-USD").await;
    assert_eq!(response.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_before_anything_is_sent() {
    let sim = support::sim().await;
    let http_url = sim.urls().cadenza.replace("https://", "http://");
    let config = tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD);
    let error = Session::cadenza(config, Options::new().base_url(http_url)).expect_err("insecure");
    assert_eq!(error.kind(), ErrorKind::InsecureUrl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_a_transport_error() {
    let sim = support::sim().await;
    let options = Options::new()
        .base_url(sim.urls().cadenza.as_str())
        .background_refresh(false)
        .max_retries(0);
    let session = support::cadenza(&sim, options);
    let error = session.credential().await.expect_err("unknown CA");
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(
        error.message().to_lowercase().contains("certificate"),
        "{}",
        error.message()
    );
    assert_eq!(sim.stats().cadenza.logins, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_paths_cannot_leave_the_venue_host() {
    let (_sim, session) = support::with_defaults(Venue::Exchange).await;
    let error = session
        .request(Method::Get, "https://example.invalid/steal")
        .send()
        .await
        .expect_err("cross-origin path");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
}

async fn next_text(stream: &mut tradeauth::WsStream) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("reply in time")
            .expect("stream open")
            .expect("readable");
        if let Message::Text(text) = message {
            return text.as_str().to_owned();
        }
    }
}

/// A caller's own `x-api-key` or `Authorization` header never goes out: the session's
/// credential takes its place (a stale token pasted into a header is not what the venue
/// sees); the query goes as given (Cascade's challenge needs its `account` parameter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_auth_headers_are_replaced_and_the_query_goes_as_given() {
    let sim = support::sim().await;
    let exchange = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    let response = exchange
        .request(Method::Get, "/api/v1/user")
        .header("X-API-Key", "exch_0000000000000000000000000000000000000000")
        .header("Authorization", "Bearer stale")
        .header("x-request-id", "r-1")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status, 200, "the session's key, not the caller's");

    let cascade = support::cascade(&sim, support::options(&sim, Venue::Cascade));
    let challenge = |query: bool| {
        let mut request = cascade.request(Method::Get, "/auth");
        if query {
            request = request.query("account", demo::CASCADE_ACCOUNT);
        }
        request.send()
    };
    let response = challenge(true).await.expect("sent");
    assert_eq!(response.status, 200);
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("nonce"), "{body}");
    let response = challenge(false).await.expect("sent");
    assert_eq!(response.status, 400, "the parameter is what made it work");
}

/// A fresh simulator whose Exchange venue redirects to `target(sim)` (only
/// `/api/v1/user` if `only_there`, else every path), and an Exchange session's
/// `GET /api/v1/user` there.
async fn get_user_redirected_to(
    target: impl FnOnce(&Sim) -> String,
    only_there: bool,
) -> (Sim, tradeauth::HttpResponse) {
    let sim = support::sim().await;
    let target = target(&sim);
    let redirect = tradeauth_sim::Fault::redirect(Venue::Exchange, target.as_str());
    sim.arm_fault(if only_there {
        redirect.on_path("/api/v1/user")
    } else {
        redirect
    });
    let session = support::exchange(&sim, support::options(&sim, Venue::Exchange));
    let response = support::get(&session, "/api/v1/user").await;
    (sim, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_host() {
    // The "other host" is the Partner listener: it counts every request it receives.
    let elsewhere = |sim: &Sim| format!("{}/portfolio", sim.urls().partner);
    let (sim, response) = get_user_redirected_to(elsewhere, false).await;
    assert_eq!(
        response.status, 307,
        "the redirect is handed back, not followed"
    );
    assert_eq!(
        sim.stats().partner.requests,
        0,
        "the key never reached the other host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_plain_http_is_refused() {
    let plain = |sim: &Sim| {
        let exchange = sim.urls().exchange.replace("https://", "http://");
        format!("{exchange}/api/v1/user")
    };
    // Another scheme is another origin: the redirect is handed back, never followed (and
    // https_only would refuse the hop anyway).
    let (sim, response) = get_user_redirected_to(plain, false).await;
    assert_eq!(response.status, 307);
    assert_eq!(
        sim.stats().exchange.requests,
        1,
        "nothing was sent over plain HTTP"
    );
}

/// `GET /api/v1/user` on an Exchange venue that first redirects it to itself `hops`
/// times, with no retries (so the venue's request count is the hops followed, plus one).
async fn get_user_after_same_origin_hops(hops: u32) -> (Sim, tradeauth::Result<u16>) {
    let sim = support::sim().await;
    let own = format!("{}/api/v1/user", sim.urls().exchange);
    sim.arm_fault(
        tradeauth_sim::Fault::redirect(Venue::Exchange, own)
            .on_path("/api/v1/user")
            .times(hops),
    );
    let session = support::exchange(&sim, support::options(&sim, Venue::Exchange).max_retries(0));
    let status = session
        .request(Method::Get, "/api/v1/user")
        .send()
        .await
        .map(|response| response.status);
    (sim, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_same_origin_redirects_are_followed_and_a_sixth_is_refused() {
    let (sim, status) = get_user_after_same_origin_hops(5).await;
    assert_eq!(status.expect("five hops are followed"), 200);
    assert_eq!(sim.stats().exchange.requests, 6);
    // A venue redirecting in a loop: the sixth hop is not taken, whatever it answers next.
    let (sim, status) = get_user_after_same_origin_hops(6).await;
    let error = status.expect_err("a sixth hop is refused");
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert!(error.to_string().contains("redirect"), "{error}");
    assert_eq!(sim.stats().exchange.requests, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_is_followed_with_the_credential() {
    let same = |sim: &Sim| format!("{}/api/v1/positions", sim.urls().exchange);
    let (sim, response) = get_user_redirected_to(same, true).await;
    assert_eq!(response.status, 200);
    assert_eq!(sim.stats().exchange.requests, 2);
}
