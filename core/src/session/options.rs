//! Session options shared by every venue: where to connect, what to trust, how long to wait.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// How a [`Session`](super::Session) connects and retries; every field has a safe default.
#[derive(Clone, Debug)]
pub struct Options {
    /// The venue's base URL (`https://` only); `None` uses the venue page's production URL.
    pub base_url: Option<String>,
    /// Extra trusted root certificates (PEM text), on top of the bundled Mozilla roots.
    pub extra_root_certs_pem: Vec<String>,
    /// Bound on one HTTP exchange (connect + request + response body).
    pub request_timeout: Duration,
    /// Bound on establishing one TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Bound on one whole authentication (login/refresh/challenge) including its retries.
    pub auth_timeout: Duration,
    /// Retries after the first attempt on transport errors, 5xx and 429.
    pub max_retries: u32,
    /// First backoff delay; it doubles per retry, with full jitter.
    pub retry_base_delay: Duration,
    /// Cap on one backoff delay (a longer `Retry-After` is capped by `auth_timeout`).
    pub retry_max_delay: Duration,
    /// Refresh in a background task before expiry, so callers normally never wait.
    pub background_refresh: bool,
    /// Overrides the venue's default refresh window (always capped at a quarter of the token lifetime).
    pub refresh_window: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base_url: None,
            extra_root_certs_pem: Vec::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            auth_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(5),
            background_refresh: true,
            refresh_window: None,
        }
    }
}

impl Options {
    /// Defaults: the venue's production URL, bundled roots, 10 s requests, 3 retries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the venue base URL (must be `https://`; checked when the session is built).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Trusts the root certificate(s) in this PEM text too (a simulator's CA, a corporate proxy).
    pub fn add_root_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_root_certs_pem.push(pem.into());
        self
    }

    /// Trusts the root certificate(s) in this PEM file too.
    pub fn add_root_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot read root certificate file {}: {e}", path.display()),
            )
        })?;
        self.extra_root_certs_pem.push(pem);
        Ok(self)
    }

    /// Sets the bound on one HTTP exchange.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the bound on one whole authentication including retries.
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.auth_timeout = timeout;
        self
    }

    /// Sets how many times a failed transport / 5xx / 429 exchange is retried.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the first and the largest backoff delay.
    pub fn retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max.max(base);
        self
    }

    /// Turns the background refresher on or off (off: refresh happens on demand).
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.background_refresh = enabled;
        self
    }

    /// Sets how long before expiry a token is renewed.
    pub fn refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = Some(window);
        self
    }

    /// Reads `TRADEAUTH_CA_CERT` (a PEM file to trust in addition to the bundled roots).
    pub(crate) fn with_env_roots(self) -> Result<Self> {
        match std::env::var_os("TRADEAUTH_CA_CERT") {
            Some(path) if !path.is_empty() => self.add_root_file(path),
            _ => Ok(self),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("auth_timeout", self.auth_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{name} must be greater than zero"),
                ));
            }
        }
        Ok(())
    }
}
