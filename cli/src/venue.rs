//! Which venue a command talks to, and its session from the environment.

use std::path::PathBuf;
use std::time::Duration;

use tradeauth::{Options, Session};

/// A venue named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum VenueArg {
    /// Cadenza: CADENZA_EMAIL, CADENZA_PASSWORD.
    Cadenza,
    /// Partner: PARTNER_CLIENT_ID, PARTNER_SECRET_KEY.
    Partner,
    /// Cascade: CASCADE_DEPOSIT_ADDRESS, CASCADE_DELEGATE_PRIVATE_KEY.
    Cascade,
    /// Exchange: EXCHANGE_API_KEY (trader) or EXCHANGE_ADMIN_TOKEN.
    Exchange,
}

impl VenueArg {
    /// The venue's lower-case name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            VenueArg::Cadenza => "cadenza",
            VenueArg::Partner => "partner",
            VenueArg::Cascade => "cascade",
            VenueArg::Exchange => "exchange",
        }
    }

    /// The environment variables its credentials come from (for fixes; never values).
    pub(crate) fn credential_vars(self) -> &'static str {
        match self {
            VenueArg::Cadenza => "CADENZA_EMAIL and CADENZA_PASSWORD",
            VenueArg::Partner => "PARTNER_CLIENT_ID and PARTNER_SECRET_KEY",
            VenueArg::Cascade => "CASCADE_DEPOSIT_ADDRESS and CASCADE_DELEGATE_PRIVATE_KEY",
            VenueArg::Exchange => "EXCHANGE_API_KEY (or EXCHANGE_ADMIN_TOKEN)",
        }
    }

    /// The variable naming its base URL.
    pub(crate) fn base_url_var(self) -> &'static str {
        match self {
            VenueArg::Cadenza => "CADENZA_BASE_URL",
            VenueArg::Partner => "PARTNER_BASE_URL",
            VenueArg::Cascade => "CASCADE_BASE_URL",
            VenueArg::Exchange => "EXCHANGE_BASE_URL",
        }
    }

    /// The production URL the session uses when nothing else is given (Partner's page
    /// names none).
    pub(crate) fn default_url(self) -> Option<&'static str> {
        match self {
            VenueArg::Cadenza => Some(tradeauth::CADENZA_PRODUCTION_URL),
            VenueArg::Partner => None,
            VenueArg::Cascade => Some(tradeauth::CASCADE_URL),
            VenueArg::Exchange => Some(tradeauth::EXCHANGE_URL),
        }
    }

    /// A GET the venue answers only with a valid credential (for `check`).
    pub(crate) fn protected_path(self) -> &'static str {
        match self {
            VenueArg::Cadenza => "/api/v3/user/profile",
            VenueArg::Partner => "/portfolio",
            VenueArg::Cascade => "/account/orders",
            VenueArg::Exchange => "/api/v1/user",
        }
    }

    /// Whether the venue has an authenticated WebSocket.
    pub(crate) fn has_websocket(self) -> bool {
        matches!(self, VenueArg::Cascade | VenueArg::Exchange)
    }

    /// What obtaining a credential is called at this venue.
    pub(crate) fn auth_step(self) -> &'static str {
        match self {
            VenueArg::Cadenza => "login",
            VenueArg::Partner => "mint",
            VenueArg::Cascade => "sign",
            VenueArg::Exchange => "key",
        }
    }
}

/// Where to connect and what to trust, shared by every venue command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// The venue's base URL (overrides <VENUE>_BASE_URL; https:// only).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A PEM file of extra trusted CA certificates (as TRADEAUTH_CA_CERT).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Bound on each HTTP exchange, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
}

impl Connection {
    /// The options for a one-shot session: no background renewal, quick failures.
    pub(crate) fn options(&self) -> tradeauth::Result<Options> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 3600.0) {
            return Err(tradeauth::Error::new(
                tradeauth::ErrorKind::InvalidArgument,
                "--timeout must be a number of seconds between 0 and 3600",
            ));
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        let mut options = Options::new()
            .background_refresh(false)
            .request_timeout(timeout)
            .auth_timeout(timeout.saturating_mul(2))
            .max_retries(1);
        options.connect_timeout = timeout.min(Duration::from_secs(5));
        if let Some(url) = &self.base_url {
            options = options.base_url(url.clone());
        }
        if let Some(path) = &self.ca_cert {
            options = options.add_root_file(path)?;
        }
        // The `from_env` constructors read it too; `check`'s own TLS probe needs it here.
        if let Some(path) = std::env::var_os("TRADEAUTH_CA_CERT").filter(|p| !p.is_empty()) {
            options = options.add_root_file(path)?;
        }
        Ok(options)
    }

    /// The base URL the session will use: the flag, the venue's variable, the default.
    pub(crate) fn base_url(&self, venue: VenueArg) -> Option<String> {
        self.base_url
            .clone()
            .or_else(|| {
                std::env::var(venue.base_url_var())
                    .ok()
                    .filter(|v| !v.trim().is_empty())
            })
            .or_else(|| venue.default_url().map(str::to_owned))
    }
}

/// The venue's session from the environment, as the `*_from_env` constructors build it.
pub(crate) fn session(venue: VenueArg, connection: &Connection) -> tradeauth::Result<Session> {
    let options = connection.options()?;
    match venue {
        VenueArg::Cadenza => Session::cadenza_from_env(options),
        VenueArg::Partner => Session::partner_from_env(options),
        VenueArg::Cascade => Session::cascade_from_env(options),
        VenueArg::Exchange => Session::exchange_from_env(options),
    }
}
