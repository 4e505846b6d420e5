//! The one HTTPS client configuration every session uses: rustls (aws-lc-rs), TLS 1.2+,
//! bundled Mozilla roots plus the caller's extra roots, HTTPS only, no cross-origin
//! redirects.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, ErrorKind, Result};

/// Builds the rustls client configuration shared by HTTP and WebSocket connections.
pub(crate) fn client_config(extra_roots_pem: &[String]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("extra root certificate is not valid PEM: {e}"),
                )
            })?;
            roots.add(cert).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("extra root certificate was refused: {e}"),
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "extra root certificate PEM holds no CERTIFICATE block",
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The most idle connections a pool keeps to one origin.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// Builds a pooled HTTPS client (shared by the sessions of one trust, see `pool.rs`).
pub(crate) fn http_client(
    tls: &rustls::ClientConfig,
    connect_timeout: std::time::Duration,
) -> Result<reqwest::Client> {
    // A redirect may stay on the same origin (scheme, host, port) only: credentials are
    // attached by us, not by reqwest, but `x-api-key` would otherwise follow the redirect,
    // and an https -> http hop is refused by https_only anyway.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .https_only(true)
        .redirect(redirects)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        // Sessions share this client (see `pool.rs`): bound what an HTTP/1.1 venue keeps
        // open between bursts; an HTTP/2 venue multiplexes everything on one connection.
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .no_proxy()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("HTTP client setup failed: {e}"),
            )
        })
}

/// Whether a URL is acceptable as a venue base URL: `https://` with a host.
pub(crate) fn parse_base_url(raw: &str) -> Result<reqwest::Url> {
    // The raw text is never echoed: a mistyped URL may carry user:password.
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("base URL is not a URL: {e}"),
        )
    })?;
    if url.username() != "" || url.password().is_some() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "base URL must not embed user:password; pass credentials to the session instead",
        ));
    }
    if url.scheme() != "https" {
        return Err(Error::new(
            ErrorKind::InsecureUrl,
            format!(
                "base URL scheme is {:?}, not https: venues reject plain HTTP and credentials must not travel in clear",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "base URL has no host",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_with_any_part_of_a_login_is_refused_without_echoing_it() {
        // Each part alone is enough: a user name alone is still someone's login.
        for raw in [
            "https://trader@venue.example/api",
            "https://:Hunter2pw@venue.example/api",
            "https://trader:Hunter2pw@venue.example/api",
        ] {
            let error = parse_base_url(raw).expect_err(raw);
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{raw}");
            let text = error.to_string();
            assert!(text.contains("user:password"), "{raw}: {text}");
            assert!(
                !text.contains("trader") && !text.contains("Hunter2pw"),
                "{text}"
            );
        }
    }

    #[test]
    fn only_an_https_url_with_a_host_is_a_base_url() {
        let url = parse_base_url("  https://venue.example:8443/api \n").expect("https");
        assert_eq!(url.as_str(), "https://venue.example:8443/api");
        for (raw, kind) in [
            ("http://venue.example/api", ErrorKind::InsecureUrl),
            ("wss://venue.example/ws", ErrorKind::InsecureUrl),
            ("venue.example/api", ErrorKind::InvalidArgument),
            ("https://", ErrorKind::InvalidArgument),
        ] {
            let error = parse_base_url(raw).expect_err(raw);
            assert_eq!(error.kind(), kind, "{raw}: {error}");
        }
    }

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        let none =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let error = client_config(&[none.to_owned()]).expect_err("no certificate block");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(error.message().contains("no CERTIFICATE"), "{error}");
        assert!(!error.message().contains("MC4CAQAw"), "{error}");
        let junk =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let error = client_config(&[junk.to_owned()]).expect_err("not a certificate");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        // No extra roots: the bundled ones only.
        assert!(client_config(&[]).is_ok());
    }
}
