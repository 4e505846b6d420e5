//! The `tradeauth` binary against the simulator over TLS, as an operator runs it from a
//! shell: every command, its exit codes, and no secret in any output except `header`'s
//! value (and there only the header).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tradeauth::{CadenzaConfig, Options, Session};
use tradeauth_sim::{Sim, SimConfig, Venue, demo};

/// Every secret the demo accounts hold: none may appear in any output.
const SECRETS: [&str; 5] = [
    demo::CADENZA_PASSWORD,
    demo::PARTNER_SECRET_KEY,
    demo::EXCHANGE_ADMIN_TOKEN,
    demo::EXCHANGE_API_KEY,
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
];

/// A fixed store key (64 hex) for the store tests.
const STORE_KEY: &str = "6b8f0c3e2a1d4f5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";

async fn sim() -> Sim {
    Sim::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// The demo account's environment for `venue`, the way an operator's shell holds it.
fn venue_env(sim: &Sim, venue: Venue) -> Vec<(&'static str, String)> {
    let url = sim.urls().venue(venue).to_owned();
    match venue {
        Venue::Cadenza => vec![
            ("CADENZA_EMAIL", demo::CADENZA_EMAIL.to_owned()),
            ("CADENZA_PASSWORD", demo::CADENZA_PASSWORD.to_owned()),
            ("CADENZA_BASE_URL", url),
        ],
        Venue::Partner => vec![
            ("PARTNER_CLIENT_ID", demo::PARTNER_CLIENT_ID.to_owned()),
            ("PARTNER_SECRET_KEY", demo::PARTNER_SECRET_KEY.to_owned()),
            ("PARTNER_BASE_URL", url),
        ],
        Venue::Cascade => vec![
            ("CASCADE_DEPOSIT_ADDRESS", demo::CASCADE_ACCOUNT.to_owned()),
            (
                "CASCADE_DELEGATE_PRIVATE_KEY",
                demo::CASCADE_DELEGATE_KEY.to_owned(),
            ),
            ("CASCADE_BASE_URL", url),
        ],
        Venue::Exchange => vec![
            ("EXCHANGE_API_KEY", demo::EXCHANGE_API_KEY.to_owned()),
            ("EXCHANGE_BASE_URL", url),
        ],
    }
}

/// Runs the binary with exactly `env` (plus PATH), off the runtime's threads.
async fn tradeauth(args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tradeauth"));
        command
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the binary runs");
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            if let Some(text) = stdin {
                pipe.write_all(text.as_bytes()).expect("stdin written");
            }
        }
        child.wait_with_output().expect("the binary exits")
    })
    .await
    .expect("the binary's thread")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// No demo secret (nor `extra`) in stdout or stderr.
fn assert_no_secret(output: &Output, extra: &[&str]) {
    let (out, err) = text(output);
    for secret in SECRETS.iter().chain(extra) {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a secret was printed:\nstdout: {out}\nstderr: {err}"
        );
    }
}

fn with_ca(sim: &Sim, venue: Venue) -> Vec<(&'static str, String)> {
    let mut env = venue_env(sim, venue);
    env.push(("TRADEAUTH_CA_CERT", sim.ca_path().display().to_string()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_prints_the_header_in_every_format_and_nothing_else() {
    let sim = sim().await;
    for venue in Venue::ALL {
        let env = with_ca(&sim, venue);
        let output = tradeauth(&["header", venue.name()], &env, None).await;
        let (out, err) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{venue:?}: {err}");
        let (name, value) = out.trim_end().split_once(": ").expect("Name: value");
        let expected = if venue == Venue::Exchange {
            "X-API-Key"
        } else {
            "Authorization"
        };
        assert!(name.eq_ignore_ascii_case(expected), "{out}");
        assert!(err.is_empty(), "{err}");
        // Only the header: the password, the signing key are never printed.
        let others: Vec<&str> = SECRETS
            .iter()
            .copied()
            .filter(|s| !value.contains(s))
            .collect();
        for secret in others {
            assert!(!out.contains(secret));
        }
        // The header works: the venue accepts it (curl -H @<(tradeauth header ...)).
        if venue != Venue::Exchange {
            assert!(value.starts_with("Bearer "), "{venue:?}");
        }
    }
    let env = with_ca(&sim, Venue::Cadenza);
    let json = tradeauth(&["header", "cadenza", "--format", "json"], &env, None).await;
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert!(
        parsed["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case("authorization"))
    );
    let curl = tradeauth(&["header", "cadenza", "--format", "curl"], &env, None).await;
    assert!(
        text(&curl)
            .0
            .to_ascii_lowercase()
            .starts_with("-h 'authorization: bearer ")
    );
    let vars = tradeauth(&["header", "cadenza", "--format", "env"], &env, None).await;
    let (out, _) = text(&vars);
    assert!(
        out.to_ascii_lowercase()
            .starts_with("tradeauth_header_name='authorization'\ntradeauth_header_value='bearer "),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_like_curl_and_never_prints_a_secret() {
    let sim = sim().await;
    let env = with_ca(&sim, Venue::Cadenza);
    let ok = tradeauth(
        &["request", "cadenza", "GET", "/api/v3/user/profile"],
        &env,
        None,
    )
    .await;
    let (out, err) = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{err}");
    assert_eq!(err.trim(), "HTTP 200");
    let body: Value = serde_json::from_str(&out).expect("the body is the venue's JSON");
    assert!(body.is_object());
    assert_no_secret(&ok, &[]);

    let included = tradeauth(
        &["request", "cadenza", "get", "/api/v3/user/profile", "-i"],
        &env,
        None,
    )
    .await;
    let (out, _) = text(&included);
    assert!(out.starts_with("HTTP 200\n"), "{out}");
    assert!(out.to_ascii_lowercase().contains("content-type:"), "{out}");

    // Another status: 22, as curl --fail.
    let missing = tradeauth(
        &["request", "cadenza", "GET", "/api/v3/no/such/thing"],
        &env,
        None,
    )
    .await;
    assert_eq!(missing.status.code(), Some(22), "{:?}", text(&missing));
    assert!(text(&missing).1.starts_with("HTTP 404"));

    // A JSON body and an extra header reach the venue (an order on the Exchange).
    let exchange = with_ca(&sim, Venue::Exchange);
    let order = tradeauth(
        &[
            "request",
            "exchange",
            "POST",
            "/api/v1/orders",
            "--json",
            r#"{"market":"BTC-USD","side":"buy","price":50000.0,"quantity":0.1}"#,
            "-H",
            "X-Request-Id: cli-test",
        ],
        &exchange,
        None,
    )
    .await;
    assert_eq!(order.status.code(), Some(0), "{:?}", text(&order));
    assert_no_secret(&order, &[]);

    // Bad usage and bad input: a code per error kind, never an echo of the input.
    let bad_method = tradeauth(&["request", "cadenza", "FETCH", "/x"], &env, None).await;
    assert_eq!(bad_method.status.code(), Some(11));
    let bad_json = tradeauth(
        &[
            "request",
            "cadenza",
            "POST",
            "/x",
            "--json",
            "{not json SECRETISH",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(bad_json.status.code(), Some(11));
    assert!(!text(&bad_json).1.contains("SECRETISH"));
    let usage = tradeauth(&["request", "cadenza"], &env, None).await;
    assert_eq!(usage.status.code(), Some(2));

    // A wrong password: unauthorized (15), and the password is not printed.
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "CADENZA_PASSWORD");
    wrong.push(("CADENZA_PASSWORD", "wrong-password-XYZ".to_owned()));
    let refused = tradeauth(
        &["request", "cadenza", "GET", "/api/v3/user/profile"],
        &wrong,
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(15), "{:?}", text(&refused));
    assert_no_secret(&refused, &["wrong-password-XYZ"]);

    // No credentials at all: the message names the variable, exit 11.
    let none = tradeauth(&["request", "cadenza", "GET", "/x"], &[], None).await;
    assert_eq!(none.status.code(), Some(11));
    assert!(text(&none).1.contains("CADENZA_EMAIL"));

    // Plain http is refused before anything is sent (12).
    let mut plain = env.clone();
    plain.push(("CADENZA_BASE_URL", "http://127.0.0.1:9/".to_owned()));
    plain.retain(|(k, v)| *k != "CADENZA_BASE_URL" || v.starts_with("http://"));
    let insecure = tradeauth(&["request", "cadenza", "GET", "/x"], &plain, None).await;
    assert_eq!(insecure.status.code(), Some(12), "{:?}", text(&insecure));
}

/// A parsed `check --json` report: (ok, name -> status).
fn checks(output: &Output) -> (bool, Vec<(String, String)>, Value) {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("check --json prints JSON: {:?}", text(output)));
    let lines = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (report["ok"].as_bool().unwrap_or(false), lines, report)
}

fn status_of<'a>(lines: &'a [(String, String)], name: &str) -> &'a str {
    lines
        .iter()
        .find(|(n, _)| n == name)
        .map_or("absent", |(_, s)| s.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_every_venue_with_every_line() {
    let sim = sim().await;
    for venue in Venue::ALL {
        let env = with_ca(&sim, venue);
        let output = tradeauth(&["check", venue.name(), "--json"], &env, None).await;
        let (ok, lines, report) = checks(&output);
        assert!(ok, "{venue:?}: {report:#}");
        assert_eq!(output.status.code(), Some(0));
        let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        let auth = match venue {
            Venue::Cadenza => "login",
            Venue::Partner => "mint",
            Venue::Cascade => "sign",
            Venue::Exchange => "key",
        };
        assert_eq!(
            names,
            [
                "url",
                "dns",
                "tcp",
                "tls",
                "clock",
                auth,
                "token",
                "call",
                "websocket"
            ],
            "{venue:?}"
        );
        for (name, status) in &lines {
            let expected =
                if name == "websocket" && !matches!(venue, Venue::Cascade | Venue::Exchange) {
                    "skip"
                } else {
                    "pass"
                };
            assert_eq!(status, expected, "{venue:?} {name}: {report:#}");
        }
        assert!(report.to_string().contains("TLS 1."), "{report}");
        assert_no_secret(&output, &[]);
        // The table form says the same.
        let table = tradeauth(&["check", venue.name()], &env, None).await;
        let (out, _) = text(&table);
        assert_eq!(table.status.code(), Some(0), "{out}");
        assert!(
            out.contains("PASS  tls") && out.contains("ok: 0 failed"),
            "{out}"
        );
        assert_no_secret(&table, &[]);
    }
    // Each check (JSON, then the table) authenticated one WebSocket where there is one,
    // and made its protected call with a credential the venue accepted.
    for venue in Venue::ALL {
        let stats = sim.venue_stats(venue);
        let expected = if matches!(venue, Venue::Cascade | Venue::Exchange) {
            2
        } else {
            0
        };
        assert_eq!(stats.ws_auths, expected, "{venue:?}: {stats:?}");
        // The clock line's HEAD on the base path may be a 404; nothing else is refused.
        let refused: Vec<&String> = stats
            .rejections
            .keys()
            .filter(|reason| {
                !reason.to_ascii_lowercase().contains("not found") && reason.as_str() != "NOT_FOUND"
            })
            .collect();
        assert!(refused.is_empty(), "{venue:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_on_a_wrong_ca_and_says_what_to_do() {
    let sim = sim().await;
    let other = self::sim().await;
    let mut env = venue_env(&sim, Venue::Cadenza);
    // The CA of another simulator: a certificate that chains to nothing we trust.
    let ca = other.ca_path().display().to_string();
    let output = tradeauth(
        &["check", "cadenza", "--json", "--ca-cert", &ca],
        &env,
        None,
    )
    .await;
    let (ok, lines, report) = checks(&output);
    assert!(!ok);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(status_of(&lines, "tcp"), "pass");
    assert_eq!(status_of(&lines, "tls"), "fail", "{report:#}");
    let tls = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["name"] == "tls"))
        .expect("tls line")
        .clone();
    // Another simulator's CA has the same name and another key.
    let detail = tls["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("UnknownIssuer") || detail.contains("BadSignature"),
        "{tls}"
    );
    assert!(
        tls["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("--ca-cert"),
        "{tls}"
    );
    // Nothing after it pretends to work.
    assert_eq!(status_of(&lines, "login"), "skip", "{report:#}");
    assert_no_secret(&output, &[]);
    // No CA at all: the same failure (the simulator's CA is not a public one).
    env.retain(|(k, _)| *k != "TRADEAUTH_CA_CERT");
    let bare = tradeauth(&["check", "cadenza"], &env, None).await;
    let (out, _) = text(&bare);
    assert_eq!(bare.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL  tls") && out.contains("fix: the certificate does not chain"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_on_a_venue_clock_two_minutes_ahead() {
    let sim = sim().await;
    sim.set_clock_offset_secs(120);
    let env = with_ca(&sim, Venue::Partner);
    let output = tradeauth(&["check", "partner", "--json"], &env, None).await;
    let (ok, lines, report) = checks(&output);
    assert!(!ok, "{report:#}");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(status_of(&lines, "clock"), "fail", "{report:#}");
    let clock = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["name"] == "clock"))
        .expect("clock line")
        .clone();
    let detail = clock["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("2 min ahead")
            || detail.contains("119 s ahead")
            || detail.contains("121 s"),
        "{clock}"
    );
    assert!(
        clock["fix"].as_str().unwrap_or_default().contains("sync"),
        "{clock}"
    );
    // A few seconds off is a warning, not a failure; in step it passes.
    sim.set_clock_offset_secs(-5);
    let (ok, lines, report) = checks(&tradeauth(&["check", "partner", "--json"], &env, None).await);
    assert_eq!(status_of(&lines, "clock"), "warn", "{report:#}");
    assert!(ok, "{report:#}");
    sim.set_clock_offset_secs(0);
    let (_, lines, report) = checks(&tradeauth(&["check", "partner", "--json"], &env, None).await);
    assert_eq!(status_of(&lines, "clock"), "pass", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_credential_problem_without_printing_it() {
    let sim = sim().await;
    let mut env = with_ca(&sim, Venue::Cadenza);
    env.retain(|(k, _)| *k != "CADENZA_PASSWORD");
    env.push(("CADENZA_PASSWORD", "not-the-password-QQQ".to_owned()));
    let output = tradeauth(&["check", "cadenza", "--json"], &env, None).await;
    let (ok, lines, report) = checks(&output);
    assert!(!ok);
    assert_eq!(status_of(&lines, "tls"), "pass", "{report:#}");
    assert_eq!(status_of(&lines, "login"), "fail", "{report:#}");
    assert!(
        report.to_string().contains("CADENZA_PASSWORD"),
        "{report:#}"
    );
    assert_no_secret(&output, &["not-the-password-QQQ"]);

    // An Exchange key the venue does not know: the key line passes (its format is
    // right), the protected call fails with the fix.
    let mut env = with_ca(&sim, Venue::Exchange);
    env.retain(|(k, _)| *k != "EXCHANGE_API_KEY");
    let unknown = "exch_00000000000000000000000000000000";
    env.push(("EXCHANGE_API_KEY", unknown.to_owned()));
    let output = tradeauth(&["check", "exchange", "--json"], &env, None).await;
    let (ok, lines, report) = checks(&output);
    assert!(!ok);
    assert_eq!(status_of(&lines, "call"), "fail", "{report:#}");
    assert_no_secret(&output, &[unknown]);

    // http:// is a failure of the url line, and nothing is sent.
    let mut env = with_ca(&sim, Venue::Cadenza);
    let http = sim
        .urls()
        .venue(Venue::Cadenza)
        .replacen("https://", "http://", 1);
    env.retain(|(k, _)| *k != "CADENZA_BASE_URL");
    env.push(("CADENZA_BASE_URL", http));
    let output = tradeauth(&["check", "cadenza", "--json"], &env, None).await;
    let (ok, lines, report) = checks(&output);
    assert!(!ok);
    assert_eq!(status_of(&lines, "url"), "fail", "{report:#}");
    assert_eq!(status_of(&lines, "dns"), "skip", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_inspect_reads_a_live_token_without_its_signature() {
    let sim = sim().await;
    let env = with_ca(&sim, Venue::Cascade);
    let header = tradeauth(&["header", "cascade"], &env, None).await;
    let (line, _) = text(&header);
    let token = line.trim().rsplit(' ').next().expect("token").to_owned();
    let signature = token.rsplit('.').next().expect("signature").to_owned();
    // From stdin, a whole header line, as `tradeauth header cascade | tradeauth token inspect`.
    let output = tradeauth(&["token", "inspect"], &[], Some(&line)).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(out.contains("claims:") && out.contains("\"exp\""), "{out}");
    assert!(
        out.contains("expires in ") && out.contains("UTC") && out.contains("local"),
        "{out}"
    );
    assert!(!out.contains(&signature), "{out}");
    // As an argument, JSON.
    let json = tradeauth(&["token", "inspect", &token, "--json"], &[], None).await;
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["expired"], false);
    assert_eq!(
        report["claims"]["sub"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(demo::CASCADE_ACCOUNT.to_ascii_lowercase()),
        "{report}"
    );
    assert!(!report.to_string().contains(&signature));
    // Not a token: 11, not echoed.
    let bad = tradeauth(&["token", "inspect", "opaque-SECRET-value"], &[], None).await;
    assert_eq!(bad.status.code(), Some(11));
    assert!(!text(&bad).1.contains("opaque-SECRET-value"));
}

fn private_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tradeauth-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("0700");
    }
    dir
}

/// A Cadenza session on the file store at `dir` that has logged in (so a record exists);
/// its token, to look for in the output.
async fn stored_session(sim: &Sim, dir: &Path, key: Option<&str>) -> (Session, String) {
    let mut options = Options::new()
        .base_url(sim.urls().venue(Venue::Cadenza))
        .add_root_pem(sim.ca_pem())
        .store(format!("file://{}", dir.display()));
    options = match key {
        Some(key) => options.store_key(key),
        None => options.store_plaintext(true),
    };
    let session = Session::cadenza(
        CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
        options,
    )
    .expect("session");
    let credential = session.credential().await.expect("login");
    // The record is written after the login answer; give the write a moment.
    for _ in 0..50 {
        if std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "rec"))
            })
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (session, credential.token().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_status_shows_records_and_leases_never_a_token() {
    let sim = sim().await;
    let dir = private_dir("store");
    let (session, token) = stored_session(&sim, &dir, Some(STORE_KEY)).await;
    let url = format!("file://{}", dir.display());

    // Without the key: venue, account and version, and why the expiry is not shown.
    let output = tradeauth(&["store", "status", &url, "--json"], &[], None).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let records = report["records"].as_array().expect("records").clone();
    assert_eq!(records.len(), 1, "{report:#}");
    let record = &records[0];
    assert_eq!(record["venue"], "cadenza");
    assert_eq!(record["account"], demo::CADENZA_EMAIL);
    assert_eq!(record["version"], 1);
    assert_eq!(record["encryption"], "A256GCM");
    assert!(record["expires_in_seconds"].is_null(), "{record}");
    assert!(
        record["note"]
            .as_str()
            .unwrap_or_default()
            .contains("TRADEAUTH_STORE_KEY"),
        "{record}"
    );
    assert_no_secret(&output, &[&token, STORE_KEY]);

    // With the key: the expiry, the writer, the refresh token's presence (not it).
    let refresh = session
        .refresh_token()
        .await
        .map(|s| s.expose().to_owned())
        .expect("refresh token");
    let keyed = tradeauth(
        &["store", "status", &url, "--json"],
        &[("TRADEAUTH_STORE_KEY", STORE_KEY.to_owned())],
        None,
    )
    .await;
    let report: Value = serde_json::from_slice(&keyed.stdout).expect("JSON");
    let record = &report["records"][0];
    let expires = record["expires_in_seconds"].as_f64().expect("expiry shown");
    assert!(expires > 3000.0 && expires <= 3600.0, "{record}");
    assert_eq!(record["has_refresh_token"], true);
    assert!(record["writer"].as_str().unwrap_or_default().contains('@'));
    assert_no_secret(&keyed, &[&token, &refresh, STORE_KEY]);

    // A lease held by another process shows with its holder and age.
    let store = tradeauth::store::FileStore::open(&dir).expect("store");
    let key = tradeauth::store::record_key(
        tradeauth::Venue::Cadenza,
        session.base_url(),
        demo::CADENZA_EMAIL,
    );
    use tradeauth::CredentialStore as _;
    assert!(
        store
            .try_lease(&key, "4242@trading-host-7/abc", Duration::from_secs(30))
            .await
            .expect("lease")
    );
    let table = tradeauth(
        &["store", "status", &url],
        &[("TRADEAUTH_STORE_KEY", STORE_KEY.to_owned())],
        None,
    )
    .await;
    let (out, err) = text(&table);
    assert_eq!(table.status.code(), Some(0), "{err}");
    assert!(out.starts_with("RECORD"), "{out}");
    assert!(
        out.contains("cadenza")
            && out.contains(demo::CADENZA_EMAIL)
            && out.contains("4242@trading-host-7/abc"),
        "{out}"
    );
    assert!(
        out.contains("in 59 min") || out.contains("in 60 min"),
        "{out}"
    );
    assert_no_secret(&table, &[&token, &refresh, STORE_KEY]);

    // The wrong key says so; a bad URL is an error (11).
    let other_key = "00".repeat(32);
    let wrong = tradeauth(
        &["store", "status", &url, "--json"],
        &[("TRADEAUTH_STORE_KEY", other_key)],
        None,
    )
    .await;
    let report: Value = serde_json::from_slice(&wrong.stdout).expect("JSON");
    assert!(
        report["records"][0]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("another store key"),
        "{report}"
    );
    let bad = tradeauth(&["store", "status", "ftp://x"], &[], None).await;
    assert_eq!(bad.status.code(), Some(11));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_status_reads_plaintext_records_without_a_key() {
    let sim = sim().await;
    let dir = private_dir("plain");
    let (_session, token) = stored_session(&sim, &dir, None).await;
    let url = format!("file://{}", dir.display());
    let output = tradeauth(&["store", "status", &url, "--json"], &[], None).await;
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let record = &report["records"][0];
    assert_eq!(record["encryption"], "none");
    assert!(record["expires_in_seconds"].as_f64().is_some(), "{record}");
    assert_no_secret(&output, &[&token]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Redis store (scripts/test_store.sh starts a redis-server and sets the URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a redis-server: scripts/test_store.sh runs it"]
async fn store_status_lists_a_redis_store() {
    let url = std::env::var("TRADEAUTH_TEST_REDIS_URL")
        .expect("TRADEAUTH_TEST_REDIS_URL (scripts/test_store.sh)");
    let sim = sim().await;
    let prefix = format!("cli-test-{}:", std::process::id());
    let session = Session::cadenza(
        CadenzaConfig::new(demo::CADENZA_EMAIL, demo::CADENZA_PASSWORD),
        Options::new()
            .base_url(sim.urls().venue(Venue::Cadenza))
            .add_root_pem(sim.ca_pem())
            .store(url.clone())
            .store_prefix(prefix.clone())
            .store_key(STORE_KEY),
    )
    .expect("session");
    let token = session
        .credential()
        .await
        .expect("login")
        .token()
        .to_owned();
    let mut listed = Value::Null;
    for _ in 0..50 {
        let output = tradeauth(
            &["store", "status", &url, "--prefix", &prefix, "--json"],
            &[("TRADEAUTH_STORE_KEY", STORE_KEY.to_owned())],
            None,
        )
        .await;
        assert_no_secret(&output, &[&token, STORE_KEY]);
        // The Redis URL's password is never printed either.
        if let Some((_, rest)) = url.split_once("://:") {
            let password = rest.split('@').next().unwrap_or_default();
            assert_no_secret(&output, &[password]);
        }
        listed = serde_json::from_slice(&output.stdout).expect("JSON");
        if listed["records"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = &listed["records"][0];
    assert_eq!(record["venue"], "cadenza", "{listed}");
    assert_eq!(record["account"], demo::CADENZA_EMAIL);
    assert!(record["expires_in_seconds"].as_f64().is_some(), "{record}");
}
