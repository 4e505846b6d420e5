//! `tradeauth store status URL`: the records of a file or Redis store, never a secret.

use std::path::PathBuf;
use std::time::Duration;

use tradeauth::store::RecordStatus;

use crate::exit;
use crate::tables::{relative, span, table, unix_now_ms};

/// `tradeauth store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the records of a store: venue, account, version, age, expiry, lease holder
    /// and lease age. Encrypted records show their expiry only with TRADEAUTH_STORE_KEY.
    #[command(
        after_help = "Example:\n  tradeauth store status file:///var/lib/tradeauth\n  TRADEAUTH_STORE_KEY=... tradeauth store status redis://127.0.0.1:6379/0 --json"
    )]
    Status(StatusArgs),
}

/// `tradeauth store status` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The store: file:///dir, redis://host:port/db or rediss://...
    url: String,
    /// The Redis key prefix [default: tradeauth:, or the URL's ?prefix=].
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// A CA certificate (PEM) a rediss:// server's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    store_ca: Option<PathBuf>,
    /// Bound on each store operation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a `store` subcommand.
pub(crate) async fn run(command: Command) -> i32 {
    let Command::Status(args) = command;
    let mut options =
        tradeauth::Options::new().store_timeout(Duration::from_secs(args.timeout.max(1)));
    if let Some(prefix) = &args.prefix {
        options = options.store_prefix(prefix.clone());
    }
    if let Some(path) = &args.store_ca {
        options = match options.store_ca_file(path) {
            Ok(options) => options,
            Err(error) => return exit::report(&error),
        };
    }
    let records = match tradeauth::store::status(&args.url, &options).await {
        Ok(records) => records,
        Err(error) => return exit::report(&error),
    };
    let now = unix_now_ms();
    if args.json {
        let rows: Vec<_> = records.iter().map(|r| json(r, now)).collect();
        println!("{}", serde_json::json!({ "records": rows }));
    } else if records.is_empty() {
        println!("no records");
    } else {
        print!("{}", text(&records, now));
    }
    0
}

fn age_ms(record: &RecordStatus, now: i64) -> Option<u64> {
    let at = record.written_at_ms.or(record.obtained_at_ms)?;
    Some(u64::try_from(now).unwrap_or(0).saturating_sub(at))
}

fn expires_in_ms(record: &RecordStatus, now: i64) -> Option<i64> {
    record
        .expires_at_ms
        .map(|at| i64::try_from(at).unwrap_or(i64::MAX).saturating_sub(now))
}

fn text(records: &[RecordStatus], now: i64) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.name.chars().take(12).collect(),
                r.venue.clone().unwrap_or_else(dash),
                r.account.clone().unwrap_or_else(dash),
                r.version.to_string(),
                age_ms(r, now).map_or_else(dash, span),
                expires_in_ms(r, now).map_or_else(dash, |ms| {
                    if ms > 0 {
                        relative(ms)
                    } else {
                        format!("EXPIRED {}", relative(ms))
                    }
                }),
                r.lease.as_ref().map_or_else(dash, |l| l.holder.clone()),
                r.lease.as_ref().map_or_else(dash, |l| {
                    l.age_ms.map_or_else(
                        || {
                            format!(
                                "ends {}",
                                relative(i64::try_from(l.expires_in_ms).unwrap_or(i64::MAX))
                            )
                        },
                        span,
                    )
                }),
                r.encryption.clone(),
                r.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "RECORD",
            "VENUE",
            "ACCOUNT",
            "VERSION",
            "AGE",
            "EXPIRES",
            "LEASE HOLDER",
            "LEASE AGE",
            "SEALED",
            "NOTE",
        ],
        &rows,
    )
}

fn json(r: &RecordStatus, now: i64) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "venue": r.venue,
        "base_url": r.base_url,
        "account": r.account,
        "version": r.version,
        "encryption": r.encryption,
        "key_id": r.key_id,
        "written_at_ms": r.written_at_ms,
        "obtained_at_ms": r.obtained_at_ms,
        "expires_at_ms": r.expires_at_ms,
        "age_seconds": age_ms(r, now).map(|ms| ms as f64 / 1000.0),
        "expires_in_seconds": expires_in_ms(r, now).map(|ms| ms as f64 / 1000.0),
        "writer": r.writer,
        "has_refresh_token": r.has_refresh_token,
        "lease": r.lease.as_ref().map(|l| serde_json::json!({
            "holder": l.holder,
            "expires_in_seconds": l.expires_in_ms as f64 / 1000.0,
            "age_seconds": l.age_ms.map(|ms| ms as f64 / 1000.0),
        })),
        "note": r.note,
    })
}
