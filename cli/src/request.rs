//! `tradeauth request VENUE METHOD PATH`: one authenticated request, like curl.

use std::io::Write;

use tradeauth::{Method, Session};

use crate::exit;
use crate::venue::{self, Connection, VenueArg};

/// `tradeauth request` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The venue.
    venue: VenueArg,
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// The path (and query) on the venue, e.g. /api/v3/user/profile.
    path: String,
    /// A JSON body (sent with Content-Type: application/json).
    #[arg(long, value_name = "BODY")]
    json: Option<String>,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Print the status line and the response headers on stdout before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Sends the request; exit 0 on 2xx, 22 on another status, else the error's code.
pub(crate) async fn run(args: Args) -> i32 {
    match send(&args).await {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    }
}

async fn send(args: &Args) -> tradeauth::Result<i32> {
    let method: Method = args.method.parse()?;
    if !args.path.starts_with('/') {
        return Err(tradeauth::Error::invalid_argument(
            "the path must start with / (the base URL comes from --base-url or the environment)",
        ));
    }
    let session = venue::session(args.venue, &args.connection)?;
    let mut request = session.request(method, args.path.clone());
    if let Some(body) = &args.json {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
            // serde's message names a line and column, never the text.
            tradeauth::Error::invalid_argument(format!("--json is not JSON: {e}"))
        })?;
        request = request.json(&value);
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(tradeauth::Error::invalid_argument(
                "a -H header must be `Name: value`",
            ));
        };
        request = request.header(name.trim(), value.trim());
    }
    let response = request.send().await?;
    let secrets = served_secrets(&session);
    let status = response.status;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| {
        tradeauth::Error::new(tradeauth::ErrorKind::Transport, format!("stdout: {e}"))
    };
    if args.include {
        writeln!(out, "HTTP {status}").map_err(io)?;
        for (name, value) in &response.headers {
            writeln!(out, "{name}: {}", redact(value, &secrets)).map_err(io)?;
        }
        writeln!(out).map_err(io)?;
    } else {
        eprintln!("HTTP {status}");
    }
    let body = String::from_utf8_lossy(&response.body);
    out.write_all(redact(&body, &secrets).as_bytes())
        .map_err(io)?;
    if !body.is_empty() && !body.ends_with('\n') {
        writeln!(out).map_err(io)?;
    }
    Ok(if (200..300).contains(&status) {
        0
    } else {
        exit::EXIT_HTTP_STATUS
    })
}

/// What this session sent as its credential: a venue that echoes it into a response
/// (a debug endpoint, an error page) must not get it printed.
fn served_secrets(session: &Session) -> Vec<String> {
    session
        .current()
        .map(|c| vec![c.token().to_owned(), c.header_value().to_owned()])
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.len() >= 8)
        .collect()
}

/// `text` with every secret replaced by `[REDACTED]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    // The longest first, so a header value is not half-replaced by its token.
    let mut sorted: Vec<&String> = secrets.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in sorted {
        out = out.replace(secret.as_str(), "[REDACTED]");
    }
    out
}
