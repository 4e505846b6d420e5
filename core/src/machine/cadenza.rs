//! Cadenza (`/api/v3`): email + password login, 1 h access token, 7 d rotating refresh
//! token, all answers in a `{"success":..,"data":..}` envelope.
//!
//! States: `LoggedOut -> LoggingIn -> Active -> Refreshing -> Active`; a rejected refresh
//! falls back to `LoggingIn` (a full login, then [`AuthEvent::ReLoggedIn`]); a rejected
//! login stops in `Stopped` and never re-sends the password on its own.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::credential::{Credential, check_token_text};
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::machine::common::{self, Events};
use crate::machine::{Capabilities, Machine, MachineStatus, NewSecret, SessionSnapshot, Venue};
use crate::secret::Secret;
use crate::time::{Now, SplitMix64};

/// `POST` path of the login.
pub const LOGIN_PATH: &str = "/api/v3/auth/login";
/// `POST` path of the token refresh.
pub const REFRESH_PATH: &str = "/api/v3/auth/token/refresh";
/// The page's "refresh if expiring in the next 5 minutes".
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(300);

const VENUE: &str = "Cadenza";

/// What a Cadenza session needs.
#[derive(Debug, Clone)]
pub struct CadenzaConfig {
    /// The account email (also the account label in logs).
    pub email: String,
    /// The account password.
    pub password: Secret,
    /// How long before expiry to refresh (default 300 s), capped at a quarter of the
    /// token's lifetime so short-lived tokens still work.
    pub refresh_window: Duration,
    /// Seed of the refresh jitter, so many sessions do not refresh in lockstep.
    pub jitter_seed: u64,
    /// The longest lifetime believed (default 30 days); a longer stated one is clamped.
    pub max_lifetime: Duration,
}

impl CadenzaConfig {
    /// A config with the default refresh window and a jitter seed derived from the email.
    pub fn new(email: impl Into<String>, password: impl Into<Secret>) -> Self {
        let email = email.into();
        let seed = common::jitter_seed(&email);
        CadenzaConfig {
            email,
            password: password.into(),
            refresh_window: DEFAULT_REFRESH_WINDOW,
            jitter_seed: seed,
            max_lifetime: common::DEFAULT_MAX_LIFETIME,
        }
    }

    setters! {
        /// Set the refresh window.
        with_refresh_window(value: Duration) => refresh_window = value;
        /// Set the jitter seed.
        with_jitter_seed(value: u64) => jitter_seed = value;
        /// Set the longest lifetime believed.
        with_max_lifetime(value: Duration) => max_lifetime = value;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No session; the next `poll_request` logs in.
    LoggedOut,
    /// A login is due or in flight.
    LoggingIn,
    /// A valid session; refresh scheduled.
    Active,
    /// A refresh is due or in flight; the old access token is still handed out.
    Refreshing,
    /// The login was rejected; nothing is sent until `handle_unauthorized` or `logout`.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Login,
    Refresh,
}

/// The tokens of the current session.
struct Session {
    /// `None` once dropped (expired, or rejected by the venue).
    access: Option<Credential>,
    /// `None` once rejected; the next renewal is then a full login.
    refresh_token: Option<Secret>,
    expires_at_ms: u64,
    /// When the access token was obtained (Unix ms, venue clock), for snapshots.
    obtained_at_ms: u64,
    refresh_at: Instant,
}

/// The Cadenza state machine.
pub struct CadenzaMachine {
    email: String,
    password: Secret,
    refresh_window: Duration,
    max_lifetime: Duration,
    rng: SplitMix64,
    state: State,
    in_flight: Option<Sent>,
    session: Option<Session>,
    /// The next successful login replaces a lost session (event `ReLoggedIn`).
    relogin: bool,
    events: Events,
    last_error: Option<Error>,
}

#[derive(Serialize)]
struct LoginBody<'a> {
    email: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    #[serde(rename = "refreshToken")]
    refresh_token: &'a str,
}

/// Tokens read from a successful envelope.
struct Tokens {
    access: Secret,
    refresh: Secret,
    expires_at_ms: u64,
    /// The event saying the stated lifetime was clamped, queued when the tokens are.
    distrusted: Option<AuthEvent>,
}

/// A failed envelope; `rotated` is a refresh token salvaged from an otherwise unusable
/// answer (the venue has already retired the old one, so it must be kept).
struct EnvelopeError {
    error: Error,
    rotated: Option<Secret>,
}

impl CadenzaMachine {
    /// Validate the config and make a logged-out machine.
    pub fn new(config: CadenzaConfig) -> Result<Self> {
        let CadenzaConfig {
            email,
            password,
            refresh_window,
            jitter_seed,
            max_lifetime,
        } = config;
        let email = email.trim().to_owned();
        if email.is_empty() || !email.contains('@') || email.chars().any(char::is_control) {
            return Err(Error::invalid_argument(
                "Cadenza email must be a non-empty address containing '@' without control \
                 characters",
            ));
        }
        if password.is_empty() {
            return Err(Error::invalid_argument("Cadenza password is empty"));
        }
        common::check_max_lifetime(VENUE, max_lifetime)?;
        Ok(CadenzaMachine {
            email,
            password,
            refresh_window,
            max_lifetime,
            rng: SplitMix64::new(jitter_seed),
            state: State::LoggedOut,
            in_flight: None,
            session: None,
            relogin: false,
            events: Events::default(),
            last_error: None,
        })
    }

    /// The current (rotated) refresh token, if the session has one.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.session.as_ref()?.refresh_token.as_ref()
    }

    /// Drops (and wipes) the refresh token, keeping the access token: for a driver that
    /// learns another process may have presented it already (a shared store's fence).
    /// The next renewal is then a full login, never a reuse the venue could punish by
    /// revoking the whole token family.
    pub fn forget_refresh_token(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.refresh_token = None;
        }
    }

    /// The venue's `expiresAt` (Unix ms) of the current access token.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.session
            .as_ref()
            .filter(|s| s.access.is_some())
            .map(|s| s.expires_at_ms)
    }

    /// The state's name, for logs and tests: `logged_out`, `logging_in`, `active`,
    /// `refreshing`, `stopped`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::LoggedOut => "logged_out",
            State::LoggingIn => "logging_in",
            State::Active => "active",
            State::Refreshing => "refreshing",
            State::Stopped => "stopped",
        }
    }

    /// Every secret the machine holds (password, refresh and access tokens), to redact
    /// from venue texts that reach an error.
    fn secrets(&self) -> Vec<&str> {
        let mut s = vec![self.password.expose()];
        if let Some(rt) = self.refresh_token() {
            s.push(rt.expose());
        }
        if let Some(access) = self.session.as_ref().and_then(|s| s.access.as_ref()) {
            s.push(access.token());
        }
        s
    }

    fn fail(&mut self, now: Now, error: Error) -> Error {
        let failure = common::Failure {
            stopped: self.state == State::Stopped,
            has_credential: self.credential(now.instant).is_some(),
            events: &mut self.events,
            last_error: &mut self.last_error,
        };
        common::fail("cadenza", &self.email, failure, error)
    }

    /// Read and validate the envelope: HTTP status, `success`, and the three `data` fields.
    fn parse_envelope(
        &self,
        now: Now,
        what: &str,
        hint: &str,
        response: &HttpResponse,
    ) -> std::result::Result<Tokens, EnvelopeError> {
        let plain = |error: Error| EnvelopeError {
            error,
            rotated: None,
        };
        let secrets = self.secrets();
        // An HTTP failure is classified by its status, whatever its body says.
        let status_error = || {
            let detail = common::error_detail(&response.body, &secrets);
            plain(common::classify_status(
                VENUE,
                what,
                response,
                now.unix_ms,
                detail.as_deref(),
                hint,
            ))
        };
        let value = match common::parse_json(VENUE, what, response) {
            Ok(v) => v,
            Err(e) if response.is_success() => return Err(plain(e)),
            Err(_) => return Err(status_error()),
        };
        let Value::Object(mut root) = value else {
            return Err(plain(
                Error::protocol(format!(
                    "{VENUE} {what} answer is JSON but not an object (HTTP {})",
                    response.status
                ))
                .with_status(response.status),
            ));
        };
        if !response.is_success() {
            return Err(status_error());
        }
        match root.get("success") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                let detail = common::error_detail(&response.body, &secrets)
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                return Err(plain(
                    Error::new(
                        ErrorKind::ApiError,
                        format!(
                            "{VENUE} {what} answered HTTP {} with success:false{detail}",
                            response.status
                        ),
                    )
                    .with_status(response.status),
                ));
            }
            Some(other) => {
                return Err(plain(
                    Error::protocol(format!(
                        "{VENUE} {what} answer has `success` of type {}, expected a boolean",
                        common::type_name(other)
                    ))
                    .with_status(response.status),
                ));
            }
            None => {
                return Err(plain(
                    Error::protocol(format!(
                        "{VENUE} {what} answer has no `success` flag; check that the base URL \
                         points at the {VENUE} API"
                    ))
                    .with_status(response.status),
                ));
            }
        }
        let mut data = match root.remove("data") {
            Some(Value::Object(d)) => d,
            Some(other) => {
                return Err(plain(
                    Error::protocol(format!(
                        "{VENUE} {what} answer has `data` of type {}, expected an object",
                        common::type_name(&other)
                    ))
                    .with_status(response.status),
                ));
            }
            None => {
                return Err(plain(
                    Error::protocol(format!("{VENUE} {what} answer has no `data` object"))
                        .with_status(response.status),
                ));
            }
        };
        // The refresh token first: once the venue has rotated it, the old one is dead, so
        // keep the new one even if the rest of the answer is unusable.
        let refresh = common::take_string(&mut data, "refreshToken", VENUE, what)
            .map(Secret::from)
            .map_err(|e| plain(e.with_status(response.status)))?;
        let salvage = |error: Error, refresh: Secret| EnvelopeError {
            error: error.with_status(response.status),
            rotated: Some(refresh),
        };
        let access = match common::take_string(&mut data, "accessToken", VENUE, what) {
            Ok(a) => Secret::from(a),
            Err(e) => return Err(salvage(e, refresh)),
        };
        if check_token_text(access.expose(), "accessToken").is_err() {
            return Err(salvage(
                Error::protocol(format!(
                    "{VENUE} {what} answer has an `accessToken` with whitespace, control or \
                     non-ASCII characters; it cannot go into an HTTP header"
                )),
                refresh,
            ));
        }
        let expires_at_ms = match data.get("expiresAt") {
            Some(Value::Number(n)) => match common::unix_number(n) {
                Some(ms) => ms,
                None => {
                    return Err(salvage(
                        Error::protocol(format!(
                            "{VENUE} {what} answer has a negative or invalid `expiresAt`"
                        )),
                        refresh,
                    ));
                }
            },
            Some(other) => {
                return Err(salvage(
                    Error::protocol(format!(
                        "{VENUE} {what} answer has `expiresAt` of type {}, expected a number \
                         (Unix milliseconds)",
                        common::type_name(other)
                    )),
                    refresh,
                ));
            }
            None => {
                return Err(salvage(
                    Error::protocol(format!("{VENUE} {what} answer has no `expiresAt` field")),
                    refresh,
                ));
            }
        };
        let (expires_at_ms, distrusted) = match common::checked_expiry(
            VENUE,
            what,
            now,
            expires_at_ms,
            self.max_lifetime,
            true,
        ) {
            Ok(checked) => checked,
            Err(error) => return Err(salvage(error, refresh)),
        };
        Ok(Tokens {
            access,
            refresh,
            expires_at_ms,
            distrusted,
        })
    }

    fn install(&mut self, now: Now, tokens: Tokens) -> Result<()> {
        self.install_at(now, tokens, now.expiry_base_ms())
    }

    /// Installs tokens obtained at `obtained_at_ms` (venue clock; earlier than `now` when
    /// adopted from a shared store), so the safety margin and refresh window follow the
    /// token's whole lifetime, as in the process that obtained it.
    fn install_at(&mut self, now: Now, tokens: Tokens, obtained_at_ms: u64) -> Result<()> {
        let schedule = common::schedule(
            now,
            tokens.expires_at_ms,
            obtained_at_ms,
            self.refresh_window,
            &mut self.rng,
        );
        let access = Credential::bearer(
            &tokens.access,
            Some(schedule.valid_until),
            Some(tokens.expires_at_ms),
        )
        .map_err(|_| Error::protocol(format!("{VENUE} access token is not valid header text")))?;
        self.session = Some(Session {
            access: Some(access),
            refresh_token: Some(tokens.refresh),
            expires_at_ms: tokens.expires_at_ms,
            obtained_at_ms: schedule.obtained_at_ms,
            refresh_at: schedule.refresh_at,
        });
        self.state = State::Active;
        self.last_error = None;
        if let Some(event) = tokens.distrusted {
            self.events.push(event);
        }
        Ok(())
    }

    fn drop_access(&mut self) {
        if let Some(s) = self.session.as_mut() {
            s.access = None;
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut()
            && s.access.as_ref().is_some_and(|c| !c.is_valid_at(now))
        {
            s.access = None;
        }
    }

    fn on_login(&mut self, now: Now, response: &HttpResponse) -> Result<()> {
        let hint = "check the email and password; they are not sent again until \
                    handle_unauthorized or logout";
        match self.parse_envelope(now, "login", hint, response) {
            Ok(tokens) => {
                self.install(now, tokens).map_err(|e| self.fail(now, e))?;
                let event = if std::mem::take(&mut self.relogin) {
                    AuthEvent::ReLoggedIn
                } else {
                    AuthEvent::LoggedIn
                };
                tracing::info!(venue = "cadenza", account = %self.email, event = event.as_str(), "logged in");
                self.events.push(event);
                Ok(())
            }
            Err(EnvelopeError { error, .. }) => {
                // A refused password is never re-sent on its own: 400/401/403 stop the
                // machine (the venue may lock the account after repeated attempts).
                self.state = match error.status() {
                    Some(400 | 401 | 403) => State::Stopped,
                    _ => State::LoggingIn,
                };
                Err(self.fail(now, error))
            }
        }
    }

    fn on_refresh(&mut self, now: Now, response: &HttpResponse) -> Result<()> {
        let hint = "the refresh token was refused";
        match self.parse_envelope(now, "token refresh", hint, response) {
            Ok(tokens) => {
                self.install(now, tokens).map_err(|e| self.fail(now, e))?;
                // Even if a 401 arrived meanwhile, this is a fresh token from a refresh.
                self.relogin = false;
                tracing::debug!(venue = "cadenza", account = %self.email, "token refreshed");
                self.events.push(AuthEvent::Refreshed);
                Ok(())
            }
            Err(EnvelopeError { error, rotated }) => {
                // 400/401/403, with the venue's envelope or without (a gateway's own
                // answer): the venue refused the refresh token.
                let status = error.status().unwrap_or(0);
                if matches!(status, 400 | 401 | 403) {
                    // The refresh token is dead (expired after 7 days, revoked, reused):
                    // fall back to a full login. This is recovery, not a failure.
                    tracing::info!(venue = "cadenza", account = %self.email, status, "refresh rejected; logging in again");
                    if let Some(s) = self.session.as_mut() {
                        s.refresh_token = None;
                    }
                    self.state = State::LoggingIn;
                    self.relogin = true;
                    return Ok(());
                }
                if let (Some(rt), Some(s)) = (rotated, self.session.as_mut()) {
                    s.refresh_token = Some(rt);
                }
                self.state = State::Refreshing;
                Err(self.fail(now, error))
            }
        }
    }
}

impl Machine for CadenzaMachine {
    fn venue(&self) -> Venue {
        Venue::Cadenza
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            renewable: true,
            shareable: true,
            ws_auth: false,
            public: false,
        }
    }

    fn status(&self) -> MachineStatus {
        match self.state {
            State::LoggedOut => MachineStatus::LoggedOut,
            State::LoggingIn => MachineStatus::LoggingIn,
            State::Active => MachineStatus::Active,
            State::Refreshing => MachineStatus::Refreshing,
            State::Stopped => MachineStatus::Stopped,
        }
    }

    fn holds_refresh_token(&self) -> bool {
        self.refresh_token().is_some()
    }

    fn forget_refresh_token(&mut self) {
        CadenzaMachine::forget_refresh_token(self);
    }

    fn account(&self) -> &str {
        &self.email
    }

    fn handle_timeout(&mut self, now: Now) {
        self.drop_expired(now.instant);
        if self.state == State::Active
            && self
                .session
                .as_ref()
                .is_some_and(|s| now.instant >= s.refresh_at)
        {
            tracing::debug!(venue = "cadenza", account = %self.email, "refresh window reached");
            self.state = State::Refreshing;
        }
    }

    fn poll_request(&mut self, now: Now) -> Option<HttpRequest> {
        self.handle_timeout(now);
        if self.in_flight.is_some() {
            return None;
        }
        if self.state == State::Refreshing && self.refresh_token().is_none() {
            self.state = State::LoggingIn;
            self.relogin = true;
        }
        match self.state {
            State::LoggedOut | State::LoggingIn => {
                let body = LoginBody {
                    email: &self.email,
                    password: self.password.expose(),
                };
                let mut buf = Vec::with_capacity(64 + self.email.len() + self.password.len() * 2);
                serde_json::to_writer(&mut buf, &body).ok()?;
                self.state = State::LoggingIn;
                self.in_flight = Some(Sent::Login);
                Some(HttpRequest::json(Method::Post, LOGIN_PATH, buf))
            }
            State::Refreshing => {
                let rt = self.refresh_token()?;
                let body = RefreshBody {
                    refresh_token: rt.expose(),
                };
                let mut buf = Vec::with_capacity(32 + rt.len() * 2);
                serde_json::to_writer(&mut buf, &body).ok()?;
                self.in_flight = Some(Sent::Refresh);
                Some(HttpRequest::json(Method::Post, REFRESH_PATH, buf))
            }
            State::Active | State::Stopped => None,
        }
    }

    fn handle_response(&mut self, now: Now, response: HttpResponse) -> Result<()> {
        // The body holds tokens: HttpResponse wipes it when dropped, on every path here.
        match common::take_in_flight(&mut self.in_flight, VENUE)? {
            Sent::Login => self.on_login(now, &response),
            Sent::Refresh => self.on_refresh(now, &response),
        }
    }

    fn handle_transport_error(&mut self, now: Now, error: &Error) {
        if self.in_flight.take().is_some() {
            // The state (LoggingIn / Refreshing) is unchanged, so the next poll_request
            // re-sends the same kind of request.
            self.fail(now, error.clone());
        }
    }

    fn replace_secret(&mut self, now: Now, secret: NewSecret) -> Result<()> {
        let _ = now;
        let NewSecret::Password(password) = secret else {
            return Err(secret.refused(Venue::Cadenza));
        };
        if password.is_empty() {
            return Err(Error::invalid_argument("Cadenza password is empty"));
        }
        // The session and its refresh token stay: only a login sends the password.
        self.password = password;
        if self.state == State::Stopped {
            // The refused password is gone: the new one may be tried.
            self.state = State::LoggingIn;
            self.last_error = None;
        }
        Ok(())
    }

    fn handle_unauthorized(&mut self, now: Now) {
        let _ = now;
        self.drop_access();
        match self.state {
            State::Active | State::Refreshing if self.in_flight.is_none() => {
                // A 401 on a token we believed valid: the session is gone server-side, so a
                // full login (the page: re-authenticate), not a refresh.
                if let Some(s) = self.session.as_mut() {
                    s.refresh_token = None;
                }
                self.state = State::LoggingIn;
                self.relogin = true;
            }
            State::Stopped => {
                self.state = State::LoggingIn;
                self.last_error = None;
            }
            // A login or refresh is already due or in flight: it brings a fresh token.
            _ => {}
        }
    }

    fn force_refresh(&mut self, now: Now) {
        self.drop_expired(now.instant);
        // Active always holds a refresh token and has nothing in flight (install_at is
        // its only way in); were the token missing, poll_request would log in instead.
        if self.state == State::Active {
            // The access token stays handed out until the refresh brings its successor.
            self.state = State::Refreshing;
        } else if self.state != State::Refreshing {
            self.handle_unauthorized(now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session.as_ref()?;
        match self.state {
            State::Active => Some(session.refresh_at),
            _ => session.access.as_ref().and_then(Credential::valid_until),
        }
    }

    fn credential(&self, now: Instant) -> Option<Credential> {
        self.session
            .as_ref()?
            .access
            .as_ref()
            .filter(|c| c.is_valid_at(now))
            .cloned()
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop()
    }

    fn snapshot(&self, now: Instant) -> Option<SessionSnapshot> {
        let session = self.session.as_ref()?;
        let access = session.access.as_ref().filter(|c| c.is_valid_at(now))?;
        Some(SessionSnapshot {
            token: Secret::from(access.token()),
            expires_at_ms: session.expires_at_ms,
            obtained_at_ms: session.obtained_at_ms,
            refresh_token: Some(session.refresh_token.clone()?),
            claims: None,
        })
    }

    fn restore(&mut self, now: Now, snapshot: &SessionSnapshot) -> Result<()> {
        if self.in_flight.is_some() {
            return Err(Error::invalid_argument(
                "Cadenza cannot adopt a shared session while a request is in flight",
            ));
        }
        let Some(refresh) = snapshot.refresh_token.clone() else {
            return Err(Error::invalid_argument(
                "a Cadenza snapshot needs a refresh token",
            ));
        };
        let checked = common::checked_expiry(
            VENUE,
            "shared session",
            now,
            snapshot.expires_at_ms,
            self.max_lifetime,
            false,
        );
        let (expires_at_ms, distrusted) = match checked {
            Ok(checked) if check_token_text(snapshot.token.expose(), "accessToken").is_ok() => {
                checked
            }
            _ => {
                return Err(Error::invalid_argument(
                    "the Cadenza snapshot is expired or its token is not valid header text",
                ));
            }
        };
        let previous = (self.session.take(), self.state, self.relogin);
        let tokens = Tokens {
            access: snapshot.token.clone(),
            refresh,
            expires_at_ms,
            distrusted,
        };
        let installed = self.install_at(now, tokens, snapshot.obtained_at_ms);
        if installed.is_err() || self.credential(now.instant).is_none() {
            // Too close to expiry to hand out: keep what we had.
            (self.session, self.state, self.relogin) = previous;
            return Err(Error::invalid_argument(
                "the Cadenza snapshot is too close to expiry to use",
            ));
        }
        // Nothing was sent: a pending re-login is satisfied by the adopted session.
        self.relogin = false;
        Ok(())
    }

    fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    fn logout(&mut self) {
        // Dropping the session zeroes the tokens (Secret is zeroize-on-drop).
        self.session = None;
        self.state = State::LoggedOut;
        self.in_flight = None;
        self.relogin = false;
        self.last_error = None;
    }
}

impl fmt::Debug for CadenzaMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CadenzaMachine")
            .field("account", &self.email)
            .field("state", &self.state_name())
            .field("in_flight", &self.in_flight)
            .field(
                "has_access_token",
                &self.session.as_ref().is_some_and(|s| s.access.is_some()),
            )
            .field("expires_at_ms", &self.expires_at_ms())
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Why the envelope is walked by hand (ARCHITECTURE.md): a wrongly typed field's error
    /// names the field and its JSON type, never its value, which here may be a token.
    /// serde_json's own errors quote the value (`invalid type: string "…"`).
    #[test]
    fn an_ill_typed_envelope_field_is_named_not_quoted() {
        const PLANTED: &str = "PLANTED-token-like-value-4f1c";
        let answers = [
            json!({"success": PLANTED}),
            json!({"success": true, "data": PLANTED}),
            json!({"success": true, "data": {"refreshToken": "R", "accessToken": "A", "expiresAt": PLANTED}}),
            json!({"success": true, "data": {"refreshToken": "R", "accessToken": [PLANTED], "expiresAt": 1}}),
            json!({"success": true, "data": {"refreshToken": {"t": PLANTED}, "accessToken": "A", "expiresAt": 1}}),
        ];
        for answer in answers {
            let mut m = CadenzaMachine::new(CadenzaConfig::new("a@b.c", "pw")).expect("machine");
            let now = Now::new(Instant::now(), 1_700_000_000_000);
            m.poll_request(now).expect("a login");
            let body = answer.to_string();
            let e = m
                .handle_response(now, HttpResponse::new(200, body.clone()))
                .expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::Protocol, "{body}: {e}");
            assert!(e.message().contains("type"), "{body}: {e}");
            assert!(!format!("{e} {e:?}").contains(PLANTED), "{body}: {e}");
        }
    }
}
