//! TLS and process-level behaviour: TLS 1.2 and 1.3 are negotiated, plain HTTP is never
//! answered, every listener presents a certificate for 127.0.0.1 and localhost, and the
//! standalone binary prints one JSON line, exits 0 on SIGTERM and rejects bad config.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use common::{RequestExt as _, client, rustls_config, start, start_client};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tradeauth_sim::Sim;

fn all_urls(sim: &Sim) -> [&str; 5] {
    let u = sim.urls();
    [&u.cadenza, &u.partner, &u.cascade, &u.exchange, &u.control]
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn tls12_and_tls13_are_both_negotiated() {
    let sim = start().await;
    for (versions, expected) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        for url in all_urls(&sim) {
            let connector = TlsConnector::from(rustls_config(&sim, versions));
            let tcp = TcpStream::connect(("127.0.0.1", port_of(url)))
                .await
                .unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector.connect(name, tcp).await.expect("handshake");
            assert_eq!(tls.get_ref().1.protocol_version(), Some(expected), "{url}");
            // And HTTP works over it.
            tls.write_all(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            tls.read_to_end(&mut answer).await.unwrap();
            assert!(answer.starts_with(b"HTTP/1.1 404"), "{url}");
        }
    }
}

#[tokio::test]
async fn http2_and_http11_are_both_served() {
    let sim = start().await;
    let h2 = client(&sim)
        .get(format!("{}/api/v1/orderbook/BTC-USD", sim.urls().exchange))
        .sent()
        .await;
    assert_eq!(h2.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/orderbook/BTC-USD", sim.urls().exchange))
        .sent()
        .await;
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!((h2.status().as_u16(), h1.status().as_u16()), (200, 200));
}

#[tokio::test]
async fn certificate_is_valid_for_localhost_too() {
    let (sim, http) = start_client().await;
    for url in all_urls(&sim) {
        let localhost = url.replace("127.0.0.1", "localhost");
        let response = http.get(format!("{localhost}/nope")).sent().await;
        assert_eq!(response.status(), 404, "{localhost}");
    }
}

#[tokio::test]
async fn plain_http_is_never_answered() {
    let sim = start().await;
    for url in all_urls(&sim) {
        let mut tcp = TcpStream::connect(("127.0.0.1", port_of(url)))
            .await
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // The server ends the connection after a TLS alert at most.
        let _ = tcp.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/"), "{url} answered plain HTTP");
    }
    // A plain-HTTP client gets an error, not a response.
    let plain = reqwest::Client::builder().build().unwrap();
    let url = sim.urls().cadenza.replacen("https://", "http://", 1);
    assert!(
        plain
            .get(format!("{url}/api/v3/user/profile"))
            .send()
            .await
            .is_err()
    );
    // A client that does not trust the CA refuses the certificate.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(unrelated_ca().as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(untrusting.get(&sim.urls().cadenza).send().await.is_err());
}

/// A self-signed certificate that did not sign the simulator's certificate.
fn unrelated_ca() -> String {
    rcgen::generate_simple_self_signed(vec!["unrelated.test".to_owned()])
        .unwrap()
        .cert
        .pem()
}

#[tokio::test]
async fn shutdown_closes_the_listeners() {
    let sim = start().await;
    let port = port_of(&sim.urls().exchange);
    let ca_path = sim.ca_path().to_owned();
    assert!(ca_path.exists());
    sim.shutdown().await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    assert!(!ca_path.exists(), "the temp CA is removed");
}

#[test]
fn binary_prints_one_json_line_and_exits_0_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("tradeauth-sim-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let ca_out = dir.join("ca.pem");
    let fault = "cadenza:/api/v3/auth/login=status,status=503,retry_after=2";
    let args = [
        ["--ca-out", ca_out.to_str().unwrap()],
        ["--clock-offset-secs", "-600"],
        ["--cadenza-access-ttl-secs", "60"],
        ["--fault", fault],
    ];
    let mut child = binary(args.as_flattened(), Stdio::piped());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    // The line is printed in this key order (parsing may reorder keys).
    assert!(
        line.starts_with(r#"{"cadenza":"https://127.0.0.1:"#),
        "{line}"
    );
    let mut keys: Vec<_> = info.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ca_cert", "cadenza", "cascade", "control", "exchange", "partner"
        ]
    );
    assert_eq!(info["ca_cert"], ca_out.to_str().unwrap());
    for venue in ["cadenza", "partner", "cascade", "exchange", "control"] {
        let url = info[venue].as_str().unwrap();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        port_of(url);
    }

    // It serves, with the flags applied.
    let pem = std::fs::read(&ca_out).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap();
        let login = format!("{}/api/v3/auth/login", info["cadenza"].as_str().unwrap());
        let body = serde_json::json!({ "email": "demo@cadenza.test", "password": "demo-password" });
        let faulted = http.post(&login).json(&body).sent().await;
        assert_eq!(faulted.status(), 503);
        assert_eq!(faulted.headers()["retry-after"], "2");
        let ok: Value = http.post(&login).json(&body).send_json().await;
        let (_, clock) = common::get_json(
            &http,
            &format!("{}/clock", info["control"].as_str().unwrap()),
        )
        .await;
        assert_eq!(clock["offset_secs"], -600);
        let expires_at = ok["data"]["expiresAt"].as_i64().unwrap();
        let now = clock["now_unix_ms"].as_i64().unwrap();
        assert!(
            (expires_at - now - 60_000).abs() < 5_000,
            "{expires_at} {now}"
        );
    });

    assert!(kill(&child, "-TERM"));
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "exit 0 on SIGTERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "exactly one line on stdout");
    assert!(!stderr_of(&mut child).contains("demo-password"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_rejects_bad_config_and_flags() {
    let dir = std::env::temp_dir().join(format!("tradeauth-sim-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("config.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tradeauth-sim"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for (json, needle) in [
        (r#"{"cadenza":{"userz":[]}}"#, "userz"),
        (
            r#"{"exchange":{"traders":[{"username":"a","api_key":"exch_XYZ"}]}}"#,
            "exchange.traders[0].api_key",
        ),
        (
            r#"{"cascade":{"accounts":[{"deposit_address":"0x1"}]}}"#,
            "cascade.accounts[0].deposit_address",
        ),
        (
            r#"{"partner":{"clients":[{"client_id":"a","secret_key":""}]}}"#,
            "partner.clients[0].secret_key",
        ),
        (
            r#"{"cadenza":{"revoke_family_on_reuse":"yes"}}"#,
            "expected a boolean",
        ),
        ("not json", "expected"),
    ] {
        std::fs::write(&config, json).unwrap();
        let out = run(&["--config", config.to_str().unwrap()]);
        assert!(!out.status.success(), "{json}");
        assert!(out.stdout.is_empty(), "{json}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{json}: {stderr}");
    }
    for args in [
        &["--fault", "cadenza=explode"][..],
        &["--fault", "venus=drop"][..],
        &["--fault", "cadenza=date"][..],
        &["--fault", "cadenza=date,offset_secs=-7200,status=503"][..],
        &["--fault", "cadenza=status,status=503,offset_secs=-7200"][..],
        &["--cadenza-revoke-family-on-reuse=maybe"][..],
        &["--cadenza-access-ttl-secs", "0"][..],
        &["--no-such-flag"][..],
        &["--config", "/nonexistent/config.json"][..],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }

    // A valid config file is accepted (checked without serving: it must get as far as
    // printing the JSON line).
    std::fs::write(
        &config,
        r#"{"cadenza":{"users":[{"email":"a@b.c","password":"pw"}],"access_ttl_secs":5},
            "partner":{"clients":[{"client_id":"cid","secret_key":"sk"}]},
            "cascade":{"accounts":[{"deposit_address":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","delegates":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]}],"token_ttl_secs":60,"nonce_ttl_secs":30},
            "exchange":{"admin_token":"adm","traders":[{"username":"team-alpha","api_key":"exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"}]}}"#,
    )
    .unwrap();
    let mut child = binary(&["--config", config.to_str().unwrap()], Stdio::null());
    let info: Value = serde_json::from_str(&startup_line(&mut child)).unwrap();
    let ca_dir = std::path::Path::new(info["ca_cert"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned();
    kill(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(0), "exit 0 on SIGINT");
    assert!(!ca_dir.exists(), "the default temp dir is removed at exit");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The simulator binary started with `args`, stdin closed and stdout piped (it prints
/// its startup line there).
fn binary(args: &[&str], stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tradeauth-sim"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The first line the binary printed on stdout.
fn startup_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// Sends `signal` (`-TERM`, `-INT`) to the binary with kill(1); whether kill succeeded.
fn kill(child: &Child, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success()
}

/// Everything the binary wrote on stderr (it must have exited, or this waits).
fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// Starts the binary with `args`; returns it, its startup line and its CA PEM.
fn spawn_binary(args: &[&str]) -> (Child, Value, Vec<u8>) {
    let mut child = binary(args, Stdio::piped());
    let info: Value = serde_json::from_str(&startup_line(&mut child)).expect("one JSON line");
    let pem = std::fs::read(info["ca_cert"].as_str().unwrap()).unwrap();
    (child, info, pem)
}

/// Stops the binary with SIGTERM; returns its stderr.
fn stop_binary(mut child: Child) -> String {
    assert!(kill(&child, "-TERM"));
    assert_eq!(child.wait().unwrap().code(), Some(0), "exit 0 on SIGTERM");
    stderr_of(&mut child)
}

/// Logs in, rotates once, presents the rotated token again; returns the reuse answer's
/// status, whether the family's newest access token still works, and `/stats`.
async fn reuse_a_rotated_token(http: &reqwest::Client, info: &Value) -> (u16, u16, Value) {
    let cadenza = info["cadenza"].as_str().unwrap();
    let post = |path: &str, body: Value| http.post(format!("{cadenza}{path}")).json(&body).send();
    let login: Value = post(
        "/api/v3/auth/login",
        serde_json::json!({ "email": "demo@cadenza.test", "password": "demo-password" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let first = login["data"]["refreshToken"].clone();
    let rotated: Value = post(
        "/api/v3/auth/token/refresh",
        serde_json::json!({ "refreshToken": first }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = rotated["data"]["accessToken"].as_str().unwrap().to_owned();
    let reuse = post(
        "/api/v3/auth/token/refresh",
        serde_json::json!({ "refreshToken": first }),
    )
    .await
    .unwrap()
    .status()
    .as_u16();
    let profile = http
        .get(format!("{cadenza}/api/v3/account/balances"))
        .bearer_auth(&access)
        .sent()
        .await
        .status()
        .as_u16();
    let (_, stats) = common::get_json(
        http,
        &format!("{}/stats", info["control"].as_str().unwrap()),
    )
    .await;
    (reuse, profile, stats)
}

#[test]
fn binary_takes_the_date_fault_and_family_revocation_flag_and_config() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http_for = |pem: &[u8]| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem).unwrap()])
            .build()
            .unwrap()
    };

    // The flag, with a date fault armed in the text form.
    let (child, info, pem) = spawn_binary(&[
        "--cadenza-revoke-family-on-reuse",
        "--fault",
        "cadenza:/api/v3/user/profile=date,offset_secs=-7200",
    ]);
    let http = http_for(&pem);
    runtime.block_on(async {
        let control = info["control"].as_str().unwrap();
        let (_, armed) = common::get_json(&http, &format!("{control}/faults")).await;
        assert_eq!(
            armed,
            serde_json::json!([{"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":-7200,"count":1}])
        );
        let (reuse, access_after, stats) = reuse_a_rotated_token(&http, &info).await;
        assert_eq!((reuse, access_after), (401, 401));
        assert_eq!(stats["cadenza"]["family_revocations"], 1, "{stats}");

        // The date fault: Date is two hours behind the sim clock, once.
        let profile = format!("{}/api/v3/user/profile", info["cadenza"].as_str().unwrap());
        let clock_secs = |clock: &Value| clock["now_unix_ms"].as_i64().unwrap().div_euclid(1000);
        let date_of = |response: &reqwest::Response| {
            let text = response.headers()["date"].to_str().unwrap().to_owned();
            httpdate::parse_http_date(&text)
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        };
        for offset in [-7200, 0] {
            let (_, before) = common::get_json(&http, &format!("{control}/clock")).await;
            let response = http.get(&profile).sent().await;
            let (_, after) = common::get_json(&http, &format!("{control}/clock")).await;
            assert_eq!(response.status(), 401, "no token: handled as usual");
            let date = date_of(&response);
            assert!(
                (clock_secs(&before) + offset..=clock_secs(&after) + offset).contains(&date),
                "{offset}: {date}"
            );
        }
    });
    let stderr = stop_binary(child);
    assert!(!stderr.contains("demo-password"));

    let dir = std::env::temp_dir().join(format!("tradeauth-sim-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, r#"{"cadenza":{"revoke_family_on_reuse":true}}"#).unwrap();
    // With the config key, and with neither (reuse is refused, the family lives on).
    for (args, access_after_reuse, revocations) in [
        (&["--config", config.to_str().unwrap()][..], 401, 1),
        (&[][..], 200, 0),
    ] {
        let (child, info, pem) = spawn_binary(args);
        let http = http_for(&pem);
        runtime.block_on(async {
            let (reuse, access_after, stats) = reuse_a_rotated_token(&http, &info).await;
            assert_eq!((reuse, access_after), (401, access_after_reuse));
            assert_eq!(
                stats["cadenza"]["family_revocations"], revocations,
                "{stats}"
            );
        });
        stop_binary(child);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
