//! The shared record's content: what another process needs to use and renew the
//! credential. Serialised with serde_json, then sealed (see `crypto`).

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::machine::SessionSnapshot;
use crate::secret::Secret;

/// The payload format this build writes and the newest it reads.
pub(crate) const PAYLOAD_VERSION: u32 = 1;

/// One record. Token fields are wiped on drop; `Debug` is not derived on purpose.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Payload {
    /// Payload format version.
    pub v: u32,
    /// `cadenza` / `cascade`.
    pub venue: String,
    /// The account label (never a secret).
    pub account: String,
    /// A random id of this record, so "the record I already have" is recognised even
    /// if a store lost its data and versions start over.
    pub rid: u64,
    /// The access token / JWT.
    pub token: String,
    /// Venue expiry, Unix ms (venue clock).
    pub expires_at_ms: u64,
    /// When the token was obtained, Unix ms (venue clock).
    pub obtained_at_ms: u64,
    /// Cadenza's rotated refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Cascade's claims (not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[zeroize(skip)]
    pub claims: Option<serde_json::Value>,
    /// Who wrote it (pid and host; for operators, not used by the logic).
    #[serde(default)]
    pub writer: String,
    /// Set on a fence: the writer took the refresh token of record `rid` out to present
    /// it, and no other process may present that token (it does a full login instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[zeroize(skip)]
    pub presented_rid: Option<u64>,
}

impl Payload {
    /// A record for a machine snapshot.
    pub(crate) fn new(venue: &str, account: &str, rid: u64, snapshot: &SessionSnapshot) -> Self {
        Payload {
            v: PAYLOAD_VERSION,
            venue: venue.to_owned(),
            account: account.to_owned(),
            rid,
            token: snapshot.token.expose().to_owned(),
            expires_at_ms: snapshot.expires_at_ms,
            obtained_at_ms: snapshot.obtained_at_ms,
            refresh_token: snapshot
                .refresh_token
                .as_ref()
                .map(|s| s.expose().to_owned()),
            claims: snapshot.claims.clone(),
            writer: writer_label(),
            presented_rid: None,
        }
    }

    /// The fence for this record: the same access token without the refresh token, under
    /// a new id, naming this record as the one whose refresh token is being presented.
    pub(crate) fn fence(&self, rid: u64) -> Self {
        Payload {
            v: PAYLOAD_VERSION,
            venue: self.venue.clone(),
            account: self.account.clone(),
            rid,
            token: self.token.clone(),
            expires_at_ms: self.expires_at_ms,
            obtained_at_ms: self.obtained_at_ms,
            refresh_token: None,
            claims: self.claims.clone(),
            writer: writer_label(),
            presented_rid: Some(self.rid),
        }
    }

    /// The snapshot a machine restores from.
    pub(crate) fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            token: Secret::from(self.token.as_str()),
            expires_at_ms: self.expires_at_ms,
            obtained_at_ms: self.obtained_at_ms,
            refresh_token: self.refresh_token.as_deref().map(Secret::from),
            claims: self.claims.clone(),
        }
    }
}

/// `pid@host`, for operators looking at a store.
pub(crate) fn writer_label() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}@{host}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operators read `pid@host` in a store: this process's id and this machine's name.
    #[test]
    fn the_writer_label_names_this_process_and_host() {
        let label = writer_label();
        let (pid, host) = label.split_once('@').expect("pid@host");
        assert_eq!(pid, std::process::id().to_string());
        let named = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let expected = if named.is_empty() {
            "localhost"
        } else {
            named.as_str()
        };
        assert_eq!(host, expected);
    }
}
