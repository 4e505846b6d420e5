//! `<NAME>_FILE` secrets (issue #17): every `*_from_env` constructor reads a secret from a
//! mounted file (Docker / Kubernetes secrets) instead of the environment, and Cascade's
//! key from a keystore. One test in its own binary: it changes the process environment.

mod support;

use std::path::{Path, PathBuf};

use tradeauth::{ErrorKind, Options, Session};
use tradeauth_sim::{Venue, demo};

fn set(name: &str, value: impl AsRef<std::ffi::OsStr>) {
    // SAFETY: this binary's only test runs these calls on one thread before any session
    // (or other thread reading the environment) exists.
    unsafe { std::env::set_var(name, value) }
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) }
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn options() -> Options {
    Options::new().background_refresh(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_venue_reads_its_secret_from_a_file() {
    let sim = support::sim().await;
    let dir = std::env::temp_dir().join(format!("tradeauth-env-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    set("TRADEAUTH_CA_CERT", write(&dir, "ca.pem", sim.ca_pem()));
    for (venue, name) in [
        (Venue::Cadenza, "CADENZA_BASE_URL"),
        (Venue::Partner, "PARTNER_BASE_URL"),
        (Venue::Cascade, "CASCADE_BASE_URL"),
        (Venue::Exchange, "EXCHANGE_BASE_URL"),
    ] {
        set(name, sim.urls().venue(venue));
    }
    set("CADENZA_EMAIL", demo::CADENZA_EMAIL);
    set("PARTNER_CLIENT_ID", demo::PARTNER_CLIENT_ID);
    set("CASCADE_DEPOSIT_ADDRESS", demo::CASCADE_ACCOUNT);
    // Each secret as a mounted file ends: one trailing newline, stripped.
    let secrets = [
        ("CADENZA_PASSWORD", demo::CADENZA_PASSWORD),
        ("PARTNER_SECRET_KEY", demo::PARTNER_SECRET_KEY),
        ("CASCADE_DELEGATE_PRIVATE_KEY", demo::CASCADE_DELEGATE_KEY),
        ("EXCHANGE_API_KEY", demo::EXCHANGE_API_KEY),
    ];
    for (name, value) in secrets {
        unset(name);
        set(
            &format!("{name}_FILE"),
            write(&dir, name, &format!("{value}\n")),
        );
    }
    let sessions = [
        Session::cadenza_from_env(options()).expect("cadenza"),
        Session::partner_from_env(options()).expect("partner"),
        Session::cascade_from_env(options()).expect("cascade"),
        Session::exchange_from_env(options()).expect("exchange"),
    ];
    for session in &sessions {
        session.credential().await.expect("logs in");
    }
    assert_eq!(sim.stats().cadenza.logins, 1);
    assert_eq!(sim.stats().cascade.logins, 1);
    let response = support::get(&sessions[3], "/api/v1/user").await;
    assert_eq!(
        response.status, 200,
        "the key read from the file is accepted"
    );

    // Both forms of one variable: refused, naming both, never the value.
    set("CADENZA_PASSWORD", demo::CADENZA_PASSWORD);
    let e = Session::cadenza_from_env(options()).expect_err("both");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message()
            .contains("CADENZA_PASSWORD and CADENZA_PASSWORD_FILE"),
        "{e}"
    );
    assert!(!e.to_string().contains(demo::CADENZA_PASSWORD));
    unset("CADENZA_PASSWORD");
    // A file that is not there names the variable and the path.
    set("PARTNER_SECRET_KEY_FILE", dir.join("missing"));
    let e = Session::partner_from_env(options()).expect_err("missing");
    assert!(e.message().contains("PARTNER_SECRET_KEY_FILE"), "{e}");
    assert!(e.message().contains("missing"), "{e}");

    // Cascade from a keystore, its password from a file.
    unset("CASCADE_DELEGATE_PRIVATE_KEY_FILE");
    let keystore = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keystore/demo_delegate_pbkdf2.json");
    set("CASCADE_KEYSTORE", &keystore);
    set(
        "CASCADE_KEYSTORE_PASSWORD_FILE",
        write(&dir, "ks-pw", "demo-keystore-password\n"),
    );
    let cascade = Session::cascade_from_env(options()).expect("keystore");
    cascade
        .credential()
        .await
        .expect("logs in with the keystore's key");
    assert_eq!(sim.stats().cascade.logins, 2);
    set(
        "CASCADE_KEYSTORE_PASSWORD_FILE",
        write(&dir, "ks-pw", "not-the-password\n"),
    );
    let e = Session::cascade_from_env(options()).expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("demo_delegate_pbkdf2.json"), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    // Key and keystore at once: exactly one source.
    set("CASCADE_DELEGATE_PRIVATE_KEY", demo::CASCADE_DELEGATE_KEY);
    let e = Session::cascade_from_env(options()).expect_err("two sources");
    assert!(e.message().contains("exactly one key source"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
