//! Web3 Secret Storage v3 keystores (src/keystore.rs): the spec's own test vectors, files
//! written by eth_account and ethers v6 (tests/fixtures/keystore/README.md), and every way a
//! hostile or broken file is refused, without the password or a key in any error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tradeauth::ErrorKind;
use tradeauth::keystore::{decrypt_keystore, read_keystore};

/// The secret of the Web3 Secret Storage Definition's test vectors.
const SPEC_KEY: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const SPEC_PASSWORD: &str = "testpassword";
/// The address of `SPEC_KEY`, as the definition gives it.
const SPEC_ADDRESS: &str = "008aeeda4d805471df9b2a5b0f38a0c3bcba786b";
/// The key and password of the eth_account / ethers fixtures.
const KEY: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const PASSWORD: &str = "correct horse battery staple";
const ADDRESS: &str = "2c7536e3605d9c16a7a3d7b1898e529396a65c23";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keystore")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read(fixture_path(name)).expect("fixture exists");
    serde_json::from_slice(&text).expect("fixture is JSON")
}

fn decrypt(json: &Value, password: &str) -> tradeauth::Result<String> {
    let bytes = serde_json::to_vec(json).expect("serializes");
    decrypt_keystore(&bytes, password.as_bytes(), "test.json").map(|k| hex(&k[..]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts `result` is an InvalidArgument naming the label and containing `needle`, and
/// that its message has no password and no key in it. Returns the message.
fn refused(result: tradeauth::Result<String>, needle: &str) -> String {
    let err = result.expect_err("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let message = err.to_string();
    assert!(message.contains("keystore test.json: "), "{message}");
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    no_secret(&message);
    message
}

fn no_secret(message: &str) {
    let lower = message.to_lowercase();
    for secret in [
        PASSWORD,
        SPEC_PASSWORD,
        "wrong-password",
        KEY,
        SPEC_KEY,
        &"ff".repeat(32),
    ] {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{message} leaks {secret}"
        );
    }
    assert!(message.len() < 300, "too long: {message}");
}

/// The address a key signs for, lowercase hex without `0x`.
fn address_of(key_hex: &str) -> String {
    let key: Vec<u8> = (0..key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key_hex[i..i + 2], 16).expect("hex"))
        .collect();
    let signer = alloy_signer_local::PrivateKeySigner::from_slice(&key).expect("valid key");
    hex(signer.address().as_slice())
}

/// A fast pbkdf2 keystore (c = 4096) to corrupt.
fn base() -> Value {
    fixture("eth_account_pbkdf2.json")
}

fn set(json: &mut Value, pointer: &str, value: Value) {
    *json.pointer_mut(pointer).expect("pointer exists") = value;
}

fn remove(json: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let parent = if parent.is_empty() {
        &mut *json
    } else {
        json.pointer_mut(parent).expect("parent exists")
    };
    parent
        .as_object_mut()
        .expect("object")
        .remove(key)
        .expect("field exists");
}

#[test]
fn spec_pbkdf2_vector() {
    let json = fixture("spec_pbkdf2.json");
    assert_eq!(decrypt(&json, SPEC_PASSWORD).unwrap(), SPEC_KEY);
    assert_eq!(address_of(SPEC_KEY), SPEC_ADDRESS);
}

#[test]
fn spec_scrypt_vector() {
    let json = fixture("spec_scrypt.json");
    assert_eq!(json["crypto"]["kdfparams"]["n"], 262_144);
    assert_eq!(json["crypto"]["kdfparams"]["r"], 1);
    assert_eq!(json["crypto"]["kdfparams"]["p"], 8);
    assert_eq!(decrypt(&json, SPEC_PASSWORD).unwrap(), SPEC_KEY);
}

#[test]
fn spec_vector_with_address_field() {
    let mut json = fixture("spec_pbkdf2.json");
    json["address"] = Value::from(SPEC_ADDRESS);
    assert_eq!(decrypt(&json, SPEC_PASSWORD).unwrap(), SPEC_KEY);
    json["address"] = Value::from(format!("0x{}", SPEC_ADDRESS.to_uppercase()));
    assert_eq!(decrypt(&json, SPEC_PASSWORD).unwrap(), SPEC_KEY);
}

#[test]
fn tool_fixtures_decrypt_to_their_key_and_address() {
    for name in [
        "eth_account_scrypt.json",
        "eth_account_pbkdf2.json",
        "ethers_v6_scrypt.json",
    ] {
        let json = fixture(name);
        assert_eq!(decrypt(&json, PASSWORD).unwrap(), KEY, "{name}");
        let field = json["address"].as_str().expect("an address field");
        assert_eq!(field.to_lowercase(), ADDRESS, "{name}");
        assert_eq!(address_of(KEY), ADDRESS);
    }
    // ethers writes `Crypto`, eth_account `crypto`.
    assert!(fixture("ethers_v6_scrypt.json").get("Crypto").is_some());
    assert!(fixture("eth_account_scrypt.json").get("crypto").is_some());
}

#[test]
fn read_keystore_reads_a_file() {
    let path = fixture_path("ethers_v6_scrypt.json");
    let key = read_keystore(&path, PASSWORD.as_bytes()).unwrap();
    assert_eq!(hex(&key[..]), KEY);

    let err = read_keystore(&path, b"wrong-password").unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("MAC"), "{err}");
}

#[test]
fn read_keystore_missing_file_names_the_path() {
    let path = fixture_path("no-such-keystore.json");
    let err = read_keystore(&path, PASSWORD.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    no_secret(&message);
}

#[test]
fn read_keystore_refuses_a_huge_file() {
    let dir = std::env::temp_dir().join(format!("tradeauth-keystore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.json");
    std::fs::write(&path, vec![b' '; 2 << 20]).unwrap();
    let err = read_keystore(&path, PASSWORD.as_bytes()).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[test]
fn read_keystore_takes_a_file_of_exactly_the_limit() {
    use tradeauth::keystore::MAX_FILE_SIZE;
    let dir = std::env::temp_dir().join(format!("tradeauth-keystore-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut json = std::fs::read(fixture_path("eth_account_pbkdf2.json")).unwrap();
    // Trailing whitespace is still the same JSON document.
    json.resize(usize::try_from(MAX_FILE_SIZE).unwrap(), b' ');
    let path = dir.join("edge.json");
    std::fs::write(&path, &json).unwrap();
    let at_limit = read_keystore(&path, PASSWORD.as_bytes());
    json.push(b' ');
    std::fs::write(&path, &json).unwrap();
    let over = read_keystore(&path, PASSWORD.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(at_limit.is_ok(), "{:?}", at_limit.err());
    assert!(over.unwrap_err().to_string().contains("larger than"));
}

#[test]
fn wrong_password_is_a_mac_error() {
    for name in ["eth_account_pbkdf2.json", "eth_account_scrypt.json"] {
        let message = refused(decrypt(&fixture(name), "wrong-password"), "MAC");
        assert!(message.contains("wrong password"), "{message}");
    }
    // An empty password is just another wrong one (no panic in the KDF).
    refused(decrypt(&base(), ""), "MAC mismatch");
}

#[test]
fn corrupted_mac_is_a_mac_error() {
    let mut json = base();
    let mac = json["crypto"]["mac"].as_str().unwrap().to_string();
    let flipped = if mac.starts_with('0') { "1" } else { "0" };
    set(
        &mut json,
        "/crypto/mac",
        Value::from(format!("{flipped}{}", &mac[1..])),
    );
    refused(decrypt(&json, PASSWORD), "MAC mismatch");
}

#[test]
fn corrupted_ciphertext_is_a_mac_error() {
    let mut json = base();
    let ct = json["crypto"]["ciphertext"].as_str().unwrap().to_string();
    let last = if ct.ends_with('0') { "1" } else { "0" };
    set(
        &mut json,
        "/crypto/ciphertext",
        Value::from(format!("{}{last}", &ct[..63])),
    );
    refused(decrypt(&json, PASSWORD), "MAC mismatch");
}

#[test]
fn unsupported_kdf_is_named() {
    let mut json = base();
    set(&mut json, "/crypto/kdf", Value::from("argon2id"));
    let message = refused(decrypt(&json, PASSWORD), "unsupported KDF \"argon2id\"");
    assert!(message.contains("scrypt, pbkdf2"), "{message}");
}

#[test]
fn unsupported_cipher_is_named_and_capped() {
    let mut json = base();
    set(&mut json, "/crypto/cipher", Value::from("aes-128-cbc"));
    refused(
        decrypt(&json, PASSWORD),
        "unsupported cipher \"aes-128-cbc\"",
    );

    set(&mut json, "/crypto/cipher", Value::from("z".repeat(10_000)));
    let message = refused(decrypt(&json, PASSWORD), "unsupported cipher");
    assert!(!message.contains(&"z".repeat(33)), "{message}");
}

#[test]
fn bad_iv_length() {
    let mut json = base();
    set(
        &mut json,
        "/crypto/cipherparams/iv",
        Value::from("00".repeat(15)),
    );
    refused(
        decrypt(&json, PASSWORD),
        "crypto.cipherparams.iv must be 16 bytes",
    );
}

#[test]
fn bad_ciphertext_length() {
    let mut json = base();
    set(
        &mut json,
        "/crypto/ciphertext",
        Value::from("00".repeat(31)),
    );
    refused(
        decrypt(&json, PASSWORD),
        "crypto.ciphertext must be 32 bytes",
    );
}

#[test]
fn version_2_is_refused() {
    let mut json = base();
    set(&mut json, "/version", Value::from(2));
    refused(decrypt(&json, PASSWORD), "unsupported version 2");
    set(&mut json, "/version", Value::from("3"));
    refused(decrypt(&json, PASSWORD), "field version");
}

#[test]
fn missing_fields_are_named() {
    for (pointer, needle) in [
        ("/version", "field version is missing"),
        ("/crypto", "field crypto is missing"),
        ("/crypto/cipher", "field crypto.cipher is missing"),
        (
            "/crypto/cipherparams",
            "field crypto.cipherparams is missing",
        ),
        (
            "/crypto/cipherparams/iv",
            "field crypto.cipherparams.iv is missing",
        ),
        ("/crypto/ciphertext", "field crypto.ciphertext is missing"),
        ("/crypto/mac", "field crypto.mac is missing"),
        ("/crypto/kdf", "field crypto.kdf is missing"),
        ("/crypto/kdfparams", "field crypto.kdfparams is missing"),
        (
            "/crypto/kdfparams/salt",
            "field crypto.kdfparams.salt is missing / not hex",
        ),
        ("/crypto/kdfparams/c", "field crypto.kdfparams.c is missing"),
        (
            "/crypto/kdfparams/prf",
            "field crypto.kdfparams.prf is missing",
        ),
        (
            "/crypto/kdfparams/dklen",
            "field crypto.kdfparams.dklen is missing",
        ),
    ] {
        let mut json = base();
        remove(&mut json, pointer);
        refused(decrypt(&json, PASSWORD), needle);
    }
    for field in ["n", "r", "p"] {
        let mut json = fixture("eth_account_scrypt.json");
        remove(&mut json, &format!("/crypto/kdfparams/{field}"));
        refused(
            decrypt(&json, PASSWORD),
            &format!("field crypto.kdfparams.{field} is missing"),
        );
    }
}

#[test]
fn not_hex_fields() {
    let mut json = base();
    set(&mut json, "/crypto/kdfparams/salt", Value::from("not hex!"));
    refused(
        decrypt(&json, PASSWORD),
        "field crypto.kdfparams.salt is missing / not hex",
    );
    let mut json = base();
    set(&mut json, "/crypto/mac", Value::from(42));
    refused(
        decrypt(&json, PASSWORD),
        "field crypto.mac is missing / not hex",
    );
}

#[test]
fn not_json() {
    let err = decrypt_keystore(b"{\"version\": 3, ", PASSWORD.as_bytes(), "test.json");
    refused(err.map(|k| hex(&k[..])), "not JSON");
    let err = decrypt_keystore(b"[3]", PASSWORD.as_bytes(), "test.json");
    refused(err.map(|k| hex(&k[..])), "not a JSON object");
}

#[test]
fn huge_scrypt_n_fails_fast() {
    let mut json = fixture("eth_account_scrypt.json");
    set(&mut json, "/crypto/kdfparams/n", Value::from(1u64 << 30));
    let start = Instant::now();
    let message = refused(decrypt(&json, PASSWORD), "memory limit");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(message.contains("1024 MiB"), "{message}");

    // n = 2^63 with r = 64: an overflow in a naive 128*r*n.
    set(&mut json, "/crypto/kdfparams/n", Value::from(1u64 << 63));
    set(&mut json, "/crypto/kdfparams/r", Value::from(64));
    refused(decrypt(&json, PASSWORD), "memory limit");
}

#[test]
fn scrypt_parameter_bounds() {
    for (field, value, needle) in [
        ("n", 1000, "power of two"),
        ("n", 1, "power of two"),
        ("n", 0, "power of two"),
        ("r", 0, "scrypt r must be between 1 and 64"),
        ("r", 65, "scrypt r must be between 1 and 64"),
        ("p", 0, "scrypt p must be between 1 and 16"),
        ("p", 17, "scrypt p must be between 1 and 16"),
        ("dklen", 16, "dklen must be between 32 and 64"),
        ("dklen", 65, "dklen must be between 32 and 64"),
    ] {
        let mut json = fixture("eth_account_scrypt.json");
        set(
            &mut json,
            &format!("/crypto/kdfparams/{field}"),
            Value::from(value),
        );
        refused(decrypt(&json, PASSWORD), needle);
    }
    let mut json = fixture("eth_account_scrypt.json");
    set(&mut json, "/crypto/kdfparams/n", Value::from(-4096));
    refused(decrypt(&json, PASSWORD), "not a non-negative integer");
}

#[test]
fn pbkdf2_parameter_bounds() {
    let mut json = base();
    set(
        &mut json,
        "/crypto/kdfparams/prf",
        Value::from("hmac-sha512"),
    );
    refused(
        decrypt(&json, PASSWORD),
        "unsupported pbkdf2 prf \"hmac-sha512\"",
    );
    for c in [0u64, 10_000_001, 1 << 40] {
        let mut json = base();
        set(&mut json, "/crypto/kdfparams/c", Value::from(c));
        refused(
            decrypt(&json, PASSWORD),
            "pbkdf2 iteration count c must be between 1 and 10000000",
        );
    }
}

#[test]
fn a_longer_dklen_is_fine_when_bounded() {
    // The MAC and cipher keys are the first 32 bytes either way; a 64-byte PBKDF2 output
    // starts with the 32-byte one, so the spec vector still opens.
    let mut json = fixture("spec_pbkdf2.json");
    set(&mut json, "/crypto/kdfparams/dklen", Value::from(64));
    assert_eq!(decrypt(&json, SPEC_PASSWORD).unwrap(), SPEC_KEY);
}

#[test]
fn address_mismatch() {
    let mut json = base();
    json["address"] = Value::from(SPEC_ADDRESS);
    let message = refused(decrypt(&json, PASSWORD), "does not match its address field");
    assert!(message.contains(SPEC_ADDRESS), "{message}");

    json["address"] = Value::from("0x1234");
    refused(
        decrypt(&json, PASSWORD),
        "field address is not 40 hex digits",
    );
    json["address"] = Value::from(7);
    refused(decrypt(&json, PASSWORD), "field address is not a string");
    json["address"] = Value::Null;
    assert_eq!(decrypt(&json, PASSWORD).unwrap(), KEY);
}

#[test]
fn decrypted_key_not_a_scalar() {
    // A well-formed keystore (right MAC) whose plaintext is 0xff..ff, above the curve order.
    let json = fixture("invalid_scalar_pbkdf2.json");
    refused(
        decrypt(&json, PASSWORD),
        "not a valid secp256k1 private key",
    );
}
