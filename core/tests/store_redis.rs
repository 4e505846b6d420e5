//! The Redis store against a real `redis-server` (started by `scripts/test_store.sh`,
//! which exports `TRADEAUTH_TEST_REDIS_URL`) and the simulator over TLS. The tests are
//! `#[ignore]`d, so a plain `cargo test` lists them as ignored instead of passing them
//! unrun; `scripts/test_store.sh` runs them with `--ignored`, and an ignored test run
//! without the variable fails.

mod store_support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use store_support::*;
use tradeauth::store::{CredentialStore, RedisStore};
use tradeauth_sim::{LifetimeUpdate, Sim, SimConfig, Venue};

/// Not a test: the body of the worker processes the tests spawn (see store_support).
#[test]
fn store_worker_entry() {
    worker_main();
}

/// The server URL; a test run without one fails (they are `#[ignore]`d for that reason).
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TRADEAUTH_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{test} needs a redis-server: TRADEAUTH_TEST_REDIS_URL is not set (run scripts/test_store.sh)"
        ),
    }
}

/// `url` with a key prefix of its own, so tests sharing one server do not meet.
fn with_prefix(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}prefix=ta-test-{:08x}:", rand::random::<u32>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn redis_lease_and_cas_semantics() {
    let Some(url) = redis_url("redis_lease_and_cas_semantics") else {
        return;
    };
    let store: Arc<dyn CredentialStore> =
        Arc::new(RedisStore::open(&with_prefix(&url), None, Duration::from_secs(2)).expect("url"));
    assert!(!store.describe().contains("@") || store.describe().contains("***"));
    let key = "cadenza|https://h/|redis-unit";
    assert_eq!(store.read(key).await.expect("read"), None);
    assert!(!store.compare_and_swap(key, 1, b"x").await.expect("cas"));
    assert!(store.compare_and_swap(key, 0, b"one").await.expect("cas"));
    assert!(!store.compare_and_swap(key, 0, b"again").await.expect("cas"));
    let r = store.read(key).await.expect("read").expect("record");
    assert_eq!((r.version, r.data.as_slice()), (1, b"one".as_slice()));
    assert!(store.compare_and_swap(key, 1, b"two").await.expect("cas"));
    let ttl = Duration::from_millis(300);
    assert!(store.try_lease(key, "a", ttl).await.expect("lease"));
    assert!(!store.try_lease(key, "b", ttl).await.expect("lease"));
    assert!(store.try_lease(key, "a", ttl).await.expect("re-entrant"));
    store.release(key, "b").await.expect("release");
    assert!(!store.try_lease(key, "b", ttl).await.expect("lease"));
    store.release(key, "a").await.expect("release");
    assert!(store.try_lease(key, "b", ttl).await.expect("lease"));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(store.try_lease(key, "c", ttl).await.expect("expired lease"));
    // Wrong password: an error, not a hang or a panic.
    if let Some((scheme_and_auth, rest)) = url.split_once('@') {
        let wrong = format!("{}x@{rest}", scheme_and_auth);
        let bad = RedisStore::open(&wrong, None, Duration::from_secs(2)).expect("url");
        let err = bad.read(key).await.expect_err("auth fails");
        assert!(
            !err.message()
                .contains(scheme_and_auth.rsplit(':').next().unwrap_or(""))
        );
    }
}

/// An operator's listing (`tradeauth store status`) finds every record and live lease
/// under the store's prefix, over several SCAN rounds, and nothing under another prefix,
/// even one that the prefix would match as an unescaped glob (`[1]` is a class).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn redis_list_finds_every_record_and_lease_under_its_prefix() {
    let Some(url) = redis_url("redis_list_finds_every_record_and_lease_under_its_prefix") else {
        return;
    };
    let r = rand::random::<u32>();
    let prefix = format!("ta-list-{r:08x}[1]*:");
    let store = RedisStore::open(&url, Some(&prefix), Duration::from_secs(2)).expect("url");
    let decoy_prefix = format!("ta-list-{r:08x}1x:");
    let decoy = RedisStore::open(&url, Some(&decoy_prefix), Duration::from_secs(2)).expect("url");
    let key = |i: usize| format!("cadenza|https://h/|list-{i}");
    // More records than one SCAN round returns (COUNT 500).
    for i in 0..600 {
        assert!(store.compare_and_swap(&key(i), 0, b"x").await.expect("cas"));
    }
    assert!(store.compare_and_swap(&key(0), 1, b"y").await.expect("cas"));
    assert!(
        store
            .try_lease(&key(0), "holder-0", Duration::from_secs(30))
            .await
            .expect("lease")
    );
    let lease_only = "cascade|https://h/|lease-only";
    assert!(
        store
            .try_lease(lease_only, "holder-l", Duration::from_secs(30))
            .await
            .expect("lease")
    );
    assert!(
        decoy
            .compare_and_swap("cadenza|https://h/|decoy", 0, b"d")
            .await
            .expect("cas")
    );
    // A store whose prefix extends ours: its keys are under our prefix, but their names
    // (34 hex digits) are not names this store writes, so they are not our records.
    let nested =
        RedisStore::open(&url, Some(&format!("{prefix}ab")), Duration::from_secs(2)).expect("url");
    assert!(
        nested
            .compare_and_swap("cadenza|https://h/|nested", 0, b"n")
            .await
            .expect("cas")
    );
    let listed = store.list().await.expect("list");
    assert_eq!(listed.len(), 601);
    let find = |record_key: &str| {
        let name = RedisStore::record_key(&store, record_key);
        let name = name.strip_prefix(&prefix).expect("prefixed").to_owned();
        listed.iter().find(|l| l.name == name).cloned()
    };
    let first = find(&key(0)).expect("listed");
    let record = first.record.expect("record");
    assert_eq!(
        (record.version, record.data.as_slice()),
        (2, b"y".as_slice())
    );
    let lease = first.lease.expect("lease");
    assert_eq!(lease.holder, "holder-0");
    assert!(
        lease.expires_in_ms > 25_000 && lease.expires_in_ms <= 30_000,
        "{lease:?}"
    );
    assert_eq!((lease.age_ms, first.written_at_ms), (None, None));
    let other = find(&key(599)).expect("listed");
    assert_eq!(
        (other.record.map(|r| r.version), other.lease),
        (Some(1), None)
    );
    let only = find(lease_only).expect("listed");
    assert_eq!(only.record, None);
    assert_eq!(only.lease.map(|l| l.holder).as_deref(), Some("holder-l"));
    let decoy_listed = decoy.list().await.expect("list");
    assert_eq!(decoy_listed.len(), 1);
    assert!(listed.iter().all(|l| l.name != decoy_listed[0].name));
}

/// A record whose `version` field is not one the store writes (a hand edit, another
/// tool) reads as unreadable (version 0) and the next write replaces it: before, every
/// compare-and-swap failed forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn a_record_with_an_unreadable_version_is_replaced() {
    let Some(url) = redis_url("a_record_with_an_unreadable_version_is_replaced") else {
        return;
    };
    let store = RedisStore::open(&with_prefix(&url), None, Duration::from_secs(2)).expect("url");
    let key = "cadenza|https://h/|bad-version";
    let name = store.record_key(key);
    for bad in [
        "abc",
        "007",
        "",
        "-1",
        "1.5",
        "18446744073709551615",
        "99999999999999999999",
    ] {
        redis_cli(&url, &["DEL", &name]);
        assert!(store.compare_and_swap(key, 0, b"one").await.expect("cas"));
        redis_cli(&url, &["HSET", &name, "version", bad]);
        let read = store.read(key).await.expect("read").expect("record");
        assert_eq!(read.version, 0, "version {bad:?}");
        assert!(
            store.compare_and_swap(key, 0, b"fresh").await.expect("cas"),
            "version {bad:?} blocks every write"
        );
        let read = store.read(key).await.expect("read").expect("record");
        assert_eq!(
            (read.version, read.data.as_slice()),
            (1, b"fresh".as_slice())
        );
    }
    // The highest version is kept and cannot be written over (no overflow).
    redis_cli(&url, &["HSET", &name, "version", "18446744073709551614"]);
    let read = store.read(key).await.expect("read").expect("record");
    assert_eq!(read.version, tradeauth::store::MAX_VERSION);
    assert!(
        store
            .compare_and_swap(key, read.version, b"x")
            .await
            .is_err()
    );
    redis_cli(&url, &["DEL", &name]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn eight_processes_share_one_cadenza_login_over_redis() {
    let Some(url) = redis_url("eight_processes_share_one_cadenza_login_over_redis") else {
        return;
    };
    eight_share_one_cadenza_login(&with_prefix(&url)).await;
}

/// A redis-server of the test's own, so it can be stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(OwnRedis {
            port,
            child: Some(child),
        })
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn redis_outage_longer_than_a_refresh_window_costs_no_request() {
    if redis_url("redis_outage_longer_than_a_refresh_window_costs_no_request").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let Some(mut redis) = OwnRedis::start(port) else {
        println!("SKIPPED redis outage test: redis-server is not on PATH");
        return;
    };
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    sim.set_lifetimes(LifetimeUpdate::new(Venue::Cadenza).access_ttl_secs(3))
        .expect("lifetime");
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let extra = [("TA_STORE_TIMEOUT_MS", "300".to_owned())];
    let started = Instant::now();
    let workers = spawn_workers(8, "cadenza", &sim, &url, Duration::from_secs(20), &extra);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = sim.stats().cadenza;
    assert_eq!(before.logins, 1);
    // Down for 5 s: more than two 3 s tokens' refresh windows.
    redis.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut redis = OwnRedis::start(port).expect("restart");
    let restarted = started.elapsed();
    // Two cycles to converge, then every cycle is one refresh again.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let converged_at = unix_ms();
    let t1 = sim.stats().cadenza;
    let summaries = collect_all(workers).await;
    let t2 = sim.stats().cadenza;
    redis.stop();
    // No process ever failed a request: the cached credential carried the outage.
    assert_no_failures(&summaries);
    for s in &summaries {
        assert!(
            s.events.get("unavailable").copied().unwrap_or(0) >= 1,
            "outage seen"
        );
        assert!(
            s.events.get("recovered").copied().unwrap_or(0) >= 1,
            "recovery seen"
        );
    }
    assert_eq!(t2.logins, t1.logins, "no login after convergence");
    assert_eq!(
        t2.total_rejections(),
        t1.total_rejections(),
        "nothing rejected after convergence"
    );
    let cycles_left = (20_000 - (restarted.as_millis() as u64 + 4500)) / 2250 + 1;
    assert!(
        t2.refreshes - t1.refreshes <= cycles_left,
        "{} refreshes in ~{cycles_left} cycles after convergence",
        t2.refreshes - t1.refreshes
    );
    // One record: every credential that appeared after convergence was held by all 8.
    let end = summaries
        .iter()
        .flat_map(|s| s.timeline.last().map(|(t, _)| *t))
        .max()
        .unwrap_or(0);
    for exp in distinct_expiries(&summaries) {
        let first_seen = summaries
            .iter()
            .flat_map(|s| {
                s.timeline
                    .iter()
                    .filter(|(_, e)| *e == exp)
                    .map(|(t, _)| *t)
            })
            .min()
            .unwrap_or(0);
        if first_seen < converged_at || first_seen + 1000 > end {
            continue;
        }
        let holders = summaries
            .iter()
            .filter(|s| s.timeline.iter().any(|(_, e)| *e == exp))
            .count();
        assert_eq!(
            holders, 8,
            "credential {exp} was not adopted by every process"
        );
    }
}

/// `fencing_run` over the Redis server `test` is given, its keys under a fresh prefix
/// starting with `tag`; nothing if there is no server.
async fn fencing_over_redis(test: &str, tag: &str, kill: bool) {
    let Some(url) = redis_url(test) else {
        return;
    };
    let prefix = format!("{tag}-{:08x}:", rand::random::<u32>());
    fencing_run(Probe::Redis { url, prefix }, kill).await;
}

/// Issue #14 over Redis: see `fencing_run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn four_processes_never_present_one_refresh_token_twice_over_redis() {
    fencing_over_redis(
        "four_processes_never_present_one_refresh_token_twice_over_redis",
        "ta-fence",
        false,
    )
    .await;
}

/// Issue #14 over Redis, the lease holder killed mid-refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn a_lease_holder_killed_mid_refresh_over_redis_costs_one_login() {
    fencing_over_redis(
        "a_lease_holder_killed_mid_refresh_over_redis_costs_one_login",
        "ta-fence-kill",
        true,
    )
    .await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`:
/// (CA PEM text, certificate path, key path, CA path).
fn private_pki(dir: &std::path::Path) -> (String, String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tradeauth store test CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    std::fs::create_dir_all(dir).expect("pki dir");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("pem written");
        path.display().to_string()
    };
    (
        ca_cert.pem(),
        write("server.pem", &leaf_cert.pem()),
        write("server.key", &leaf_key.serialize_pem()),
        write("ca.pem", &ca_cert.pem()),
    )
}

/// `rediss://` with the firm's own CA and an ACL user that may touch only its prefix:
/// the store works with the CA and the user, refuses a server it cannot verify, is
/// refused outside its prefix, and two sessions share one login through it. No error
/// names the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn rediss_with_a_private_ca_and_an_acl_user() {
    if redis_url("rediss_with_a_private_ca_and_an_acl_user").is_none() {
        return;
    }
    let dir = temp_dir("rediss");
    let (ca_pem, cert, key, ca_file) = private_pki(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let password = format!("acl-{:016x}", rand::random::<u64>());
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-cert-file", &cert])
        .args(["--tls-key-file", &key, "--tls-ca-cert-file", &ca_file])
        .args([
            "--tls-auth-clients",
            "no",
            "--dir",
            &dir.display().to_string(),
        ])
        .args(["--user", "default", "off"])
        .args([
            "--user",
            "trader",
            "on",
            &format!(">{password}"),
            "~ta-acl:*",
            "+@all",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server (TLS) did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url =
        |prefix: &str| format!("rediss://trader:{password}@127.0.0.1:{port}/0?prefix={prefix}");
    let t = Duration::from_secs(3);
    let key_name = "cadenza|https://h/|acl";

    // The system roots do not know this CA: refused, and the error names no password.
    let unverified = RedisStore::open(&url("ta-acl:"), None, t).expect("url");
    let e = unverified
        .read(key_name)
        .await
        .expect_err("an unknown CA is refused");
    assert!(e.message().contains("certificate"), "{e}");
    assert!(!e.message().contains(&password), "{e}");
    // With the CA and the ACL user: the store's whole contract.
    let store = RedisStore::open_with_ca(&url("ta-acl:"), None, t, Some(&ca_pem)).expect("url");
    assert_eq!(store.read(key_name).await.expect("read"), None);
    assert!(
        store
            .compare_and_swap(key_name, 0, b"one")
            .await
            .expect("cas")
    );
    assert!(
        !store
            .compare_and_swap(key_name, 0, b"two")
            .await
            .expect("cas")
    );
    assert!(store.try_lease(key_name, "a", t).await.expect("lease"));
    assert!(!store.try_lease(key_name, "b", t).await.expect("lease"));
    store.release(key_name, "a").await.expect("release");
    assert_eq!(
        store
            .read(key_name)
            .await
            .expect("read")
            .expect("record")
            .version,
        1
    );
    // Outside the user's key pattern the server refuses, and the error says nothing secret.
    let outside =
        RedisStore::open_with_ca(&url("elsewhere:"), None, t, Some(&ca_pem)).expect("url");
    let e = outside.read(key_name).await.expect_err("outside the ACL");
    assert!(e.message().contains("permission"), "{e}");
    assert!(!e.message().contains(&password), "{e}");
    // A CA for a store that is not rediss:// is a mistake worth an error.
    assert!(
        tradeauth::store::open_with_ca("redis://127.0.0.1:1/0", None, t, Some(&ca_pem)).is_err()
    );

    // Two sessions share one login through this store.
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let options = || {
        tradeauth::Options::new()
            .base_url(sim.urls().venue(Venue::Cadenza))
            .add_root_pem(sim.ca_pem())
            .store(url("ta-acl:"))
            .store_ca_pem(ca_pem.clone())
            .store_key(KEY)
    };
    let make = || {
        tradeauth::Session::cadenza(
            tradeauth::CadenzaConfig::new(
                tradeauth_sim::demo::CADENZA_EMAIL,
                tradeauth_sim::demo::CADENZA_PASSWORD,
            ),
            options(),
        )
        .expect("session")
    };
    let (a, b) = (make(), make());
    let first = a.credential().await.expect("login");
    let second = b.credential().await.expect("adopted");
    assert_eq!(first.header_value(), second.header_value());
    assert_eq!(sim.stats().cadenza.logins, 1);
    assert_eq!(b.store_available(), Some(true));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
