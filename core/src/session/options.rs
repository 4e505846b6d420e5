//! Session options shared by every venue: where to connect, what to trust, how long to wait.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// How a [`Session`](super::Session) connects and retries; every field has a safe default.
/// `Debug` hides any userinfo (user and password) in the store and base URLs, and the store key.
#[derive(Clone)]
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
    /// How far a venue's `Date` header may be from our wall clock and still be believed
    /// (default 15 min). A `Date` further off (a stale cache, a CDN) is ignored, with a
    /// `Distrusted` event; one within it can only shorten a token's lifetime.
    pub max_date_skew: Duration,
    /// The longest token lifetime believed (default 30 days); a longer stated one is
    /// clamped to it, with a `Distrusted` event. At least 1 s.
    pub max_lifetime: Duration,
    /// Shared credential store URL (`"memory:"`, `"file:///dir"`, `"redis://…"`,
    /// `"rediss://…"`); `None` keeps the credential in this session only. Used by Cadenza
    /// and Cascade sessions; Partner and Exchange need no sharing and ignore it.
    pub store: Option<String>,
    /// Key sealing the store's records (32 bytes as 64 hex digits or base64); `None`
    /// reads `TRADEAUTH_STORE_KEY`.
    pub store_key: Option<Secret>,
    /// Store records unencrypted when no key is set (never the default).
    pub store_plaintext: bool,
    /// How long a store lease lasts: the longest another process waits for a holder that
    /// crashed mid-refresh.
    pub store_lease_ttl: Duration,
    /// Bound on one store operation (connect included); past it the store counts as
    /// unreachable.
    pub store_timeout: Duration,
    /// Redis key prefix (default `tradeauth:`, or the URL's `?prefix=`).
    pub store_prefix: Option<String>,
    /// For a `rediss://` store: the CA certificate(s), PEM text, its certificate must
    /// chain to instead of the system's roots (a private CA); `None`: system roots.
    pub store_ca_pem: Option<String>,
    /// Keep a connection pool and TLS configuration of this session's own instead of
    /// sharing the process's pool with every session of the same trust (the default:
    /// ten thousand sessions to one venue then hold a handful of connections). For callers
    /// who want isolation; the origin, redirect and timeout rules are per session either way.
    pub private_pool: bool,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A store URL (Redis) or a base URL may carry a password in its userinfo.
        let store = self.store.as_deref().map(redact_url);
        let base_url = self.base_url.as_deref().map(redact_url);
        f.debug_struct("Options")
            .field("base_url", &base_url)
            .field("extra_root_certs", &self.extra_root_certs_pem.len())
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("background_refresh", &self.background_refresh)
            .field("refresh_window", &self.refresh_window)
            .field("max_date_skew", &self.max_date_skew)
            .field("max_lifetime", &self.max_lifetime)
            .field("store", &store)
            .field("store_key", &self.store_key.as_ref().map(|_| "[REDACTED]"))
            .field("store_plaintext", &self.store_plaintext)
            .field("store_lease_ttl", &self.store_lease_ttl)
            .field("store_timeout", &self.store_timeout)
            .field("store_prefix", &self.store_prefix)
            .field("store_ca", &self.store_ca_pem.is_some())
            .field("private_pool", &self.private_pool)
            .finish_non_exhaustive()
    }
}

/// A URL for `Debug`: its userinfo replaced with `[REDACTED]`. The URL parser splits the
/// userinfo at the last `@` before the host, so a password containing `@` is hidden whole;
/// an `@` the parser left elsewhere (a password containing `/`, say) or a text that does not
/// parse could hold part of a secret, so then nothing but the scheme is printed.
fn redact_url(raw: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(raw) else {
        return "[REDACTED: not a URL]".to_owned();
    };
    let scheme = url.scheme().to_owned();
    let had_userinfo = !url.username().is_empty() || url.password().is_some();
    if had_userinfo && (url.set_username("").is_err() || url.set_password(None).is_err()) {
        return format!("{scheme}:[REDACTED]");
    }
    let clean = url.as_str();
    if clean.contains('@') || clean.contains("%40") || (!had_userinfo && raw.contains('@')) {
        return format!("{scheme}:[REDACTED]");
    }
    match (had_userinfo, clean.strip_prefix(&format!("{scheme}://"))) {
        (true, Some(rest)) => format!("{scheme}://[REDACTED]@{rest}"),
        (true, None) => format!("{scheme}:[REDACTED]"),
        (false, _) => clean.to_owned(),
    }
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
            max_date_skew: Duration::from_secs(15 * 60),
            max_lifetime: crate::machine::DEFAULT_MAX_LIFETIME,
            store: None,
            store_key: None,
            store_plaintext: false,
            store_lease_ttl: Duration::from_secs(15),
            store_timeout: Duration::from_secs(2),
            store_prefix: None,
            store_ca_pem: None,
            private_pool: false,
        }
    }
}

/// One [`Options`] field as each binding spells it; `None` where a binding does not offer
/// it yet. [`Options::SCHEMA`] lists every field, and `core/tests/options_schema.rs` fails
/// when a field, a C setter, a C++ method or a Python keyword is missing from it or from
/// the binding it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The field's name in [`Options`].
    pub field: &'static str,
    /// The C function that sets it (`include/tradeauth.h`).
    pub c: Option<&'static str>,
    /// The C++ wrapper's `Options` method (`include/tradeauth.hpp`).
    pub cpp: Option<&'static str>,
    /// The Python constructor keyword (`python/tradeauth/_native.pyi`).
    pub python: Option<&'static str>,
}

const fn spec(
    field: &'static str,
    c: Option<&'static str>,
    cpp: Option<&'static str>,
    python: Option<&'static str>,
) -> OptionSpec {
    OptionSpec {
        field,
        c,
        cpp,
        python,
    }
}

impl Options {
    /// Every option, in field order, with its name in each binding.
    pub const SCHEMA: &'static [OptionSpec] = &[
        spec(
            "base_url",
            Some("tradeauth_options_set_base_url"),
            Some("base_url"),
            Some("base_url"),
        ),
        spec(
            "extra_root_certs_pem",
            Some("tradeauth_options_add_root_pem"),
            Some("add_root_pem"),
            Some("ca_cert"),
        ),
        spec(
            "request_timeout",
            Some("tradeauth_options_set_request_timeout_ms"),
            Some("request_timeout"),
            Some("timeout"),
        ),
        spec(
            "connect_timeout",
            Some("tradeauth_options_set_connect_timeout_ms"),
            Some("connect_timeout"),
            Some("connect_timeout"),
        ),
        spec(
            "auth_timeout",
            Some("tradeauth_options_set_auth_timeout_ms"),
            Some("auth_timeout"),
            Some("auth_timeout"),
        ),
        spec(
            "max_retries",
            Some("tradeauth_options_set_max_retries"),
            Some("max_retries"),
            Some("max_retries"),
        ),
        spec(
            "retry_base_delay",
            Some("tradeauth_options_set_retry_delays_ms"),
            Some("retry_delays"),
            Some("retry_base_delay"),
        ),
        spec(
            "retry_max_delay",
            Some("tradeauth_options_set_retry_delays_ms"),
            Some("retry_delays"),
            Some("retry_max_delay"),
        ),
        spec(
            "background_refresh",
            Some("tradeauth_options_set_background_refresh"),
            Some("background_refresh"),
            Some("background_refresh"),
        ),
        spec(
            "refresh_window",
            Some("tradeauth_options_set_refresh_window_ms"),
            Some("refresh_window"),
            Some("refresh_window"),
        ),
        spec(
            "max_date_skew",
            Some("tradeauth_options_set_max_date_skew_ms"),
            Some("max_date_skew"),
            Some("max_date_skew"),
        ),
        spec(
            "max_lifetime",
            Some("tradeauth_options_set_max_lifetime_ms"),
            Some("max_lifetime"),
            Some("max_lifetime"),
        ),
        spec(
            "store",
            Some("tradeauth_options_set_store"),
            Some("store"),
            Some("store"),
        ),
        spec(
            "store_key",
            Some("tradeauth_options_set_store_key"),
            Some("store_key"),
            Some("store_key"),
        ),
        spec(
            "store_plaintext",
            Some("tradeauth_options_set_store_plaintext"),
            Some("store_plaintext"),
            Some("store_plaintext"),
        ),
        spec(
            "store_lease_ttl",
            Some("tradeauth_options_set_store_lease_ms"),
            Some("store_lease"),
            Some("store_lease"),
        ),
        spec(
            "store_timeout",
            Some("tradeauth_options_set_store_timeout_ms"),
            Some("store_timeout"),
            Some("store_timeout"),
        ),
        spec(
            "store_prefix",
            Some("tradeauth_options_set_store_prefix"),
            Some("store_prefix"),
            Some("store_prefix"),
        ),
        spec(
            "store_ca_pem",
            Some("tradeauth_options_set_store_ca_pem"),
            Some("store_ca_pem"),
            Some("store_ca_cert"),
        ),
        spec(
            "private_pool",
            Some("tradeauth_options_set_private_pool"),
            Some("private_pool"),
            Some("private_pool"),
        ),
    ];

    /// Defaults: the venue's production URL, bundled roots, 10 s requests, 3 retries.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// Sets the venue base URL (must be `https://`; checked when the session is built).
        base_url(url: impl Into<String>) => base_url = Some(url.into());
    }

    /// Trusts the root certificate(s) in this PEM text too (a simulator's CA, a corporate proxy).
    pub fn add_root_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_root_certs_pem.push(pem.into());
        self
    }

    /// [`Options::add_root_pem`] for text a caller passed: text without a
    /// `-----BEGIN CERTIFICATE-----` block is an `InvalidArgument` error now, not a TLS
    /// failure at the first request. The error does not quote the text (it may be a key).
    pub fn try_add_root_pem(self, pem: impl Into<String>) -> Result<Self> {
        Ok(self.add_root_pem(certificate_text(pem.into(), "PEM text")?))
    }

    /// Trusts the root certificate(s) in this PEM file too. The file is read now; an
    /// unreadable one, or one without a `-----BEGIN CERTIFICATE-----` block, is an
    /// `InvalidArgument` error naming the path.
    pub fn add_root_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let pem = read_certificate_file(path.as_ref(), "root certificate")?;
        self.extra_root_certs_pem.push(pem);
        Ok(self)
    }

    /// [`Options::store_ca_pem`] for text a caller passed: text without a certificate
    /// block is an `InvalidArgument` error now (the text is not quoted).
    pub fn try_store_ca_pem(self, pem: impl Into<String>) -> Result<Self> {
        Ok(self.store_ca_pem(certificate_text(pem.into(), "store CA PEM text")?))
    }

    /// [`Options::store_ca_pem`] from a PEM file, read and checked now (errors name the
    /// path).
    pub fn store_ca_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let pem = read_certificate_file(path.as_ref(), "store CA certificate")?;
        Ok(self.store_ca_pem(pem))
    }

    setters! {
        /// Sets the bound on one HTTP exchange.
        request_timeout(timeout: Duration) => request_timeout = timeout;
        /// Sets the bound on one whole authentication including retries.
        auth_timeout(timeout: Duration) => auth_timeout = timeout;
        /// Sets how many times a failed transport / 5xx / 429 exchange is retried.
        max_retries(retries: u32) => max_retries = retries;
    }

    /// Sets the first and the largest backoff delay.
    pub fn retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max.max(base);
        self
    }

    /// [`Options::retry_delays`] for values a caller passed: a largest delay below the
    /// first is an `InvalidArgument` error now, not silently raised to the first.
    pub fn try_retry_delays(self, base: Duration, max: Duration) -> Result<Self> {
        if max < base {
            return Err(Error::invalid_argument(
                "the retry max delay must not be less than the base delay",
            ));
        }
        Ok(self.retry_delays(base, max))
    }

    setters! {
        /// Turns the background refresher on or off (off: refresh happens on demand).
        background_refresh(enabled: bool) => background_refresh = enabled;
        /// Sets how long before expiry a token is renewed.
        refresh_window(window: Duration) => refresh_window = Some(window);
        /// Trusts this CA (PEM text) for a `rediss://` store instead of the system's roots.
        store_ca_pem(pem: impl Into<String>) => store_ca_pem = Some(pem.into());
        /// Sets how far a venue's `Date` may be from our clock and still be believed.
        max_date_skew(bound: Duration) => max_date_skew = bound;
        /// Sets the longest token lifetime believed (at least 1 s).
        max_lifetime(max: Duration) => max_lifetime = max;
        /// Shares the credential through a store: `"memory:"` (sessions of this process),
        /// `"file:///var/lib/tradeauth"` (processes of one host), `"redis://127.0.0.1:6379/0"`
        /// or `"rediss://…"` (several hosts). Records are encrypted: set
        /// [`store_key`](Self::store_key) or `TRADEAUTH_STORE_KEY`.
        store(url: impl Into<String>) => store = Some(url.into());
        /// Sets the store encryption key: 32 bytes as 64 hex digits or base64.
        store_key(key: impl Into<Secret>) => store_key = Some(key.into());
        /// Allows unencrypted store records when no key is set.
        store_plaintext(plaintext: bool) => store_plaintext = plaintext;
        /// Keeps a private connection pool instead of the process's shared one.
        private_pool(private: bool) => private_pool = private;
        /// Sets the store lease lifetime (default 15 s).
        store_lease_ttl(ttl: Duration) => store_lease_ttl = ttl;
        /// Sets the bound on one store operation (default 2 s).
        store_timeout(timeout: Duration) => store_timeout = timeout;
        /// Sets the Redis key prefix (default `tradeauth:`).
        store_prefix(prefix: impl Into<String>) => store_prefix = Some(prefix.into());
    }

    /// The TLS configuration (TLS 1.2+, the bundled roots plus the extra ones) a session
    /// with these options connects with; for diagnostics such as `tradeauth check`, and
    /// for callers that open their own connections to a venue with the same trust.
    pub fn tls_client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>> {
        super::tls::client_config(&self.extra_root_certs_pem)
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
            ("store_lease_ttl", self.store_lease_ttl),
            ("store_timeout", self.store_timeout),
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

/// `pem` if it holds a certificate block; otherwise an `InvalidArgument` error naming
/// `what`, never quoting the text (it may be a key).
fn certificate_text(pem: String, what: &str) -> Result<String> {
    if holds_certificate(&pem) {
        Ok(pem)
    } else {
        Err(Error::invalid_argument(format!(
            "the {what} holds no -----BEGIN CERTIFICATE----- block"
        )))
    }
}

/// Whether PEM text holds at least one certificate block (the one test every binding's
/// root-certificate option uses).
fn holds_certificate(pem: &str) -> bool {
    pem.contains("-----BEGIN CERTIFICATE-----")
}

/// The PEM text of a certificate file: unreadable, or without a certificate block, is an
/// `InvalidArgument` error naming the path (and `what` it was meant to be).
fn read_certificate_file(path: &Path, what: &str) -> Result<String> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot read {what} file {}: {e}", path.display()),
        )
    })?;
    if !holds_certificate(&pem) {
        return Err(Error::invalid_argument(format!(
            "{} holds no -----BEGIN CERTIFICATE----- block",
            path.display()
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::Options;
    use crate::error::ErrorKind;

    #[test]
    fn root_certificates_must_hold_a_certificate() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-a-cert\n-----END PRIVATE KEY-----\n";
        let e = Options::new().try_add_root_pem(key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            !e.to_string().contains("MIIEvQ"),
            "the text is not quoted: {e}"
        );
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let o = Options::new().try_add_root_pem(cert).unwrap();
        assert_eq!(o.extra_root_certs_pem, vec![cert.to_owned()]);

        let dir = std::env::temp_dir().join(format!("tradeauth-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (good, bad) = (dir.join("good.pem"), dir.join("bad.pem"));
        std::fs::write(&good, cert).unwrap();
        std::fs::write(&bad, key).unwrap();
        assert_eq!(
            Options::new()
                .add_root_file(&good)
                .unwrap()
                .extra_root_certs_pem,
            vec![cert.to_owned()]
        );
        let e = Options::new().add_root_file(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.message().contains("bad.pem") && !e.message().contains("MIIEvQ"),
            "{e}"
        );
        let e = Options::new()
            .add_root_file(dir.join("missing.pem"))
            .unwrap_err();
        assert!(e.message().contains("missing.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn debug(options: &Options) -> String {
        format!("{options:?}")
    }

    /// `options`' Debug hides every one of `secrets` and shows the URL as `shown_as`.
    fn hides(options: &Options, secrets: &[&str], shown_as: &str) {
        let shown = debug(options);
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(shown_as), "{shown}");
    }

    #[test]
    fn retry_delays_are_checked_or_clamped() {
        use std::time::Duration;
        let (short, long) = (Duration::from_millis(10), Duration::from_millis(20));
        let e = Options::new().try_retry_delays(long, short).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
        let o = Options::new().try_retry_delays(short, short).unwrap();
        assert_eq!((o.retry_base_delay, o.retry_max_delay), (short, short));
        let o = Options::new().retry_delays(long, short);
        assert_eq!((o.retry_base_delay, o.retry_max_delay), (long, long));
    }

    #[test]
    fn store_password_with_at_is_hidden_whole() {
        hides(
            &Options::new().store("redis://user:p@ss@w0rd@redis.example:6379/0"),
            &["p@ss", "w0rd", "ss@"],
            "redis://[REDACTED]@redis.example:6379/0",
        );
    }

    #[test]
    fn store_password_only_is_hidden() {
        hides(
            &Options::new().store("rediss://:hunter2secret@cache:6380"),
            &["hunter2secret"],
            "rediss://[REDACTED]@cache:6380",
        );
    }

    #[test]
    fn base_url_userinfo_is_hidden() {
        hides(
            &Options::new().base_url("https://alice:s3cr3t-pw@venue.example/api"),
            &["s3cr3t-pw", "alice"],
            "https://[REDACTED]@venue.example/api",
        );
    }

    #[test]
    fn password_the_parser_splits_elsewhere_is_hidden() {
        // "user:12/ss@host" parses as host "user", port 12, path "/ss@host".
        for raw in [
            "redis://user:12/ss@host:6379",
            "redis://:pa/ss@host",
            "redis://:nohost-secret",
            "https://x.example/?token=a@b",
        ] {
            let shown = debug(&Options::new().store(raw).base_url(raw));
            for part in ["12/ss", "pa/ss", "nohost-secret", "a@b", "ss@host"] {
                assert!(!shown.contains(part), "{raw}: {shown}");
            }
        }
    }

    #[test]
    fn urls_without_userinfo_are_shown() {
        let shown = debug(
            &Options::new()
                .store("file:///var/lib/tradeauth")
                .base_url("https://venue.example:8443"),
        );
        assert!(shown.contains("file:///var/lib/tradeauth"), "{shown}");
        assert!(shown.contains("https://venue.example:8443/"), "{shown}");
        assert!(debug(&Options::new().store("memory:")).contains("memory:"));
    }
}
