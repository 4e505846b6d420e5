//! Web3 Secret Storage v3 keystores: the password-encrypted JSON key files that geth,
//! eth_account, Foundry's `cast wallet` and ethers write, decrypted to the secp256k1 private
//! key that signs for a wallet venue (Cascade). PBKDF2 and AES-128-CTR run on the workspace's
//! crypto provider (aws-lc-rs), scrypt on the `scrypt` crate, the MAC is Keccak-256.
//!
//! A keystore file is untrusted input: its KDF parameters are bounded before any work is done
//! (a hostile `n` could otherwise ask for terabytes), every error names the keystore's label
//! and never the password or a key, and every intermediate secret is wiped when dropped.

use std::io::Read;
use std::num::NonZeroU32;
use std::path::Path;

use alloy_primitives::{hex, keccak256};
use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The most memory one scrypt derivation may take (128·r·n bytes): 1 GiB.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// The most work one scrypt derivation may take, as bytes mixed (128·r·n·p): 4 GiB,
/// 16 times geth's and eth_account's standard (256 MiB), so a hostile file cannot keep
/// a constructor busy for minutes.
pub const MAX_SCRYPT_WORK: u64 = 1 << 32;
/// The largest scrypt `r` accepted (every known tool writes 8, the spec's vector 1).
pub const MAX_SCRYPT_R: u64 = 64;
/// The largest scrypt `p` accepted (geth's light setting is 6, the spec's vector 8).
pub const MAX_SCRYPT_P: u64 = 16;
/// The largest PBKDF2 iteration count `c` accepted.
pub const MAX_PBKDF2_ITERATIONS: u64 = 10_000_000;
/// The largest keystore file `read_keystore` reads (real ones are under 1 KiB).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// The derived key length range: 32 bytes are needed (AES key + MAC key), and a longer one
/// only multiplies PBKDF2's work.
const DKLEN_RANGE: std::ops::RangeInclusive<u64> = 32..=64;
/// How much of an unknown KDF or cipher name an error quotes.
const QUOTE_CAP: usize = 32;

/// Decrypts a Web3 Secret Storage v3 keystore (the JSON geth, eth_account `Account.encrypt`,
/// Foundry `cast wallet`, ethers write): the 32-byte secp256k1 private key. `label` names the
/// keystore in errors (a file path); the password never appears in any error.
pub fn decrypt_keystore(json: &[u8], password: &[u8], label: &str) -> Result<Zeroizing<[u8; 32]>> {
    let fail = |message: String| Error::invalid_argument(format!("keystore {label}: {message}"));

    let root: Value = serde_json::from_slice(json).map_err(|_| fail("not JSON".into()))?;
    let root = root
        .as_object()
        .ok_or_else(|| fail("not a JSON object".into()))?;

    let version = uint(root, "version", "version").map_err(&fail)?;
    if version != 3 {
        return Err(fail(format!(
            "unsupported version {version} (supported: 3)"
        )));
    }
    // geth wrote `Crypto` before it wrote `crypto`; ethers still writes `Crypto`.
    let crypto = root
        .get("crypto")
        .or_else(|| root.get("Crypto"))
        .and_then(Value::as_object)
        .ok_or_else(|| fail("field crypto is missing / not an object".into()))?;

    let cipher = string(crypto, "cipher", "crypto.cipher").map_err(&fail)?;
    if cipher != "aes-128-ctr" {
        return Err(fail(format!(
            "unsupported cipher {} (supported: aes-128-ctr)",
            quote(cipher)
        )));
    }
    let cipherparams = object(crypto, "cipherparams", "crypto.cipherparams").map_err(&fail)?;
    let iv: [u8; 16] = fixed_hex(cipherparams, "iv", "crypto.cipherparams.iv").map_err(&fail)?;
    let ciphertext: [u8; 32] = fixed_hex(crypto, "ciphertext", "crypto.ciphertext")
        .map_err(|m| fail(format!("{m} (a secp256k1 key)")))?;
    let mac: [u8; 32] = fixed_hex(crypto, "mac", "crypto.mac").map_err(&fail)?;

    let kdf = Kdf::parse(crypto).map_err(&fail)?;
    let derived = kdf.derive(password).map_err(&fail)?;

    // MAC = keccak256(derived[16..32] ++ ciphertext), before anything is decrypted.
    let mut mac_body = Zeroizing::new([0u8; 48]);
    mac_body[..16].copy_from_slice(&derived[16..32]);
    mac_body[16..].copy_from_slice(&ciphertext);
    let computed = keccak256(&mac_body[..]);
    if aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_slice(), &mac).is_err() {
        return Err(fail(
            "wrong password or corrupted file (MAC mismatch)".into(),
        ));
    }

    let mut key = Zeroizing::new(ciphertext);
    let decrypted_len = UnboundCipherKey::new(&AES_128, &derived[..16])
        .and_then(DecryptingKey::ctr)
        .and_then(|k| {
            k.decrypt(
                &mut key[..],
                DecryptionContext::Iv128(FixedLength::from(iv)),
            )
        })
        .map_err(|_| fail("AES-128-CTR decryption failed".into()))?
        .len();
    if decrypted_len != 32 {
        return Err(fail("AES-128-CTR decryption failed".into()));
    }

    let signer = alloy_signer_local::PrivateKeySigner::from_slice(&key[..])
        .map_err(|_| fail("decrypted key is not a valid secp256k1 private key".into()))?;
    match root.get("address") {
        None | Some(Value::Null) => {}
        Some(Value::String(field)) => {
            let digits = field
                .strip_prefix("0x")
                .or_else(|| field.strip_prefix("0X"))
                .unwrap_or(field);
            let mut expected = [0u8; 20];
            if digits.len() != 40 || hex::decode_to_slice(digits, &mut expected).is_err() {
                return Err(fail("field address is not 40 hex digits".into()));
            }
            if signer.address().0.0 != expected {
                return Err(fail(format!(
                    "decrypted key does not match its address field (0x{})",
                    hex::encode(expected)
                )));
            }
        }
        Some(_) => return Err(fail("field address is not a string".into())),
    }
    Ok(key)
}

/// Reads and decrypts the keystore file at `path` (errors name the path).
pub fn read_keystore(path: &Path, password: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let label = path.display().to_string();
    let fail = |message: String| Error::invalid_argument(format!("keystore {label}: {message}"));
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut json = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut json)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if json.len() as u64 > MAX_FILE_SIZE {
        return Err(fail(format!(
            "file is larger than {} KiB",
            MAX_FILE_SIZE / 1024
        )));
    }
    decrypt_keystore(&json, password, &label)
}

/// A key derivation function with its parameters, checked against the resource bounds.
enum Kdf {
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        dklen: usize,
        salt: Vec<u8>,
    },
    Pbkdf2 {
        c: NonZeroU32,
        dklen: usize,
        salt: Vec<u8>,
    },
}

impl Kdf {
    /// Reads `crypto.kdf` and `crypto.kdfparams`; does no work yet.
    fn parse(crypto: &Map<String, Value>) -> std::result::Result<Kdf, String> {
        let name = string(crypto, "kdf", "crypto.kdf")?;
        if name != "scrypt" && name != "pbkdf2" {
            return Err(format!(
                "unsupported KDF {} (supported: scrypt, pbkdf2)",
                quote(name)
            ));
        }
        let params = object(crypto, "kdfparams", "crypto.kdfparams")?;
        let dklen = uint(params, "dklen", "crypto.kdfparams.dklen")?;
        if !DKLEN_RANGE.contains(&dklen) {
            return Err(format!(
                "field crypto.kdfparams.dklen must be between {} and {}, not {dklen}",
                DKLEN_RANGE.start(),
                DKLEN_RANGE.end()
            ));
        }
        let dklen = usize::try_from(dklen).map_err(|_| "dklen out of range".to_string())?;
        let salt = hex_field(params, "salt", "crypto.kdfparams.salt")?;
        if salt.is_empty() {
            return Err("field crypto.kdfparams.salt is empty".into());
        }

        if name == "scrypt" {
            let n = uint(params, "n", "crypto.kdfparams.n")?;
            let r = uint(params, "r", "crypto.kdfparams.r")?;
            let p = uint(params, "p", "crypto.kdfparams.p")?;
            if n < 2 || !n.is_power_of_two() {
                return Err(format!(
                    "scrypt n must be a power of two greater than 1, not {n}"
                ));
            }
            if !(1..=MAX_SCRYPT_R).contains(&r) {
                return Err(format!(
                    "scrypt r must be between 1 and {MAX_SCRYPT_R}, not {r}"
                ));
            }
            if !(1..=MAX_SCRYPT_P).contains(&p) {
                return Err(format!(
                    "scrypt p must be between 1 and {MAX_SCRYPT_P}, not {p}"
                ));
            }
            // 128·r·n in u128: n < 2^64 and r <= 64, so it cannot overflow.
            let memory = 128 * u128::from(r) * u128::from(n);
            if memory > u128::from(MAX_SCRYPT_MEMORY) {
                return Err(format!(
                    "scrypt memory limit: 128*r*n = {} MiB exceeds the {} MiB limit (n={n}, r={r})",
                    memory >> 20,
                    MAX_SCRYPT_MEMORY >> 20
                ));
            }
            if memory * u128::from(p) > u128::from(MAX_SCRYPT_WORK) {
                return Err(format!(
                    "scrypt work limit: 128*r*n*p = {} MiB exceeds the {} MiB limit (n={n}, \
                     r={r}, p={p})",
                    (memory * u128::from(p)) >> 20,
                    MAX_SCRYPT_WORK >> 20
                ));
            }
            let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| "n out of range")?;
            let r = u32::try_from(r).map_err(|_| "r out of range")?;
            let p = u32::try_from(p).map_err(|_| "p out of range")?;
            Ok(Kdf::Scrypt {
                log_n,
                r,
                p,
                dklen,
                salt,
            })
        } else {
            let prf = string(params, "prf", "crypto.kdfparams.prf")?;
            if prf != "hmac-sha256" {
                return Err(format!(
                    "unsupported pbkdf2 prf {} (supported: hmac-sha256)",
                    quote(prf)
                ));
            }
            let c = uint(params, "c", "crypto.kdfparams.c")?;
            let c = u32::try_from(c)
                .ok()
                .filter(|c| u64::from(*c) <= MAX_PBKDF2_ITERATIONS)
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    format!(
                        "pbkdf2 iteration count c must be between 1 and {MAX_PBKDF2_ITERATIONS}, not {c}"
                    )
                })?;
            Ok(Kdf::Pbkdf2 { c, dklen, salt })
        }
    }

    /// The derived key, `dklen` bytes (at least 32).
    fn derive(&self, password: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
        match self {
            Kdf::Scrypt {
                log_n,
                r,
                p,
                dklen,
                salt,
            } => {
                let mut out = Zeroizing::new(vec![0u8; *dklen]);
                let params = scrypt::Params::new(*log_n, *r, *p)
                    .map_err(|_| "scrypt parameters rejected".to_string())?;
                scrypt::scrypt(password, salt, &params, &mut out)
                    .map_err(|_| "scrypt parameters rejected".to_string())?;
                Ok(out)
            }
            Kdf::Pbkdf2 { c, dklen, salt } => {
                let mut out = Zeroizing::new(vec![0u8; *dklen]);
                aws_lc_rs::pbkdf2::derive(
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                    *c,
                    salt,
                    password,
                    &mut out,
                );
                Ok(out)
            }
        }
    }
}

/// `obj[key]` as a string, or an error naming `path`.
fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field {path} is missing / not a string"))
}

/// `obj[key]` as an object, or an error naming `path`.
fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<&'a Map<String, Value>, String> {
    obj.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("field {path} is missing / not an object"))
}

/// `obj[key]` as a non-negative integer, or an error naming `path`.
fn uint(obj: &Map<String, Value>, key: &str, path: &str) -> std::result::Result<u64, String> {
    obj.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("field {path} is missing / not a non-negative integer"))
}

/// `obj[key]` as hex bytes (an optional `0x` prefix is accepted), or an error naming `path`.
fn hex_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<Vec<u8>, String> {
    let text = obj
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field {path} is missing / not hex"))?;
    hex::decode(text).map_err(|_| format!("field {path} is missing / not hex"))
}

/// `obj[key]` as exactly `N` hex bytes, or an error naming `path`.
fn fixed_hex<const N: usize>(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> std::result::Result<[u8; N], String> {
    let bytes = hex_field(obj, key, path)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("field {path} must be {N} bytes, not {}", bytes.len()))
}

/// A JSON string value quoted for an error: escaped, and cut to `QUOTE_CAP` characters.
fn quote(value: &str) -> String {
    let mut cut: String = value.chars().take(QUOTE_CAP).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_caps_and_escapes() {
        assert_eq!(quote("argon2id"), "\"argon2id\"");
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}…\"", "x".repeat(QUOTE_CAP)));
        // Exactly the cap: whole, no ellipsis.
        let whole = "y".repeat(QUOTE_CAP);
        assert_eq!(quote(&whole), format!("\"{whole}\""));
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
    }

    fn scrypt_params(n: u64, r: u64, p: u64) -> Map<String, Value> {
        let crypto = serde_json::json!({
            "kdf": "scrypt",
            "kdfparams": {"n": n, "r": r, "p": p, "dklen": 32, "salt": "00ff"},
        });
        match crypto {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn scrypt_bounds() {
        let err = |n, r, p| {
            Kdf::parse(&scrypt_params(n, r, p))
                .err()
                .unwrap_or_default()
        };
        assert!(Kdf::parse(&scrypt_params(1 << 18, 8, 1)).is_ok()); // geth's standard
        assert!(Kdf::parse(&scrypt_params(1 << 23, 1, 1)).is_ok()); // exactly 1 GiB
        assert!(err(1 << 23, 2, 1).contains("memory limit"));
        assert!(err(1 << 30, 1, 1).contains("memory limit"));
        assert!(err(u64::MAX / 2 + 1, 64, 1).contains("memory limit"));
        assert!(Kdf::parse(&scrypt_params(2, 8, 1)).is_ok()); // the smallest n there is
        assert!(err(1, 8, 1).contains("power of two"));
        assert!(err(3000, 8, 1).contains("power of two"));
        assert!(err(1024, 0, 1).contains("scrypt r"));
        assert!(err(1024, 65, 1).contains("scrypt r"));
        assert!(err(1024, 8, 0).contains("scrypt p"));
        assert!(err(1024, 8, 17).contains("scrypt p"));
        assert!(Kdf::parse(&scrypt_params(1 << 18, 1, 8)).is_ok()); // eth_account's default
        assert!(Kdf::parse(&scrypt_params(1 << 23, 1, 4)).is_ok()); // exactly 4 GiB of work
        assert!(err(1 << 23, 1, 5).contains("work limit"));
        assert!(err(1 << 17, 64, 16).contains("work limit"));
    }
}
