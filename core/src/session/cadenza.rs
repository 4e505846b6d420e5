//! Cadenza sessions: email + password login, rotating refresh tokens.

use std::time::Duration;

use super::{Options, Session};
use crate::error::Result;
use crate::machine::{CadenzaConfig, CadenzaMachine};
use crate::secret::Secret;

/// Cadenza's production API, the page's default.
pub const CADENZA_PRODUCTION_URL: &str = "https://cadenza-api.algo724.com";
/// Cadenza's UAT (test) API, named on the page.
pub const CADENZA_UAT_URL: &str = "https://cadenza-api-uat.algo724.com";

impl Session {
    /// A Cadenza session; the first credential request logs in.
    pub fn cadenza(config: CadenzaConfig, options: Options) -> Result<Self> {
        Self::renewing(config, CadenzaMachine::new, CADENZA_PRODUCTION_URL, options)
    }

    /// A Cadenza session from `CADENZA_EMAIL`, `CADENZA_PASSWORD` and optionally
    /// `CADENZA_BASE_URL` and `TRADEAUTH_CA_CERT`; explicit `options` fields win.
    pub fn cadenza_from_env(options: Options) -> Result<Self> {
        let email = super::env::required("CADENZA_EMAIL")?;
        let password = Secret::new(super::env::required("CADENZA_PASSWORD")?);
        let options = super::env::apply_base_url(options, "CADENZA_BASE_URL")?;
        Self::cadenza(CadenzaConfig::new(email, password), options)
    }

    /// Cadenza only: the current (rotated) refresh token, for callers that must persist it.
    pub async fn refresh_token(&self) -> Option<Secret> {
        self.with_venue_machine(|m: &mut CadenzaMachine| m.refresh_token().cloned())
            .await
            .flatten()
    }

    /// The venue's wall-clock expiry of the current token, in Unix milliseconds.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.current().and_then(|c| c.expires_at_ms())
    }
}

impl super::RenewalConfig for CadenzaConfig {
    fn renewal(&mut self) -> (&mut Duration, &mut u64, &mut Duration) {
        (
            &mut self.refresh_window,
            &mut self.jitter_seed,
            &mut self.max_lifetime,
        )
    }
}
