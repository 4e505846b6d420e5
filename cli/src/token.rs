//! `tradeauth token inspect`: a JWT's header and claims, its times in UTC and local time;
//! never its signature.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::exit;
use crate::tables::{relative, unix_now_ms, utc_and_local};

/// `tradeauth token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Show a JWT's header, claims and times (from the argument or stdin); the signature
    /// is never printed.
    #[command(
        after_help = "Example:\n  tradeauth header cascade | cut -d' ' -f3 | tradeauth token inspect\n  tradeauth token inspect eyJhbGciOi... --json"
    )]
    Inspect(InspectArgs),
}

/// `tradeauth token inspect` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The token (`eyJ...`, `Bearer eyJ...` or a whole `Authorization:` line); read from
    /// stdin when absent or `-`.
    token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a `token` subcommand.
pub(crate) fn run(command: Command) -> i32 {
    let Command::Inspect(args) = command;
    let text = match args.token.as_deref() {
        Some(token) if token != "-" => token.to_owned(),
        _ => {
            let mut input = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut input) {
                return exit::report(&tradeauth::Error::invalid_argument(format!(
                    "cannot read the token from stdin: {e}"
                )));
            }
            input
        }
    };
    match inspect(&text) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            0
        }
        Err(error) => exit::report(&error),
    }
}

/// What a JWT says, without its signature.
#[derive(Debug)]
pub(crate) struct Report {
    header: Value,
    claims: Value,
    signature_bytes: usize,
    now_ms: i64,
}

/// Decodes `text` as a JWT. Errors never quote the input (it may be a live token).
pub(crate) fn inspect(text: &str) -> tradeauth::Result<Report> {
    let token = strip_scheme(text.trim());
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(tradeauth::Error::invalid_argument(format!(
            "not a JWT: expected three base64url parts separated by '.', found {}",
            parts.len()
        )));
    };
    let decode = |part: &str, what: &str| -> tradeauth::Result<Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| {
                tradeauth::Error::invalid_argument(format!(
                    "not a JWT: its {what} is not base64url"
                ))
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            tradeauth::Error::invalid_argument(format!("not a JWT: its {what} is not JSON"))
        })?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(tradeauth::Error::invalid_argument(format!(
                "not a JWT: its {what} is not a JSON object"
            )))
        }
    };
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_or(0, |s| s.len());
    Ok(Report {
        header: decode(header, "header")?,
        claims: decode(claims, "claims")?,
        signature_bytes,
        now_ms: unix_now_ms(),
    })
}

/// `Authorization: Bearer x`, `Bearer x` -> `x`.
fn strip_scheme(text: &str) -> &str {
    let text = match text.split_once(':') {
        Some((name, rest)) if name.trim().eq_ignore_ascii_case("authorization") => rest.trim(),
        _ => text,
    };
    match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => text,
    }
}

/// The registered time claims, in display order.
const TIME_CLAIMS: [(&str, &str); 3] =
    [("iat", "issued"), ("nbf", "not before"), ("exp", "expires")];

impl Report {
    fn time(&self, claim: &str) -> Option<i64> {
        self.claims.get(claim).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        })
    }

    fn status(&self) -> String {
        match self.time("exp") {
            None => "no expiry (no exp claim)".to_owned(),
            Some(exp) => {
                let left_ms = exp.saturating_mul(1000).saturating_sub(self.now_ms);
                if left_ms > 0 {
                    format!("expires {}", relative(left_ms))
                } else {
                    format!("expired {}", relative(left_ms))
                }
            }
        }
    }

    /// The report as text.
    pub(crate) fn text(&self) -> String {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let mut out = format!(
            "header:\n{}\nclaims:\n{}\n",
            indent(&pretty(&self.header)),
            indent(&pretty(&self.claims))
        );
        for (claim, label) in TIME_CLAIMS {
            if let Some(secs) = self.time(claim) {
                let left_ms = secs.saturating_mul(1000).saturating_sub(self.now_ms);
                out.push_str(&format!(
                    "{label:<11} {} ({})\n",
                    utc_and_local(secs),
                    relative(left_ms)
                ));
            }
        }
        out.push_str(&format!("status:     {}\n", self.status()));
        out.push_str(&format!(
            "signature:  {} bytes (not shown)\n",
            self.signature_bytes
        ));
        out
    }

    /// The report as JSON.
    pub(crate) fn json(&self) -> Value {
        let mut times = serde_json::Map::new();
        for (claim, _) in TIME_CLAIMS {
            if let Some(secs) = self.time(claim) {
                let left_ms = secs.saturating_mul(1000).saturating_sub(self.now_ms);
                times.insert(
                    claim.to_owned(),
                    serde_json::json!({
                        "unix": secs,
                        "utc": crate::tables::utc(secs),
                        "local": crate::tables::local(secs),
                        "in_seconds": left_ms / 1000,
                        "relative": relative(left_ms),
                    }),
                );
            }
        }
        let expired = self
            .time("exp")
            .map(|exp| exp.saturating_mul(1000) <= self.now_ms);
        serde_json::json!({
            "header": self.header,
            "claims": self.claims,
            "times": times,
            "expired": expired,
            "status": self.status(),
            "signature_bytes": self.signature_bytes,
        })
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.{}",
            part(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
            part(claims),
            URL_SAFE_NO_PAD.encode(b"SIGNATURE-BYTES-SECRET")
        )
    }

    #[test]
    fn a_token_shows_its_claims_and_times_but_not_its_signature() {
        let now = unix_now_ms() / 1000;
        let token = jwt(serde_json::json!({"sub": "me", "iat": now, "exp": now + 14 * 60 + 30}));
        for input in [
            token.clone(),
            format!("Bearer {token}"),
            format!("Authorization: Bearer {token}\n"),
        ] {
            let report = inspect(&input).unwrap();
            let text = report.text();
            assert!(text.contains("\"sub\": \"me\""), "{text}");
            assert!(text.contains("expires in 14 min"), "{text}");
            assert!(text.contains("UTC"), "{text}");
            let signature = token.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "{text}");
            assert!(!report.json().to_string().contains(signature));
            assert_eq!(report.json()["expired"], false);
        }
    }

    #[test]
    fn an_expired_token_says_so() {
        let now = unix_now_ms() / 1000;
        let report = inspect(&jwt(serde_json::json!({"exp": now - 180}))).unwrap();
        assert!(
            report.text().contains("expired 3 min ago"),
            "{}",
            report.text()
        );
        assert_eq!(report.json()["expired"], true);
    }

    #[test]
    fn garbage_is_refused_without_being_quoted() {
        for bad in [
            "not-a-token-SECRETLIKE",
            "a.b",
            "x.y.z.w",
            "eyJub3Q.eyJub3Q.sig",
            "W10.W10.sig",
        ] {
            let error = inspect(bad).unwrap_err();
            assert_eq!(error.kind(), tradeauth::ErrorKind::InvalidArgument);
            assert!(!error.message().contains(bad), "{}", error.message());
        }
    }
}
