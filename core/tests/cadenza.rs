//! Cadenza machine: every transition with a manual clock and canned responses.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tradeauth::machine::cadenza::{LOGIN_PATH, REFRESH_PATH};
use tradeauth::{
    AuthEvent, CadenzaConfig, CadenzaMachine, ErrorKind, HttpResponse, Machine, MachineStatus,
    Secret, SessionSnapshot,
};

const EMAIL: &str = "trader@example.com";
const PASSWORD: &str = "correct-horse-battery";
/// Two hours after the test's zero, on the wall clock: a later token's expiry.
const TWO_HOURS_ON: u64 = BASE_MS + 7_200_000;

fn machine() -> CadenzaMachine {
    CadenzaMachine::new(CadenzaConfig::new(EMAIL, PASSWORD).with_jitter_seed(7)).unwrap()
}

fn ok_tokens(access: &str, refresh: &str, expires_at: u64) -> HttpResponse {
    json(
        200,
        json!({"success": true, "data": {
            "accessToken": access, "refreshToken": refresh, "expiresAt": expires_at}}),
    )
}

fn venue_error(status: u16, code: &str, message: &str) -> HttpResponse {
    json(
        status,
        json!({"success": false, "error": {"code": code, "message": message}}),
    )
}

/// Log in at `clock.ms(0)` with a token expiring `lifetime_s` later.
fn logged_in(clock: &Clock, lifetime_s: u64) -> CadenzaMachine {
    let mut m = machine();
    let now = clock.ms(0);
    let req = m.poll_request(now).expect("login");
    assert_eq!(req.path, LOGIN_PATH);
    m.handle_response(now, ok_tokens("A1", "R1", BASE_MS + lifetime_s * 1000))
        .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);
    m
}

/// Logged in for an hour (see `logged_in`), now at the refresh's scheduled time with the
/// refresh sent: the machine, that time and the refresh request.
fn refresh_sent(clock: &Clock) -> (CadenzaMachine, tradeauth::Now, tradeauth::HttpRequest) {
    let mut m = logged_in(clock, 3600);
    let now = clock.at(m.poll_timeout().unwrap());
    let req = m.poll_request(now).unwrap();
    (m, now, req)
}

/// The renewal in flight at `now` is answered with `access` / `refresh`, expiring at
/// `expires_at`: the machine reports it as `how`, and `access` is the credential.
fn renewed(
    m: &mut CadenzaMachine,
    now: tradeauth::Now,
    (access, refresh, expires_at): (&str, &str, u64),
    how: AuthEvent,
) {
    m.handle_response(now, ok_tokens(access, refresh, expires_at))
        .unwrap();
    assert_eq!(m.credential(now.instant).unwrap().token(), access);
    assert_eq!(events(m), vec![how]);
}

/// `renewed` by a login (the refresh token was no good), the new token two hours on.
fn relogged_in(m: &mut CadenzaMachine, now: tradeauth::Now, access: &str, refresh: &str) {
    renewed(
        m,
        now,
        (access, refresh, TWO_HOURS_ON),
        AuthEvent::ReLoggedIn,
    );
}

/// `renewed` by a refresh.
fn refreshed(
    m: &mut CadenzaMachine,
    now: tradeauth::Now,
    access: &str,
    refresh: &str,
    expires_at: u64,
) {
    renewed(m, now, (access, refresh, expires_at), AuthEvent::Refreshed);
}

/// `req` is a refresh presenting the refresh token `refresh`.
fn assert_refresh_with(req: &tradeauth::HttpRequest, refresh: &str) {
    assert_eq!(req.path, REFRESH_PATH);
    assert_eq!(body_json(req), json!({ "refreshToken": refresh }));
}

/// A 401 on a call while the refresh (see `refresh_sent`) is in flight.
fn unauthorized_mid_refresh(clock: &Clock) -> (CadenzaMachine, tradeauth::Now) {
    let (mut m, now, req) = refresh_sent(clock);
    assert_eq!(req.path, REFRESH_PATH);
    m.handle_unauthorized(now);
    (m, now)
}

/// A fresh machine's login sent at `clock.ms(0)` and refused by `answer` at
/// `clock.ms(at_ms)`: the machine and the error.
fn login_refused(
    clock: &Clock,
    at_ms: u64,
    answer: HttpResponse,
) -> (CadenzaMachine, tradeauth::Error) {
    let mut m = machine();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    let e = m.handle_response(clock.ms(at_ms), answer).unwrap_err();
    (m, e)
}

#[test]
fn login_gives_credential() {
    let clock = Clock::new();
    let mut m = machine();
    assert_venue_and_account(&m, "cadenza", EMAIL);
    assert_eq!(m.state_name(), "logged_out");
    assert!(m.credential(clock.ms(0).instant).is_none());
    assert_eq!(m.poll_timeout(), None);

    let req = m.poll_request(clock.ms(0)).unwrap();
    assert_json_post(
        &req,
        "/api/v3/auth/login",
        json!({"email": EMAIL, "password": PASSWORD}),
    );
    assert!(m.is_busy());
    assert_eq!(m.state_name(), "logging_in");
    assert!(
        m.poll_request(clock.ms(1)).is_none(),
        "one request in flight"
    );

    m.handle_response(clock.ms(50), ok_tokens("A1", "R1", BASE_MS + 3_600_000))
        .unwrap();
    assert!(!m.is_busy());
    assert_eq!(m.state_name(), "active");
    let c = m.credential(clock.ms(60).instant).unwrap();
    assert_eq!(c.header_name(), "authorization");
    assert_eq!(c.header_value(), "Bearer A1");
    assert_eq!(c.token(), "A1");
    assert_eq!(c.expires_at_ms(), Some(BASE_MS + 3_600_000));
    assert_eq!(m.expires_at_ms(), Some(BASE_MS + 3_600_000));
    assert_eq!(m.refresh_token().map(Secret::expose), Some("R1"));
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);
    assert!(m.poll_request(clock.ms(60)).is_none(), "nothing to do");
    assert!(m.last_error().is_none());
}

#[test]
fn proactive_refresh_at_poll_timeout_and_rotation() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let t = m.poll_timeout().unwrap();
    let deadline = clock.base + Duration::from_secs(3600);
    // 300 s window minus up to 5 s jitter.
    assert!(t <= deadline - Duration::from_secs(300), "{t:?}");
    assert!(t >= deadline - Duration::from_secs(305), "{t:?}");

    // One millisecond early: nothing.
    let early = clock.at(t - Duration::from_millis(1));
    m.handle_timeout(early);
    assert!(m.poll_request(early).is_none());
    assert_eq!(m.state_name(), "active");

    // Exactly at the timeout: the refresh goes out with R1.
    let now = clock.at(t);
    m.handle_timeout(now);
    assert_eq!(m.state_name(), "refreshing");
    let req = m.poll_request(now).unwrap();
    assert_refresh_with(&req, "R1");
    // The old token is still handed out while refreshing.
    assert_eq!(m.credential(now.instant).unwrap().token(), "A1");

    let now_ms = t.duration_since(clock.base).as_millis() as u64;
    refreshed(&mut m, now, "A2", "R2", BASE_MS + now_ms + 3_600_000);
    assert_eq!(m.refresh_token().unwrap().expose(), "R2");

    // Second refresh sends the rotated token.
    let t2 = m.poll_timeout().unwrap();
    assert!(t2 > t + Duration::from_secs(3000));
    let req = m.poll_request(clock.at(t2)).unwrap();
    assert_eq!(body_json(&req), json!({"refreshToken": "R2"}));
}

#[test]
fn short_token_refreshes_at_a_quarter_of_its_life() {
    let clock = Clock::new();
    let m = logged_in(&clock, 3);
    let t = m.poll_timeout().unwrap();
    let deadline = clock.base + Duration::from_secs(3);
    // window = min(300 s, 3 s / 4) = 750 ms; jitter up to 75 ms.
    assert!(t <= deadline - Duration::from_millis(750));
    assert!(t >= deadline - Duration::from_millis(825));
    // And it is still handed out when the refresh starts (margin 300 ms).
    assert!(m.credential(t).is_some());
    let c = m.credential(clock.ms(0).instant).unwrap();
    assert_eq!(c.valid_until(), Some(deadline - Duration::from_millis(300)));
}

#[test]
fn never_an_expired_credential() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let valid_until = clock.base + Duration::from_secs(3590);
    assert_eq!(
        m.credential(clock.ms(0).instant).unwrap().valid_until(),
        Some(valid_until)
    );
    assert!(
        m.credential(valid_until - Duration::from_millis(1))
            .is_some()
    );
    assert!(m.credential(valid_until).is_none());
    assert!(m.credential(clock.secs(3600).instant).is_none());

    // Refresh keeps failing: the token is dropped at its deadline and never handed out.
    let t = m.poll_timeout().unwrap();
    let _ = m.poll_request(clock.at(t)).unwrap();
    let err = m
        .handle_response(clock.at(t), HttpResponse::new(503, "down"))
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        m.poll_timeout(),
        Some(valid_until),
        "wake to drop the token"
    );
    m.handle_timeout(clock.at(valid_until));
    assert!(m.credential(valid_until).is_none());
    assert_eq!(m.poll_timeout(), None);
    // Still refreshing (the refresh token lives 7 days).
    let req = m.poll_request(clock.at(valid_until)).unwrap();
    assert_eq!(req.path, REFRESH_PATH);
}

#[test]
fn rejected_refresh_falls_back_to_full_login() {
    for (status, code) in [
        (401, "INVALID_REFRESH_TOKEN"),
        (400, "REFRESH_TOKEN_EXPIRED"),
    ] {
        let clock = Clock::new();
        let (mut m, now, _) = refresh_sent(&clock);
        // Recovery, not a failure: Ok, and the next request is a login.
        m.handle_response(now, venue_error(status, code, "refresh token is no good"))
            .unwrap();
        assert_eq!(m.state_name(), "logging_in");
        assert!(m.refresh_token().is_none());
        assert_eq!(
            m.credential(now.instant).unwrap().token(),
            "A1",
            "old access token still valid"
        );
        let req = m.poll_request(now).unwrap();
        assert_eq!(req.path, LOGIN_PATH);
        assert_eq!(body_json(&req)["password"], PASSWORD);
        relogged_in(&mut m, now, "A9", "R9");
    }
}

#[test]
fn rejected_login_is_not_resent() {
    let clock = Clock::new();
    let (mut m, err) = login_refused(
        &clock,
        10,
        venue_error(401, "INVALID_CREDENTIALS", "Invalid email or password"),
    );
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("INVALID_CREDENTIALS"));
    assert!(err.message().contains("check the email and password"));
    assert_eq!(m.state_name(), "stopped");
    assert_eq!(m.last_error().unwrap().kind(), ErrorKind::Unauthorized);
    assert!(matches!(
        events(&mut m).as_slice(),
        [AuthEvent::Failed {
            kind: ErrorKind::Unauthorized,
            ..
        }]
    ));
    // Never re-sent on its own, whatever the time.
    for s in [0, 1, 60, 3600] {
        m.handle_timeout(clock.secs(s));
        assert!(m.poll_request(clock.secs(s)).is_none());
    }
    assert_eq!(m.poll_timeout(), None);
    // An explicit handle_unauthorized re-arms it (twice is one login).
    m.handle_unauthorized(clock.secs(4000));
    m.handle_unauthorized(clock.secs(4000));
    assert!(m.last_error().is_none());
    let req = m.poll_request(clock.secs(4000)).unwrap();
    assert_eq!(req.path, LOGIN_PATH);
    assert!(m.poll_request(clock.secs(4000)).is_none());
    m.handle_response(clock.secs(4000), ok_tokens("A1", "R1", TWO_HOURS_ON))
        .unwrap();
    assert_eq!(events(&mut m), vec![AuthEvent::LoggedIn]);

    // 403 and a plain 400 stop it too; logout + demand starts afresh.
    for status in [403u16, 400] {
        let (mut m, e) = login_refused(&clock, 0, HttpResponse::new(status, "nope"));
        assert!(!e.is_retryable());
        assert_eq!(m.state_name(), "stopped");
        assert!(m.poll_request(clock.ms(1)).is_none());
        m.logout();
        assert!(m.poll_request(clock.ms(2)).is_some());
    }
}

#[test]
fn busy_venue_is_retryable_and_resent() {
    let clock = Clock::new();
    let mut m = machine();
    let first = m.poll_request(clock.ms(0)).unwrap();
    let maintenance =
        venue_error(503, "UNAVAILABLE", "maintenance").with_header("Retry-After", "5");
    let err = retryable_after(&mut m, clock.ms(5), maintenance, Duration::from_secs(5));
    assert_eq!(err.kind(), ErrorKind::ApiError);
    assert_eq!(err.status(), Some(503));
    assert_eq!(m.state_name(), "logging_in");
    assert!(m.credential(clock.ms(5).instant).is_none());
    assert_eq!(m.last_error().unwrap().status(), Some(503));
    let again = m.poll_request(clock.ms(5005)).unwrap();
    assert_eq!(again, first, "same login re-sent");

    // 429 on a refresh: the same refresh (same token) is re-sent.
    let (mut m, now, req) = refresh_sent(&clock);
    let slow_down = HttpResponse::new(429, "slow down").with_header("retry-after", "2");
    retryable_after(&mut m, now, slow_down, Duration::from_secs(2));
    assert!(m.last_error().is_none(), "still holds a valid credential");
    assert_eq!(m.poll_request(now).unwrap(), req);
}

#[test]
fn transport_error_resends() {
    let clock = Clock::new();
    let mut m = machine();
    let first = m.poll_request(clock.ms(0)).unwrap();
    let e = tradeauth::Error::transport("connection refused");
    m.handle_transport_error(clock.ms(1), &e);
    m.handle_transport_error(clock.ms(1), &e); // twice: harmless
    assert!(!m.is_busy());
    assert_eq!(
        events(&mut m),
        vec![AuthEvent::Failed {
            kind: ErrorKind::Transport,
            message: "connection refused".into()
        }]
    );
    assert_eq!(m.last_error().unwrap().kind(), ErrorKind::Transport);
    assert_eq!(m.poll_request(clock.ms(2)).unwrap(), first);
}

#[test]
fn handle_twice_is_harmless() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    // A duplicate response with nothing in flight is ignored.
    let e = m
        .handle_response(clock.ms(1), ok_tokens("AX", "RX", BASE_MS + 9_000_000))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(m.credential(clock.ms(1).instant).unwrap().token(), "A1");
    assert!(events(&mut m).is_empty());
    // handle_timeout twice at the same instant: one refresh.
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(clock.at(t));
    m.handle_timeout(clock.at(t));
    assert!(m.poll_request(clock.at(t)).is_some());
    assert!(m.poll_request(clock.at(t)).is_none());
}

#[test]
fn unauthorized_drops_credential_and_logs_in_again() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let now = clock.secs(10);
    m.handle_unauthorized(now);
    m.handle_unauthorized(now);
    assert!(m.credential(now.instant).is_none(), "dropped at once");
    let req = m.poll_request(now).unwrap();
    assert_eq!(req.path, LOGIN_PATH, "a 401 means a full login");
    assert!(m.poll_request(now).is_none());
    m.handle_unauthorized(now); // while the login is in flight: nothing more
    relogged_in(&mut m, now, "A2", "R2");
}

#[test]
fn unauthorized_during_refresh_in_flight_keeps_the_refresh() {
    let clock = Clock::new();
    let (mut m, now) = unauthorized_mid_refresh(&clock);
    assert!(m.credential(now.instant).is_none());
    assert!(m.poll_request(now).is_none(), "still in flight");
    refreshed(&mut m, now, "A2", "R2", BASE_MS + 9_000_000);
}

#[test]
fn malformed_answers_are_classified() {
    let clock = Clock::new();
    let exp = BASE_MS + 3_600_000;
    let cases: Vec<(&str, HttpResponse, ErrorKind)> = vec![
        (
            "not json",
            HttpResponse::new(200, "<html>hi</html>"),
            ErrorKind::Protocol,
        ),
        ("array", json(200, json!([1, 2])), ErrorKind::Protocol),
        (
            "no success",
            json(200, json!({"data": {}})),
            ErrorKind::Protocol,
        ),
        (
            "success string",
            json(200, json!({"success": "yes", "data": {}})),
            ErrorKind::Protocol,
        ),
        (
            "success false 200",
            json(
                200,
                json!({"success": false, "error": {"code": "X", "message": "no"}}),
            ),
            ErrorKind::ApiError,
        ),
        (
            "no data",
            json(200, json!({"success": true})),
            ErrorKind::Protocol,
        ),
        (
            "data string",
            json(200, json!({"success": true, "data": "x"})),
            ErrorKind::Protocol,
        ),
        (
            "access number",
            json(
                200,
                json!({"success": true, "data": {"accessToken": 1, "refreshToken": "R", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "access empty",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "", "refreshToken": "R", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "access missing",
            json(
                200,
                json!({"success": true, "data": {"refreshToken": "R", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "refresh missing",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "refresh null",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": null, "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "expires string",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R", "expiresAt": "soon"}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "expires missing",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R"}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "expires negative",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R", "expiresAt": -5}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "expires in seconds (past)",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R", "expiresAt": 1_700_003_600u64}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "header injection",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A\r\nx-evil: 1", "refreshToken": "R", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "token with space",
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A B", "refreshToken": "R", "expiresAt": exp}}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "404 html",
            HttpResponse::new(404, "<html>"),
            ErrorKind::ApiError,
        ),
    ];
    for (name, response, kind) in cases {
        let mut m = machine();
        let req = m.poll_request(clock.ms(0)).unwrap();
        let e = m.handle_response(clock.ms(1), response).unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert!(!e.is_retryable(), "{name}");
        assert!(m.credential(clock.ms(1).instant).is_none(), "{name}");
        assert_eq!(m.last_error().unwrap().kind(), kind, "{name}");
        assert_no_secret(&e.to_string(), &[PASSWORD]);
        // Not a rejection of the password: a later demand logs in again.
        assert_eq!(m.poll_request(clock.ms(2)).unwrap(), req, "{name}");
    }
    // A float expiresAt (JavaScript number) is accepted.
    let mut m = machine();
    let _ = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(
        clock.ms(0),
        json(200, json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R", "expiresAt": (exp as f64)}})),
    )
    .unwrap();
    assert_eq!(m.expires_at_ms(), Some(exp));
    // A number that is not a Unix ms time is named as such (not mistaken for an expiry
    // at 0 or at the end of time): negative, zero, or too large for u64.
    for bad in [json!(-5), json!(-5.5), json!(0.0), json!(u64::MAX as f64)] {
        let (_, e) = login_refused(
            &clock,
            0,
            json(
                200,
                json!({"success": true, "data": {"accessToken": "A", "refreshToken": "R", "expiresAt": bad}}),
            ),
        );
        assert_eq!(e.kind(), ErrorKind::Protocol, "{bad}");
        assert!(
            e.message().contains("negative or invalid `expiresAt`"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn rotated_refresh_token_is_kept_from_a_broken_answer() {
    let clock = Clock::new();
    let (mut m, now, _) = refresh_sent(&clock);
    let e = m
        .handle_response(
            now,
            json(200, json!({"success": true, "data": {"refreshToken": "R2", "expiresAt": BASE_MS + 9_000_000}})),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert_eq!(m.refresh_token().unwrap().expose(), "R2");
    let req = m.poll_request(now).unwrap();
    assert_eq!(body_json(&req), json!({"refreshToken": "R2"}));
}

#[test]
fn venue_echo_of_a_secret_is_redacted() {
    let clock = Clock::new();
    let (_, e) = login_refused(
        &clock,
        0,
        venue_error(401, "BAD", &format!("password {PASSWORD} is wrong")),
    );
    assert_no_secret(&e.to_string(), &[PASSWORD]);
    assert!(e.message().contains("[REDACTED]"));
}

#[test]
fn logout_wipes_and_allows_login_again() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    m.logout();
    assert!(m.credential(clock.ms(1).instant).is_none());
    assert!(m.refresh_token().is_none());
    assert!(m.expires_at_ms().is_none());
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(m.state_name(), "logged_out");
    let req = m.poll_request(clock.ms(2)).unwrap();
    assert_eq!(req.path, LOGIN_PATH);
    // A response to a request sent before logout is ignored.
    m.logout();
    assert!(
        m.handle_response(clock.ms(3), ok_tokens("A", "R", BASE_MS + 9_000_000))
            .is_err()
    );
    assert!(m.credential(clock.ms(3).instant).is_none());
}

#[test]
fn config_is_validated() {
    for (email, password) in [
        ("", "pw"),
        ("no-at-sign", "pw"),
        ("a@\u{7}b", "pw"),
        ("a@b.c", ""),
    ] {
        let e = CadenzaMachine::new(CadenzaConfig::new(email, password)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{email:?}");
    }
    let c = CadenzaConfig::new("a@b.c", "pw").with_refresh_window(Duration::from_secs(10));
    assert_eq!(c.refresh_window, Duration::from_secs(10));
    assert_eq!(
        CadenzaConfig::new("a@b.c", "pw").refresh_window,
        Duration::from_secs(300)
    );
}

#[test]
fn nothing_prints_a_secret() {
    let clock = Clock::new();
    let cfg = CadenzaConfig::new(EMAIL, PASSWORD);
    let mut m = CadenzaMachine::new(cfg.clone()).unwrap();
    let req = m.poll_request(clock.ms(0)).unwrap();
    m.handle_response(
        clock.ms(0),
        ok_tokens("ACCESS-tok-123", "REFRESH-tok-456", BASE_MS + 3_600_000),
    )
    .unwrap();
    let cred = m.credential(clock.ms(0).instant).unwrap();
    let secrets = [PASSWORD, "ACCESS-tok-123", "REFRESH-tok-456"];
    for text in [
        format!("{cfg:?}"),
        format!("{m:?}"),
        format!("{req:?}"),
        format!("{cred:?}"),
        format!("{:?}", m.refresh_token()),
        format!("{:?}", events(&mut m)),
    ] {
        assert_no_secret(&text, &secrets);
    }
    // ... and failures do not either.
    let t = m.poll_timeout().unwrap();
    let _ = m.poll_request(clock.at(t)).unwrap();
    let e = m
        .handle_response(clock.at(t), HttpResponse::new(500, "REFRESH-tok-456 broke"))
        .unwrap_err();
    assert_no_secret(&format!("{e:?} {e}"), &secrets);
}

#[test]
fn stopped_with_a_still_valid_token_reports_why() {
    let clock = Clock::new();
    let (mut m, now, _) = refresh_sent(&clock);
    m.handle_response(now, venue_error(401, "INVALID_REFRESH_TOKEN", "gone"))
        .unwrap();
    let _ = m.poll_request(now).unwrap();
    let e = m
        .handle_response(
            now,
            venue_error(401, "INVALID_CREDENTIALS", "password changed"),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    // The old access token is still honoured until it expires, but the machine will not
    // renew it, and says why.
    assert!(m.credential(now.instant).is_some());
    assert_eq!(m.last_error().unwrap().kind(), ErrorKind::Unauthorized);
    assert!(m.poll_request(now).is_none());
    let until = m.poll_timeout().unwrap();
    m.handle_timeout(clock.at(until));
    assert!(m.credential(until).is_none());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn unauthorized_during_a_refresh_that_then_fails_retries_the_refresh() {
    // The 401 arrives while the refresh is in flight: that refresh brings the fresh token,
    // so the refresh token is kept; when the refresh then fails (503) the retry is a
    // refresh again, not a login with the password.
    let clock = Clock::new();
    let (mut m, now) = unauthorized_mid_refresh(&clock);
    let e = m
        .handle_response(now, venue_error(503, "UNAVAILABLE", "busy"))
        .unwrap_err();
    assert!(e.is_retryable());
    let retry = m.poll_request(now).expect("a retry");
    assert_refresh_with(&retry, "R1");
}

#[test]
fn a_forced_refresh_uses_the_refresh_token_and_keeps_serving_until_its_answer() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let early = clock.secs(60);
    assert!(
        m.poll_request(early).is_none(),
        "not in the refresh window yet"
    );
    m.force_refresh(early);
    let req = m.poll_request(early).expect("a refresh now");
    assert_refresh_with(&req, "R1");
    assert_eq!(m.credential(early.instant).unwrap().token(), "A1");
    // Forcing again while it is in flight changes nothing (no second request, no login).
    m.force_refresh(early);
    assert!(m.poll_request(early).is_none());
    refreshed(&mut m, early, "A2", "R2", TWO_HOURS_ON);
}

#[test]
fn a_forced_refresh_when_one_is_already_due_stays_a_refresh() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let due = clock.at(m.poll_timeout().unwrap());
    m.handle_timeout(due);
    assert_eq!(m.state_name(), "refreshing");
    m.force_refresh(due);
    assert_eq!(m.poll_request(due).unwrap().path, REFRESH_PATH);
}

#[test]
fn a_forced_refresh_re_arms_a_stopped_machine() {
    let clock = Clock::new();
    let (mut m, _) = login_refused(&clock, 1, venue_error(401, "INVALID_CREDENTIALS", "bad"));
    assert!(m.poll_request(clock.ms(2)).is_none(), "stopped");
    m.force_refresh(clock.ms(3));
    assert_eq!(m.poll_request(clock.ms(3)).unwrap().path, LOGIN_PATH);
    assert!(m.last_error().is_none());
}

#[test]
fn snapshot_carries_the_session_and_restore_adopts_it() {
    let clock = Clock::new();
    let m = logged_in(&clock, 3600);
    let snap = m.snapshot(clock.secs(1).instant).expect("a live session");
    assert_eq!(snap.token.expose(), "A1");
    assert_eq!(snap.refresh_token.as_ref().unwrap().expose(), "R1");
    assert_eq!(snap.expires_at_ms, BASE_MS + 3_600_000);
    assert_eq!(snap.obtained_at_ms, BASE_MS);

    // Another process adopts it 10 minutes later: same token, same expiry, refreshed
    // where the first process would have (the token's whole lifetime counts).
    let mut other = machine();
    let later = clock.secs(600);
    other.restore(later, &snap).unwrap();
    assert_eq!(other.credential(later.instant).unwrap().token(), "A1");
    assert_eq!(other.expires_at_ms(), Some(BASE_MS + 3_600_000));
    assert_eq!(other.poll_timeout(), m.poll_timeout());
    assert!(events(&mut other).is_empty(), "nothing was sent");
    let refresh = other
        .poll_request(clock.at(other.poll_timeout().unwrap()))
        .unwrap();
    assert_eq!(body_json(&refresh), json!({"refreshToken": "R1"}));
}

#[test]
fn restore_refuses_what_it_cannot_use_and_keeps_the_current_session() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let now = clock.secs(1);
    let snap = |token: &str, expires_at_ms: u64, obtained_at_ms: u64| SessionSnapshot {
        token: Secret::from(token),
        expires_at_ms,
        obtained_at_ms,
        refresh_token: Some(Secret::from("R9")),
        claims: None,
    };
    let cases = [
        (
            "bad header text",
            snap("A 9", BASE_MS + 3_600_000, BASE_MS),
            "not valid header text",
        ),
        ("expired", snap("A9", now.unix_ms, BASE_MS), "expired"),
        // Within its safety margin (10 s of a 1 h token): not handed out, so not adopted.
        (
            "too close",
            snap("A9", now.unix_ms + 5_000, now.unix_ms - 3_595_000),
            "too close to expiry",
        ),
    ];
    for (name, s, says) in cases {
        let e = m.restore(now, &s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}");
        assert!(e.message().contains(says), "{name}: {e}");
        assert_eq!(m.credential(now.instant).unwrap().token(), "A1", "{name}");
        assert_eq!(m.state_name(), "active", "{name}");
    }
    let mut without_refresh = snap("A9", BASE_MS + 3_600_000, BASE_MS);
    without_refresh.refresh_token = None;
    assert!(m.restore(now, &without_refresh).is_err());
    // In flight: refused, the request's answer still lands.
    let due = clock.at(m.poll_timeout().unwrap());
    let _ = m.poll_request(due).unwrap();
    let e = m
        .restore(due, &snap("A9", BASE_MS + 3_600_000, BASE_MS))
        .unwrap_err();
    assert!(e.message().contains("in flight"), "{e}");
    m.handle_response(due, ok_tokens("A2", "R2", BASE_MS + 9_000_000))
        .unwrap();
    assert_eq!(m.credential(due.instant).unwrap().token(), "A2");
}

#[test]
fn an_expires_at_in_microseconds_is_refused_and_the_rotated_refresh_token_kept() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    m.force_refresh(clock.secs(1));
    let req = m.poll_request(clock.secs(1)).expect("refresh");
    assert_eq!(req.path, REFRESH_PATH);
    let micros = (BASE_MS + 3_600_000) * 1000;
    let e = m
        .handle_response(clock.secs(1), ok_tokens("A2", "R2", micros))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.message().contains("Unix milliseconds"), "{}", e.message());
    // The venue rotated the refresh token even though the answer is unusable.
    assert_eq!(
        m.refresh_token().map(|r| r.expose().to_owned()),
        Some("R2".into())
    );
}

#[test]
fn a_stated_lifetime_past_max_lifetime_is_clamped_and_said() {
    let clock = Clock::new();
    let config = CadenzaConfig::new(EMAIL, PASSWORD)
        .with_jitter_seed(7)
        .with_max_lifetime(Duration::from_secs(3600));
    let mut m = CadenzaMachine::new(config).unwrap();
    m.poll_request(clock.ms(0)).expect("login");
    // A year, in milliseconds: believed for an hour.
    m.handle_response(
        clock.ms(0),
        ok_tokens("A1", "R1", BASE_MS + 365 * 86_400_000),
    )
    .unwrap();
    let got = events(&mut m);
    assert!(
        matches!(&got[..], [AuthEvent::Distrusted { message }, AuthEvent::LoggedIn]
            if message.contains("max_lifetime")),
        "{got:?}"
    );
    assert_eq!(m.expires_at_ms(), Some(BASE_MS + 3_600_000));
    assert!(m.credential(clock.secs(3589).instant).is_some());
    assert!(m.credential(clock.secs(3590).instant).is_none());
    assert!(m.poll_timeout().expect("renewal timer") <= clock.secs(3600).instant);
    let e = CadenzaMachine::new(
        CadenzaConfig::new(EMAIL, PASSWORD).with_max_lifetime(Duration::from_millis(10)),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn a_token_arriving_already_expired_by_the_answers_date_is_retried_not_served() {
    let clock = Clock::new();
    let mut m = machine();
    m.poll_request(clock.ms(0)).expect("login");
    // Our clock says the token has an hour left; the answer's own Date says it expired.
    let mut now = clock.ms(0);
    now.answer_date_ms = Some(BASE_MS + 3_600_000 + 1_000);
    let e = m
        .handle_response(now, ok_tokens("A1", "R1", BASE_MS + 3_600_000))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.is_retryable());
    assert!(
        e.message().contains("arrived already expired"),
        "{}",
        e.message()
    );
    assert!(m.credential(now.instant).is_none());
    // Sent again, not given up: the venue is asked anew.
    assert!(m.poll_request(clock.ms(10)).is_some());
}

/// The machine sees suspended time as time passing: a `Now` whose deadline clock and wall
/// clock moved on 2 h (what the driver reads after a resume) finds no credential from
/// before, and renews.
#[test]
fn a_now_two_hours_later_on_the_deadline_and_wall_clocks_has_no_credential() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    let resumed = clock.secs(7200);
    assert!(m.credential(resumed.instant).is_none());
    m.handle_timeout(resumed);
    let req = m.poll_request(resumed).expect("renews after the suspend");
    assert_eq!(req.path, REFRESH_PATH);
}

/// A driver that learns another process may have presented the refresh token (a shared
/// store's fence) drops it: the access token keeps being served, and the renewal that
/// comes due is a full login, never that refresh token again.
#[test]
fn a_forgotten_refresh_token_is_never_presented_again() {
    let clock = Clock::new();
    let mut m = logged_in(&clock, 3600);
    assert!(m.refresh_token().is_some());
    m.forget_refresh_token();
    assert!(m.refresh_token().is_none());
    assert_eq!(m.credential(clock.secs(10).instant).unwrap().token(), "A1");
    // The refresh window: a login goes out, not a refresh.
    m.force_refresh(clock.secs(20));
    let req = m.poll_request(clock.secs(20)).expect("renewal");
    assert_eq!(req.path, LOGIN_PATH, "the forgotten token is not presented");
    assert!(!String::from_utf8_lossy(&req.body).contains("R1"));
    m.handle_response(clock.secs(20), ok_tokens("A2", "R2", TWO_HOURS_ON))
        .unwrap();
    assert_eq!(m.credential(clock.secs(21).instant).unwrap().token(), "A2");
    assert_eq!(
        m.refresh_token().map(|r| r.expose().to_owned()),
        Some("R2".into())
    );
    // Without a session it does nothing.
    let mut fresh = machine();
    fresh.forget_refresh_token();
    assert!(fresh.refresh_token().is_none());
}

/// By default a stated lifetime is believed up to 30 days: a 29-day token as stated, a
/// 31-day one as 30 days (with the event saying so).
#[test]
fn the_default_max_lifetime_is_thirty_days() {
    const DAY_MS: u64 = 86_400_000;
    for (days, clamped) in [(29u64, false), (31, true)] {
        let clock = Clock::new();
        let mut m = machine();
        m.poll_request(clock.ms(0)).expect("login");
        m.handle_response(clock.ms(0), ok_tokens("A1", "R1", BASE_MS + days * DAY_MS))
            .unwrap();
        let got = events(&mut m);
        assert_eq!(
            got.iter()
                .any(|e| matches!(e, AuthEvent::Distrusted { .. })),
            clamped,
            "{days} days: {got:?}"
        );
        let believed = if clamped { 30 } else { days };
        assert_eq!(
            m.expires_at_ms(),
            Some(BASE_MS + believed * DAY_MS),
            "{days} days"
        );
    }
}

/// The typed status a driver decides by, at every step of the flow, and the refresh
/// token a store-sharing driver fences through the trait.
#[test]
fn status_and_refresh_token_through_the_trait() {
    let clock = Clock::new();
    let mut m = machine();
    let status = |m: &CadenzaMachine| Machine::status(m);
    assert_eq!(status(&m), MachineStatus::LoggedOut);
    assert!(!Machine::holds_refresh_token(&m));
    let _ = m.poll_request(clock.ms(0)).expect("login");
    assert_eq!(status(&m), MachineStatus::LoggingIn);
    m.handle_response(clock.ms(0), ok_tokens("A1", "R1", BASE_MS + 3_600_000))
        .unwrap();
    assert_eq!(status(&m), MachineStatus::Active);
    assert!(Machine::holds_refresh_token(&m));

    let now = clock.at(m.poll_timeout().unwrap());
    let req = m.poll_request(now).expect("refresh");
    assert_eq!(req.path, REFRESH_PATH);
    assert_eq!(status(&m), MachineStatus::Refreshing);
    m.handle_response(now, venue_error(401, "INVALID_REFRESH_TOKEN", "no good"))
        .unwrap();
    assert_eq!(
        status(&m),
        MachineStatus::LoggingIn,
        "falls back to a login"
    );
    let _ = m.poll_request(now).expect("login");
    m.handle_response(now, ok_tokens("A2", "R2", TWO_HOURS_ON))
        .unwrap();
    assert_eq!(status(&m), MachineStatus::Active);

    // Forgetting the refresh token through the trait: the next renewal is a login.
    Machine::forget_refresh_token(&mut m);
    assert!(!Machine::holds_refresh_token(&m));
    assert_eq!(m.credential(now.instant).unwrap().token(), "A2");
    m.force_refresh(now);
    assert_eq!(m.poll_request(now).expect("renewal").path, LOGIN_PATH);
    let err = m
        .handle_response(now, venue_error(401, "INVALID_CREDENTIALS", "no"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(status(&m), MachineStatus::Stopped);
    assert!(!status(&m).wants_request());

    let caps = m.capabilities();
    assert!(caps.renewable && caps.shareable && !caps.ws_auth && !caps.public);
}
