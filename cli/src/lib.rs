//! The `tradeauth` command line, as a library so the Python wheel's console script runs
//! the same code: `header`, `request`, `check`, `token inspect`, `store status`.
//!
//! Credentials come from the environment variables of the `*_from_env` constructors;
//! nothing here prints a secret except `header`, whose output is the header itself.

#![deny(missing_docs)]

mod check;
mod exit;
mod header;
mod request;
mod store;
mod tables;
mod token;
mod venue;

use std::ffi::OsString;
use std::io::Write;

use clap::{Parser, Subcommand};

pub use exit::{EXIT_CHECK_FAILED, EXIT_HTTP_STATUS, EXIT_USAGE, exit_code};

const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 a check failed; 2 bad usage; 22 the venue answered a non-2xx \
status (request); 10 + the error kind otherwise: 11 invalid_argument, 12 insecure_url, \
13 transport, 14 timeout, 15 unauthorized, 16 api_error, 17 protocol, 18 signing, \
19 challenge_expired, 21 internal error.";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tradeauth",
    version,
    about = "Authenticate to trading venues from a shell: headers, requests, a preflight check, JWT and store inspection.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the authentication header for the next request (`Name: value`).
    #[command(
        after_help = "Example:\n  curl -H @<(tradeauth header cadenza) https://cadenza-api.algo724.com/api/v3/user/profile\n  tradeauth header exchange --format curl"
    )]
    Header(header::Args),
    /// Send an authenticated request; print the status (stderr) and the body (stdout).
    #[command(
        after_help = "Example:\n  tradeauth request cadenza GET /api/v3/user/profile\n  tradeauth request exchange POST /api/v1/orders --json '{\"market\":\"BTC-USD\",\"side\":\"buy\"}' -i\n\nExit: 0 on 2xx, 22 on another HTTP status, 10 + the error kind otherwise."
    )]
    Request(request::Args),
    /// Preflight a venue: URL, DNS, TCP, TLS, clock, authentication, token lifetime, a protected call, WebSocket auth.
    #[command(
        after_help = "Example:\n  tradeauth check cadenza\n  tradeauth check cascade --base-url https://matcher.cascade.xyz --json\n\nExit: 0 when nothing failed (warnings allowed), 1 otherwise."
    )]
    Check(check::Args),
    /// Inspect a JWT.
    #[command(subcommand)]
    Token(token::Command),
    /// Inspect a shared credential store.
    #[command(subcommand)]
    Store(store::Command),
}

/// Runs the command line on `args` (the program name first) and answers the exit code.
/// Output goes to stdout and stderr; the caller exits with the code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    let code = match cli.command {
        // Token inspection is pure: no runtime, no network.
        Command::Token(command) => token::run(command),
        command => match runtime() {
            Ok(rt) => rt.block_on(async move {
                match command {
                    Command::Header(args) => header::run(args).await,
                    Command::Request(args) => request::run(args).await,
                    Command::Check(args) => check::run(args).await,
                    Command::Store(command) => store::run(command).await,
                    Command::Token(_) => unreachable!("handled above"),
                }
            }),
            Err(error) => exit::report(&error),
        },
    };
    let _ = std::io::stdout().flush();
    code
}

fn runtime() -> tradeauth::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            tradeauth::Error::new(
                tradeauth::ErrorKind::Transport,
                format!("cannot start the runtime: {e}"),
            )
        })
}
