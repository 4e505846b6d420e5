//! The shared credential store: one process refreshes, every other process picks up the
//! result.
//!
//! A [`CredentialStore`] keeps one record per (venue, base URL, account) key: the
//! credential, its wall-clock expiry and (Cadenza) the rotated refresh token, sealed with
//! AES-256-GCM. Besides reading, a store offers a *lease* (a lock with an expiry, so a
//! crashed holder blocks the others at most that long) and a *compare-and-swap* write
//! (version `n + 1` only if the stored version is still `n`).
//!
//! The driver ([`Session`](crate::Session)) uses it only when a renewal is due — the hot
//! path stays one atomic load:
//!
//! ```text
//! refresh timer fires
//!   -> read the record: a newer valid one?  adopt it, done (no venue call)
//!   -> take the lease (wait while another process holds it, adopting its result)
//!   -> read again under the lease: newer?   adopt it, release, done
//!   -> refresh / log in at the venue, write version + 1 (CAS), release
//! ```
//!
//! Select a store with [`Options::store`](crate::Options::store): `"memory:"` (sessions of
//! one process), `"file:///var/lib/tradeauth"` (processes of one host) or
//! `"redis://[:password@]host:6379/0"` / `"rediss://…"` (several hosts).

mod crypto;
mod file;
mod memory;
pub(crate) mod record;
mod redis;
mod status;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use crypto::STORE_KEY_ENV;
pub(crate) use crypto::{OpenError, Sealer};
pub use file::FileStore;
pub use memory::MemoryStore;
pub use redis::{DEFAULT_PREFIX, RedisStore};
pub use status::{RecordStatus, status};

use crate::error::{Error, ErrorKind, Result};
use crate::machine::Venue;

/// What every store operation returns: a boxed future, so stores can be chosen at run
/// time (`Arc<dyn CredentialStore>`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The highest version a record can have: a stored version above it (or one that is not
/// a plain decimal number) reads as 0, unreadable, so a writer's compare-and-swap on 0
/// replaces the record instead of failing forever, and `expected + 1` never overflows.
pub const MAX_VERSION: u64 = u64::MAX - 1;

/// The version after `expected`; an error past [`MAX_VERSION`] (no store hands one out).
pub(crate) fn next_version(expected: u64) -> Result<u64> {
    if expected >= MAX_VERSION {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a credential record version past the maximum cannot be written over",
        ));
    }
    Ok(expected + 1)
}

/// A version as the stores write it (plain decimal, no sign, no leading zero), if it is
/// one and not past [`MAX_VERSION`].
pub(crate) fn parse_version(text: &str) -> Option<u64> {
    let canonical = text == "0" || (!text.starts_with('0') && !text.is_empty());
    if !canonical || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|&v| v <= MAX_VERSION)
}

/// A record as stored: its version (1 for the first write) and the sealed bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Incremented by every successful [`CredentialStore::compare_and_swap`].
    pub version: u64,
    /// The sealed record (opaque to the store).
    pub data: Vec<u8>,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRecord")
            .field("version", &self.version)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Where sessions share their credential. Implementations must make `try_lease`,
/// `compare_and_swap` and `release` atomic with respect to every other user of the store.
///
/// Errors mean "the store is unreachable or unusable" (kind `Transport` or `Timeout`);
/// the driver then keeps serving its cached credential and renews on its own as a last
/// resort.
pub trait CredentialStore: Send + Sync + fmt::Debug + 'static {
    /// The record under `key`, if any.
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredRecord>>;

    /// Takes the lease on `key` for `holder` for `ttl` if it is free, expired or already
    /// `holder`'s (then it is extended); `false` if someone else holds it.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Writes `data` as version `expected + 1`, only if the stored version is `expected`
    /// (0: no record); `false` if another writer got there first.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        data: &'a [u8],
    ) -> StoreFuture<'a, bool>;

    /// Releases the lease if `holder` still holds it (otherwise does nothing).
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()>;

    /// Where the store is, for logs: no password, no record content.
    fn describe(&self) -> String;

    /// Every record and lease in the store, for operators (`tradeauth store status`).
    /// Stores that cannot be listed from outside their process answer an error.
    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        Box::pin(async {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                "this credential store cannot list its records",
            ))
        })
    }
}

/// One record as [`CredentialStore::list`] finds it, under its storage name (a hash of
/// the record key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The storage name (file name stem / Redis key without the prefix).
    pub name: String,
    /// The record, if there is one (a lease can exist without it).
    pub record: Option<StoredRecord>,
    /// When the record was last written, Unix ms, where the store knows it.
    pub written_at_ms: Option<u64>,
    /// The lease on it, if one is held and not expired.
    pub lease: Option<ListedLease>,
}

/// A lease as [`CredentialStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLease {
    /// Who holds it (`pid@host/random` for a session, no secret).
    pub holder: String,
    /// How long it still holds, ms.
    pub expires_in_ms: u64,
    /// How long it has been held (since it was last taken or extended), where known.
    pub age_ms: Option<u64>,
}

/// The store's health as a session sees it; events carry no secret. Non-exhaustive, so
/// later variants do not break callers' matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreEvent {
    /// The store could not be reached or used; the session keeps serving its cached
    /// credential and renews on its own as a last resort before expiry.
    Unavailable {
        /// What failed (no secret).
        message: String,
    },
    /// The store answers again after an [`StoreEvent::Unavailable`].
    Recovered,
    /// A credential another process wrote was adopted (no venue call was made).
    Adopted {
        /// The record version adopted.
        version: u64,
    },
    /// This process renewed at the venue and wrote the result.
    Written {
        /// The record version written.
        version: u64,
    },
    /// A stored record could not be used (wrong key, corrupted, newer format) and was
    /// treated as absent.
    Unreadable {
        /// Why (no secret, no record content).
        message: String,
    },
}

/// The record key of a session: `venue|base URL|account`. It names the record in every
/// store and is bound into the encryption, so a record cannot be moved to another key.
pub fn record_key(venue: Venue, base_url: &str, account: &str) -> String {
    format!("{}|{}|{}", venue.as_str(), base_url, account)
}

/// Opens the store a URL names: `"memory:"`, `"file:///dir"` (or `file:dir` relative),
/// `"redis://…"`, `"rediss://…"`. `redis_prefix` overrides the Redis key prefix; `timeout`
/// bounds Redis connects and calls.
pub fn open(
    url: &str,
    redis_prefix: Option<&str>,
    timeout: Duration,
) -> Result<Arc<dyn CredentialStore>> {
    open_with_ca(url, redis_prefix, timeout, None)
}

/// [`open`], with the CA certificate(s) (PEM) a `rediss://` store's certificate must chain
/// to instead of the system's roots; an error for any other store.
pub fn open_with_ca(
    url: &str,
    redis_prefix: Option<&str>,
    timeout: Duration,
    redis_ca_pem: Option<&str>,
) -> Result<Arc<dyn CredentialStore>> {
    let url = url.trim();
    if redis_ca_pem.is_some() && !url.to_ascii_lowercase().starts_with("rediss:") {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a store CA certificate needs a rediss:// (TLS) store URL",
        ));
    }
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "memory" => Ok(MemoryStore::global()),
        "file" => {
            let rest = &url[5..];
            let path = match rest.strip_prefix("//") {
                // file:///abs/path (empty host) or file://localhost/abs/path
                Some(after) => match after.find('/') {
                    Some(0) => after.to_owned(),
                    Some(i) if &after[..i] == "localhost" => after[i..].to_owned(),
                    _ => {
                        return Err(Error::new(
                            ErrorKind::InvalidArgument,
                            "a file store URL must be file:///absolute/path",
                        ));
                    }
                },
                None => rest.to_owned(),
            };
            if path.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "the file store URL names no directory",
                ));
            }
            Ok(Arc::new(FileStore::open(percent_decode(&path))?))
        }
        "redis" | "rediss" => Ok(Arc::new(RedisStore::open_with_ca(
            url,
            redis_prefix,
            timeout,
            redis_ca_pem,
        )?)),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            "unknown credential store: use \"memory:\", \"file:///dir\", \"redis://host:port/db\" or \"rediss://…\"",
        )),
    }
}

/// `%20` and friends in a file URL path.
fn percent_decode(path: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(path.len());
    // Walks the bytes by slice patterns, not by index arithmetic: each step consumes at
    // least one byte, so no edit of a step can make the loop stand still.
    let mut rest = path.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if let (b'%', [hi, lo, after @ ..]) = (byte, tail)
            && let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo))
        {
            out.push(hi * 16 + lo);
            rest = after;
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
