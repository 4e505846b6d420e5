//! Cascade sessions: wallet challenge, EIP-191 signature by a delegate key, bearer JWT.

use std::time::Duration;

use super::{Options, Session};
use crate::error::{Error, Result};
use crate::machine::{CascadeConfig, CascadeMachine};
use crate::secret::Secret;

/// Cascade's matcher, the page's host.
pub const CASCADE_URL: &str = "https://matcher.cascade.xyz";

impl Session {
    /// A Cascade session; the first credential request runs the challenge flow.
    pub fn cascade(config: CascadeConfig, options: Options) -> Result<Self> {
        Self::renewing(config, CascadeMachine::new, CASCADE_URL, options)
    }

    /// A Cascade session from `CASCADE_DEPOSIT_ADDRESS` and either
    /// `CASCADE_DELEGATE_PRIVATE_KEY` or `CASCADE_KEYSTORE` (a keystore file's path) with
    /// `CASCADE_KEYSTORE_PASSWORD`; optionally `CASCADE_BASE_URL` and `TRADEAUTH_CA_CERT`.
    /// Each also as `<NAME>_FILE`.
    pub fn cascade_from_env(options: Options) -> Result<Self> {
        let deposit = super::env::required("CASCADE_DEPOSIT_ADDRESS")?;
        let key = super::env::optional("CASCADE_DELEGATE_PRIVATE_KEY")?.map(Secret::new);
        let keystore = super::env::optional("CASCADE_KEYSTORE")?;
        let config = match (key, keystore) {
            (Some(key), None) => CascadeConfig::new(deposit, key),
            (None, Some(path)) => {
                let password = Secret::new(super::env::required("CASCADE_KEYSTORE_PASSWORD")?);
                CascadeConfig::from_keystore(
                    deposit,
                    std::path::Path::new(&path),
                    password.expose().as_bytes(),
                )?
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid_argument(
                    "both CASCADE_DELEGATE_PRIVATE_KEY and CASCADE_KEYSTORE are set; a session \
                     takes exactly one key source",
                ));
            }
            (None, None) => {
                return Err(Error::invalid_argument(
                    "set CASCADE_DELEGATE_PRIVATE_KEY (or _FILE), or CASCADE_KEYSTORE with \
                     CASCADE_KEYSTORE_PASSWORD",
                ));
            }
        };
        let options = super::env::apply_base_url(options, "CASCADE_BASE_URL")?;
        Self::cascade(config, options)
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
