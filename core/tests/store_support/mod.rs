//! Shared by the store tests: a worker process (this same test binary re-invoked with
//! `TA_WORKER` set) and the parent-side helpers that spawn and read workers.
//!
//! Each worker opens its own session on the shared store, then until its deadline makes
//! a protected call every 50 ms, and prints one `TA_SUMMARY {json}` line at the end.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tradeauth::{Method, Options, Session, StoreEvent};
use tradeauth_sim::{Fault, LifetimeUpdate, Sim, SimConfig, Venue, demo};

/// A fixed test key (64 hex): the tests' records are encrypted like real ones.
pub const KEY: &str = "6b8f0c3e2a1d4f5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";

/// What a worker reports.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Summary {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    /// (unix ms when first seen, venue expiry) for every credential the worker held.
    pub timeline: Vec<(u64, u64)>,
    pub events: BTreeMap<String, u64>,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The worker's body; returns at once unless this process is a worker.
pub fn worker_main() {
    let Ok(venue) = std::env::var("TA_VENUE") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(worker(venue));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for workers"))
}

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

async fn worker(venue: String) {
    let options = Options::new()
        .base_url(env("TA_URL"))
        .add_root_file(env("TA_CA"))
        .expect("CA file")
        .store(env("TA_STORE"))
        .store_lease_ttl(env_ms("TA_LEASE_MS", 2000))
        .store_timeout(env_ms("TA_STORE_TIMEOUT_MS", 500))
        .retry_delays(Duration::from_millis(20), Duration::from_millis(200))
        .request_timeout(Duration::from_secs(10));
    let (session, path) = match venue.as_str() {
        "cadenza" => (
            Session::cadenza(
                tradeauth::CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
                options,
            ),
            "/api/v3/user/profile",
        ),
        _ => (
            Session::cascade(
                tradeauth::CascadeConfig::new(demo::CASCADE_ACCOUNT, demo::CASCADE_DELEGATE_KEY),
                options,
            ),
            "/account/orders",
        ),
    };
    let session = session.expect("session");
    let mut store_events = session.subscribe_store();
    let end = unix_ms() + env_ms("TA_RUN_MS", 5000).as_millis() as u64;
    let mut summary = Summary::default();
    let mut last_exp = 0;
    while unix_ms() < end {
        match session.request(Method::Get, path).send().await {
            Ok(r) if r.status == 200 => summary.ok += 1,
            Ok(r) => {
                summary.failed += 1;
                summary.failures.push(format!("HTTP {}", r.status));
            }
            Err(e) => {
                summary.failed += 1;
                summary.failures.push(e.to_string());
            }
        }
        if let Some(exp) = session.current().and_then(|c| c.expires_at_ms())
            && exp != last_exp
        {
            last_exp = exp;
            summary.timeline.push((unix_ms(), exp));
        }
        while let Ok(event) = store_events.try_recv() {
            let name = match event {
                StoreEvent::Unavailable { .. } => "unavailable",
                StoreEvent::Recovered => "recovered",
                StoreEvent::Adopted { .. } => "adopted",
                StoreEvent::Written { .. } => "written",
                StoreEvent::Unreadable { .. } => "unreadable",
                _ => "other",
            };
            *summary.events.entry(name.to_owned()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    summary.failures.truncate(5);
    println!(
        "TA_SUMMARY {}",
        serde_json::to_string(&summary).expect("summary")
    );
}

/// Spawns `n` workers of this test binary.
pub fn spawn_workers(
    n: usize,
    venue: &str,
    sim: &Sim,
    store: &str,
    run: Duration,
    extra: &[(&str, String)],
) -> Vec<Child> {
    let exe = std::env::current_exe().expect("test binary path");
    let url = sim.urls().venue(match venue {
        "cadenza" => tradeauth_sim::Venue::Cadenza,
        _ => tradeauth_sim::Venue::Cascade,
    });
    (0..n)
        .map(|_| {
            let mut cmd = Command::new(&exe);
            cmd.args([
                "store_worker_entry",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("TA_VENUE", venue)
            .env("TA_URL", url)
            .env("TA_CA", sim.ca_path())
            .env("TA_STORE", store)
            .env("TA_RUN_MS", run.as_millis().to_string())
            .env("TRADEAUTH_STORE_KEY", KEY)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            cmd.spawn().expect("worker starts")
        })
        .collect()
}

/// A fresh simulator whose `venue` ("cadenza" or "cascade") issues tokens as `lifetime`
/// says, and `n` workers of it sharing `store` for `run`; every worker made calls and
/// none failed. The simulator and the workers' summaries.
pub async fn share(
    n: usize,
    venue: &str,
    lifetime: LifetimeUpdate,
    store: &str,
    run: Duration,
) -> (Sim, Vec<Summary>) {
    let sim = Sim::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.set_lifetimes(lifetime).expect("lifetime");
    let workers = spawn_workers(n, venue, &sim, store, run, &[]);
    let summaries = collect_all(workers).await;
    assert_no_failures(&summaries);
    (sim, summaries)
}

/// 8 processes share one Cadenza login through `store` for `cycles()` lifetimes of a
/// 3 s token: one login, a refresh per cycle, no credential refused, and one distinct
/// credential per venue hit, a cycle apart. The simulator and the summaries.
pub async fn eight_share_one_cadenza_login(store: &str) -> (Sim, Vec<Summary>) {
    // A 3 s token is renewed about every 2.25 s (window: a quarter of its life).
    let run = Duration::from_millis(cycles() * 2250 + 1500);
    let lifetime = LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(3);
    let (sim, summaries) = share(8, "cadenza", lifetime, store, run).await;
    let stats = sim.stats().cadenza;
    assert_eq!(stats.logins, 1, "one login for 8 processes");
    assert!(stats.refreshes >= cycles(), "{} refreshes", stats.refreshes);
    assert_eq!(stats.rejected("INVALID_REFRESH_TOKEN"), 0);
    assert_eq!(
        stats.total_rejections(),
        0,
        "every credential presented was accepted"
    );
    let expiries = distinct_expiries(&summaries);
    assert_eq!(expiries.len() as u64, stats.logins + stats.refreshes);
    assert_spaced(&expiries, Duration::from_millis(1500));
    (sim, summaries)
}

/// Polls `probe` every `every` until its record version and lease holder satisfy
/// `ready`, and returns the holder's pid; fails with `what` after `within`.
pub async fn lease_holder(
    probe: &Probe,
    within: Duration,
    every: Duration,
    what: &str,
    ready: impl Fn(u64, u32) -> bool,
) -> u32 {
    let deadline = std::time::Instant::now() + within;
    loop {
        assert!(std::time::Instant::now() < deadline, "{what}");
        if let (version, Some(pid)) = probe.look()
            && ready(version, pid)
        {
            return pid;
        }
        tokio::time::sleep(every).await;
    }
}

/// SIGKILLs the worker `pid` and takes it out of `workers`.
pub fn kill_worker(workers: &mut Vec<Child>, pid: u32) {
    let index = workers
        .iter()
        .position(|w| w.id() == pid)
        .expect("the holder is one of our workers");
    let mut victim = workers.remove(index);
    victim.kill().expect("SIGKILL");
    let _ = victim.wait();
}

/// Waits for a worker (blocking; call from spawn_blocking) and parses its summary.
pub fn collect(child: Child) -> Summary {
    let pid = child.id();
    let output = child.wait_with_output().expect("worker output");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.split_once("TA_SUMMARY ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).expect("summary JSON"))
        .unwrap_or_else(|| panic!("worker {pid} printed no summary: {text}"))
}

pub async fn collect_all(children: Vec<Child>) -> Vec<Summary> {
    tokio::task::spawn_blocking(move || children.into_iter().map(collect).collect())
        .await
        .expect("collect")
}

/// Every worker made calls and none failed.
pub fn assert_no_failures(summaries: &[Summary]) {
    for (i, s) in summaries.iter().enumerate() {
        assert!(s.ok > 0, "worker {i} made no successful call");
        assert_eq!(s.failed, 0, "worker {i} failures: {:?}", s.failures);
    }
}

/// The distinct credentials (by venue expiry) seen by all workers, in order.
pub fn distinct_expiries(summaries: &[Summary]) -> Vec<u64> {
    let mut all: Vec<u64> = summaries
        .iter()
        .flat_map(|s| s.timeline.iter().map(|(_, e)| *e))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// One renewal per cycle: consecutive credentials are at least `min_gap` apart.
pub fn assert_spaced(expiries: &[u64], min_gap: Duration) {
    for pair in expiries.windows(2) {
        assert!(
            pair[1] - pair[0] >= min_gap.as_millis() as u64,
            "two renewals within one cycle: expiries {} and {} ({:?})",
            pair[0],
            pair[1],
            expiries
        );
    }
}

/// A fresh store directory under the temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tradeauth-{tag}-{}", rand::random::<u64>()))
}

/// The `.lease` / `.rec` files of a file store directory.
pub fn files_with(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

/// The version of the one record in a file store directory (0 if none).
pub fn file_record_version(dir: &Path) -> u64 {
    files_with(dir, "rec")
        .first()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_u64())
        .unwrap_or(0)
}

/// Test length knob: `TRADEAUTH_STORE_TEST_CYCLES` (default 10).
pub fn cycles() -> u64 {
    std::env::var("TRADEAUTH_STORE_TEST_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// `redis-cli` against the server `url` names; its answer (an error reply fails).
pub fn redis_cli(url: &str, args: &[&str]) -> String {
    let parsed = reqwest::Url::parse(url).expect("redis url");
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", parsed.host_str().expect("host")])
        .args(["-p", &parsed.port().unwrap_or(6379).to_string()])
        .arg("--no-auth-warning");
    if let Some(password) = parsed.password() {
        cmd.args(["-a", password]);
    }
    let out = cmd.args(args).output().expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.starts_with("ERR") && !text.contains("NOAUTH"),
        "redis-cli {args:?}: {text}"
    );
    text
}

/// Where a fencing run's workers share their record, and how the test looks into it.
pub enum Probe {
    /// A file store directory.
    File(std::path::PathBuf),
    /// A Redis server URL and the key prefix of this run.
    Redis { url: String, prefix: String },
}

impl Probe {
    /// The store URL the workers open.
    pub fn store_url(&self) -> String {
        match self {
            Probe::File(dir) => format!("file://{}", dir.display()),
            Probe::Redis { url, prefix } => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}prefix={prefix}")
            }
        }
    }

    /// The record's version (0 if none) and the pid of the lease holder, if any.
    pub fn look(&self) -> (u64, Option<u32>) {
        let pid_of = |holder: &str| holder.split('@').next().and_then(|p| p.trim().parse().ok());
        match self {
            Probe::File(dir) => {
                let holder = files_with(dir, "lease")
                    .first()
                    .and_then(|p| std::fs::read(p).ok())
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["holder"].as_str().and_then(pid_of));
                (file_record_version(dir), holder)
            }
            Probe::Redis { url, prefix } => {
                let keys = redis_cli(url, &["KEYS", &format!("{prefix}*")]);
                let (mut version, mut holder) = (0, None);
                for key in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
                    if key.ends_with(":lease") {
                        holder = pid_of(&redis_cli(url, &["GET", key]));
                    } else {
                        version = redis_cli(url, &["HGET", key, "version"])
                            .trim()
                            .parse()
                            .unwrap_or(0);
                    }
                }
                (version, holder)
            }
        }
    }
}

/// Issue #14's fencing run: the venue revokes a whole token family when a rotated
/// refresh token is presented twice; the store lease is 1 s and every refresh answer
/// takes 3 s; 4 worker processes share one store for 3 token lifetimes. With `kill`,
/// the lease holder of the first refresh is SIGKILLed while its refresh waits at the
/// venue. Asserts 1 login (2 with `kill`), no family revocation, no failed request.
pub async fn fencing_run(probe: Probe, kill: bool) {
    let mut config = SimConfig::default();
    config.cadenza.revoke_family_on_reuse = true;
    let sim = Sim::start(config).await.expect("simulator starts");
    // An 8 s token: renewed 2 s before expiry (a quarter of its life), 3 s at the venue,
    // so a cycle is about 9 s and callers wait for the last second of it.
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(8))
        .expect("lifetime");
    sim.arm_fault(
        Fault::delay(Venue::Cadenza, 3000)
            .on_path(tradeauth::machine::cadenza::REFRESH_PATH)
            .times(10_000),
    );
    let extra = [("TA_LEASE_MS", "1000".to_owned())];
    let run = Duration::from_secs(3 * 9 + 2);
    let mut workers = spawn_workers(4, "cadenza", &sim, &probe.store_url(), run, &extra);
    if kill {
        // Version 2 is the first refresh's fence: its holder is waiting at the venue.
        let within = Duration::from_secs(20);
        let every = Duration::from_millis(20);
        let pid = lease_holder(
            &probe,
            within,
            every,
            "no refresh under a lease",
            |v, pid| v == 2 && workers.iter().any(|w| w.id() == pid),
        )
        .await;
        kill_worker(&mut workers, pid);
    }
    let summaries = collect_all(workers).await;
    let stats = sim.stats().cadenza;
    let ok: u64 = summaries.iter().map(|s| s.ok).sum();
    println!(
        "fencing run (kill: {kill}): {} logins, {} refreshes, {} family revocations, {ok} requests ok",
        stats.logins, stats.refreshes, stats.family_revocations
    );
    assert_no_failures(&summaries);
    assert_eq!(stats.family_revocations, 0, "{stats:?}");
    assert_eq!(stats.rejected("INVALID_REFRESH_TOKEN"), 0, "{stats:?}");
    if kill {
        assert!(stats.logins <= 2, "at most one extra login: {stats:?}");
    } else {
        assert_eq!(stats.logins, 1, "{stats:?}");
    }
    assert!(stats.refreshes >= 2, "{stats:?}");
}
