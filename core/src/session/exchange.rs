//! Exchange sessions: a permanent trader API key, an admin bearer token, or public use.

use super::{Options, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{ExchangeConfig, ExchangeMachine};
use crate::secret::Secret;

/// Exchange's public host, the page's.
pub const EXCHANGE_URL: &str = "https://exchange.jamesxu.dev";

impl Session {
    /// An Exchange session; the key's format is checked here, before anything is sent.
    pub fn exchange(config: ExchangeConfig, options: Options) -> Result<Self> {
        Self::from_machine(
            move || ExchangeMachine::new(config.clone()),
            Some(EXCHANGE_URL),
            options,
        )
    }

    /// An Exchange session from `EXCHANGE_API_KEY` (trader) or `EXCHANGE_ADMIN_TOKEN`
    /// (operator), and optionally `EXCHANGE_BASE_URL` and `TRADEAUTH_CA_CERT`.
    pub fn exchange_from_env(options: Options) -> Result<Self> {
        let options = super::env::apply_base_url(options, "EXCHANGE_BASE_URL")?;
        let key = super::env::optional("EXCHANGE_API_KEY")?;
        let admin = super::env::optional("EXCHANGE_ADMIN_TOKEN")?;
        let config = match (key, admin) {
            (Some(key), None) => ExchangeConfig::trader(Secret::new(key)),
            (None, Some(token)) => ExchangeConfig::admin(Secret::new(token)),
            (Some(_), Some(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "both EXCHANGE_API_KEY and EXCHANGE_ADMIN_TOKEN are set; a session holds one role",
                ));
            }
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "set EXCHANGE_API_KEY (trader) or EXCHANGE_ADMIN_TOKEN (operator)",
                ));
            }
        };
        Self::exchange(config, options)
    }
}
