//! What an operator sees of a store (`tradeauth store status`): per record its venue,
//! account, version, age, expiry and lease, never a token or a refresh token.
//!
//! Records are stored under a hash of their key; the envelope carries the key in clear
//! (`rk`), so venue and account show without the store key. The expiry is inside the
//! sealed payload: it shows for plaintext records, and for encrypted ones when the store
//! key is given.

use zeroize::Zeroize;

use super::crypto::{EnvelopeInfo, Sealer, peek, storage_name};
use super::record::Payload;
use super::{Listed, ListedLease};
use crate::error::Result;
use crate::session::Options;

/// One record of a store as an operator sees it; holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordStatus {
    /// The storage name (a hash of the record key).
    pub name: String,
    /// `cadenza` / `cascade`, when the record names its key.
    pub venue: Option<String>,
    /// The venue's base URL the record is for.
    pub base_url: Option<String>,
    /// The account label (not a secret).
    pub account: Option<String>,
    /// The record version (1 for the first write, 0 when unreadable).
    pub version: u64,
    /// `A256GCM`, `none` (plaintext) or `unknown` (not a record envelope).
    pub encryption: String,
    /// The store key id an encrypted record was sealed with.
    pub key_id: Option<String>,
    /// When the record was last written, Unix ms, where the store knows it.
    pub written_at_ms: Option<u64>,
    /// When its token was obtained, Unix ms (venue clock): needs the content.
    pub obtained_at_ms: Option<u64>,
    /// When its token expires, Unix ms (venue clock): needs the content.
    pub expires_at_ms: Option<u64>,
    /// Who wrote it (`pid@host`): needs the content.
    pub writer: Option<String>,
    /// Whether it holds a refresh token (never the token itself): needs the content.
    pub has_refresh_token: Option<bool>,
    /// The lease on it, if held.
    pub lease: Option<ListedLease>,
    /// Why part of the record is not shown (no key, wrong key, corrupted), if so.
    pub note: Option<String>,
}

/// The records of the store at `url` (`file:///dir`, `redis://…`, `rediss://…`), read
/// with the store settings of `options` (prefix, timeout, CA) and its store key or
/// `TRADEAUTH_STORE_KEY`; without a key, encrypted records show what is not encrypted.
pub async fn status(url: &str, options: &Options) -> Result<Vec<RecordStatus>> {
    let store = super::open_with_ca(
        url,
        options.store_prefix.as_deref(),
        options.store_timeout,
        options.store_ca_pem.as_deref(),
    )?;
    let listed = tokio::time::timeout(options.store_timeout.saturating_mul(10), store.list())
        .await
        .map_err(|_| {
            crate::Error::new(
                crate::ErrorKind::Timeout,
                "the credential store did not answer in time",
            )
        })??;
    // The sessions' own rule: the options' key, else TRADEAUTH_STORE_KEY; without
    // either, plaintext (which opens only plaintext records).
    let sealer = Sealer::from_options(options.store_key.as_ref(), true)?;
    Ok(listed
        .into_iter()
        .map(|listed| describe(listed, &sealer))
        .collect())
}

/// One listed record, opened with `sealer` where it can be.
fn describe(listed: Listed, sealer: &Sealer) -> RecordStatus {
    let mut status = RecordStatus {
        name: listed.name,
        venue: None,
        base_url: None,
        account: None,
        version: listed.record.as_ref().map_or(0, |r| r.version),
        encryption: "unknown".to_owned(),
        key_id: None,
        written_at_ms: listed.written_at_ms,
        obtained_at_ms: None,
        expires_at_ms: None,
        writer: None,
        has_refresh_token: None,
        lease: listed.lease,
        note: None,
    };
    let Some(record) = listed.record else {
        status.note = Some("no record (only a lease)".to_owned());
        return status;
    };
    let Some(EnvelopeInfo { alg, kid, rk, .. }) = peek(&record.data) else {
        status.note = Some("not a record envelope (corrupted)".to_owned());
        return status;
    };
    status.encryption = alg.clone();
    status.key_id = kid;
    let Some(rk) = rk else {
        status.note = Some("written by an older tradeauth: its key is not recorded".to_owned());
        return status;
    };
    let mut parts = rk.splitn(3, '|');
    status.venue = parts.next().map(str::to_owned);
    status.base_url = parts.next().map(str::to_owned);
    status.account = parts.next().map(str::to_owned);
    if storage_name(&rk) != status.name {
        // A record copied under another name: its content is not this name's.
        status.note = Some("the record's key does not match its name (moved?)".to_owned());
        return status;
    }
    let opened = match (alg.as_str(), sealer) {
        ("none", _) => Sealer::Plaintext.open(&rk, record.version, &record.data),
        (_, Sealer::Aead { .. }) => sealer.open(&rk, record.version, &record.data),
        (_, Sealer::Plaintext) => {
            status.note = Some(format!(
                "encrypted: set {} to show its expiry",
                super::STORE_KEY_ENV
            ));
            return status;
        }
    };
    let mut plain = match opened {
        Ok(plain) => plain,
        Err(why) => {
            status.note = Some(why.describe().to_owned());
            return status;
        }
    };
    match serde_json::from_slice::<Payload>(&plain) {
        Ok(payload) => {
            status.obtained_at_ms = Some(payload.obtained_at_ms);
            status.expires_at_ms = Some(payload.expires_at_ms);
            status.writer = Some(payload.writer.clone()).filter(|w| !w.is_empty());
            status.has_refresh_token = Some(payload.refresh_token.is_some());
        }
        Err(_) => status.note = Some("the record's content is not readable".to_owned()),
    }
    plain.zeroize();
    status
}
