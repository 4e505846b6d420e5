//! Exchange (`/api/v1`): a permanent trader API key (`exch_` + 32 hex) in `x-api-key`, or
//! a static admin bearer token; public market data needs neither.
//!
//! Nothing is ever sent to obtain a credential and nothing expires. A 401 cannot be
//! repaired by the machine (a key cannot be renewed): it is reported, and the credential
//! is withheld until `logout` or a new session.

use std::fmt;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::credential::{Credential, X_API_KEY, check_token_text};
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse};
use crate::machine::common::{self, Events};
use crate::machine::{
    Capabilities, Machine, MachineStatus, NewSecret, Venue, WsAuthReply, WsRules,
};
use crate::secret::Secret;
use crate::time::Now;

/// The trader key prefix.
pub const KEY_PREFIX: &str = "exch_";

/// Which Exchange role the session acts as.
#[derive(Debug, Clone)]
pub enum ExchangeConfig {
    /// A trader with its API key (`exch_` + 32 lowercase hex), sent as `x-api-key`.
    Trader {
        /// The API key.
        api_key: Secret,
    },
    /// An operator with the static admin token, sent as `authorization: Bearer`.
    Admin {
        /// The admin token.
        token: Secret,
    },
    /// No credential: public market data only.
    Public,
}

impl ExchangeConfig {
    /// A trader config.
    pub fn trader(api_key: impl Into<Secret>) -> Self {
        ExchangeConfig::Trader {
            api_key: api_key.into(),
        }
    }

    /// An admin config.
    pub fn admin(token: impl Into<Secret>) -> Self {
        ExchangeConfig::Admin {
            token: token.into(),
        }
    }

    /// A public (unauthenticated) config.
    pub fn public() -> Self {
        ExchangeConfig::Public
    }

    /// The config for what a caller passed: an API key (trader), an admin token
    /// (operator) or neither (public); both is an `InvalidArgument` error, since a
    /// session holds one role. The rule every binding's constructor follows.
    pub fn from_parts(api_key: Option<Secret>, admin_token: Option<Secret>) -> Result<Self> {
        match (api_key, admin_token) {
            (Some(api_key), None) => Ok(ExchangeConfig::Trader { api_key }),
            (None, Some(token)) => Ok(ExchangeConfig::Admin { token }),
            (None, None) => Ok(ExchangeConfig::Public),
            (Some(_), Some(_)) => Err(Error::invalid_argument(
                "pass either api_key (trader) or admin_token (operator), not both: a session holds one role",
            )),
        }
    }
}

/// Check a trader key's format: `exch_` followed by exactly 32 lowercase hex characters.
/// The error says what is wrong without echoing the key.
pub fn validate_api_key(key: &str) -> Result<()> {
    let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
        return Err(Error::invalid_argument(
            "Exchange API key must start with `exch_` followed by 32 lowercase hex characters",
        ));
    };
    if rest.contains('-') {
        return Err(Error::invalid_argument(
            "Exchange API key must be `exch_` + 32 hex characters without hyphens (a UUID \
             with the hyphens removed)",
        ));
    }
    if rest.len() != 32 {
        return Err(Error::invalid_argument(format!(
            "Exchange API key must be `exch_` followed by exactly 32 lowercase hex \
             characters; it has {} after the prefix",
            rest.chars().count()
        )));
    }
    if rest.bytes().any(|b| b.is_ascii_uppercase()) && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(
            "Exchange API key must use lowercase hex after `exch_`",
        ));
    }
    if !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::invalid_argument(
            "Exchange API key contains a character that is not a lowercase hex digit after `exch_`",
        ));
    }
    Ok(())
}

/// The WebSocket authenticate message for a trader credential:
/// `{"op":"authenticate","api_key":KEY}`.
pub fn ws_auth_message(credential: &Credential) -> Result<String> {
    if credential.header_name() != X_API_KEY {
        return Err(Error::invalid_argument(
            "the Exchange WebSocket authenticates traders only; this credential is not an API key",
        ));
    }
    #[derive(Serialize)]
    struct Auth<'a> {
        op: &'static str,
        api_key: &'a str,
    }
    serde_json::to_string(&Auth {
        op: "authenticate",
        api_key: credential.header_value(),
    })
    .map_err(|e| Error::invalid_argument(format!("the auth message cannot be encoded ({e})")))
}

/// Interpret an Exchange WebSocket message: `{"type":"authenticated",..}` is
/// `Authenticated` (the whole object as detail), `{"type":"error","message":M}` is
/// `Rejected`, anything else `Unrelated`.
pub fn parse_ws_reply(text: &str) -> WsAuthReply {
    parse_ws_reply_redacting(text, &[])
}

/// Like [`parse_ws_reply`], with every one of `secrets` (the API key sent, say) blotted out
/// of the rejection message before it is capped, in case the venue echoed it.
pub fn parse_ws_reply_redacting(text: &str, secrets: &[&str]) -> WsAuthReply {
    let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
        return WsAuthReply::Unrelated;
    };
    match value.get("type").and_then(Value::as_str) {
        Some("authenticated") => WsAuthReply::Authenticated { detail: value },
        Some("error") => WsAuthReply::Rejected {
            message: common::sanitize(
                value.get("message").and_then(Value::as_str).unwrap_or(""),
                secrets,
            ),
        },
        _ => WsAuthReply::Unrelated,
    }
}

/// Exchange's WebSocket rules: `{"op": ..}` messages without request ids; the key is
/// permanent, so no answer asks for a renewal.
pub const WS_RULES: WsRules = WsRules {
    is_private: ws_is_private,
    ..WsRules::NONE
};

/// Exchange's WebSocket ops that need no authenticated connection (market data and
/// the authenticate op itself). Every other op (`place_order`, `cancel_order`, any op
/// this list does not know) is held until the connection is authenticated.
const PUBLIC_WS_OPS: &[&str] = &["subscribe", "unsubscribe", "ping", "authenticate"];

/// The user-scoped channels of `subscribe` / `unsubscribe`.
const PRIVATE_WS_CHANNELS: &[&str] = &["orders", "fills"];

/// Whether an Exchange WebSocket message needs an authenticated connection: trading ops
/// and subscriptions to the trader's own channels.
pub fn ws_is_private(message: &Value) -> bool {
    let Some(op) = message.get("op").and_then(Value::as_str) else {
        return false;
    };
    if !PUBLIC_WS_OPS.contains(&op) {
        return true;
    }
    matches!(op, "subscribe" | "unsubscribe")
        && message
            .get("channel")
            .and_then(Value::as_str)
            .is_some_and(|channel| PRIVATE_WS_CHANNELS.contains(&channel))
}

/// Whether an Exchange error message is about the API key (the answer to an
/// `authenticate`), as the page's errors read: `invalid api key`, `missing authentication`.
fn is_auth_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["api key", "api_key", "authentic", "unauthori"]
        .iter()
        .any(|k| lower.contains(k))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Trader,
    Admin,
    Public,
}

/// The Exchange state machine (static credential).
pub struct ExchangeMachine {
    role: Role,
    credential: Option<Credential>,
    account: String,
    /// The venue refused the credential; it is withheld until `logout`.
    withheld: bool,
    events: Events,
    last_error: Option<Error>,
}

impl ExchangeMachine {
    /// Validate the key or token and make the machine.
    pub fn new(config: ExchangeConfig) -> Result<Self> {
        let (role, credential, account) = match config {
            ExchangeConfig::Trader { api_key } => {
                validate_api_key(api_key.expose())?;
                let c = Credential::new(X_API_KEY, api_key, None, None)?;
                (Role::Trader, Some(c), "trader")
            }
            ExchangeConfig::Admin { token } => {
                check_token_text(token.expose(), "Exchange admin token")?;
                let c = Credential::bearer(&token, None, None)?;
                (Role::Admin, Some(c), "admin")
            }
            ExchangeConfig::Public => (Role::Public, None, "public"),
        };
        Ok(ExchangeMachine {
            role,
            credential,
            account: account.to_owned(),
            withheld: false,
            events: Events::default(),
            last_error: None,
        })
    }

    /// `"trader"`, `"admin"` or `"public"`.
    pub fn role(&self) -> &'static str {
        match self.role {
            Role::Trader => "trader",
            Role::Admin => "admin",
            Role::Public => "public",
        }
    }

    /// Whether the credential is withheld after a 401.
    pub fn is_withheld(&self) -> bool {
        self.withheld
    }

    /// The WebSocket refuses admin and public sessions.
    fn traders_only(&self) -> Result<()> {
        match self.role {
            Role::Trader => Ok(()),
            Role::Admin | Role::Public => Err(Error::invalid_argument(format!(
                "the Exchange WebSocket authenticates traders only; this session is {}",
                self.role()
            ))),
        }
    }
}

impl Machine for ExchangeMachine {
    fn venue(&self) -> Venue {
        Venue::Exchange
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            renewable: false,
            shareable: false,
            ws_auth: self.role == Role::Trader,
            public: self.role == Role::Public,
        }
    }

    fn status(&self) -> MachineStatus {
        if self.withheld {
            MachineStatus::Stopped
        } else {
            MachineStatus::Active
        }
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_request(&mut self, _now: Now) -> Option<HttpRequest> {
        None
    }

    fn handle_response(&mut self, _now: Now, _response: HttpResponse) -> Result<()> {
        Err(Error::invalid_argument(
            "Exchange sends no requests, so it expects no responses; it was ignored",
        ))
    }

    fn handle_transport_error(&mut self, _now: Now, _error: &Error) {}

    fn replace_secret(&mut self, now: Now, secret: NewSecret) -> Result<()> {
        let _ = now;
        let NewSecret::ApiKey(api_key) = secret else {
            return Err(secret.refused(Venue::Exchange));
        };
        if self.role != Role::Trader {
            return Err(Error::invalid_argument(
                "an Exchange admin or public session has no api_key to replace",
            ));
        }
        validate_api_key(api_key.expose())?;
        // The key is the credential: served from the next read on, the old one wiped.
        self.credential = Some(Credential::new(X_API_KEY, api_key, None, None)?);
        self.withheld = false;
        self.last_error = None;
        Ok(())
    }

    fn handle_unauthorized(&mut self, _now: Now) {
        if self.withheld {
            return;
        }
        self.withheld = true;
        let message = match self.role {
            Role::Trader => {
                "Exchange rejected the API key (401 invalid api key); keys are permanent and \
                 cannot be renewed: check the key, or ask an operator to re-provision the \
                 trader account"
            }
            Role::Admin => {
                "Exchange rejected the admin token (401); check the token the exchange was \
                 deployed with"
            }
            Role::Public => {
                "Exchange answered 401: this endpoint needs authentication, and the session \
                 is public; use a trader API key"
            }
        };
        let e = Error::new(ErrorKind::Unauthorized, message).with_status(401);
        tracing::warn!(venue = "exchange", account = %self.account, "{}", e.message());
        self.events.push(AuthEvent::failed(&e));
        self.last_error = Some(e);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn credential(&self, _now: Instant) -> Option<Credential> {
        if self.withheld {
            return None;
        }
        self.credential.clone()
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop()
    }

    fn is_busy(&self) -> bool {
        false
    }

    fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    fn logout(&mut self) {
        // The key is configuration, not session state: it stays, and the next use of the
        // machine presents it again (the machine "logs in" without a request).
        self.withheld = false;
        self.last_error = None;
    }

    fn ws_auth_message(&self, now: Instant, id: Value) -> Result<String> {
        self.traders_only()?;
        let credential = self.credential(now).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                "the Exchange API key was rejected earlier and is withheld; check the key",
            )
        })?;
        self.ws_auth_message_for(&credential, id)
    }

    fn ws_auth_message_for(&self, credential: &Credential, _id: Value) -> Result<String> {
        self.traders_only()?;
        ws_auth_message(credential)
    }

    fn handle_ws_reply(&mut self, now: Now, text: &str) -> WsAuthReply {
        let secrets: Vec<&str> = self.credential.iter().map(Credential::token).collect();
        let reply = parse_ws_reply_redacting(text, &secrets);
        match &reply {
            WsAuthReply::Authenticated { detail } => {
                if let Some(name) = detail.get("username").and_then(Value::as_str) {
                    let name = common::sanitize(name, &secrets);
                    if !name.is_empty() {
                        self.account = name;
                    }
                }
            }
            WsAuthReply::Rejected { message } => {
                let lower = message.to_ascii_lowercase();
                if lower.contains("invalid api key") || lower.contains("invalid_api_key") {
                    self.handle_unauthorized(now);
                }
            }
            WsAuthReply::Unrelated => {}
        }
        reply
    }

    fn handle_ws_auth_reply(&mut self, now: Now, text: &str, _id: &Value) -> WsAuthReply {
        // Exchange's replies carry no request id: while the auth reply is awaited, an
        // error about something else (a public subscription's "market is required") is
        // not the answer to it. Only an error about the key is.
        match self.handle_ws_reply(now, text) {
            WsAuthReply::Rejected { message } if !is_auth_error(&message) => WsAuthReply::Unrelated,
            reply => reply,
        }
    }

    fn ws_rules(&self) -> WsRules {
        // Every role: an admin or public session cannot authenticate a WebSocket, yet a
        // trading op is still private, so it is refused rather than sent unauthenticated.
        WS_RULES
    }
}

impl fmt::Debug for ExchangeMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeMachine")
            .field("role", &self.role())
            .field("account", &self.account)
            .field("withheld", &self.withheld)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}
