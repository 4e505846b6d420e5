//! `tradeauth header VENUE`: the header for the next request, for curl and scripts.

use crate::exit;
use crate::venue::{self, Connection, VenueArg};

/// `tradeauth header` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The venue.
    venue: VenueArg,
    /// How to print it: `Name: value` (header), JSON, a curl `-H` argument, or shell
    /// variables TRADEAUTH_HEADER_NAME / TRADEAUTH_HEADER_VALUE (env).
    #[arg(long, value_enum, default_value_t = Format::Header)]
    format: Format,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Header,
    Json,
    Curl,
    Env,
}

/// Logs in (or mints, signs) and prints the header; its value is the only secret this
/// command line ever prints, because printing it is what was asked for.
pub(crate) async fn run(args: Args) -> i32 {
    let session = match venue::session(args.venue, &args.connection) {
        Ok(session) => session,
        Err(error) => return exit::report(&error),
    };
    let credential = match session.credential().await {
        Ok(credential) => credential,
        Err(error) => return exit::report(&error),
    };
    let (name, value) = (credential.header_name(), credential.header_value());
    match args.format {
        Format::Header => println!("{name}: {value}"),
        Format::Json => println!("{}", serde_json::json!({ "name": name, "value": value })),
        Format::Curl => println!("-H {}", shell_quote(&format!("{name}: {value}"))),
        Format::Env => {
            println!("TRADEAUTH_HEADER_NAME={}", shell_quote(name));
            println!("TRADEAUTH_HEADER_VALUE={}", shell_quote(value));
        }
    }
    0
}

/// `text` as one POSIX shell word.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quoting_survives_a_quote() {
        assert_eq!(super::shell_quote("a'b c"), r"'a'\''b c'");
    }
}
