//! TLS floor: a server that offers only TLS 1.0 or 1.1 is refused; the same server at
//! TLS 1.2 is reached. The old-protocol server is OpenSSL's `s_server` (rustls cannot
//! speak TLS 1.1 at all, which is the point), run on loopback with a throwaway cert.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tradeauth::{CadenzaConfig, ErrorKind, Options, Session};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `openssl s_server` speaking exactly `version` ("-tls1", "-tls1_1", "-tls1_2").
fn openssl_server(version: &str, dir: &std::path::Path) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", version])
        // OpenSSL 3 refuses TLS < 1.2 at its default security level; the test server
        // must offer them to show that *we* refuse.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    let server = Server(child);
    // Ready when it accepts a connection (bounded), not after a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::yield_now();
    }
    (server, port)
}

async fn login_error(port: u16, ca_pem: &str) -> tradeauth::Error {
    let options = Options::new()
        .base_url(format!("https://127.0.0.1:{port}"))
        .add_root_pem(ca_pem)
        .background_refresh(false)
        .max_retries(0)
        // s_server's page mode never answers a POST: bound the control case's wait.
        .request_timeout(Duration::from_secs(2));
    let session = Session::cadenza(CadenzaConfig::new("a@b.c", "pw"), options).expect("session");
    session
        .credential()
        .await
        .expect_err("no JSON login answer from s_server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_offering_only_tls_1_0_or_1_1_are_refused() {
    let dir = std::env::temp_dir().join(format!("tradeauth-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("write key");
    let ca = cert.cert.pem();

    for version in ["-tls1", "-tls1_1"] {
        let (_server, port) = openssl_server(version, &dir);
        let error = login_error(port, &ca).await;
        assert_eq!(
            error.kind(),
            ErrorKind::Transport,
            "{version}: {}",
            error.message()
        );
        let message = error.message().to_lowercase();
        assert!(
            message.contains("version") || message.contains("protocol"),
            "{version}: {}",
            error.message()
        );
    }

    // Control: the same server at TLS 1.2 is reached (the handshake succeeds; then it
    // gives no login answer), so the refusals above are the TLS floor, not the setup.
    let (_server, port) = openssl_server("-tls1_2", &dir);
    let error = login_error(port, &ca).await;
    assert_ne!(error.kind(), ErrorKind::Transport, "{}", error.message());
    let _ = std::fs::remove_dir_all(&dir);
}
