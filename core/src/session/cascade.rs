//! Cascade sessions: wallet challenge, EIP-191 signature by a delegate key, bearer JWT.

use std::time::Duration;

use super::{Options, Session};
use crate::error::Result;
use crate::machine::{CascadeConfig, CascadeMachine};
use crate::secret::Secret;

/// Cascade's matcher, the page's host.
pub const CASCADE_URL: &str = "https://matcher.cascade.xyz";

impl Session {
    /// A Cascade session; the first credential request runs the challenge flow.
    pub fn cascade(config: CascadeConfig, options: Options) -> Result<Self> {
        Self::renewing(config, CascadeMachine::new, CASCADE_URL, options)
    }

    /// A Cascade session from `CASCADE_DEPOSIT_ADDRESS`, `CASCADE_DELEGATE_PRIVATE_KEY` and
    /// optionally `CASCADE_BASE_URL` and `TRADEAUTH_CA_CERT`.
    pub fn cascade_from_env(options: Options) -> Result<Self> {
        let deposit = super::env::required("CASCADE_DEPOSIT_ADDRESS")?;
        let key = Secret::new(super::env::required("CASCADE_DELEGATE_PRIVATE_KEY")?);
        let options = super::env::apply_base_url(options, "CASCADE_BASE_URL")?;
        Self::cascade(CascadeConfig::new(deposit, key), options)
    }

    /// Cascade only: the claims of the current session token (`sub`, `exp`, ...).
    pub async fn claims(&self) -> Option<serde_json::Value> {
        self.with_venue_machine(|m: &mut CascadeMachine| m.claims().cloned())
            .await
            .flatten()
    }
}

impl super::RenewalConfig for CascadeConfig {
    fn renewal(&mut self) -> (&mut Duration, &mut u64, &mut Duration) {
        (
            &mut self.refresh_window,
            &mut self.jitter_seed,
            &mut self.max_lifetime,
        )
    }
}
