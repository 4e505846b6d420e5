//! The in-process store: several sessions of one process share one login.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{CredentialStore, StoreFuture, StoredRecord};

#[derive(Default)]
struct Entry {
    record: Option<StoredRecord>,
    lease: Option<(String, Instant)>,
}

/// A [`CredentialStore`] in this process's memory (`"memory:"`). Every session opened
/// with `"memory:"` shares [`MemoryStore::global`]; nothing is written to disk.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    /// An empty store of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide store behind `"memory:"`.
    pub fn global() -> Arc<MemoryStore> {
        static GLOBAL: OnceLock<Arc<MemoryStore>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| Arc::new(MemoryStore::new())))
    }

    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        // A panic while holding the lock cannot leave an entry half-written (each
        // operation assigns whole values), so a poisoned lock is still consistent.
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(entries.entry(key.to_owned()).or_default())
    }
}

impl CredentialStore for MemoryStore {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredRecord>> {
        let record = self.with(key, |e| e.record.clone());
        Box::pin(async move { Ok(record) })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let taken = self.with(key, |e| match &e.lease {
            Some((owner, until)) if owner != holder && *until > now => false,
            _ => {
                e.lease = Some((holder.to_owned(), now + ttl));
                true
            }
        });
        Box::pin(async move { Ok(taken) })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        data: &'a [u8],
    ) -> StoreFuture<'a, bool> {
        let next = super::next_version(expected);
        let written = next.map(|next| {
            self.with(key, |e| {
                let current = e.record.as_ref().map_or(0, |r| r.version);
                if current != expected {
                    return false;
                }
                e.record = Some(StoredRecord {
                    version: next,
                    data: data.to_vec(),
                });
                true
            })
        });
        Box::pin(async move { written })
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        self.with(key, |e| {
            if e.lease.as_ref().is_some_and(|(owner, _)| owner == holder) {
                e.lease = None;
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "memory:".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Its Debug names the store and nothing it holds (records may be plaintext).
    #[test]
    fn debug_names_the_store_not_its_records() {
        let store = MemoryStore::new();
        store.with("k", |e| {
            e.record = Some(StoredRecord {
                version: 1,
                data: b"plaintext-secret".to_vec(),
            });
        });
        assert_eq!(format!("{store:?}"), "MemoryStore");
    }
}
