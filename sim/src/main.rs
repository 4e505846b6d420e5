//! `tradeauth-sim`: runs the venue simulator standalone. Prints one JSON line with the
//! base URLs and the CA path on stdout, logs to stderr, and serves until SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;
use tracing_subscriber::EnvFilter;
use tradeauth_sim::{Fault, Ports, Sim, SimConfig};

/// A local HTTPS + WebSocket simulator of the Cadenza, Partner, Cascade and Exchange
/// venues.
#[derive(Debug, Parser)]
#[command(name = "tradeauth-sim", version, about)]
struct Cli {
    /// JSON config file (accounts, lifetimes); unknown fields are an error.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to write the CA certificate PEM [default: ca.pem in a fresh temp dir].
    #[arg(long, value_name = "PATH")]
    ca_out: Option<PathBuf>,
    /// Cadenza port [default: chosen by the OS].
    #[arg(long, value_name = "PORT")]
    cadenza_port: Option<u16>,
    /// Partner port [default: chosen by the OS].
    #[arg(long, value_name = "PORT")]
    partner_port: Option<u16>,
    /// Cascade port [default: chosen by the OS].
    #[arg(long, value_name = "PORT")]
    cascade_port: Option<u16>,
    /// Exchange port [default: chosen by the OS].
    #[arg(long, value_name = "PORT")]
    exchange_port: Option<u16>,
    /// Control API port [default: chosen by the OS].
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// Cadenza access token lifetime [default: 3600].
    #[arg(long, value_name = "SECS")]
    cadenza_access_ttl_secs: Option<u64>,
    /// Cadenza refresh token lifetime [default: 604800].
    #[arg(long, value_name = "SECS")]
    cadenza_refresh_ttl_secs: Option<u64>,
    /// Cadenza: presenting an already rotated refresh token revokes every token of the
    /// same login (the config's cadenza.revoke_family_on_reuse).
    #[arg(long)]
    cadenza_revoke_family_on_reuse: bool,
    /// Cascade JWT lifetime [default: 3600].
    #[arg(long, value_name = "SECS")]
    cascade_token_ttl_secs: Option<u64>,
    /// Cascade challenge nonce lifetime [default: 300].
    #[arg(long, value_name = "SECS")]
    cascade_nonce_ttl_secs: Option<u64>,
    /// Sim time = system time + this offset (may be negative).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    clock_offset_secs: Option<i64>,
    /// Arm a fault at start (repeatable): venue[:path]=kind[,count=N][,status=S]
    /// [,retry_after=SECS][,delay_ms=MS][,field=NAME][,location=URL][,offset_secs=SECS]
    /// [,after_messages=N][,secs=SECS]; kinds: status, delay, drop, malformed,
    /// missing_field, redirect, echo_credential, date, ws_drop, ws_silence (the ws_ kinds
    /// apply to the first `count` WebSocket connections opened).
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
}

/// The one line printed on stdout at start.
#[derive(Serialize)]
struct Startup<'a> {
    cadenza: &'a str,
    partner: &'a str,
    cascade: &'a str,
    exchange: &'a str,
    control: &'a str,
    ca_cert: String,
}

fn config_from(cli: Cli) -> Result<SimConfig, String> {
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            SimConfig::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => SimConfig::default(),
    };
    // A lifetime flag overrides the config file's value only when given.
    for (target, value) in [
        (
            &mut config.cadenza.access_ttl_secs,
            cli.cadenza_access_ttl_secs,
        ),
        (
            &mut config.cadenza.refresh_ttl_secs,
            cli.cadenza_refresh_ttl_secs,
        ),
        (
            &mut config.cascade.token_ttl_secs,
            cli.cascade_token_ttl_secs,
        ),
        (
            &mut config.cascade.nonce_ttl_secs,
            cli.cascade_nonce_ttl_secs,
        ),
    ] {
        if let Some(v) = value {
            *target = v;
        }
    }
    if cli.cadenza_revoke_family_on_reuse {
        config.cadenza.revoke_family_on_reuse = true;
    }
    config.ports = Ports {
        cadenza: cli.cadenza_port.unwrap_or(0),
        partner: cli.partner_port.unwrap_or(0),
        cascade: cli.cascade_port.unwrap_or(0),
        exchange: cli.exchange_port.unwrap_or(0),
        control: cli.control_port.unwrap_or(0),
    };
    config.clock_offset_secs = cli.clock_offset_secs.unwrap_or(0);
    config.ca_out = cli.ca_out;
    config.faults = cli.faults;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

async fn run(config: SimConfig) -> Result<(), String> {
    // Watch the signals before announcing the URLs: whoever reads the line may signal
    // at once, and an unwatched SIGTERM would kill the process with a non-zero status.
    let stop = Signals::watch()?;
    let sim = Sim::start(config).await.map_err(|e| e.to_string())?;
    let urls = sim.urls();
    let line = serde_json::to_string(&Startup {
        cadenza: &urls.cadenza,
        partner: &urls.partner,
        cascade: &urls.cascade,
        exchange: &urls.exchange,
        control: &urls.control,
        ca_cert: sim.ca_path().display().to_string(),
    })
    .map_err(|e| e.to_string())?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    stop.wait().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

/// SIGINT and SIGTERM, registered up front.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn watch() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot watch {name}: {e}"))
        };
        Ok(Self {
            interrupt: watch(SignalKind::interrupt(), "SIGINT")?,
            terminate: watch(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Ctrl-C, registered up front.
#[cfg(not(unix))]
struct Signals(tokio::signal::windows::CtrlC);

#[cfg(not(unix))]
impl Signals {
    fn watch() -> Result<Self, String> {
        tokio::signal::windows::ctrl_c()
            .map(Self)
            .map_err(|e| format!("cannot watch Ctrl-C: {e}"))
    }

    async fn wait(mut self) {
        self.0.recv().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let result = config_from(cli).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?
            .block_on(run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tradeauth-sim: error: {e}");
            ExitCode::FAILURE
        }
    }
}
