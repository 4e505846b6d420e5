//! Partner sessions: locally minted HS256 JWTs, re-minted before expiry or after a 401.

use std::time::Duration;

use super::{Options, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::machine::{PartnerConfig, PartnerMachine};
use crate::secret::Secret;

impl Session {
    /// A Partner session. The page names no public host, so `options.base_url` is required.
    pub fn partner(mut config: PartnerConfig, options: Options) -> Result<Self> {
        if let Some(window) = options.refresh_window {
            config.refresh_window = window;
        }
        Self::from_machine(move || PartnerMachine::new(config.clone()), None, options)
    }

    /// A Partner session from `PARTNER_CLIENT_ID`, `PARTNER_SECRET_KEY`, `PARTNER_BASE_URL`
    /// (required), and optionally `PARTNER_TOKEN_TTL_SECS` and `TRADEAUTH_CA_CERT`.
    pub fn partner_from_env(options: Options) -> Result<Self> {
        let client_id = super::env::required("PARTNER_CLIENT_ID")?;
        let secret = Secret::new(super::env::required("PARTNER_SECRET_KEY")?);
        let options = super::env::apply_base_url(options, "PARTNER_BASE_URL")?;
        let mut config = PartnerConfig::new(client_id, secret);
        if let Ok(raw) = std::env::var("PARTNER_TOKEN_TTL_SECS") {
            let secs: u64 = raw.trim().parse().map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "PARTNER_TOKEN_TTL_SECS must be a whole number of seconds",
                )
            })?;
            config.ttl = Duration::from_secs(secs);
        }
        Self::partner(config, options)
    }
}
