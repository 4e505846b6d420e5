//! Many accounts in one process (issue #21): N Cadenza sessions and M Exchange sessions
//! against a simulator started elsewhere (`scripts/bench.sh` starts one with N users and
//! M traders), for S seconds. Prints what a firm running ten thousand accounts asks:
//! memory per session, threads, open connections (ours and the venue's count), the
//! venue's peak concurrent requests, renewals per session, credentials missing or
//! expired on the hot path, failed requests, and the hot path's p50/p99 over all sessions
//! next to one session. Counts, not timings, are what `--max-*` asserts (the smoke run in
//! CI): a timing is only reported.
//!
//! ```text
//! SIM_CADENZA=… SIM_EXCHANGE=… SIM_CONTROL=… SIM_CA=ca.pem \
//!   cargo run --release -p tradeauth --example scale -- --cadenza 10000 --exchange 10000 --secs 300
//! ```
//! Accounts: `scale-{i}@scale.test` / `scale-pw-{i}`; traders `exch_{i:032x}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeauth::{CadenzaConfig, ExchangeConfig, Method, Options, Session};

/// Command-line settings.
struct Args {
    cadenza: usize,
    exchange: usize,
    secs: u64,
    private_pool: bool,
    max_connections: Option<u64>,
    max_threads: Option<u64>,
    max_renewals: Option<u64>,
    label: String,
}

fn args() -> Args {
    let mut args = Args {
        cadenza: 1000,
        exchange: 1000,
        secs: 30,
        private_pool: false,
        max_connections: None,
        max_threads: None,
        max_renewals: None,
        label: "shared pool".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--cadenza" => args.cadenza = number(&value()),
            "--exchange" => args.exchange = number(&value()),
            "--secs" => args.secs = number(&value()) as u64,
            "--private-pool" => {
                args.private_pool = true;
                args.label = "private pools".into();
            }
            "--max-connections" => args.max_connections = Some(number(&value()) as u64),
            "--max-threads" => args.max_threads = Some(number(&value()) as u64),
            "--max-renewals" => args.max_renewals = Some(number(&value()) as u64),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn number(text: &str) -> usize {
    text.parse()
        .unwrap_or_else(|_| usage(&format!("{text} is not a number")))
}

fn usage(why: &str) -> ! {
    eprintln!(
        "scale: {why}\nusage: scale [--cadenza N] [--exchange N] [--secs S] [--private-pool] \
         [--max-connections N] [--max-threads N] [--max-renewals N]"
    );
    std::process::exit(2)
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| usage(&format!("{name} is not set (start the simulator first)")))
}

/// This process: resident memory (bytes), threads, open sockets.
#[derive(Clone, Copy, Debug, Default)]
struct Proc {
    rss: u64,
    threads: u64,
    sockets: u64,
}

fn proc_now() -> Proc {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let sockets = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count() as u64
        })
        .unwrap_or(0);
    Proc {
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
        sockets,
    }
}

/// The simulator's counters of one venue.
async fn venue_stats(http: &reqwest::Client, control: &str, venue: &str) -> serde_json::Value {
    let stats: serde_json::Value = http
        .get(format!("{control}/stats"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the simulator's /stats answers")
        .json()
        .await
        .expect("/stats is JSON");
    stats[venue].clone()
}

fn count(stats: &serde_json::Value, field: &str) -> u64 {
    stats[field].as_u64().unwrap_or(0)
}

/// Every rejection the venue counted, whatever the reason.
fn rejections(stats: &serde_json::Value) -> u64 {
    stats["rejections"].as_object().map_or(0, |r| {
        r.values().filter_map(serde_json::Value::as_u64).sum()
    })
}

/// One authenticated GET per session, 64 at a time (a caller's own concurrency); the
/// number that failed.
async fn calls(sessions: &[Session]) -> u64 {
    let callers = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            let callers = Arc::clone(&callers);
            let path = if s.venue() == tradeauth::Venue::Exchange {
                "/api/v1/user"
            } else {
                "/api/v3/user/profile"
            };
            tokio::spawn(async move {
                let _turn = callers.acquire().await;
                matches!(s.request(Method::Get, path).send().await, Ok(r) if r.status == 200)
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(true)) {
            failed += 1;
        }
    }
    failed
}

/// The q-quantile of sorted samples.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Times `with_current` on each session once, per call (ns); counts calls that found no
/// valid credential.
fn sweep(sessions: &[Session], samples: &mut Vec<u64>) -> u64 {
    let mut missing = 0;
    for session in sessions {
        let start = Instant::now();
        let found = session.with_current(|c| c.map(|c| c.header_value().len()));
        samples.push(start.elapsed().as_nanos() as u64);
        if found.is_none() {
            missing += 1;
        }
    }
    missing
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let cadenza_url = env("SIM_CADENZA");
    let exchange_url = env("SIM_EXCHANGE");
    let control = env("SIM_CONTROL");
    let ca = std::fs::read_to_string(env("SIM_CA")).expect("SIM_CA is readable");
    let control_http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM")])
        .build()
        .expect("control client");
    let limit = tradeauth::runtime::process_config()
        .expect("process config")
        .max_concurrent_renewals;
    let options = |url: &str| {
        Options::new()
            .base_url(url)
            .add_root_pem(ca.clone())
            .private_pool(args.private_pool)
    };

    let before = proc_now();
    // Start-up: every Cadenza account logs in at once (the limit queues them).
    let started = Instant::now();
    let mut cadenza = Vec::with_capacity(args.cadenza);
    for i in 0..args.cadenza {
        let config = CadenzaConfig::new(format!("scale-{i}@scale.test"), format!("scale-pw-{i}"));
        cadenza.push(Session::cadenza(config, options(&cadenza_url)).expect("Cadenza session"));
    }
    let logins: Vec<_> = cadenza
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.credential().await.map(|_| ()) })
        })
        .collect();
    let mut login_failures = 0u64;
    for task in logins {
        if !matches!(task.await, Ok(Ok(()))) {
            login_failures += 1;
        }
    }
    let startup = started.elapsed();
    let after_cadenza = proc_now();

    let mut exchange = Vec::with_capacity(args.exchange);
    for i in 0..args.exchange {
        let config = ExchangeConfig::trader(format!("exch_{i:032x}"));
        exchange.push(Session::exchange(config, options(&exchange_url)).expect("Exchange session"));
    }
    // Exchange traders: one authenticated call each (the Cadenza sessions' calls come at
    // the end, so the venue's peak of requests in flight is the renewals' alone).
    let mut failed_requests = calls(&exchange).await;
    let settled = proc_now();

    // The run: sweep the hot path every second; watch threads and sockets.
    let mut all_samples = Vec::new();
    let mut missing = 0u64;
    let mut peak = settled;
    let run = Instant::now();
    while run.elapsed() < Duration::from_secs(args.secs) {
        missing += sweep(&cadenza, &mut all_samples);
        let now = proc_now();
        peak.threads = peak.threads.max(now.threads);
        peak.sockets = peak.sockets.max(now.sockets);
        peak.rss = peak.rss.max(now.rss);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut one_samples = Vec::new();
    if let Some(first) = cadenza.first() {
        let one = std::slice::from_ref(first);
        for _ in 0..all_samples.len().clamp(1, 200_000) {
            missing += sweep(one, &mut one_samples);
        }
    }
    all_samples.sort_unstable();
    one_samples.sort_unstable();

    let renewal_stats = venue_stats(&control_http, &control, "cadenza").await;
    failed_requests += calls(&cadenza).await;
    let cad = venue_stats(&control_http, &control, "cadenza").await;
    let exch = venue_stats(&control_http, &control, "exchange").await;
    let mut refreshes: Vec<u64> = cadenza.iter().map(|s| s.metrics().refreshes).collect();
    refreshes.sort_unstable();
    let renewal_failures: u64 = cadenza
        .iter()
        .map(|s| s.metrics().renewal_failures.values().sum::<u64>())
        .sum();
    let end = proc_now();
    let sessions = (args.cadenza + args.exchange).max(1) as u64;
    let per_session = settled.rss.saturating_sub(before.rss) / sessions;
    let mut report = BTreeMap::new();
    let mut put = |k: &str, v: serde_json::Value| {
        report.insert(k.to_owned(), v);
    };
    put("label", args.label.clone().into());
    put("cadenza_sessions", args.cadenza.into());
    put("exchange_sessions", args.exchange.into());
    put("secs", args.secs.into());
    put("max_concurrent_renewals", limit.into());
    put("rss_before_mib", (before.rss as f64 / 1048576.0).into());
    put("rss_settled_mib", (settled.rss as f64 / 1048576.0).into());
    put("rss_per_session_kib", (per_session as f64 / 1024.0).into());
    put(
        "rss_per_cadenza_session_kib",
        (after_cadenza.rss.saturating_sub(before.rss) as f64 / 1024.0 / args.cadenza.max(1) as f64)
            .into(),
    );
    put("threads_settled", settled.threads.into());
    put("threads_peak", peak.threads.into());
    put("sockets_settled", settled.sockets.into());
    put("sockets_peak", peak.sockets.into());
    put("sockets_end", end.sockets.into());
    put(
        "venue_open_connections_cadenza",
        count(&cad, "open_connections").into(),
    );
    put(
        "venue_max_open_connections_cadenza",
        count(&cad, "max_open_connections").into(),
    );
    put(
        "venue_open_connections_exchange",
        count(&exch, "open_connections").into(),
    );
    put(
        "venue_max_open_connections_exchange",
        count(&exch, "max_open_connections").into(),
    );
    put(
        "venue_max_renewals_in_flight",
        count(&renewal_stats, "max_in_flight").into(),
    );
    put("venue_logins", count(&cad, "logins").into());
    put("venue_refreshes", count(&cad, "refreshes").into());
    put(
        "refreshes_per_session_min",
        refreshes.first().copied().unwrap_or(0).into(),
    );
    put(
        "refreshes_per_session_max",
        refreshes.last().copied().unwrap_or(0).into(),
    );
    put("renewal_failures", renewal_failures.into());
    put("startup_secs", startup.as_secs_f64().into());
    put("login_failures", login_failures.into());
    put("failed_requests", failed_requests.into());
    put(
        "venue_rejections",
        (rejections(&cad) + rejections(&exch)).into(),
    );
    put("hot_path_missing", missing.into());
    put("hot_path_all_p50_ns", quantile(&all_samples, 0.5).into());
    put("hot_path_all_p99_ns", quantile(&all_samples, 0.99).into());
    put("hot_path_one_p50_ns", quantile(&one_samples, 0.5).into());
    put("hot_path_one_p99_ns", quantile(&one_samples, 0.99).into());
    println!("{}", serde_json::to_string(&report).expect("JSON"));

    let mut failures = Vec::new();
    let venue_connections =
        count(&cad, "max_open_connections").max(count(&exch, "max_open_connections"));
    if let Some(max) = args.max_connections
        && venue_connections > max
    {
        failures.push(format!(
            "the venue saw {venue_connections} connections open at once (max {max})"
        ));
    }
    if let Some(max) = args.max_threads
        && peak.threads > max
    {
        failures.push(format!("{} threads (max {max})", peak.threads));
    }
    let renewals_peak = count(&renewal_stats, "max_in_flight");
    if let Some(max) = args.max_renewals
        && renewals_peak > max
    {
        failures.push(format!(
            "{renewals_peak} renewal requests in flight at once (max {max})"
        ));
    }
    if login_failures + failed_requests + missing + renewal_failures > 0 {
        failures.push(format!(
            "{login_failures} failed logins, {failed_requests} failed requests, {missing} hot-path reads without a credential, {renewal_failures} failed renewals"
        ));
    }
    if !failures.is_empty() {
        for f in failures {
            eprintln!("scale: FAILED: {f}");
        }
        std::process::exit(1);
    }
}
