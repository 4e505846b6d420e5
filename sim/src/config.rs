//! The simulator's configuration: the JSON config file's shape, its defaults (the demo
//! accounts) and its validation.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::SimError;
use crate::faults::Fault;

/// The built-in demo accounts, used when no config file is given.
///
/// The Cascade keys are the well-known Hardhat/Anvil development accounts #0-#2: they are
/// public test keys, printed by every Hardhat node, and must never hold real funds.
pub mod demo {
    /// Cadenza demo user's email.
    pub const CADENZA_EMAIL: &str = "demo@cadenza.test";
    /// Cadenza demo user's password.
    pub const CADENZA_PASSWORD: &str = "demo-password";
    /// Cadenza second user's email.
    pub const CADENZA_OPS_EMAIL: &str = "ops@cadenza.test";
    /// Cadenza second user's password.
    pub const CADENZA_OPS_PASSWORD: &str = "ops-password";
    /// Partner demo client id.
    pub const PARTNER_CLIENT_ID: &str = "demo-client";
    /// Partner demo client's HS256 secret key.
    pub const PARTNER_SECRET_KEY: &str = "demo-partner-secret-key-0123456789abcdef";
    /// Cascade demo deposit address (Hardhat account #1).
    pub const CASCADE_ACCOUNT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    /// Private key of [`CASCADE_ACCOUNT`] (Hardhat #1, a public test key).
    pub const CASCADE_ACCOUNT_KEY: &str =
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    /// Cascade demo delegate of [`CASCADE_ACCOUNT`] (Hardhat account #0).
    pub const CASCADE_DELEGATE: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    /// Private key of [`CASCADE_DELEGATE`] (Hardhat #0, a public test key).
    pub const CASCADE_DELEGATE_KEY: &str =
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    /// An address that is NOT a delegate of [`CASCADE_ACCOUNT`] (Hardhat account #2).
    pub const CASCADE_STRANGER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    /// Private key of [`CASCADE_STRANGER`] (Hardhat #2, a public test key).
    pub const CASCADE_STRANGER_KEY: &str =
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    /// Exchange demo admin bearer token.
    pub const EXCHANGE_ADMIN_TOKEN: &str = "demo-admin-token";
    /// Exchange demo trader's username.
    pub const EXCHANGE_USERNAME: &str = "team-alpha";
    /// Exchange demo trader's API key (the page's example).
    pub const EXCHANGE_API_KEY: &str = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f";
    /// Exchange demo trader's id (the page's example).
    pub const EXCHANGE_TRADER_ID: &str = "9d64e278-8b56-46e9-9cab-18c5b22f2fb9";
    /// Exchange demo trader's creation time (the page's example).
    pub const EXCHANGE_CREATED_AT: &str = "2024-01-15T10:00:00Z";
}

/// Implements `Debug` for a config struct, listing its fields in order with each
/// `secret` one shown as `<redacted>`, so a logged config never shows a credential.
macro_rules! redacted_debug {
    ($ty:ident { $($field:ident: $how:ident),+ $(,)? }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), redacted_debug!(@$how self.$field)))+
                    .finish()
            }
        }
    };
    (@shown $value:expr) => { &$value };
    (@secret $value:expr) => { &"<redacted>" };
}

redacted_debug!(CadenzaUser {
    email: shown,
    password: secret
});
redacted_debug!(PartnerClient {
    client_id: shown,
    secret_key: secret
});
redacted_debug!(ExchangeConfig {
    admin_token: secret,
    traders: shown,
    ws_delta_interval_ms: shown,
});
redacted_debug!(ExchangeTrader {
    username: shown,
    api_key: secret,
    trader_id: shown,
    created_at: shown,
});

/// Whole simulator configuration: the JSON config file plus the knobs only flags or code set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Cadenza users and token lifetimes.
    pub cadenza: CadenzaConfig,
    /// Partner API clients.
    pub partner: PartnerConfig,
    /// Cascade accounts, delegates and lifetimes.
    pub cascade: CascadeConfig,
    /// Exchange admin token and traders.
    pub exchange: ExchangeConfig,
    /// Listening ports (0 = chosen by the OS); not part of the JSON file.
    #[serde(skip)]
    pub ports: Ports,
    /// Initial clock offset in seconds (sim time = system time + offset); not in the JSON file.
    #[serde(skip)]
    pub clock_offset_secs: i64,
    /// Where to write the CA certificate PEM (default: a fresh temp dir); not in the JSON file.
    #[serde(skip)]
    pub ca_out: Option<PathBuf>,
    /// Faults armed at start; not in the JSON file.
    #[serde(skip)]
    pub faults: Vec<Fault>,
}

/// Ports of the five listeners; 0 lets the OS choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    /// Cadenza listener port.
    pub cadenza: u16,
    /// Partner listener port.
    pub partner: u16,
    /// Cascade listener port.
    pub cascade: u16,
    /// Exchange listener port.
    pub exchange: u16,
    /// Control listener port.
    pub control: u16,
}

/// Cadenza section of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CadenzaConfig {
    /// Users that can log in.
    pub users: Vec<CadenzaUser>,
    /// Access token lifetime (page: 1 hour).
    pub access_ttl_secs: u64,
    /// Refresh token lifetime (page: 7 days).
    pub refresh_ttl_secs: u64,
    /// Presenting an already rotated refresh token revokes every token descended from the
    /// same login (OAuth 2.0 Security BCP reuse detection); off by default.
    pub revoke_family_on_reuse: bool,
}

impl Default for CadenzaConfig {
    fn default() -> Self {
        Self {
            users: vec![
                CadenzaUser::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
                CadenzaUser::new(demo::CADENZA_OPS_EMAIL, demo::CADENZA_OPS_PASSWORD),
            ],
            access_ttl_secs: 3600,
            refresh_ttl_secs: 7 * 24 * 3600,
            revoke_family_on_reuse: false,
        }
    }
}

/// One Cadenza user.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadenzaUser {
    /// Login email.
    pub email: String,
    /// Login password.
    pub password: String,
}

impl CadenzaUser {
    /// A user with this email and password.
    pub fn new(email: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            password: password.into(),
        }
    }
}

/// Partner section of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartnerConfig {
    /// Clients whose HS256 tokens are accepted.
    pub clients: Vec<PartnerClient>,
}

impl Default for PartnerConfig {
    fn default() -> Self {
        Self {
            clients: vec![PartnerClient::new(
                demo::PARTNER_CLIENT_ID,
                demo::PARTNER_SECRET_KEY,
            )],
        }
    }
}

/// One Partner API client.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerClient {
    /// The `clientId` claim.
    pub client_id: String,
    /// The HS256 secret the client signs with.
    pub secret_key: String,
}

impl PartnerClient {
    /// A client with this id and secret.
    pub fn new(client_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret_key: secret_key.into(),
        }
    }
}

/// Cascade section of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeConfig {
    /// Deposit accounts and the delegates allowed to sign for them.
    pub accounts: Vec<CascadeAccount>,
    /// Lifetime of issued JWTs (the page only says "short-lived").
    pub token_ttl_secs: u64,
    /// Lifetime of a challenge nonce (page: five minutes).
    pub nonce_ttl_secs: u64,
    /// Every this many ms, each WebSocket orderbook subscription gets a delta (0 = off).
    pub ws_delta_interval_ms: u64,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        Self {
            accounts: vec![CascadeAccount {
                deposit_address: demo::CASCADE_ACCOUNT.to_owned(),
                delegates: vec![demo::CASCADE_DELEGATE.to_owned()],
            }],
            token_ttl_secs: 3600,
            nonce_ttl_secs: 300,
            ws_delta_interval_ms: 0,
        }
    }
}

/// One Cascade deposit account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeAccount {
    /// The deposit address (0x + 40 hex, any case).
    pub deposit_address: String,
    /// Addresses allowed to sign for it (the account itself always may).
    #[serde(default)]
    pub delegates: Vec<String>,
}

/// Exchange section of the config.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Static admin bearer token.
    pub admin_token: String,
    /// Traders provisioned at start.
    pub traders: Vec<ExchangeTrader>,
    /// Every this many ms, each WebSocket orderbook subscription gets a delta (0 = off).
    pub ws_delta_interval_ms: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            admin_token: demo::EXCHANGE_ADMIN_TOKEN.to_owned(),
            traders: vec![ExchangeTrader {
                username: demo::EXCHANGE_USERNAME.to_owned(),
                api_key: demo::EXCHANGE_API_KEY.to_owned(),
                trader_id: Some(demo::EXCHANGE_TRADER_ID.to_owned()),
                created_at: Some(demo::EXCHANGE_CREATED_AT.to_owned()),
            }],
            ws_delta_interval_ms: 0,
        }
    }
}

/// One Exchange trader.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeTrader {
    /// Unique username.
    pub username: String,
    /// `exch_` + 32 lowercase hex.
    pub api_key: String,
    /// Trader id (a UUID); a random v4 UUID is chosen at start when absent.
    #[serde(default)]
    pub trader_id: Option<String>,
    /// RFC 3339 creation time; the start time when absent.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl SimConfig {
    /// Parses a JSON config file's text; unknown fields are an error that names the field.
    pub fn from_json(text: &str) -> Result<Self, SimError> {
        let config: SimConfig =
            serde_json::from_str(text).map_err(|e| SimError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the offending field.
    pub fn validate(&self) -> Result<(), SimError> {
        const ADDRESS: &str = "expected 0x followed by 40 hex digits";

        let users = self.cadenza.users.iter();
        let users = users.map(|u| (u.email.as_str(), u.password.as_str()));
        logins("cadenza.users", ["email", "password"], users)?;
        positive("cadenza.access_ttl_secs", self.cadenza.access_ttl_secs)?;
        positive("cadenza.refresh_ttl_secs", self.cadenza.refresh_ttl_secs)?;

        let clients = self.partner.clients.iter();
        let clients = clients.map(|c| (c.client_id.as_str(), c.secret_key.as_str()));
        logins("partner.clients", ["client_id", "secret_key"], clients)?;

        let mut accounts = HashSet::new();
        for (i, a) in self.cascade.accounts.iter().enumerate() {
            let field = format!("cascade.accounts[{i}].deposit_address");
            let Some(addr) = parse_address(&a.deposit_address) else {
                return Err(invalid(field, ADDRESS));
            };
            require(accounts.insert(addr), field, "duplicate deposit_address")?;
            for (j, d) in a.delegates.iter().enumerate() {
                let field = format!("cascade.accounts[{i}].delegates[{j}]");
                require(parse_address(d).is_some(), field, ADDRESS)?;
            }
        }
        positive("cascade.token_ttl_secs", self.cascade.token_ttl_secs)?;
        positive("cascade.nonce_ttl_secs", self.cascade.nonce_ttl_secs)?;

        let admin_token = "exchange.admin_token".to_owned();
        require(!self.exchange.admin_token.is_empty(), admin_token, EMPTY)?;
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for (i, t) in self.exchange.traders.iter().enumerate() {
            let at = |name: &str| format!("exchange.traders[{i}].{name}");
            require(!t.username.is_empty(), at("username"), EMPTY)?;
            let unique = names.insert(t.username.as_str());
            require(unique, at("username"), "duplicate username")?;
            let why = "expected exch_ followed by 32 lowercase hex digits";
            require(is_exchange_api_key(&t.api_key), at("api_key"), why)?;
            let unique = keys.insert(t.api_key.as_str());
            require(unique, at("api_key"), "duplicate api_key")?;
            let uuid = |id: &String| uuid::Uuid::parse_str(id).is_ok();
            require(
                t.trader_id.as_ref().is_none_or(uuid),
                at("trader_id"),
                "expected a UUID",
            )?;
            let rfc3339 = |at: &String| OffsetDateTime::parse(at, &Rfc3339).is_ok();
            let why = "expected an RFC 3339 time";
            require(
                t.created_at.as_ref().is_none_or(rfc3339),
                at("created_at"),
                why,
            )?;
        }
        Ok(())
    }

    /// Fills in what the config may leave out (trader ids and creation times), once at
    /// start, so that a reset returns to the same traders.
    pub(crate) fn resolve(&mut self, now: OffsetDateTime) {
        let created = crate::exchange::format_created_at(now);
        for t in &mut self.exchange.traders {
            t.trader_id
                .get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
            t.created_at.get_or_insert_with(|| created.clone());
        }
    }
}

/// What a required text field that was left empty is told.
const EMPTY: &str = "must not be empty";

/// Checks a list of logins (`list[i]`, each an id and a secret, named `names`): both
/// must be non-empty, and no id may appear twice.
fn logins<'a>(
    list: &str,
    [id, secret]: [&str; 2],
    items: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), SimError> {
    let mut seen = HashSet::new();
    for (i, (id_value, secret_value)) in items.enumerate() {
        let at = |name: &str| format!("{list}[{i}].{name}");
        require(!id_value.is_empty(), at(id), EMPTY)?;
        require(!secret_value.is_empty(), at(secret), EMPTY)?;
        require(seen.insert(id_value), at(id), &format!("duplicate {id}"))?;
    }
    Ok(())
}

/// The error that names `field` and says `why`.
fn invalid(field: String, why: &str) -> SimError {
    SimError::Config(format!("{field}: {why}"))
}

/// `Err` naming `field` and saying `why`, unless `ok`.
fn require(ok: bool, field: String, why: &str) -> Result<(), SimError> {
    if ok { Ok(()) } else { Err(invalid(field, why)) }
}

fn positive(field: &str, value: u64) -> Result<(), SimError> {
    require(value > 0, field.to_owned(), "must be at least 1")
}

/// Parses `0x` + 40 hex digits (any case; the EIP-55 checksum is not enforced, as the
/// venue lowercases addresses anyway).
pub(crate) fn parse_address(text: &str) -> Option<alloy_primitives::Address> {
    let hex = text.strip_prefix("0x")?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.parse().ok()
}

/// `exch_` + 32 lowercase hex digits, the page's key format.
pub(crate) fn is_exchange_api_key(key: &str) -> bool {
    key.strip_prefix("exch_").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        SimConfig::default()
            .validate()
            .expect("demo config is valid");
    }

    #[test]
    fn unknown_field_is_named() {
        let err = SimConfig::from_json(r#"{"cadenza":{"userz":[]}}"#).unwrap_err();
        assert!(err.to_string().contains("userz"), "{err}");
    }

    #[test]
    fn missing_sections_take_defaults() {
        let c = SimConfig::from_json(r#"{"cascade":{"nonce_ttl_secs":5}}"#).unwrap();
        assert_eq!(c.cascade.nonce_ttl_secs, 5);
        assert_eq!(c.cascade.token_ttl_secs, 3600);
        assert_eq!(c.cadenza.users.len(), 2);
    }

    #[test]
    fn revoke_family_on_reuse_parses_and_defaults_off() {
        assert!(!SimConfig::default().cadenza.revoke_family_on_reuse);
        assert!(
            !SimConfig::from_json("{}")
                .unwrap()
                .cadenza
                .revoke_family_on_reuse
        );
        let c = SimConfig::from_json(r#"{"cadenza":{"revoke_family_on_reuse":true}}"#).unwrap();
        assert!(c.cadenza.revoke_family_on_reuse);
        // The other Cadenza fields keep their defaults.
        assert_eq!(c.cadenza.users.len(), 2);
        assert_eq!(c.cadenza.access_ttl_secs, 3600);
        let c = SimConfig::from_json(r#"{"cadenza":{"revoke_family_on_reuse":false}}"#).unwrap();
        assert!(!c.cadenza.revoke_family_on_reuse);
        for bad in [
            r#"{"cadenza":{"revoke_family_on_reuse":"yes"}}"#,
            r#"{"cadenza":{"revoke_family_on_reuse":1}}"#,
            r#"{"cadenza":{"revoke_family_on_reuse":null}}"#,
        ] {
            let err = SimConfig::from_json(bad).unwrap_err().to_string();
            assert!(err.contains("expected a boolean"), "{bad}: {err}");
        }
        let err = SimConfig::from_json(r#"{"cadenza":{"revoke_family_on_use":true}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("revoke_family_on_use"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        for (json, field) in [
            (
                r#"{"cascade":{"accounts":[{"deposit_address":"0x12"}]}}"#,
                "cascade.accounts[0].deposit_address",
            ),
            (
                r#"{"exchange":{"traders":[{"username":"a","api_key":"exch_ABC"}]}}"#,
                "exchange.traders[0].api_key",
            ),
            (
                r#"{"cadenza":{"users":[{"email":"","password":"x"}]}}"#,
                "cadenza.users[0].email",
            ),
            (r#"{"exchange":{"admin_token":""}}"#, "exchange.admin_token"),
        ] {
            let err = SimConfig::from_json(json).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn ws_delta_interval_parses_and_defaults_off() {
        let c = SimConfig::default();
        assert_eq!(c.cascade.ws_delta_interval_ms, 0);
        assert_eq!(c.exchange.ws_delta_interval_ms, 0);
        let c = SimConfig::from_json(
            r#"{"cascade":{"ws_delta_interval_ms":50},"exchange":{"ws_delta_interval_ms":20}}"#,
        )
        .unwrap();
        assert_eq!(c.cascade.ws_delta_interval_ms, 50);
        assert_eq!(c.exchange.ws_delta_interval_ms, 20);
        assert_eq!(c.exchange.traders.len(), 1);
    }

    #[test]
    fn address_and_key_formats() {
        assert!(parse_address(demo::CASCADE_ACCOUNT).is_some());
        assert!(parse_address(&demo::CASCADE_ACCOUNT.to_uppercase().replace("0X", "0x")).is_some());
        assert!(parse_address("70997970C51812dc3A010C7d01b50e0d17dc79C8").is_none());
        assert!(is_exchange_api_key(demo::EXCHANGE_API_KEY));
        assert!(!is_exchange_api_key(
            "exch_1D4208BE6FA84B8CB0A2E5CFA9508D5F"
        ));
    }
}
