//! Lease and compare-and-swap semantics, the same for every store.

use std::sync::Arc;
use std::time::Duration;

use super::*;

async fn lease_and_cas(store: Arc<dyn CredentialStore>) {
    let key = format!("cadenza|https://h/|{}", rand::random::<u64>());
    assert_eq!(store.read(&key).await.unwrap(), None);
    // CAS: only against the version read.
    assert!(!store.compare_and_swap(&key, 1, b"x").await.unwrap());
    assert!(store.compare_and_swap(&key, 0, b"one").await.unwrap());
    assert!(!store.compare_and_swap(&key, 0, b"again").await.unwrap());
    let r = store.read(&key).await.unwrap().unwrap();
    assert_eq!((r.version, r.data.as_slice()), (1, b"one".as_slice()));
    assert!(store.compare_and_swap(&key, 1, b"two").await.unwrap());
    assert!(!store.compare_and_swap(&key, 1, b"stale").await.unwrap());
    assert_eq!(store.read(&key).await.unwrap().unwrap().version, 2);
    // Lease: exclusive, re-entrant for its holder, released only by its holder.
    let ttl = Duration::from_millis(300);
    assert!(store.try_lease(&key, "a", ttl).await.unwrap());
    assert!(!store.try_lease(&key, "b", ttl).await.unwrap());
    assert!(store.try_lease(&key, "a", ttl).await.unwrap());
    store.release(&key, "b").await.unwrap();
    assert!(!store.try_lease(&key, "b", ttl).await.unwrap());
    store.release(&key, "a").await.unwrap();
    assert!(store.try_lease(&key, "b", ttl).await.unwrap());
    // Expiry: a holder that never releases blocks others only until the ttl.
    assert!(!store.try_lease(&key, "c", ttl).await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(store.try_lease(&key, "c", ttl).await.unwrap());
    store.release(&key, "c").await.unwrap();
}

#[tokio::test]
async fn memory_store_semantics() {
    lease_and_cas(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn file_store_semantics_and_permissions() {
    let dir = std::env::temp_dir().join(format!("tradeauth-store-unit-{}", rand::random::<u64>()));
    let store = FileStore::open(dir.join("nested")).unwrap();
    lease_and_cas(Arc::new(store.clone())).await;
    let key = "cascade|https://h/|0xabc";
    assert!(store.compare_and_swap(key, 0, b"sealed").await.unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.record_path(key)), 0o600);
    }
    // A corrupted file reads as version 0 with its raw bytes, and CAS on 0 replaces it.
    std::fs::write(store.record_path(key), b"\x00not json").unwrap();
    let r = store.read(key).await.unwrap().unwrap();
    assert_eq!(r.version, 0);
    assert!(store.compare_and_swap(key, 0, b"fresh").await.unwrap());
    assert_eq!(store.read(key).await.unwrap().unwrap().version, 1);
    // A version past the maximum (a hand-edited or damaged file) reads as unreadable too:
    // the next write replaces it rather than overflowing or failing forever.
    for version in [u64::MAX, MAX_VERSION + 1] {
        let raw = format!(r#"{{"version":{version},"data":"c2VhbGVk"}}"#);
        std::fs::write(store.record_path(key), raw).unwrap();
        assert_eq!(store.read(key).await.unwrap().unwrap().version, 0);
        assert!(store.compare_and_swap(key, 0, b"fresh").await.unwrap());
        assert_eq!(store.read(key).await.unwrap().unwrap().version, 1);
    }
    let raw = format!(r#"{{"version":{MAX_VERSION},"data":"c2VhbGVk"}}"#);
    std::fs::write(store.record_path(key), raw).unwrap();
    assert_eq!(store.read(key).await.unwrap().unwrap().version, MAX_VERSION);
    let e = store
        .compare_and_swap(key, MAX_VERSION, b"x")
        .await
        .unwrap_err();
    assert!(e.message().contains("maximum"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn versions_are_plain_decimals_up_to_the_maximum() {
    for (text, version) in [
        ("0", Some(0)),
        ("1", Some(1)),
        ("42", Some(42)),
        ("18446744073709551614", Some(MAX_VERSION)),
        ("18446744073709551615", None),
        ("99999999999999999999", None),
        ("007", None),
        ("00", None),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("abc", None),
    ] {
        assert_eq!(parse_version(text), version, "{text:?}");
    }
    assert_eq!(next_version(0).unwrap(), 1);
    assert_eq!(next_version(MAX_VERSION - 1).unwrap(), MAX_VERSION);
    assert!(next_version(MAX_VERSION).is_err());
    assert!(next_version(u64::MAX).is_err());
}

#[tokio::test]
async fn memory_store_never_writes_past_the_maximum() {
    let store = MemoryStore::new();
    assert!(
        store
            .compare_and_swap("k", MAX_VERSION, b"x")
            .await
            .is_err()
    );
    assert!(store.compare_and_swap("k", u64::MAX, b"x").await.is_err());
}

#[tokio::test]
async fn file_store_cas_is_atomic_across_tasks() {
    let dir = std::env::temp_dir().join(format!("tradeauth-store-race-{}", rand::random::<u64>()));
    let store: Arc<dyn CredentialStore> = Arc::new(FileStore::open(&dir).unwrap());
    let key = "cadenza|https://h/|race";
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.compare_and_swap(key, 0, &[i]).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one writer wins version 1");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn urls() {
    let t = Duration::from_secs(1);
    assert_eq!(open("memory:", None, t).unwrap().describe(), "memory:");
    let dir = std::env::temp_dir().join(format!("tradeauth store {}", rand::random::<u32>()));
    let url = format!("file://{}", dir.display()).replace(' ', "%20");
    assert_eq!(
        open(&url, None, t).unwrap().describe(),
        format!("file://{}", dir.display())
    );
    // file://localhost/abs/path names the same directory (RFC 8089); another host does not.
    let local = format!("file://localhost{}", dir.display()).replace(' ', "%20");
    assert_eq!(
        open(&local, None, t).unwrap().describe(),
        format!("file://{}", dir.display())
    );
    let _ = std::fs::remove_dir_all(&dir);
    let redis = RedisStore::open("redis://:hunter2@127.0.0.1:6390/1?prefix=app:", None, t).unwrap();
    assert_eq!(redis.prefix(), "app:");
    assert!(!redis.describe().contains("hunter2"));
    assert!(!format!("{redis:?}").contains("hunter2"));
    let redis = RedisStore::open("rediss://127.0.0.1:6390/1", Some("x:"), t).unwrap();
    assert_eq!(redis.prefix(), "x:");
    for bad in ["", "ftp://x", "file://host/x", "file:", "redis://[::1"] {
        assert_eq!(
            open(bad, None, t).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
}

/// A record's Debug says its version and size, never its (sealed) bytes.
#[test]
fn stored_record_debug_shows_version_and_size_only() {
    let record = StoredRecord {
        version: 7,
        data: b"sealed-bytes".to_vec(),
    };
    assert_eq!(
        format!("{record:?}"),
        "StoredRecord { version: 7, bytes: 12 }"
    );
}

/// Each URL scheme opens its own kind of store (Redis without connecting yet), and a CA
/// certificate is taken only with a `rediss://` URL.
#[test]
fn each_scheme_opens_its_store_and_a_ca_needs_rediss() {
    let t = Duration::from_secs(1);
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("cert")
        .cert
        .pem();
    let redis = open("redis://127.0.0.1:1/0", None, t).expect("a redis:// store opens");
    assert!(
        redis.describe().starts_with("redis://127.0.0.1:1"),
        "{redis:?}"
    );
    let tls = open_with_ca("rediss://127.0.0.1:1/0", None, t, Some(&ca))
        .expect("a rediss:// store opens with its CA");
    assert!(
        tls.describe().starts_with("rediss://127.0.0.1:1"),
        "{tls:?}"
    );
    let dir = std::env::temp_dir();
    for url in [
        "redis://127.0.0.1:1/0",
        "memory:",
        &format!("file://{}", dir.display()),
    ] {
        let error = open_with_ca(url, None, t, Some(&ca)).expect_err(url);
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{url}");
        assert!(error.message().contains("rediss://"), "{url}: {error}");
    }
}

/// `%XX` escapes in a file URL path are decoded; anything else passes through as is.
#[test]
fn file_url_paths_are_percent_decoded() {
    assert_eq!(percent_decode("/a%20b/c%2Fd"), "/a b/c/d");
    assert_eq!(percent_decode("/x%zz%4"), "/x%zz%4");
    assert_eq!(percent_decode("%41%62"), "Ab");
    assert_eq!(percent_decode(""), "");
    assert_eq!(percent_decode("%"), "%");
    assert_eq!(percent_decode("%%41"), "%A");
    assert_eq!(percent_decode("a%4g%7e"), "a%4g~");
    assert_eq!(
        percent_decode("/caf%C3%A9/%e2%82%ac"),
        "/caf\u{e9}/\u{20ac}"
    );
    // Not UTF-8 once decoded: replaced, never a panic.
    assert_eq!(percent_decode("/x%FF"), "/x\u{fffd}");
}
