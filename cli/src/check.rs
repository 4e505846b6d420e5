//! `tradeauth check VENUE`: a preflight, one line per layer an auth failure can come
//! from (URL, DNS, TCP, TLS, clock, credentials, token lifetime, a protected call,
//! WebSocket auth), each pass / warn / fail with the fix to try.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tradeauth::{ErrorKind, Method, Session};

use crate::exit;
use crate::tables::{span, unix_now_ms};
use crate::venue::{self, Connection, VenueArg};

/// A venue clock this far from ours (either way) is a warning...
const CLOCK_WARN_MS: i64 = 2_000;
/// ...and this far a failure: self-minted tokens (Partner) are refused and renewal
/// margins shrink.
const CLOCK_FAIL_MS: i64 = 30_000;
/// A certificate expiring sooner than this is a warning.
const CERT_WARN_DAYS: i64 = 14;

/// `tradeauth check` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The venue.
    venue: VenueArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The protected GET to try [default: the venue's profile/portfolio/orders path].
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Skip the WebSocket line.
    #[arg(long)]
    no_websocket: bool,
    #[command(flatten)]
    connection: Connection,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    /// What was checked.
    name: &'static str,
    /// `pass`, `warn`, `fail` or `skip`.
    status: Status,
    /// What was found (never a secret).
    detail: String,
    /// What to try, for a warning or a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Line {
    fn pass(name: &'static str, detail: impl Into<String>) -> Line {
        Line {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn skip(name: &'static str, detail: impl Into<String>) -> Line {
        Line {
            name,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Runs the checks, prints the report; exit 0 only if no line failed.
pub(crate) async fn run(args: Args) -> i32 {
    let base_url = args.connection.base_url(args.venue);
    let lines = checks(&args, base_url.as_deref()).await;
    let failed = lines.iter().filter(|l| l.status == Status::Fail).count();
    let warned = lines.iter().filter(|l| l.status == Status::Warn).count();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "venue": args.venue.name(),
                "base_url": base_url,
                "ok": failed == 0,
                "checks": lines,
            })
        );
    } else {
        println!(
            "tradeauth check {} ({})",
            args.venue.name(),
            base_url.as_deref().unwrap_or("no base URL")
        );
        for line in &lines {
            let mark = match line.status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            println!("  {mark}  {:<9} {}", line.name, line.detail);
            if let Some(fix) = &line.fix {
                println!("        {:<9} fix: {fix}", "");
            }
        }
        println!(
            "{}: {failed} failed, {warned} warning{}",
            if failed == 0 { "ok" } else { "FAILED" },
            if warned == 1 { "" } else { "s" }
        );
    }
    if failed == 0 {
        0
    } else {
        exit::EXIT_CHECK_FAILED
    }
}

/// Where to connect, from a base URL.
struct Target {
    host: String,
    port: u16,
    path: String,
}

/// Every line, in order; a line that cannot run because an earlier one failed is a skip.
async fn checks(args: &Args, base_url: Option<&str>) -> Vec<Line> {
    let venue = args.venue;
    let timeout = Duration::from_secs_f64(args.connection.timeout.clamp(0.1, 3600.0));
    let mut lines = Vec::new();
    let target = match url_line(venue, base_url) {
        Ok((line, target)) => {
            lines.push(line);
            Some(target)
        }
        Err(line) => {
            lines.push(line);
            None
        }
    };
    let options = args.connection.options();
    let session = venue::session(venue, &args.connection);

    // The network path, independent of the credentials.
    let mut reachable = false;
    let mut date_skew_ms = None;
    if let Some(target) = &target {
        let addrs = match dns(target, timeout).await {
            Ok(addrs) => {
                let shown: Vec<String> = addrs.iter().take(3).map(|a| a.ip().to_string()).collect();
                lines.push(Line::pass(
                    "dns",
                    format!("{} -> {}", target.host, shown.join(", ")),
                ));
                addrs
            }
            Err(detail) => {
                lines.push(Line::fail(
                    "dns",
                    detail,
                    "check the host name in the base URL and this machine's resolver (/etc/resolv.conf)",
                ));
                Vec::new()
            }
        };
        let tcp = match addrs.first() {
            None => None,
            Some(addr) => {
                let started = Instant::now();
                match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        lines.push(Line::pass(
                            "tcp",
                            format!(
                                "connected to {addr} in {} ms",
                                started.elapsed().as_millis()
                            ),
                        ));
                        Some(stream)
                    }
                    Ok(Err(e)) => {
                        lines.push(Line::fail(
                            "tcp",
                            format!("cannot connect to {addr}: {e}"),
                            "check the port, a firewall or an egress proxy between here and the venue",
                        ));
                        None
                    }
                    Err(_) => {
                        lines.push(Line::fail(
                            "tcp",
                            format!("no connection to {addr} within {}", span(millis(timeout))),
                            "a firewall may be dropping packets; check the route to the venue",
                        ));
                        None
                    }
                }
            }
        };
        match (tcp, &options) {
            (Some(stream), Ok(options)) => match options.tls_client_config() {
                Ok(config) => {
                    let (line, stream) = tls(stream, target, config, timeout).await;
                    lines.push(line);
                    if let Some(stream) = stream {
                        reachable = true;
                        let (line, skew) = clock(stream, target, timeout).await;
                        lines.push(line);
                        date_skew_ms = skew;
                    } else {
                        lines.push(Line::skip("clock", "needs a TLS connection"));
                    }
                }
                Err(error) => lines.push(Line::fail(
                    "tls",
                    error.message().to_owned(),
                    "fix the CA file given with --ca-cert or TRADEAUTH_CA_CERT",
                )),
            },
            (Some(_), Err(error)) => lines.push(Line::fail(
                "tls",
                error.message().to_owned(),
                "fix the CA file given with --ca-cert or TRADEAUTH_CA_CERT, or --timeout",
            )),
            (None, _) => {
                lines.push(Line::skip("tls", "needs a TCP connection"));
                lines.push(Line::skip("clock", "needs a TLS connection"));
            }
        }
    } else {
        for name in ["dns", "tcp", "tls", "clock"] {
            lines.push(Line::skip(name, "needs a valid base URL"));
        }
    }

    // The credentials, through the library exactly as an application would use it.
    let auth_name = venue.auth_step();
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            lines.push(auth_failure(venue, auth_name, &error));
            for name in ["token", "call", "websocket"] {
                lines.push(Line::skip(name, "needs a session"));
            }
            return lines;
        }
    };
    if !reachable {
        lines.push(Line::skip(
            auth_name,
            "the venue is not reachable (see above)",
        ));
        for name in ["token", "call", "websocket"] {
            lines.push(Line::skip(name, "the venue is not reachable"));
        }
        return lines;
    }
    let started = Instant::now();
    let credential = match tokio::time::timeout(timeout * 3, session.credential()).await {
        Ok(Ok(credential)) => credential,
        Ok(Err(error)) => {
            lines.push(auth_failure(venue, auth_name, &error));
            for name in ["token", "call", "websocket"] {
                lines.push(Line::skip(name, "needs a credential"));
            }
            return lines;
        }
        Err(_) => {
            lines.push(Line::fail(
                auth_name,
                format!("no credential within {}", span(millis(timeout * 3))),
                "the venue answers too slowly: retry with a larger --timeout",
            ));
            return lines;
        }
    };
    let took = started.elapsed().as_millis();
    lines.push(Line::pass(
        auth_name,
        match venue {
            VenueArg::Cadenza => format!("logged in as {} in {took} ms", session.account()),
            VenueArg::Partner => format!("minted a token for {} in {took} ms", session.account()),
            VenueArg::Cascade => format!(
                "signed the challenge for {} in {took} ms",
                session.account()
            ),
            VenueArg::Exchange => {
                "static API key (the venue checks it on the call below)".to_owned()
            }
        },
    ));
    lines.push(token_line(&session, &credential, date_skew_ms).await);
    lines.push(call_line(venue, &session, args.path.as_deref()).await);
    if !venue.has_websocket() {
        lines.push(Line::skip(
            "websocket",
            format!("{} has no WebSocket", venue.name()),
        ));
    } else if args.no_websocket {
        lines.push(Line::skip("websocket", "skipped (--no-websocket)"));
    } else {
        lines.push(websocket_line(&session, timeout).await);
    }
    lines
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The base URL: https, a host, no userinfo. The URL itself is printed only when it
/// holds no `@` (userinfo could be a password).
fn url_line(venue: VenueArg, base_url: Option<&str>) -> Result<(Line, Target), Line> {
    let Some(url) = base_url.map(str::trim) else {
        return Err(Line::fail(
            "url",
            format!("{} has no default URL", venue.name()),
            format!("set {} or pass --base-url", venue.base_url_var()),
        ));
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Line::fail(
            "url",
            "the base URL is not a URL (scheme://host)",
            format!("set {} to https://host[:port]", venue.base_url_var()),
        ));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(Line::fail(
            "url",
            format!("the base URL is {scheme}://, not https://: credentials would travel in clear"),
            "use the venue's https:// URL",
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(Line::fail(
            "url",
            "the base URL embeds user:password",
            "remove the userinfo; credentials come from the environment",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => match port.parse::<u16>() {
            Ok(port) => (host, port),
            Err(_) => {
                return Err(Line::fail(
                    "url",
                    "the base URL's port is not a number",
                    "use https://host[:port]",
                ));
            }
        },
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Line::fail(
            "url",
            "the base URL has no host",
            "use https://host[:port]",
        ));
    }
    Ok((
        Line::pass("url", format!("{url} (https)")),
        Target {
            host: host.to_owned(),
            port,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
        },
    ))
}

async fn dns(target: &Target, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("{} has no address", target.host))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(format!("cannot resolve {}: {e}", target.host)),
        Err(_) => Err(format!(
            "no answer for {} within {}",
            target.host,
            span(millis(timeout))
        )),
    }
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The handshake with the session's own trust; the line names the version, the cipher
/// suite and the certificate, or what was wrong with it.
async fn tls(
    stream: TcpStream,
    target: &Target,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> (Line, Option<TlsStream>) {
    let mut config = (*config).clone();
    // HTTP/1.1 only: the clock line below speaks it by hand.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let Ok(name) = rustls_pki_types::ServerName::try_from(target.host.clone()) else {
        return (
            Line::fail(
                "tls",
                "the host is not a valid TLS server name",
                "check the base URL",
            ),
            None,
        );
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let stream = match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let text = e.to_string();
            // BadSignature: an issuer of the right name but another key (the CA file of
            // another deployment, or an intercepting proxy's look-alike).
            let fix = if text.contains("UnknownIssuer")
                || text.contains("unknown issuer")
                || text.contains("BadSignature")
            {
                "the certificate does not chain to a trusted root: pass the venue's CA with --ca-cert FILE (or TRADEAUTH_CA_CERT), or look for a TLS-inspecting proxy"
            } else if text.contains("NotValidForName") || text.contains("not valid for name") {
                "the certificate is not for this host: check the base URL's host name"
            } else if text.contains("Expired") || text.contains("expired") {
                "the venue's certificate has expired, or this machine's clock is far off"
            } else if text.contains("version") || text.contains("ProtocolVersion") {
                "the venue offers no TLS 1.2 or 1.3; tradeauth refuses older versions"
            } else {
                "see the detail; a proxy or a non-TLS port is a common cause"
            };
            return (
                Line::fail("tls", format!("handshake failed: {text}"), fix),
                None,
            );
        }
        Err(_) => {
            return (
                Line::fail(
                    "tls",
                    format!("no handshake within {}", span(millis(timeout))),
                    "is the port a TLS port?",
                ),
                None,
            );
        }
    };
    let took = started.elapsed().as_millis();
    let (_, connection) = stream.get_ref();
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_owned(),
    };
    let suite = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| describe_certificate(der.as_ref()));
    let line = match certificate {
        Some((text, days_left)) if days_left < CERT_WARN_DAYS => Line::warn(
            "tls",
            format!("{version}, {suite} in {took} ms; {text}"),
            "the venue's certificate expires soon; expect an outage if it is not renewed",
        ),
        Some((text, _)) => Line::pass("tls", format!("{version}, {suite} in {took} ms; {text}")),
        None => Line::pass("tls", format!("{version}, {suite} in {took} ms")),
    };
    (line, Some(stream))
}

/// `certificate CN=..., issued by CN=..., expires in 87 days`, and the days left.
fn describe_certificate(der: &[u8]) -> (String, i64) {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after.timestamp();
            let days_left = (not_after - unix_now_ms() / 1000) / 86_400;
            let names: Vec<String> = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .take(3)
                        .map(general_name)
                        .collect()
                })
                .unwrap_or_default();
            (
                format!(
                    "certificate for {} ({}), issued by {}, expires in {days_left} days",
                    cert.subject(),
                    if names.is_empty() {
                        "no SAN".to_owned()
                    } else {
                        names.join(", ")
                    },
                    cert.issuer()
                ),
                days_left,
            )
        }
        Err(_) => ("certificate not parseable".to_owned(), i64::MAX),
    }
}

/// A subject alternative name as an operator writes it: `localhost`, `127.0.0.1`.
fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(dns) => (*dns).to_owned(),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
            16 => <[u8; 16]>::try_from(*bytes)
                .map(|b| std::net::Ipv6Addr::from(b).to_string())
                .unwrap_or_default(),
            _ => "an IP address".to_owned(),
        },
        other => other.to_string(),
    }
}

/// The venue's clock from its `Date` header (HEAD on the base path over the checked
/// connection), against ours at the middle of the exchange.
async fn clock(mut stream: TlsStream, target: &Target, timeout: Duration) -> (Line, Option<i64>) {
    let request = format!(
        "HEAD {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tradeauth-check\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    let sent = unix_now_ms();
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 32 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            return (
                Line::warn(
                    "clock",
                    format!("no HTTP answer: {e}"),
                    "the venue may not speak HTTP/1.1 here",
                ),
                None,
            );
        }
        Err(_) => {
            return (
                Line::warn(
                    "clock",
                    "no HTTP answer in time",
                    "retry with a larger --timeout",
                ),
                None,
            );
        }
    };
    let received = unix_now_ms();
    let text = String::from_utf8_lossy(&head);
    let date = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("date")
            .then(|| value.trim().to_owned())
    });
    let Some(date) = date else {
        return (
            Line::warn(
                "clock",
                "the venue sends no Date header",
                "the clock cannot be compared; make sure NTP runs here",
            ),
            None,
        );
    };
    let Ok(at) = httpdate::parse_http_date(&date) else {
        return (
            Line::warn(
                "clock",
                "the venue's Date header is not an HTTP date",
                "the clock cannot be compared",
            ),
            None,
        );
    };
    let venue_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    // Date has a resolution of one second (truncated): its middle is half a second on.
    let skew = venue_ms + 500 - (sent + received) / 2;
    let direction = if skew >= 0 { "ahead of" } else { "behind" };
    let detail = if skew.abs() < 1_000 {
        "the venue's clock agrees with this machine's (from its Date header, +/- 1 s)".to_owned()
    } else {
        format!(
            "the venue's clock is {} {direction} this machine's (from its Date header, +/- 1 s)",
            span(skew.unsigned_abs())
        )
    };
    let fix = "sync this machine's clock (chronyc tracking / timedatectl status); a skewed clock makes self-minted tokens fail and shortens renewal margins";
    let line = match skew.abs() {
        s if s >= CLOCK_FAIL_MS => Line::fail("clock", detail, fix),
        s if s >= CLOCK_WARN_MS => Line::warn("clock", detail, fix),
        _ => Line::pass("clock", detail),
    };
    (line, Some(skew))
}

/// A credential failure, with the fix for its kind.
fn auth_failure(venue: VenueArg, name: &'static str, error: &tradeauth::Error) -> Line {
    let vars = venue.credential_vars();
    let fix = match error.kind() {
        ErrorKind::Unauthorized => format!("the venue refused the credentials: check {vars}"),
        ErrorKind::InvalidArgument => format!("set {vars} (well-formed), and the base URL"),
        ErrorKind::InsecureUrl => "use the venue's https:// URL".to_owned(),
        ErrorKind::Transport => "the venue is unreachable: see the dns/tcp/tls lines".to_owned(),
        ErrorKind::Timeout => "no answer in time: retry with a larger --timeout".to_owned(),
        ErrorKind::Signing => {
            "the key could not sign: check CASCADE_DELEGATE_PRIVATE_KEY".to_owned()
        }
        ErrorKind::ChallengeExpired => {
            "the challenge expired before it was signed: check the clock line".to_owned()
        }
        _ => "the venue answered unexpectedly: is the base URL the venue's API?".to_owned(),
    };
    Line::fail(
        name,
        format!("{}: {}", error.kind().as_str(), error.message()),
        fix,
    )
}

/// How long the token lives and when the session renews it.
async fn token_line(
    session: &Session,
    credential: &tradeauth::Credential,
    date_skew_ms: Option<i64>,
) -> Line {
    let Some(expires_at) = credential.expires_at_ms() else {
        return Line::pass("token", "a permanent key: no expiry, no renewal");
    };
    // The venue states expiry on its clock; compare it with the venue's now.
    let venue_now = unix_now_ms() + date_skew_ms.unwrap_or(0);
    let left = i64::try_from(expires_at).unwrap_or(i64::MAX) - venue_now;
    let renews = session
        .ws_reauth_due()
        .await
        .map(|at| at.saturating_duration_since(Instant::now()));
    let detail = match renews {
        Some(renews) => format!(
            "expires in {}; the session renews it in {} ({} before expiry)",
            span(left.unsigned_abs()),
            span(millis(renews)),
            span(
                u64::try_from(left)
                    .unwrap_or(0)
                    .saturating_sub(millis(renews))
            )
        ),
        None => format!("expires in {}", span(left.unsigned_abs())),
    };
    if left <= 0 {
        Line::fail(
            "token",
            format!("the venue's token is already expired by its clock ({detail})"),
            "the venue's clock or its token lifetime is wrong; see the clock line",
        )
    } else if left < 60_000 {
        Line::warn(
            "token",
            detail,
            "a token this short-lived means a renewal every minute; check the venue's configured lifetime",
        )
    } else {
        Line::pass("token", detail)
    }
}

/// One protected GET with the credential.
async fn call_line(venue: VenueArg, session: &Session, path: Option<&str>) -> Line {
    let path = path.unwrap_or(venue.protected_path());
    let started = Instant::now();
    match session.request(Method::Get, path).send().await {
        Ok(response) if (200..300).contains(&response.status) => Line::pass(
            "call",
            format!(
                "GET {path} -> HTTP {} in {} ms",
                response.status,
                started.elapsed().as_millis()
            ),
        ),
        Ok(response) if matches!(response.status, 401 | 403) => Line::fail(
            "call",
            format!("GET {path} -> HTTP {}", response.status),
            format!(
                "the venue refused the credential for this call: check {} and the account's permissions",
                venue.credential_vars()
            ),
        ),
        Ok(response) => Line::fail(
            "call",
            format!("GET {path} -> HTTP {}", response.status),
            "the call failed for another reason: is the base URL the venue's API (and --path one of its endpoints)?",
        ),
        Err(error) => Line::fail(
            "call",
            format!("GET {path}: {}: {}", error.kind().as_str(), error.message()),
            "see the lines above",
        ),
    }
}

/// Opens the venue's WebSocket and waits for its authentication answer.
async fn websocket_line(session: &Session, timeout: Duration) -> Line {
    let started = Instant::now();
    let connect = session.websocket("/ws").auth_timeout(timeout).connect();
    match tokio::time::timeout(timeout * 2, connect).await {
        Ok(Ok(ws)) => {
            let took = started.elapsed().as_millis();
            ws.close().await;
            Line::pass("websocket", format!("/ws authenticated in {took} ms"))
        }
        Ok(Err(error)) => Line::fail(
            "websocket",
            format!("/ws: {}: {}", error.kind().as_str(), error.message()),
            "HTTP works but the WebSocket does not: check a proxy's WebSocket support and the venue's reason above",
        ),
        Err(_) => Line::fail(
            "websocket",
            format!("/ws not authenticated within {}", span(millis(timeout * 2))),
            "the venue did not answer the auth message; retry with a larger --timeout",
        ),
    }
}
