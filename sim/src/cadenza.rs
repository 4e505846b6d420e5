//! Cadenza (`/api/v3`): email + password login, a 1 h access token and a 7 d rotating
//! refresh token, the `{"success":..,"data":..}` envelope, and an audit log.
//!
//! Every token descends from one password login: its "family". With
//! `revoke_family_on_reuse` on, presenting a refresh token that was already rotated
//! revokes the whole family (OAuth 2.0 Security BCP, refresh token reuse detection).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Venue;
use crate::audit::{AuditAccount, audit_layer};
use crate::common::{
    Authed, Authorize, bearer, json_body, json_response, lock, random_token, rejected,
};
use crate::config::CadenzaConfig;
use crate::layer::venue_router;
use crate::state::Shared;

/// Expired tokens are forgotten this long after they expire, so the maps stay small on a
/// long run while a test that moves the clock still gets "expired", not "unknown".
const FORGET_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;

/// Who a token belongs to, until when it is valid (Unix ms, sim clock), and the login it
/// descends from.
#[derive(Clone, Debug)]
struct Grant {
    email: String,
    expires_ms: i64,
    family: u64,
}

/// What presenting a refresh token led to.
enum RefreshOutcome {
    /// Rotated: the login `data` object with the new pair.
    Rotated { email: String, data: Value },
    /// Unknown, already used or revoked.
    Invalid,
    /// Past its lifetime (the owner's email, for the audit log).
    Expired { email: String },
    /// An already rotated token presented again, with `revoke_family_on_reuse` on: its
    /// family was revoked, `tokens` tokens in all.
    ReuseRevokedFamily { email: String, tokens: usize },
}

/// Users, lifetimes and the tokens issued so far.
pub(crate) struct State {
    pub(crate) access_ttl_secs: u64,
    pub(crate) refresh_ttl_secs: u64,
    /// Revoke a token family when one of its rotated refresh tokens is presented again.
    revoke_family_on_reuse: bool,
    users: HashMap<String, String>,
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    /// Refresh tokens already rotated (spent), kept only with `revoke_family_on_reuse` so
    /// that a second use is recognised as reuse.
    spent: HashMap<String, Grant>,
    /// The family the next password login starts.
    next_family: u64,
    /// Map size at which expired grants are next swept (amortised O(1) per issue).
    sweep_at: usize,
}

impl State {
    pub(crate) fn new(config: &CadenzaConfig) -> Self {
        Self {
            access_ttl_secs: config.access_ttl_secs,
            refresh_ttl_secs: config.refresh_ttl_secs,
            revoke_family_on_reuse: config.revoke_family_on_reuse,
            users: config
                .users
                .iter()
                .map(|u| (u.email.clone(), u.password.clone()))
                .collect(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            spent: HashMap::new(),
            next_family: 0,
            sweep_at: 1024,
        }
    }

    /// Starts a new token family (a password login) and issues its first pair.
    fn login(&mut self, email: &str, now_ms: i64) -> Value {
        let family = self.next_family;
        self.next_family = self.next_family.wrapping_add(1);
        self.issue(email, family, now_ms)
    }

    /// Presents a refresh token: rotates it, or says why not (revoking its family when it
    /// was already rotated and `revoke_family_on_reuse` is on).
    fn refresh(&mut self, token: &str, now_ms: i64) -> RefreshOutcome {
        let Some(grant) = self.refresh.get(token).cloned() else {
            return match self.spent.get(token).cloned() {
                Some(spent) if self.revoke_family_on_reuse => {
                    let tokens = self.revoke_family(spent.family);
                    RefreshOutcome::ReuseRevokedFamily {
                        email: spent.email,
                        tokens,
                    }
                }
                _ => RefreshOutcome::Invalid,
            };
        };
        if now_ms >= grant.expires_ms {
            return RefreshOutcome::Expired { email: grant.email };
        }
        // Rotation: the presented refresh token is spent. The old access token stays
        // valid until it expires.
        if let Some(spent) = self.refresh.remove(token)
            && self.revoke_family_on_reuse
        {
            self.spent.insert(token.to_owned(), spent);
        }
        let data = self.issue(&grant.email, grant.family, now_ms);
        RefreshOutcome::Rotated {
            email: grant.email,
            data,
        }
    }

    /// Revokes every access and refresh token of `family`, and forgets its spent refresh
    /// tokens (so the family is revoked, and counted, once); returns how many live tokens
    /// were revoked.
    fn revoke_family(&mut self, family: u64) -> usize {
        let before = self.access.len() + self.refresh.len();
        self.access.retain(|_, g| g.family != family);
        self.refresh.retain(|_, g| g.family != family);
        self.spent.retain(|_, g| g.family != family);
        before - (self.access.len() + self.refresh.len())
    }

    /// Issues an access + refresh pair of `family` for `email` and returns the login
    /// `data` object.
    fn issue(&mut self, email: &str, family: u64, now_ms: i64) -> Value {
        let largest = |s: &Self| s.access.len().max(s.refresh.len()).max(s.spent.len());
        if largest(self) >= self.sweep_at {
            let keep = |g: &Grant| g.expires_ms + FORGET_AFTER_MS > now_ms;
            self.access.retain(|_, g| keep(g));
            self.refresh.retain(|_, g| keep(g));
            self.spent.retain(|_, g| keep(g));
            self.sweep_at = (largest(self) * 2).max(1024);
        }
        let expires_at = now_ms + secs_to_ms(self.access_ttl_secs);
        let access_token = random_token();
        let refresh_token = random_token();
        self.access.insert(
            access_token.clone(),
            Grant {
                email: email.to_owned(),
                expires_ms: expires_at,
                family,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            Grant {
                email: email.to_owned(),
                expires_ms: now_ms + secs_to_ms(self.refresh_ttl_secs),
                family,
            },
        );
        json!({
            "accessToken": access_token,
            "refreshToken": refresh_token,
            "expiresAt": expires_at,
        })
    }

    /// Forgets refresh and/or access tokens; returns how many. Forgetting refresh tokens
    /// also forgets the spent ones, so a later reuse is just an unknown token.
    pub(crate) fn revoke(&mut self, refresh: bool, access: bool) -> usize {
        let mut n = 0;
        if refresh {
            n += self.refresh.len();
            self.refresh.clear();
            self.spent.clear();
        }
        if access {
            n += self.access.len();
            self.access.clear();
        }
        n
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/api/v3/auth/login", post(login))
        .route("/api/v3/auth/token/refresh", post(refresh))
        .route("/api/v3/market/venue/list", get(venue_list))
        .route("/api/v3/user/profile", get(profile))
        .route("/api/v3/account/balances", get(balances));
    venue_router(shared.clone(), Venue::Cadenza, routes, status_error)
        .layer(from_fn_with_state(shared, audit_layer))
}

/// The error envelope, counted as a rejection under its code.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    rejected(
        status,
        json!({ "success": false, "error": { "code": code, "message": message } }),
        code,
    )
}

fn success(data: Value) -> Response {
    json_response(StatusCode::OK, json!({ "success": true, "data": data }))
}

fn for_account(mut response: Response, email: &str) -> Response {
    response
        .extensions_mut()
        .insert(AuditAccount(email.to_owned()));
    response
}

/// The answer to an unknown, already used or revoked refresh token.
fn invalid_refresh_token() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_REFRESH_TOKEN",
        "Invalid or already used refresh token",
    )
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// Cadenza's code for a status it has no code of its own for: `NOT_FOUND` from
/// "Not Found".
fn reason_code(reason: &str) -> String {
    reason.to_ascii_uppercase().replace([' ', '-'], "_")
}

/// The answer to a bare status (an unknown path or method): `Not found` under `NOT_FOUND`.
fn status_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let (first, rest) = reason.split_at(reason.len().min(1));
    error(
        status,
        &reason_code(reason),
        &format!("{first}{}", rest.to_ascii_lowercase()),
    )
}

/// `POST /api/v3/auth/login`'s body.
#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

/// `POST /api/v3/auth/token/refresh`'s body.
#[derive(Deserialize)]
struct RefreshRequest {
    #[serde(rename = "refreshToken")]
    refresh_token: String,
}

async fn login(
    AxState(shared): AxState<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let request: LoginRequest = json_body(body, bad_request)?;
    let data = {
        let mut state = lock(&shared.cadenza);
        let invalid = || {
            error(
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid email or password",
            )
        };
        let Some(password) = state.users.get(&request.email) else {
            return Err(invalid());
        };
        if verify_slices_are_equal(password.as_bytes(), request.password.as_bytes()).is_err() {
            return Err(for_account(invalid(), &request.email));
        }
        state.login(&request.email, shared.clock.now_unix_ms())
    };
    shared.stats.update(Venue::Cadenza, |s| {
        s.logins += 1;
        s.tokens_issued += 1;
    });
    tracing::info!(account = %request.email, "cadenza login");
    Ok(for_account(success(data), &request.email))
}

async fn refresh(
    AxState(shared): AxState<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let request: RefreshRequest = json_body(body, bad_request)?;
    let now_ms = shared.clock.now_unix_ms();
    let outcome = lock(&shared.cadenza).refresh(&request.refresh_token, now_ms);
    let (email, data) = match outcome {
        RefreshOutcome::Rotated { email, data } => (email, data),
        RefreshOutcome::Invalid => return Err(invalid_refresh_token()),
        RefreshOutcome::Expired { email } => {
            return Err(for_account(
                error(
                    StatusCode::UNAUTHORIZED,
                    "REFRESH_TOKEN_EXPIRED",
                    "Refresh token expired",
                ),
                &email,
            ));
        }
        RefreshOutcome::ReuseRevokedFamily { email, tokens } => {
            shared
                .stats
                .update(Venue::Cadenza, |s| s.family_revocations += 1);
            tracing::warn!(
                account = %email,
                revoked_tokens = tokens,
                "cadenza refresh token reused: token family revoked"
            );
            return Err(for_account(invalid_refresh_token(), &email));
        }
    };
    shared.stats.update(Venue::Cadenza, |s| {
        s.refreshes += 1;
        s.tokens_issued += 1;
    });
    tracing::info!(account = %email, "cadenza token refresh");
    Ok(for_account(success(data), &email))
}

/// A bearer access token: `Authed<AccessToken>` is the email of its owner.
struct AccessToken;

impl Authorize for AccessToken {
    type Identity = String;

    fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<String, Response> {
        let Some(token) = bearer(headers) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Missing bearer token",
            ));
        };
        let now_ms = shared.clock.now_unix_ms();
        let grant = lock(&shared.cadenza).access.get(token).cloned();
        match grant {
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "Invalid access token",
            )),
            Some(g) if now_ms >= g.expires_ms => Err(for_account(
                error(
                    StatusCode::UNAUTHORIZED,
                    "TOKEN_EXPIRED",
                    "Access token expired",
                ),
                &g.email,
            )),
            Some(g) => Ok(g.email),
        }
    }
}

/// The venues `GET /api/v3/market/venue/list` lists, the same for every account.
fn venues() -> Value {
    json!([
        { "venueId": "BINANCE", "name": "Binance", "status": "ONLINE" },
        { "venueId": "OKX", "name": "OKX", "status": "ONLINE" },
        { "venueId": "DERIBIT", "name": "Deribit", "status": "MAINTENANCE" },
    ])
}

/// The balances `GET /api/v3/account/balances` answers, the same for every account.
fn demo_balances() -> Value {
    json!([
        { "asset": "USDT", "free": "100000.00", "locked": "0.00" },
        { "asset": "BTC", "free": "1.50000000", "locked": "0.25000000" },
        { "asset": "ETH", "free": "20.0000", "locked": "0.0000" },
    ])
}

async fn venue_list(Authed(email): Authed<AccessToken>) -> Response {
    for_account(success(venues()), &email)
}

async fn profile(Authed(email): Authed<AccessToken>) -> Response {
    for_account(success(json!({ "email": email })), &email)
}

async fn balances(Authed(email): Authed<AccessToken>) -> Response {
    for_account(success(demo_balances()), &email)
}

/// The body a status fault answers with: Cadenza's error envelope. A 401 says
/// `INVALID_TOKEN`, the venue's "credential rejected" code, so a fault can force a client
/// to re-authenticate.
pub(crate) fn fault_body(status: StatusCode) -> Value {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = match status.as_u16() {
        401 => "INVALID_TOKEN".to_owned(),
        429 => "RATE_LIMITED".to_owned(),
        500 => "INTERNAL_ERROR".to_owned(),
        _ => reason_code(reason),
    };
    json!({ "success": false, "error": { "code": code, "message": reason } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(revoke_family_on_reuse: bool) -> State {
        State::new(&CadenzaConfig {
            revoke_family_on_reuse,
            ..CadenzaConfig::default()
        })
    }

    fn pair(data: &Value) -> (String, String) {
        let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
        (text("accessToken"), text("refreshToken"))
    }

    fn rotate(state: &mut State, token: &str) -> (String, String) {
        match state.refresh(token, 0) {
            RefreshOutcome::Rotated { data, .. } => pair(&data),
            _ => panic!("refresh should rotate"),
        }
    }

    #[test]
    fn reuse_without_the_option_is_just_invalid() {
        let mut s = state(false);
        let (a1, r1) = pair(&s.login("demo@cadenza.test", 0));
        let (a2, r2) = rotate(&mut s, &r1);
        assert!(matches!(s.refresh(&r1, 0), RefreshOutcome::Invalid));
        assert!(s.spent.is_empty(), "nothing is kept when the option is off");
        for a in [&a1, &a2] {
            assert!(s.access.contains_key(a.as_str()));
        }
        assert!(s.refresh.contains_key(&r2));
    }

    #[test]
    fn reuse_revokes_only_its_own_family_once() {
        let mut s = state(true);
        let (a1, r1) = pair(&s.login("demo@cadenza.test", 0));
        let (a2, r2) = rotate(&mut s, &r1);
        let (a3, r3) = rotate(&mut s, &r2);
        // Another login of the same user is another family.
        let (b1, q1) = pair(&s.login("demo@cadenza.test", 0));
        match s.refresh(&r1, 0) {
            RefreshOutcome::ReuseRevokedFamily { email, tokens } => {
                assert_eq!(email, "demo@cadenza.test");
                assert_eq!(
                    tokens, 4,
                    "three access tokens and the newest refresh token"
                );
            }
            _ => panic!("reuse should revoke the family"),
        }
        for a in [&a1, &a2, &a3] {
            assert!(!s.access.contains_key(a.as_str()));
        }
        assert!(!s.refresh.contains_key(&r3));
        assert!(s.access.contains_key(&b1) && s.refresh.contains_key(&q1));
        // A second reuse finds nothing left to revoke.
        assert!(matches!(s.refresh(&r2, 0), RefreshOutcome::Invalid));
        assert!(matches!(s.refresh(&r3, 0), RefreshOutcome::Invalid));
        rotate(&mut s, &q1);
    }
}
