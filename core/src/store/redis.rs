//! The Redis store (`redis://` / `rediss://`): several hosts.
//!
//! Per record key (named by a hash of the key, under a configurable prefix): a hash
//! `PREFIX NAME` with fields `version` and `data` (the sealed blob), and a string
//! `PREFIX NAME:lease` holding the lease holder, set with `SET NX PX` so Redis expires
//! it. Compare-and-swap and release are Lua scripts, atomic on the server.
//! Connections go through redis-rs's `ConnectionManager`, which reconnects by itself
//! after the server comes back; every call is also bounded by the session's store
//! timeout, so an unreachable server costs at most that.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::OnceCell;

use super::crypto::storage_name;
use super::{CredentialStore, StoreFuture, StoredRecord};
use crate::error::{Error, ErrorKind, Result};

/// The key prefix unless configured (`?prefix=` in the URL, or the options).
pub const DEFAULT_PREFIX: &str = "tradeauth:";

// A version that is not what `parse_version` accepts (absent, not plain decimal, past
// MAX_VERSION = 18446744073709551614, 20 digits) counts as 0, as it does for readers.
const CAS: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
local plain = v and (v == '0' or string.match(v, '^[1-9]%d*$'))
if plain and (#v > 20 or (#v == 20 and v > '18446744073709551614')) then plain = nil end
if not plain then v = '0' end
if v == ARGV[1] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
  return 1
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Re-entrant lease: extend it if we already hold it (a release that was lost).
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// A [`CredentialStore`] on a Redis server shared by several hosts.
pub struct RedisStore {
    client: Client,
    prefix: String,
    timeout: Duration,
    described: String,
    connection: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.described)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `url` (`redis://[user][:password@]host[:port][/db]`, or `rediss://`
    /// for TLS, trusting the system's roots); `prefix` overrides a `?prefix=` query
    /// parameter and the default `tradeauth:`. Nothing is connected until first use.
    pub fn open(url: &str, prefix: Option<&str>, timeout: Duration) -> Result<Self> {
        Self::open_with_ca(url, prefix, timeout, None)
    }

    /// [`RedisStore::open`], and for a `rediss://` URL with `ca_pem`: the server's
    /// certificate must chain to the CA certificate(s) in this PEM text (instead of the
    /// system's roots), e.g. a firm's private CA.
    pub fn open_with_ca(
        url: &str,
        prefix: Option<&str>,
        timeout: Duration,
        ca_pem: Option<&str>,
    ) -> Result<Self> {
        let mut parsed = reqwest::Url::parse(url).map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the Redis store URL is not a valid URL",
            )
        })?;
        let mut url_prefix = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "prefix" {
                    url_prefix = Some(v.into_owned());
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let prefix = prefix
            .map(str::to_owned)
            .or(url_prefix)
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let mut described = parsed.clone();
        if described.password().is_some() {
            let _ = described.set_password(Some("***"));
        }
        let unusable = |e: redis::RedisError| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("the Redis store URL or CA is not usable ({})", e.category()),
            )
        };
        let client = match ca_pem {
            None => Client::open(parsed.as_str()).map_err(unusable)?,
            Some(_) if parsed.scheme() != "rediss" => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "a store CA certificate needs a rediss:// (TLS) store URL",
                ));
            }
            Some(pem) => {
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "the store CA holds no -----BEGIN CERTIFICATE----- block",
                    ));
                }
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.as_bytes().to_vec()),
                };
                Client::build_with_tls(parsed.as_str(), certs).map_err(unusable)?
            }
        };
        Ok(RedisStore {
            client,
            prefix,
            timeout,
            described: described.to_string(),
            connection: OnceCell::new(),
        })
    }

    /// The key prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of the record hash for `key`.
    pub fn record_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, storage_name(key))
    }

    fn lease_key(&self, key: &str) -> String {
        format!("{}{}:lease", self.prefix, storage_name(key))
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        let manager = self
            .connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .map_err(redis_error)?;
        Ok(manager.clone())
    }
}

impl CredentialStore for RedisStore {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredRecord>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            read_hash(&mut conn, &self.record_key(key)).await
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let lease = self.lease_key(key);
            let set: Option<String> = redis::cmd("SET")
                .arg(&lease)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            if set.is_some() {
                return Ok(true);
            }
            let renewed: i64 = Script::new(RENEW)
                .key(&lease)
                .arg(holder)
                .arg(ttl_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_error)?;
            Ok(renewed == 1)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        data: &'a [u8],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let next = super::next_version(expected)?;
            let mut conn = self.connection().await?;
            let written: i64 = Script::new(CAS)
                .key(self.record_key(key))
                .arg(expected.to_string())
                .arg(next.to_string())
                .arg(data)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_error)?;
            Ok(written == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let _: i64 = Script::new(RELEASE)
                .key(self.lease_key(key))
                .arg(holder)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_error)?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    fn list(&self) -> StoreFuture<'_, Vec<super::Listed>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            // SCAN, not KEYS: a shared Redis must not stall for an operator's listing.
            let pattern = format!("{}*", glob_escape(&self.prefix));
            let mut names = std::collections::BTreeSet::new();
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                for key in keys {
                    let rest = key.strip_prefix(self.prefix.as_str()).unwrap_or_default();
                    let name = rest.strip_suffix(":lease").unwrap_or(rest);
                    // Only names this store writes (32 hex digits).
                    if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                        names.insert(name.to_owned());
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let mut listed = Vec::with_capacity(names.len());
            for name in names {
                let record_key = format!("{}{name}", self.prefix);
                let lease_key = format!("{record_key}:lease");
                let record = read_hash(&mut conn, &record_key).await?;
                let (holder, ttl_ms): (Option<String>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&lease_key)
                    .cmd("PTTL")
                    .arg(&lease_key)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                listed.push(super::Listed {
                    name,
                    record,
                    // Redis keeps no write time; the record's own obtained time tells.
                    written_at_ms: None,
                    lease: holder.map(|holder| super::ListedLease {
                        holder,
                        expires_in_ms: u64::try_from(ttl_ms).unwrap_or(0),
                        age_ms: None,
                    }),
                });
            }
            Ok(listed)
        })
    }
}

/// The record hash at `redis_key` (the prefixed name), if any.
async fn read_hash(conn: &mut ConnectionManager, redis_key: &str) -> Result<Option<StoredRecord>> {
    let (version, data): (Option<String>, Option<Vec<u8>>) = redis::cmd("HMGET")
        .arg(redis_key)
        .arg("version")
        .arg("data")
        .query_async(conn)
        .await
        .map_err(redis_error)?;
    Ok(match (version, data) {
        (None, None) => None,
        // Unreadable versions are treated like the file store's corrupted files:
        // version 0, so opening fails and a writer's CAS on 0 replaces them (the
        // CAS script applies the same rule).
        (version, data) => Some(StoredRecord {
            version: version
                .as_deref()
                .and_then(super::parse_version)
                .unwrap_or(0),
            data: data.unwrap_or_default(),
        }),
    })
}

/// `text` with Redis glob metacharacters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Redis failure as a transport error; redis-rs messages name the server, never the
/// password or the data.
fn redis_error(error: redis::RedisError) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transport
    };
    Error::new(kind, format!("Redis credential store: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_server_and_prefix_never_the_password() {
        let store = RedisStore::open(
            "redis://:hunter2-secret@10.1.2.3:6380/0?prefix=desk:",
            None,
            Duration::from_secs(1),
        )
        .expect("a valid URL opens without connecting");
        let text = format!("{store:?}");
        assert!(text.starts_with("RedisStore"), "{text}");
        assert!(text.contains("10.1.2.3:6380"), "{text}");
        assert!(text.contains("desk:"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
    }

    #[test]
    fn a_ca_certificate_with_a_plain_redis_url_is_refused_even_when_valid() {
        // A usable CA: without the scheme check it would be accepted and then ignored,
        // so the caller would believe the connection is verified against it.
        let pem = rcgen::generate_simple_self_signed(vec!["redis.test".to_owned()])
            .expect("cert")
            .cert
            .pem();
        let timeout = Duration::from_secs(1);
        let err = RedisStore::open_with_ca("redis://redis.test:6379/0", None, timeout, Some(&pem))
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("rediss://"), "{err}");
        RedisStore::open_with_ca("rediss://redis.test:6379/0", None, timeout, Some(&pem))
            .expect("the same CA with rediss:// is accepted");
    }
}
