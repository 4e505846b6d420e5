//! Encryption at rest: AES-256-GCM (aws-lc-rs, the workspace's one crypto provider) with a
//! random 96-bit nonce per write, bound to the record's key and version.
//!
//! A sealed record is a small JSON envelope; only `fmt`, `alg` and `kid` are readable:
//! `{"fmt":1,"alg":"A256GCM","kid":"<16 hex>","nonce":"<b64>","ct":"<b64>"}`. The
//! additional authenticated data is the record key and version, so a record copied to
//! another key, or replayed under another version, fails to open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// The envelope format this build writes and the newest it reads.
pub(crate) const FORMAT: u32 = 1;
/// The environment variable the key is read from when no key is given in the options.
pub const STORE_KEY_ENV: &str = "TRADEAUTH_STORE_KEY";

const ALG_AES: &str = "A256GCM";
const ALG_NONE: &str = "none";

#[derive(Serialize, Deserialize)]
struct Envelope {
    fmt: u32,
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// Ciphertext + tag (A256GCM) or the plaintext payload (none), base64.
    ct: String,
    /// The record key (`venue|base URL|account`, no secret) in clear, so an operator's
    /// `tradeauth store status` can name a record stored under a hash and, given the
    /// key, open it. Already bound by the additional data: a changed `rk` fails to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rk: Option<String>,
}

/// What anyone can read of a sealed record without its key (for operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeInfo {
    /// Envelope format.
    pub fmt: u64,
    /// `A256GCM` or `none`.
    pub alg: String,
    /// The key id of an encrypted record.
    pub kid: Option<String>,
    /// The record key, when the writer recorded it.
    pub rk: Option<String>,
}

/// The readable part of a sealed record; `None` if it is not an envelope.
pub(crate) fn peek(blob: &[u8]) -> Option<EnvelopeInfo> {
    let value: serde_json::Value = serde_json::from_slice(blob).ok()?;
    let text = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Some(EnvelopeInfo {
        fmt: value.get("fmt")?.as_u64()?,
        alg: text("alg")?,
        kid: text("kid"),
        rk: text("rk"),
    })
}

/// Why a stored record could not be opened; each is treated as "no record".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not an envelope at all (truncated, garbage).
    Malformed,
    /// Written by a newer tradeauth (envelope or payload format).
    NewerFormat,
    /// Encrypted with another key (key id differs).
    WrongKey,
    /// Authentication failed: altered, moved to another key/version, or a wrong key with
    /// a colliding id.
    Tampered,
    /// A plaintext record where encryption is configured, or the reverse.
    ModeMismatch,
}

impl OpenError {
    /// What to log (no secret, no record content).
    pub(crate) fn describe(self) -> &'static str {
        match self {
            OpenError::Malformed => "the stored record is corrupted (not a record envelope)",
            OpenError::NewerFormat => "the stored record was written by a newer tradeauth",
            OpenError::WrongKey => "the stored record is encrypted with another store key",
            OpenError::Tampered => {
                "the stored record failed authentication (tampered or wrong key)"
            }
            OpenError::ModeMismatch => {
                "the stored record's encryption mode differs from this session's (plaintext vs encrypted)"
            }
        }
    }
}

/// Seals and opens record payloads: AES-256-GCM with the user's key, or plaintext when
/// explicitly asked for.
pub(crate) enum Sealer {
    Aead { key: LessSafeKey, kid: String },
    Plaintext,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sealer::Aead { kid, .. } => write!(f, "Sealer(A256GCM, kid {kid})"),
            Sealer::Plaintext => f.write_str("Sealer(plaintext)"),
        }
    }
}

impl Sealer {
    /// The sealer for the options: the given key, else `TRADEAUTH_STORE_KEY`, else
    /// plaintext if asked for, else an error.
    pub(crate) fn from_options(key: Option<&Secret>, plaintext: bool) -> Result<Sealer> {
        let from_env = match key {
            Some(_) => None,
            // `TRADEAUTH_STORE_KEY_FILE` too, like every variable the library reads.
            None => crate::session::env::optional(STORE_KEY_ENV)?.map(Secret::from),
        };
        match key.or(from_env.as_ref()) {
            Some(key) => Sealer::with_key(key),
            None if plaintext => Ok(Sealer::Plaintext),
            None => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "a shared credential store needs an encryption key: set the store key \
                     option or {STORE_KEY_ENV} (32 bytes as 64 hex digits or base64), or ask \
                     for plaintext records explicitly"
                ),
            )),
        }
    }

    /// AES-256-GCM with a 32-byte key given as 64 hex digits or base64.
    pub(crate) fn with_key(key: &Secret) -> Result<Sealer> {
        let mut bytes = parse_key(key.expose().trim())?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes);
        let id_input = [b"tradeauth-store-key-id\0".as_slice(), &bytes].concat();
        let kid = hex(&digest(&SHA256, &id_input).as_ref()[..8]);
        bytes.zeroize();
        let mut id_input = id_input;
        id_input.zeroize();
        let key = unbound.map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the store key was refused by AES-256-GCM",
            )
        })?;
        Ok(Sealer::Aead {
            key: LessSafeKey::new(key),
            kid,
        })
    }

    /// Seals `payload` for `key` at `version`.
    pub(crate) fn seal(&self, record_key: &str, version: u64, payload: &[u8]) -> Result<Vec<u8>> {
        let envelope = match self {
            Sealer::Plaintext => Envelope {
                fmt: FORMAT,
                alg: ALG_NONE.to_owned(),
                kid: None,
                nonce: None,
                ct: STANDARD.encode(payload),
                rk: Some(record_key.to_owned()),
            },
            Sealer::Aead { key, kid } => {
                let mut nonce = [0u8; NONCE_LEN];
                SystemRandom::new().fill(&mut nonce).map_err(|_| {
                    Error::new(ErrorKind::Transport, "no randomness for the record nonce")
                })?;
                let mut in_out = payload.to_vec();
                let sealed = key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad(record_key, version)),
                    &mut in_out,
                );
                if sealed.is_err() {
                    in_out.zeroize();
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "the record could not be sealed",
                    ));
                }
                Envelope {
                    fmt: FORMAT,
                    alg: ALG_AES.to_owned(),
                    kid: Some(kid.clone()),
                    nonce: Some(STANDARD.encode(nonce)),
                    ct: STANDARD.encode(&in_out),
                    rk: Some(record_key.to_owned()),
                }
            }
        };
        serde_json::to_vec(&envelope).map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                "the record envelope could not be encoded",
            )
        })
    }

    /// Opens a blob stored under `record_key` at `version`; the caller zeroizes the result.
    pub(crate) fn open(
        &self,
        record_key: &str,
        version: u64,
        blob: &[u8],
    ) -> std::result::Result<Vec<u8>, OpenError> {
        let envelope: Envelope = match serde_json::from_slice(blob) {
            Ok(e) => e,
            Err(_) => {
                // A newer format may change the envelope's shape; its `fmt` still says so.
                let fmt = serde_json::from_slice::<serde_json::Value>(blob)
                    .ok()
                    .and_then(|v| v.get("fmt").and_then(serde_json::Value::as_u64));
                return Err(match fmt {
                    Some(f) if f > u64::from(FORMAT) => OpenError::NewerFormat,
                    _ => OpenError::Malformed,
                });
            }
        };
        if envelope.fmt > FORMAT {
            return Err(OpenError::NewerFormat);
        }
        if envelope.fmt == 0 {
            return Err(OpenError::Malformed);
        }
        match (self, envelope.alg.as_str()) {
            (Sealer::Plaintext, ALG_NONE) => STANDARD
                .decode(&envelope.ct)
                .map_err(|_| OpenError::Malformed),
            (Sealer::Aead { key, kid }, ALG_AES) => {
                if envelope.kid.as_deref() != Some(kid.as_str()) {
                    return Err(OpenError::WrongKey);
                }
                let nonce = envelope
                    .nonce
                    .as_deref()
                    .and_then(|n| STANDARD.decode(n).ok())
                    .and_then(|n| <[u8; NONCE_LEN]>::try_from(n.as_slice()).ok())
                    .ok_or(OpenError::Malformed)?;
                let mut in_out = STANDARD
                    .decode(&envelope.ct)
                    .map_err(|_| OpenError::Malformed)?;
                let len = match key.open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad(record_key, version)),
                    &mut in_out,
                ) {
                    Ok(plain) => plain.len(),
                    Err(_) => {
                        in_out.zeroize();
                        return Err(OpenError::Tampered);
                    }
                };
                in_out.truncate(len);
                Ok(in_out)
            }
            (_, ALG_NONE | ALG_AES) => Err(OpenError::ModeMismatch),
            _ => Err(OpenError::NewerFormat),
        }
    }
}

/// The authenticated data: what the record is for and which version it claims to be.
fn aad(record_key: &str, version: u64) -> Vec<u8> {
    format!("tradeauth-store-v{FORMAT}\0{record_key}\0{version}").into_bytes()
}

/// 32 bytes from 64 hex digits or base64 (standard or URL-safe, padded or not). The
/// error never echoes the input.
fn parse_key(text: &str) -> Result<[u8; 32]> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidArgument,
            "the store key must be 32 bytes written as 64 hex digits or as base64",
        )
    };
    let mut decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| invalid())?
    } else {
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(invalid)?
    };
    let key = <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| invalid());
    decoded.zeroize();
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short stable name for a record key (hex of SHA-256), used for file and Redis key
/// names so that neither the URL nor the account has to be escaped.
pub(crate) fn storage_name(record_key: &str) -> String {
    hex(&digest(&SHA256, record_key.as_bytes()).as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn round_trip_and_binding() {
        let sealer = Sealer::with_key(&Secret::from(KEY_HEX)).unwrap();
        let blob = sealer.seal("k", 3, b"payload").unwrap();
        assert!(!String::from_utf8_lossy(&blob).contains("payload"));
        assert_eq!(sealer.open("k", 3, &blob).unwrap(), b"payload");
        // Moved to another key or version: refused.
        assert_eq!(sealer.open("k2", 3, &blob), Err(OpenError::Tampered));
        assert_eq!(sealer.open("k", 4, &blob), Err(OpenError::Tampered));
        // Two seals of the same payload differ (random nonce).
        assert_ne!(blob, sealer.seal("k", 3, b"payload").unwrap());
    }

    #[test]
    fn wrong_key_tamper_newer_and_mode() {
        let a = Sealer::with_key(&Secret::from(KEY_HEX)).unwrap();
        let b64 = STANDARD.encode([7u8; 32]);
        let b = Sealer::with_key(&Secret::from(b64.as_str())).unwrap();
        let blob = a.seal("k", 1, b"x").unwrap();
        assert_eq!(b.open("k", 1, &blob), Err(OpenError::WrongKey));
        let mut env: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        let ct = env["ct"].as_str().unwrap().to_owned();
        let mut raw = STANDARD.decode(ct).unwrap();
        raw[0] ^= 1;
        env["ct"] = STANDARD.encode(raw).into();
        let tampered = serde_json::to_vec(&env).unwrap();
        assert_eq!(a.open("k", 1, &tampered), Err(OpenError::Tampered));
        env["fmt"] = 2.into();
        assert_eq!(
            a.open("k", 1, &serde_json::to_vec(&env).unwrap()),
            Err(OpenError::NewerFormat)
        );
        assert_eq!(a.open("k", 1, b"\x00garbage"), Err(OpenError::Malformed));
        let plain = Sealer::Plaintext.seal("k", 1, b"x").unwrap();
        assert_eq!(a.open("k", 1, &plain), Err(OpenError::ModeMismatch));
        assert_eq!(
            Sealer::Plaintext.open("k", 1, &blob),
            Err(OpenError::ModeMismatch)
        );
        assert_eq!(Sealer::Plaintext.open("k", 1, &plain).unwrap(), b"x");
    }

    /// The record key travels in clear for operators, but is bound: a record whose `rk`
    /// was changed still opens only under its real key (the additional data decides).
    #[test]
    fn the_record_key_is_readable_and_bound() {
        let a = Sealer::with_key(&Secret::from(KEY_HEX)).unwrap();
        let blob = a
            .seal("cadenza|https://x|me", 2, b"secret payload")
            .unwrap();
        let info = peek(&blob).unwrap();
        assert_eq!(info.rk.as_deref(), Some("cadenza|https://x|me"));
        assert_eq!((info.fmt, info.alg.as_str()), (1, "A256GCM"));
        assert!(info.kid.is_some());
        assert!(!String::from_utf8_lossy(&blob).contains("secret payload"));
        let plain = Sealer::Plaintext.seal("k", 1, b"x").unwrap();
        let info = peek(&plain).unwrap();
        assert_eq!(
            (info.alg.as_str(), info.kid, info.rk.as_deref()),
            ("none", None, Some("k"))
        );
        assert_eq!(peek(b"\x00garbage"), None);
    }

    /// A record of another shape is "newer" only if its `fmt` is above ours.
    #[test]
    fn an_unknown_shape_is_newer_only_when_its_format_is() {
        let a = Sealer::with_key(&Secret::from(KEY_HEX)).unwrap();
        let shaped =
            |fmt: u64| serde_json::to_vec(&serde_json::json!({"fmt": fmt, "x": 1})).unwrap();
        assert_eq!(a.open("k", 1, &shaped(2)), Err(OpenError::NewerFormat));
        assert_eq!(a.open("k", 1, &shaped(1)), Err(OpenError::Malformed));
        assert_eq!(a.open("k", 1, &shaped(0)), Err(OpenError::Malformed));
    }

    /// Its Debug names the mode and the key id, never the key.
    #[test]
    fn debug_names_the_mode_and_key_id_only() {
        let a = Sealer::with_key(&Secret::from(KEY_HEX)).unwrap();
        let text = format!("{a:?}");
        assert!(text.starts_with("Sealer(A256GCM, kid "), "{text}");
        assert!(!text.contains(KEY_HEX), "{text}");
        assert_eq!(format!("{:?}", Sealer::Plaintext), "Sealer(plaintext)");
    }

    #[test]
    fn key_parsing_never_echoes() {
        for bad in ["", "short", &"zz".repeat(32), &STANDARD.encode([1u8; 31])] {
            let err = Sealer::with_key(&Secret::from(bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            if !bad.is_empty() {
                assert!(!err.message().contains(bad));
            }
        }
        assert!(
            Sealer::with_key(&Secret::from(URL_SAFE_NO_PAD.encode([9u8; 32]).as_str())).is_ok()
        );
        assert!(Sealer::from_options(None, true).is_ok() || std::env::var(STORE_KEY_ENV).is_ok());
    }
}
