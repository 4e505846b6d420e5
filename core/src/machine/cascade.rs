//! Cascade matcher: prove control of a delegate key by signing a server challenge.
//!
//! `GET /auth?account=DEPOSIT` gives `{message, server_signature, signing_payload}`; the
//! delegate key EIP-191-signs `signing_payload` (`personal_sign`); `POST /auth` with
//! `{message, signature, server_signature}` gives `{token, claims}`. The token is the
//! bearer for HTTP and for the WebSocket's JSON-RPC `auth` call.
//!
//! States: `NoToken -> AwaitingChallenge -> AwaitingSession -> Active`; near expiry the
//! flow runs again while the old token is still handed out. A challenge older than its
//! nonce lifetime (by our own monotonic receive time) is discarded, never posted.

use std::fmt;
use std::time::{Duration, Instant};

use alloy_primitives::hex;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::credential::{AUTHORIZATION, Credential, check_token_text};
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::machine::common::{self, Events};
use crate::machine::{
    Capabilities, Machine, MachineStatus, NewSecret, SessionSnapshot, Venue, WsAuthReply, WsRules,
};
use crate::secret::Secret;
use crate::signer::{ExternalSigner, SignRequest, eip191_digest, recover_address};
use crate::time::{Now, SplitMix64, safety_margin};

/// Path of both the challenge (`GET`) and its answer (`POST`).
pub const AUTH_PATH: &str = "/auth";
/// Token lifetime assumed when neither `claims.exp` nor the JWT's `exp` says.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The page's "nonce expires after five minutes".
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Start a new challenge this long before the token expires (capped at lifetime/4).
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(60);
/// JSON-RPC error code the venue uses for a refused bearer token.
pub const WS_INVALID_TOKEN_CODE: i64 = -32001;

const VENUE: &str = "Cascade";

/// What a Cascade session needs.
#[derive(Debug, Clone)]
pub struct CascadeConfig {
    /// The deposit address (the account), `0x` + 40 hex, any case.
    pub deposit_address: String,
    /// The delegate's secp256k1 private key, 64 hex characters with or without `0x`;
    /// empty when `external_signer` signs instead.
    pub delegate_private_key: Secret,
    /// A signer the caller supplies (HSM, KMS, wallet) instead of the private key: the
    /// machine asks it through [`Machine::poll_sign`]. Exactly one of the two is set.
    pub external_signer: Option<ExternalSigner>,
    /// Token lifetime assumed if the session answer states none (default 3600 s).
    pub default_token_ttl: Duration,
    /// How long a challenge nonce lives (default 300 s); a challenge older than this minus
    /// a margin is re-requested instead of posted.
    pub nonce_lifetime: Duration,
    /// How long before expiry to re-authenticate (default 60 s, capped at lifetime/4).
    pub refresh_window: Duration,
    /// Seed of the refresh jitter.
    pub jitter_seed: u64,
    /// The longest lifetime believed (default 30 days); a longer stated one is clamped.
    pub max_lifetime: Duration,
}

impl CascadeConfig {
    /// A config with the defaults; the jitter seed is derived from the deposit address.
    pub fn new(
        deposit_address: impl Into<String>,
        delegate_private_key: impl Into<Secret>,
    ) -> Self {
        let deposit_address = deposit_address.into();
        // Lowercased: an address's case is not part of the account.
        let seed = common::jitter_seed(&deposit_address.to_ascii_lowercase());
        CascadeConfig {
            deposit_address,
            delegate_private_key: delegate_private_key.into(),
            external_signer: None,
            default_token_ttl: DEFAULT_TOKEN_TTL,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            refresh_window: DEFAULT_REFRESH_WINDOW,
            jitter_seed: seed,
            max_lifetime: common::DEFAULT_MAX_LIFETIME,
        }
    }

    /// A config whose challenges are signed by `signer` (no private key in the process).
    pub fn with_signer(deposit_address: impl Into<String>, signer: ExternalSigner) -> Self {
        let mut config = Self::new(deposit_address, Secret::new(String::new()));
        config.external_signer = Some(signer);
        config
    }

    /// A config whose delegate key is decrypted from a Web3 Secret Storage v3 keystore
    /// file (geth, eth_account, Foundry, ethers); errors name the file, never the password.
    pub fn from_keystore(
        deposit_address: impl Into<String>,
        keystore: &std::path::Path,
        password: &[u8],
    ) -> Result<Self> {
        let key = crate::keystore::read_keystore(keystore, password)?;
        let hex_key = Secret::new(hex::encode(key.as_slice()));
        Ok(Self::new(deposit_address, hex_key))
    }

    setters! {
        /// Set the default token lifetime.
        with_default_token_ttl(value: Duration) => default_token_ttl = value;
        /// Set the nonce lifetime.
        with_nonce_lifetime(value: Duration) => nonce_lifetime = value;
        /// Set the refresh window.
        with_refresh_window(value: Duration) => refresh_window = value;
        /// Set the jitter seed.
        with_jitter_seed(value: u64) => jitter_seed = value;
        /// Set the longest lifetime believed.
        with_max_lifetime(value: Duration) => max_lifetime = value;
    }
}

/// A Cascade answer's JSON object (`what`: "challenge", "session"); anything else is a
/// protocol error carrying the HTTP status.
fn json_object(what: &str, response: &HttpResponse) -> Result<serde_json::Map<String, Value>> {
    match common::parse_json(VENUE, what, response)? {
        Value::Object(root) => Ok(root),
        _ => Err(
            Error::protocol(format!("{VENUE} {what} answer is not a JSON object"))
                .with_status(response.status),
        ),
    }
}

/// Check an Ethereum address: `0x` + 40 hex digits, any case (no EIP-55 enforcement).
/// `what` names the input in the error; the value itself is never echoed, in case a
/// private key was pasted into the wrong field.
fn check_address(address: &str, what: &str) -> Result<()> {
    let Some(hex_part) = address
        .strip_prefix("0x")
        .or_else(|| address.strip_prefix("0X"))
    else {
        return Err(Error::invalid_argument(format!(
            "{what} must start with 0x followed by 40 hex characters"
        )));
    };
    if hex_part.len() != 40 {
        return Err(Error::invalid_argument(format!(
            "{what} must be 0x followed by 40 hex characters; it has {} after 0x",
            hex_part.len()
        )));
    }
    if !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(format!(
            "{what} contains a character that is not a hex digit"
        )));
    }
    Ok(())
}

/// Parse a 32-byte secp256k1 private key given as hex, with or without `0x`. Errors name
/// the problem (length, non-hex, out of range) and never the key.
fn parse_private_key(key: &str) -> Result<PrivateKeySigner> {
    let bytes = parse_key_bytes(key)?;
    PrivateKeySigner::from_slice(bytes.as_slice()).map_err(|_| invalid_scalar())
}

fn invalid_scalar() -> Error {
    Error::invalid_argument(
        "delegate private key is not a valid secp256k1 key (zero or not below the curve order)",
    )
}

/// The 32 key bytes of a hex private key (with or without `0x`), wiped when dropped.
/// Messages name what is wrong and never echo the key.
fn parse_key_bytes(key: &str) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let key = key.trim();
    let hex_part = key
        .strip_prefix("0x")
        .or_else(|| key.strip_prefix("0X"))
        .unwrap_or(key);
    if hex_part.len() != 64 {
        let hint = if hex_part.len() == 40 {
            " (that is the length of an address, not a private key)"
        } else {
            ""
        };
        return Err(Error::invalid_argument(format!(
            "delegate private key must be 64 hex characters (32 bytes), with or without 0x; \
             it has {}{hint}",
            hex_part.len()
        )));
    }
    if !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(
            "delegate private key contains a character that is not a hex digit",
        ));
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_part, bytes.as_mut_slice())
        .map_err(|_| Error::invalid_argument("delegate private key is not valid hex"))?;
    Ok(bytes)
}

/// EIP-191 `personal_sign` of `message` with a hex private key: `0x` + 130 hex (r, s,
/// v with v = 27/28), what eth_account's `Account.sign_message(encode_defunct(..))` and
/// viem's `signMessage` give.
pub fn eip191_sign(private_key_hex: &str, message: &[u8]) -> Result<String> {
    use alloy_signer::k256::Scalar;
    use alloy_signer::k256::ecdsa::hazmat::SignPrimitive;
    use alloy_signer::k256::elliptic_curve::PrimeField;

    let bytes = parse_key_bytes(private_key_hex)?;
    // Signing needs only the secret scalar. A PrivateKeySigner would also derive the
    // public key and address (a second scalar multiplication: about 45% of the cost of
    // a one-off signature, which is this function's use). The machine keeps its signer.
    let scalar = Option::<Scalar>::from(Scalar::from_repr((*bytes).into()))
        .filter(|s| !bool::from(s.is_zero()))
        .ok_or_else(invalid_scalar)?;
    let hash = alloy_primitives::eip191_hash_message(message);
    let signing_error = || {
        Error::new(
            ErrorKind::Signing,
            "the private key could not sign the message (RFC 6979 nonce failure)",
        )
    };
    let (signature, recovery) = scalar
        .try_sign_prehashed_rfc6979::<alloy_signer::k256::sha2::Sha256>(&hash.0.into(), &[])
        .map_err(|_| signing_error())?;
    let recovery = recovery.ok_or_else(signing_error)?;
    let mut raw = [0u8; 65];
    raw[..64].copy_from_slice(&signature.to_bytes());
    raw[64] = 27 + u8::from(recovery.is_y_odd());
    let mut out = String::with_capacity(132);
    out.push_str("0x");
    out.push_str(&hex::encode(raw));
    Ok(out)
}

fn sign_with(signer: &PrivateKeySigner, message: &[u8]) -> Result<String> {
    let signature = signer.sign_message_sync(message).map_err(|e| {
        Error::new(
            ErrorKind::Signing,
            format!("the delegate key could not sign the Cascade challenge ({e})"),
        )
    })?;
    let bytes = signature.as_bytes();
    let mut out = String::with_capacity(132);
    out.push_str("0x");
    out.push_str(&hex::encode(bytes));
    Ok(out)
}

/// The POST body answering `unsigned` with `signature` (`0x` + 130 hex).
fn answer_body(unsigned: &Unsigned, signature: &str, status: u16) -> Result<Prepared> {
    #[derive(Serialize)]
    struct Answer<'a> {
        message: &'a Map<String, Value>,
        signature: &'a str,
        server_signature: &'a str,
    }
    let body = serde_json::to_vec(&Answer {
        message: &unsigned.message,
        signature,
        server_signature: &unsigned.server_signature,
    })
    .map_err(|e| {
        Error::protocol(format!("{VENUE} challenge answer cannot be encoded ({e})"))
            .with_status(status)
    })?;
    Ok(Prepared {
        body,
        stale_at: unsigned.stale_at,
    })
}

/// The machine's key from a config's two sources: exactly one must be given.
fn delegate_key(private_key: &Secret, external: Option<ExternalSigner>) -> Result<DelegateKey> {
    match (private_key.expose().trim().is_empty(), external) {
        (true, Some(signer)) => Ok(DelegateKey::External(signer)),
        (false, None) => Ok(DelegateKey::Local(parse_private_key(private_key.expose())?)),
        (false, Some(_)) => Err(Error::invalid_argument(
            "Cascade takes exactly one delegate key source: a private key (or keystore) or \
             an external signer, not both",
        )),
        (true, None) => Err(Error::invalid_argument(
            "Cascade needs a delegate key source: the delegate private key is empty (64 hex \
             characters expected), or give a keystore or an external signer",
        )),
    }
}

impl DelegateKey {
    /// The delegate address: derived from the key, or declared with the signer.
    fn address(&self) -> alloy_primitives::Address {
        match self {
            DelegateKey::Local(signer) => signer.address(),
            DelegateKey::External(signer) => signer.address(),
        }
    }
}

/// The WebSocket `auth` call for a credential:
/// `{"jsonrpc":"2.0","id":ID,"method":"auth","params":{"bearer":TOKEN}}`.
pub fn ws_auth_message(credential: &Credential, id: impl Into<Value>) -> Result<String> {
    if credential.header_name() != AUTHORIZATION
        || !credential.header_value().starts_with("Bearer ")
    {
        return Err(Error::invalid_argument(
            "the Cascade WebSocket auth message needs a bearer credential",
        ));
    }
    #[derive(Serialize)]
    struct Params<'a> {
        bearer: &'a str,
    }
    #[derive(Serialize)]
    struct Call<'a> {
        jsonrpc: &'static str,
        id: Value,
        method: &'static str,
        params: Params<'a>,
    }
    let call = Call {
        jsonrpc: "2.0",
        id: id.into(),
        method: "auth",
        params: Params {
            bearer: credential.token(),
        },
    };
    serde_json::to_string(&call)
        .map_err(|e| Error::invalid_argument(format!("the JSON-RPC id cannot be serialized ({e})")))
}

/// Interpret a Cascade WebSocket message: a JSON-RPC `result` is `Authenticated`, an
/// `error` about the bearer token (code -32001, or a message naming the token / auth) is
/// `Rejected`, anything else (notifications, other errors, non-JSON) is `Unrelated`.
///
/// Any `result` counts, so call it while awaiting the auth reply, or use
/// [`parse_ws_reply_with_id`] to match the id.
pub fn parse_ws_reply(text: &str) -> WsAuthReply {
    parse_rpc(text, None, &[])
}

/// Like [`parse_ws_reply`], with every one of `secrets` (the bearer sent, say) blotted out
/// of the rejection message before it is capped, in case the venue echoed it.
pub fn parse_ws_reply_redacting(text: &str, secrets: &[&str]) -> WsAuthReply {
    parse_rpc(text, None, secrets)
}

/// Like [`parse_ws_reply`] but only for the reply whose `id` equals the auth call's; every
/// error with that id is a rejection.
pub fn parse_ws_reply_with_id(text: &str, id: &Value) -> WsAuthReply {
    parse_rpc(text, Some(id), &[])
}

fn parse_rpc(text: &str, id: Option<&Value>, secrets: &[&str]) -> WsAuthReply {
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
        return WsAuthReply::Unrelated;
    };
    if obj.contains_key("method") {
        // A request or notification from the server, not a reply.
        return WsAuthReply::Unrelated;
    }
    let id_matches = match id {
        Some(want) => obj.get("id") == Some(want),
        None => true,
    };
    if let Some(error) = obj.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .unwrap_or("")
            .to_owned();
        let code = error.get("code").and_then(Value::as_i64);
        let lower = message.to_ascii_lowercase();
        let about_auth = code == Some(WS_INVALID_TOKEN_CODE)
            || ["bearer", "token", "auth", "unauthori"]
                .iter()
                .any(|k| lower.contains(k));
        return if (id.is_some() && id_matches) || (id.is_none() && about_auth) {
            WsAuthReply::Rejected {
                message: common::sanitize(&message, secrets),
            }
        } else {
            WsAuthReply::Unrelated
        };
    }
    match obj.remove("result") {
        Some(detail) if id_matches => WsAuthReply::Authenticated { detail },
        _ => WsAuthReply::Unrelated,
    }
}

/// Whether a Rejected reply means the venue refused the token itself.
fn is_invalid_bearer(text: &str, message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("invalid bearer token")
        || serde_json::from_str::<Value>(text).ok().is_some_and(|v| {
            v.get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64)
                == Some(WS_INVALID_TOKEN_CODE)
        })
}

/// A validated challenge waiting for the external signer's signature.
struct Unsigned {
    message: Map<String, Value>,
    server_signature: String,
    digest: [u8; 32],
    stale_at: Instant,
}

/// A validated, signed challenge ready to post.
struct Prepared {
    body: Vec<u8>,
    stale_at: Instant,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

enum Phase {
    /// Nothing to send now (no token yet: the next poll starts a challenge).
    Idle,
    /// `GET /auth` is due or in flight.
    Challenge,
    /// The external signer's signature of the challenge is due or being made.
    Sign(Unsigned),
    /// `POST /auth` is due or in flight.
    Answer(Prepared),
    /// The venue refused the signer; nothing is sent until `handle_unauthorized`/`logout`.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Challenge,
    Sign,
    Answer,
}

/// Who signs the challenge: the delegate key held here, or the caller's signer.
enum DelegateKey {
    Local(PrivateKeySigner),
    External(ExternalSigner),
}

struct Session {
    credential: Credential,
    claims: Option<Value>,
    /// When the token was obtained (Unix ms, venue clock), for snapshots.
    obtained_at_ms: u64,
    refresh_at: Instant,
}

/// The Cascade state machine.
pub struct CascadeMachine {
    address: String,
    key: DelegateKey,
    delegate_address: String,
    default_token_ttl: Duration,
    nonce_lifetime: Duration,
    refresh_window: Duration,
    max_lifetime: Duration,
    rng: SplitMix64,
    phase: Phase,
    in_flight: Option<Sent>,
    session: Option<Session>,
    /// Whether a session was ever established (first success is `LoggedIn`).
    had_session: bool,
    /// The next success replaces a session the venue refused (`ReLoggedIn`).
    relogin: bool,
    events: Events,
    last_error: Option<Error>,
}

impl CascadeMachine {
    /// Validate the deposit address and delegate key and make a machine with no token.
    pub fn new(config: CascadeConfig) -> Result<Self> {
        let CascadeConfig {
            deposit_address,
            delegate_private_key,
            external_signer,
            default_token_ttl,
            nonce_lifetime,
            refresh_window,
            jitter_seed,
            max_lifetime,
        } = config;
        let address = deposit_address.trim().to_owned();
        check_address(&address, "Cascade deposit address")?;
        let key = delegate_key(&delegate_private_key, external_signer)?;
        drop(delegate_private_key);
        if default_token_ttl.is_zero() {
            return Err(Error::invalid_argument(
                "Cascade default token ttl must be positive",
            ));
        }
        if nonce_lifetime < Duration::from_secs(1) {
            return Err(Error::invalid_argument(
                "Cascade nonce lifetime must be at least 1 second",
            ));
        }
        common::check_max_lifetime(VENUE, max_lifetime)?;
        let delegate_address = key.address().to_checksum(None);
        Ok(CascadeMachine {
            address,
            key,
            delegate_address,
            default_token_ttl,
            nonce_lifetime,
            refresh_window,
            max_lifetime,
            rng: SplitMix64::new(jitter_seed),
            phase: Phase::Idle,
            in_flight: None,
            session: None,
            had_session: false,
            relogin: false,
            events: Events::default(),
            last_error: None,
        })
    }

    /// Runs `f` with every secret this machine holds (the JWT, the delegate key as hex with
    /// and without `0x`), so a venue text that echoes one is redacted; the key's hex copies
    /// are wiped when `f` returns.
    fn with_secrets<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
        let key = Zeroizing::new(match &self.key {
            DelegateKey::Local(signer) => hex::encode(signer.credential().to_bytes()),
            // The caller's signer holds the key: there is none here to redact.
            DelegateKey::External(_) => String::new(),
        });
        let prefixed = Zeroizing::new(format!("0x{}", key.as_str()));
        let mut secrets: Vec<&str> = Vec::with_capacity(3);
        if !key.is_empty() {
            secrets.extend([prefixed.as_str(), key.as_str()]);
        }
        if let Some(session) = &self.session {
            secrets.push(session.credential.token());
        }
        f(&secrets)
    }

    /// The deposit address (the account), as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The delegate's address (EIP-55 checksummed), derived from its key.
    pub fn delegate_address(&self) -> &str {
        &self.delegate_address
    }

    /// The `claims` of the current session, as the venue sent them.
    pub fn claims(&self) -> Option<&Value> {
        self.session.as_ref()?.claims.as_ref()
    }

    /// The venue's expiry (Unix ms) of the current token.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.session.as_ref()?.credential.expires_at_ms()
    }

    /// The state's name for logs and tests: `no_token`, `active`, `awaiting_challenge`,
    /// `awaiting_signature`, `awaiting_session`, `stopped`.
    pub fn state_name(&self) -> &'static str {
        match (&self.phase, &self.session) {
            (Phase::Idle, None) => "no_token",
            (Phase::Idle, Some(_)) => "active",
            (Phase::Challenge, _) => "awaiting_challenge",
            (Phase::Sign(_), _) => "awaiting_signature",
            (Phase::Answer(_), _) => "awaiting_session",
            (Phase::Stopped, _) => "stopped",
        }
    }

    fn fail(&mut self, now: Now, error: Error) -> Error {
        let failure = common::Failure {
            stopped: matches!(self.phase, Phase::Stopped),
            has_credential: self.credential(now.instant).is_some(),
            events: &mut self.events,
            last_error: &mut self.last_error,
        };
        common::fail("cascade", &self.address, failure, error)
    }

    /// Drop expired state and start/abandon flows as time requires.
    fn advance(&mut self, now: Now) {
        if self
            .session
            .as_ref()
            .is_some_and(|s| !s.credential.is_valid_at(now.instant))
        {
            self.session = None;
        }
        match &self.phase {
            Phase::Idle
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| now.instant >= s.refresh_at) =>
            {
                tracing::debug!(venue = "cascade", account = %self.address, "refresh window reached");
                self.phase = Phase::Challenge;
            }
            Phase::Answer(Prepared { stale_at, .. }) | Phase::Sign(Unsigned { stale_at, .. })
                if self.in_flight.is_none() && now.instant >= *stale_at =>
            {
                // Posting it would only earn "nonce expired"; fetch a fresh one instead.
                let e = Error::new(
                    ErrorKind::ChallengeExpired,
                    "Cascade challenge outlived its nonce before it could be posted; \
                     requesting a new one",
                )
                .with_retryable(true);
                tracing::debug!(venue = "cascade", account = %self.address, "stale challenge discarded");
                self.events.push(AuthEvent::failed(&e));
                self.phase = Phase::Challenge;
            }
            _ => {}
        }
    }

    /// Validate a challenge answer and sign it into the POST body (`Phase::Answer`), or,
    /// with an external signer, keep it for its signature (`Phase::Sign`).
    fn prepare(&self, now: Now, response: &HttpResponse) -> Result<Phase> {
        let status = response.status;
        let proto = |m: String| Error::protocol(m).with_status(status);
        let mut root = json_object("challenge", response)?;
        let message = match root.remove("message") {
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(proto(format!(
                    "{VENUE} challenge `message` is of type {}, expected an object",
                    common::type_name(&other)
                )));
            }
            None => return Err(proto(format!("{VENUE} challenge has no `message` object"))),
        };
        let field = |obj: &Map<String, Value>, name: &str, in_what: &str| -> Result<String> {
            match obj.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(proto(format!(
                    "{VENUE} challenge {in_what}`{name}` is empty"
                ))),
                Some(other) => Err(proto(format!(
                    "{VENUE} challenge {in_what}`{name}` is of type {}, expected a string",
                    common::type_name(other)
                ))),
                None => Err(proto(format!("{VENUE} challenge has no {in_what}`{name}`"))),
            }
        };
        let account = field(&message, "account", "message.")?;
        let nonce = field(&message, "nonce", "message.")?;
        field(&message, "timestamp", "message.")?;
        let server_signature = field(&root, "server_signature", "")?;
        let signing_payload = field(&root, "signing_payload", "")?;
        if !account.eq_ignore_ascii_case(&self.address) {
            return Err(proto(format!(
                "{VENUE} challenge is for account {}, not the configured deposit address {}; \
                 check the base URL and the deposit address",
                self.with_secrets(|secrets| common::sanitize(&account, secrets)),
                self.address
            )));
        }
        let payload: Map<String, Value> = match serde_json::from_str(&signing_payload) {
            Ok(Value::Object(p)) => p,
            _ => {
                return Err(proto(format!(
                    "{VENUE} challenge `signing_payload` is not a JSON object text"
                )));
            }
        };
        let payload_account = field(&payload, "account", "signing_payload.")?;
        if !payload_account.eq_ignore_ascii_case(&self.address) {
            return Err(proto(format!(
                "{VENUE} challenge asks to sign for account {}, not the configured deposit \
                 address {}; refusing to sign it",
                self.with_secrets(|secrets| common::sanitize(&payload_account, secrets)),
                self.address
            )));
        }
        if let Some(p_nonce) = payload.get("nonce")
            && p_nonce.as_str() != Some(nonce.as_str())
        {
            return Err(proto(format!(
                "{VENUE} challenge `signing_payload` names a different nonce than `message`; \
                 refusing to sign it"
            )));
        }
        let margin = safety_margin(self.nonce_lifetime);
        let stale_at = common::after(now.instant, self.nonce_lifetime.saturating_sub(margin));
        let unsigned = Unsigned {
            message,
            server_signature,
            digest: eip191_digest(signing_payload.as_bytes()),
            stale_at,
        };
        match &self.key {
            DelegateKey::Local(signer) => {
                let signature = sign_with(signer, signing_payload.as_bytes())?;
                Ok(Phase::Answer(answer_body(&unsigned, &signature, status)?))
            }
            DelegateKey::External(_) => Ok(Phase::Sign(unsigned)),
        }
    }

    /// Validate a session answer `{token, claims}` and work out its expiry.
    fn open_session(&mut self, now: Now, response: &HttpResponse) -> Result<Session> {
        let status = response.status;
        let proto = |m: String| Error::protocol(m).with_status(status);
        let mut root = json_object("session", response)?;
        let token = Secret::from(
            common::take_string(&mut root, "token", VENUE, "session")
                .map_err(|e| e.with_status(status))?,
        );
        if check_token_text(token.expose(), "token").is_err() {
            return Err(proto(format!(
                "{VENUE} session token contains whitespace, control or non-ASCII characters; it \
                 cannot go into an HTTP header"
            )));
        }
        let claims = match root.remove("claims") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(c),
            Some(other) => {
                return Err(proto(format!(
                    "{VENUE} session `claims` is of type {}, expected an object",
                    common::type_name(&other)
                )));
            }
        };
        let claims_exp = match claims.as_ref().and_then(|c| c.get("exp")) {
            None | Some(Value::Null) => None,
            Some(v) => Some(exp_seconds(v).ok_or_else(|| {
                proto(format!(
                    "{VENUE} session `claims.exp` is {}, expected a positive number of Unix seconds",
                    common::type_name(v)
                ))
            })?),
        };
        let stated_ms = match claims_exp.or_else(|| jwt_exp(token.expose())) {
            Some(secs) => secs.saturating_mul(1000),
            None => now.expiry_base_ms().saturating_add(
                u64::try_from(self.default_token_ttl.as_millis()).unwrap_or(u64::MAX),
            ),
        };
        let (expires_at_ms, distrusted) =
            common::checked_expiry(VENUE, "session", now, stated_ms, self.max_lifetime, false)
                .map_err(|e| e.with_status(status))?;
        if let Some(event) = distrusted {
            self.events.push(event);
        }
        self.build_session(
            now,
            &token,
            claims.map(Value::Object),
            expires_at_ms,
            now.expiry_base_ms(),
        )
        .map_err(|_| proto(format!("{VENUE} session token is not valid header text")))
    }

    /// A session for a token obtained at `obtained_at_ms` (see [`common::schedule`]).
    fn build_session(
        &mut self,
        now: Now,
        token: &Secret,
        claims: Option<Value>,
        expires_at_ms: u64,
        obtained_at_ms: u64,
    ) -> Result<Session> {
        let schedule = common::schedule(
            now,
            expires_at_ms,
            obtained_at_ms,
            self.refresh_window,
            &mut self.rng,
        );
        let credential =
            Credential::bearer(token, Some(schedule.valid_until), Some(expires_at_ms))?;
        Ok(Session {
            credential,
            claims,
            obtained_at_ms: schedule.obtained_at_ms,
            refresh_at: schedule.refresh_at,
        })
    }

    fn on_challenge(&mut self, now: Now, response: &HttpResponse) -> Result<()> {
        if !response.is_success() {
            let detail = self.with_secrets(|secrets| common::error_detail(&response.body, secrets));
            let e = common::classify_status(
                VENUE,
                "challenge request",
                response,
                now.unix_ms,
                detail.as_deref(),
                "check the deposit address",
            );
            self.phase = Phase::Challenge;
            return Err(self.fail(now, e));
        }
        match self.prepare(now, response) {
            Ok(phase) => {
                self.phase = phase;
                Ok(())
            }
            Err(e) => {
                self.phase = Phase::Challenge;
                Err(self.fail(now, e))
            }
        }
    }

    fn on_answer(&mut self, now: Now, response: &HttpResponse) -> Result<()> {
        if !response.is_success() {
            let detail = self.with_secrets(|secrets| common::error_detail(&response.body, secrets));
            let lower = detail.as_deref().unwrap_or("").to_ascii_lowercase();
            let status = response.status;
            let nonce_problem = (lower.contains("nonce") || lower.contains("challenge"))
                && (lower.contains("expired") || lower.contains("used"));
            let e = if nonce_problem && (400..500).contains(&status) {
                // A fresh challenge will do: not the key's fault.
                self.phase = Phase::Challenge;
                Error::new(
                    ErrorKind::ChallengeExpired,
                    format!(
                        "{VENUE} refused the challenge answer with HTTP {status} ({}); a new \
                         challenge will be requested",
                        detail.as_deref().unwrap_or("nonce expired or used")
                    ),
                )
                .with_status(status)
                .with_retryable(true)
            } else {
                let hint = if lower.contains("not authorized") {
                    "the delegate key is not authorized for this deposit address; add the \
                     delegate in the trading UI"
                } else {
                    "check that the delegate key is a delegate of the deposit address"
                };
                let e = common::classify_status(
                    VENUE,
                    "challenge answer",
                    response,
                    now.unix_ms,
                    detail.as_deref(),
                    hint,
                );
                if e.kind() == ErrorKind::Unauthorized {
                    // The same key would be refused again: stop until told otherwise.
                    self.phase = Phase::Stopped;
                } else if !e.is_retryable() {
                    self.phase = Phase::Challenge;
                }
                // Otherwise (busy, 5xx/429) the phase still holds the prepared answer, so
                // the same answer is re-posted while it is fresh (advance() discards it
                // once stale).
                e
            };
            return Err(self.fail(now, e));
        }
        match self.open_session(now, response) {
            Ok(session) => {
                let event = if std::mem::take(&mut self.relogin) {
                    AuthEvent::ReLoggedIn
                } else if self.had_session {
                    AuthEvent::Refreshed
                } else {
                    AuthEvent::LoggedIn
                };
                tracing::info!(venue = "cascade", account = %self.address, event = event.as_str(), "session opened");
                self.session = Some(session);
                self.had_session = true;
                self.phase = Phase::Idle;
                self.last_error = None;
                self.events.push(event);
                Ok(())
            }
            Err(e) => {
                // The nonce is spent either way; start over with a fresh challenge.
                self.phase = Phase::Challenge;
                Err(self.fail(now, e))
            }
        }
    }
}

/// A JSON number of Unix seconds (integer, or a float rounded down).
fn exp_seconds(v: &Value) -> Option<u64> {
    common::unix_number(v.as_number()?)
}

/// The `exp` claim of a JWT, read without verifying it (we are not the audience; the
/// venue verifies). `None` if the token is not a JWT or has no numeric `exp`.
fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    exp_seconds(claims.get("exp")?)
}

impl Machine for CascadeMachine {
    fn venue(&self) -> Venue {
        Venue::Cascade
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            renewable: true,
            shareable: true,
            ws_auth: true,
            public: false,
        }
    }

    fn status(&self) -> MachineStatus {
        match (&self.phase, &self.session) {
            (Phase::Idle, None) => MachineStatus::LoggedOut,
            (Phase::Idle, Some(_)) => MachineStatus::Active,
            (Phase::Challenge, _) => MachineStatus::LoggingIn,
            (Phase::Sign(_) | Phase::Answer(_), _) => MachineStatus::Completing,
            (Phase::Stopped, _) => MachineStatus::Stopped,
        }
    }

    fn account(&self) -> &str {
        &self.address
    }

    fn handle_timeout(&mut self, now: Now) {
        self.advance(now);
    }

    fn poll_request(&mut self, now: Now) -> Option<HttpRequest> {
        self.advance(now);
        if self.in_flight.is_some() {
            return None;
        }
        if matches!(self.phase, Phase::Idle) && self.session.is_none() {
            self.phase = Phase::Challenge;
        }
        match &self.phase {
            Phase::Challenge => {
                self.in_flight = Some(Sent::Challenge);
                Some(HttpRequest {
                    method: Method::Get,
                    path: format!("{AUTH_PATH}?account={}", self.address),
                    headers: vec![("accept".to_owned(), "application/json".to_owned())],
                    body: Vec::new(),
                })
            }
            Phase::Answer(p) => {
                let request = HttpRequest::json(Method::Post, AUTH_PATH, p.body.clone());
                self.in_flight = Some(Sent::Answer);
                Some(request)
            }
            // The signature comes first (poll_sign), then the answer goes out.
            Phase::Sign(_) | Phase::Idle | Phase::Stopped => None,
        }
    }

    fn poll_sign(&mut self, now: Now) -> Option<SignRequest> {
        self.advance(now);
        if self.in_flight.is_some() {
            return None;
        }
        let (Phase::Sign(unsigned), DelegateKey::External(signer)) = (&self.phase, &self.key)
        else {
            return None;
        };
        self.in_flight = Some(Sent::Sign);
        Some(SignRequest {
            digest: unsigned.digest,
            signer: signer.clone(),
        })
    }

    fn replace_secret(&mut self, now: Now, secret: NewSecret) -> Result<()> {
        let _ = now;
        let key = match secret {
            NewSecret::DelegateKey(hex_key) => {
                DelegateKey::Local(parse_private_key(hex_key.expose())?)
            }
            NewSecret::Signer(signer) => DelegateKey::External(signer),
            other => return Err(other.refused(Venue::Cascade)),
        };
        // The old key (a PrivateKeySigner's scalar wipes itself) goes with the old value.
        self.delegate_address = key.address().to_checksum(None);
        self.key = key;
        // A challenge not yet signed, or signed by the old key, is signed afresh.
        if matches!(
            self.phase,
            Phase::Sign(_) | Phase::Answer(_) | Phase::Stopped
        ) && self.in_flight.is_none()
        {
            self.phase = Phase::Challenge;
            self.last_error = None;
        }
        Ok(())
    }

    fn handle_signature(&mut self, now: Now, answer: Result<[u8; 65]>) -> Result<()> {
        if self.in_flight != Some(Sent::Sign) {
            return Err(Error::invalid_argument(
                "Cascade got a signature but none was asked for; it was ignored",
            ));
        }
        self.in_flight = None;
        let Phase::Sign(unsigned) = std::mem::replace(&mut self.phase, Phase::Challenge) else {
            // in_flight says Sign only while the phase is Sign.
            return Err(Error::invalid_argument(
                "Cascade got a signature but none was asked for; it was ignored",
            ));
        };
        let signed = answer.and_then(|signature| {
            // The driver normalised it for the declared address; a sans-IO caller may not
            // have: never post a signature the venue would refuse for the key.
            if recover_address(&signature, &unsigned.digest) != Some(self.key.address()) {
                return Err(Error::new(
                    ErrorKind::Signing,
                    "the external signer's signature does not recover to the declared \
                     delegate address",
                ));
            }
            answer_body(&unsigned, &format!("0x{}", hex::encode(signature)), 200)
        });
        match signed {
            Ok(prepared) => {
                self.phase = Phase::Answer(prepared);
                Ok(())
            }
            // Phase is Challenge: the next attempt signs a fresh challenge.
            Err(e) => Err(self.fail(now, e)),
        }
    }

    fn handle_response(&mut self, now: Now, response: HttpResponse) -> Result<()> {
        // The body holds tokens: HttpResponse wipes it when dropped, on every path here.
        match common::take_in_flight(&mut self.in_flight, VENUE)? {
            Sent::Challenge => self.on_challenge(now, &response),
            Sent::Answer => self.on_answer(now, &response),
            Sent::Sign => {
                self.in_flight = Some(Sent::Sign);
                Err(Error::invalid_argument(format!(
                    "{VENUE} got a response while waiting for a signature; it was ignored"
                )))
            }
        }
    }

    fn handle_transport_error(&mut self, now: Now, error: &Error) {
        if self.in_flight.take().is_some() {
            // Phase unchanged: the same request goes out again (a re-posted answer that
            // the venue already consumed earns "nonce already used" -> new challenge).
            self.fail(now, error.clone());
        }
    }

    fn handle_unauthorized(&mut self, now: Now) {
        let _ = now;
        if self.session.take().is_some() {
            self.relogin = true;
        }
        match self.phase {
            Phase::Idle => self.phase = Phase::Challenge,
            Phase::Stopped => {
                self.phase = Phase::Challenge;
                self.last_error = None;
            }
            // A challenge flow is already under way and brings a fresh token.
            Phase::Challenge | Phase::Sign(_) | Phase::Answer(_) => {}
        }
    }

    fn force_refresh(&mut self, now: Now) {
        self.advance(now);
        match self.phase {
            // Like the refresh window: a new challenge while the token is still handed
            // out, so readers see no gap (handle_unauthorized would drop it).
            Phase::Idle => self.phase = Phase::Challenge,
            // Re-armed, as by a 401.
            Phase::Stopped => self.handle_unauthorized(now),
            // A flow under way brings the successor; the token stays until then.
            Phase::Challenge | Phase::Sign(_) | Phase::Answer(_) => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self
            .session
            .as_ref()
            .and_then(|s| s.credential.valid_until());
        let work = match &self.phase {
            Phase::Idle => self.session.as_ref().map(|s| s.refresh_at),
            Phase::Answer(Prepared { stale_at, .. }) | Phase::Sign(Unsigned { stale_at, .. })
                if self.in_flight.is_none() =>
            {
                Some(*stale_at)
            }
            _ => None,
        };
        match (work, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn credential(&self, now: Instant) -> Option<Credential> {
        self.session
            .as_ref()
            .map(|s| &s.credential)
            .filter(|c| c.is_valid_at(now))
            .cloned()
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop()
    }

    fn snapshot(&self, now: Instant) -> Option<SessionSnapshot> {
        let session = self.session.as_ref()?;
        if !session.credential.is_valid_at(now) {
            return None;
        }
        Some(SessionSnapshot {
            token: Secret::from(session.credential.token()),
            expires_at_ms: session.credential.expires_at_ms()?,
            obtained_at_ms: session.obtained_at_ms,
            refresh_token: None,
            claims: session.claims.clone(),
        })
    }

    fn restore(&mut self, now: Now, snapshot: &SessionSnapshot) -> Result<()> {
        if self.in_flight.is_some() {
            return Err(Error::invalid_argument(
                "Cascade cannot adopt a shared session while a request is in flight",
            ));
        }
        let checked = common::checked_expiry(
            VENUE,
            "shared session",
            now,
            snapshot.expires_at_ms,
            self.max_lifetime,
            false,
        );
        let Ok((expires_at_ms, distrusted)) = checked else {
            return Err(Error::invalid_argument("the Cascade snapshot is expired"));
        };
        // build_session refuses a token that is not header text (Credential::bearer).
        let session = self.build_session(
            now,
            &snapshot.token,
            snapshot.claims.clone(),
            expires_at_ms,
            snapshot.obtained_at_ms,
        )?;
        if !session.credential.is_valid_at(now.instant) {
            return Err(Error::invalid_argument(
                "the Cascade snapshot is too close to expiry to use",
            ));
        }
        if let Some(event) = distrusted {
            self.events.push(event);
        }
        // A pending challenge is dropped: the adopted token makes it unnecessary.
        self.session = Some(session);
        self.phase = Phase::Idle;
        self.had_session = true;
        self.relogin = false;
        self.last_error = None;
        Ok(())
    }

    fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    fn logout(&mut self) {
        self.session = None;
        self.phase = Phase::Idle;
        self.in_flight = None;
        self.had_session = false;
        self.relogin = false;
        self.last_error = None;
    }

    fn ws_auth_message(&self, now: Instant, id: Value) -> Result<String> {
        let credential = self.credential(now).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                "no valid Cascade token at this moment; authenticate over HTTP first",
            )
        })?;
        ws_auth_message(&credential, id)
    }

    fn ws_auth_message_for(&self, credential: &Credential, id: Value) -> Result<String> {
        ws_auth_message(credential, id)
    }

    fn handle_ws_reply(&mut self, now: Now, text: &str) -> WsAuthReply {
        let reply = self.with_secrets(|secrets| parse_ws_reply_redacting(text, secrets));
        if let WsAuthReply::Rejected { message } = &reply
            && is_invalid_bearer(text, message)
        {
            self.handle_unauthorized(now);
        }
        reply
    }

    fn handle_ws_auth_reply(&mut self, now: Now, text: &str, id: &Value) -> WsAuthReply {
        let reply = self.with_secrets(|secrets| parse_rpc(text, Some(id), secrets));
        if let WsAuthReply::Rejected { message } = &reply
            && is_invalid_bearer(text, message)
        {
            self.handle_unauthorized(now);
        }
        reply
    }

    fn ws_rules(&self) -> WsRules {
        WS_RULES
    }
}

/// Cascade's WebSocket rules: JSON-RPC 2.0, private methods and channels held until
/// authenticated, `-32001` / "Invalid Bearer Token" refusing the credential.
pub const WS_RULES: WsRules = WsRules {
    is_private: ws_is_private,
    refuses_credential: ws_refuses_credential,
    with_id: ws_with_id,
    reply_id: ws_reply_id,
};

/// Whether a Cascade reply is an error saying the token is no longer accepted.
pub fn ws_refuses_credential(message: &Value) -> bool {
    message.get("method").is_none()
        && message.get("error").is_some_and(|error| {
            error.get("code").and_then(Value::as_i64) == Some(WS_INVALID_TOKEN_CODE)
                || error
                    .get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.to_ascii_lowercase().contains("invalid bearer token"))
        })
}

/// A JSON-RPC request with its `id` replaced by `id`; `None` if it has no `id` (a
/// notification, or not an object), which is sent unchanged.
pub fn ws_with_id(message: &Value, id: Value) -> Option<Value> {
    let mut message = message.clone();
    let object = message.as_object_mut()?;
    if !object.contains_key("id") {
        return None;
    }
    object.insert("id".to_owned(), id);
    Some(message)
}

/// The `id` a JSON-RPC reply answers; `None` for server notifications (they carry a
/// `method`) and for a null id.
pub fn ws_reply_id(message: &Value) -> Option<&Value> {
    if message.get("method").is_some() {
        return None;
    }
    message.get("id").filter(|id| !id.is_null())
}

/// Cascade's JSON-RPC methods that need no authenticated connection. Everything else
/// (`orders.list`, `positions.list`, `order.create`, any method this list does not know)
/// is held until the connection is authenticated: an unknown method waits for nothing
/// worse than the auth reply, while a private one sent early is refused by the venue.
const PUBLIC_WS_METHODS: &[&str] = &["subscribe", "unsubscribe", "ping"];

/// The channels of `subscribe` / `unsubscribe` that are the account's own.
const PRIVATE_WS_CHANNELS: &[&str] = &["orders", "positions"];

/// Whether a Cascade WebSocket request needs an authenticated connection: every method
/// but the public ones, and subscriptions to the account's own channels.
pub fn ws_is_private(message: &Value) -> bool {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // Not a request (a notification answer, a malformed message): the venue says so.
        return false;
    };
    if !PUBLIC_WS_METHODS.contains(&method) {
        return true;
    }
    matches!(method, "subscribe" | "unsubscribe")
        && message
            .get("params")
            .and_then(|p| p.get("channel"))
            .and_then(Value::as_str)
            .is_some_and(|channel| PRIVATE_WS_CHANNELS.contains(&channel))
}

impl fmt::Debug for CascadeMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CascadeMachine")
            .field("account", &self.address)
            .field("delegate", &self.delegate_address)
            .field("state", &self.state_name())
            .field("in_flight", &self.in_flight)
            .field("expires_at_ms", &self.expires_at_ms())
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}
