//! The file store (`file:///dir`): several processes on one host.
//!
//! One directory, three files per record key (named by a hash of the key):
//! `NAME.rec` (the record: `{"version":N,"data":"<base64 of the sealed blob>"}`),
//! `NAME.lease` (`{"holder":..,"until_ms":..}`) and `NAME.lock`. Every read-modify-write
//! (lease, compare-and-swap, release) runs under an exclusive `flock` on `NAME.lock`,
//! held for microseconds; the lease itself is a file with a wall-clock expiry, so a
//! holder that crashed or hangs blocks the others at most until then. Records and leases
//! are replaced by write-to-temp + fsync + rename, so a reader never sees half a file.
//! Files are created 0600 and the directory 0700 (Unix).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::crypto::storage_name;
use super::{CredentialStore, StoreFuture, StoredRecord};
use crate::error::{Error, ErrorKind, Result};

/// A [`CredentialStore`] in a directory shared by the processes of one host.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct RecordFile {
    version: u64,
    data: String,
}

#[derive(Serialize, Deserialize)]
struct LeaseFile {
    holder: String,
    until_ms: u64,
}

impl FileStore {
    /// Opens (creating it 0700 if missing) the store directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&dir).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "cannot create the credential store directory {}: {e}",
                        dir.display()
                    ),
                )
            })?;
        }
        Ok(FileStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the record file for `key` (for operators and tests).
    pub fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.rec", storage_name(key)))
    }

    /// The path of the lease file for `key` (for operators and tests).
    pub fn lease_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.lease", storage_name(key)))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.lock", storage_name(key)))
    }

    /// Runs `f` on a blocking thread (file I/O and flock must not stall the runtime).
    fn blocking<'a, T: Send + 'static>(
        &'a self,
        key: &str,
        f: impl FnOnce(&FileStore, &str) -> Result<T> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let store = self.clone();
        let key = key.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&store, &key))
                .await
                .map_err(|e| store_error(format!("file store task failed: {e}")))?
        })
    }

    /// Runs `f` holding the exclusive flock of `key` (released when the file closes).
    fn locked<T>(&self, key: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let lock = create_private(&self.lock_path(key), false)?;
        fs4::FileExt::lock(&lock)
            .map_err(|e| store_error(format!("cannot lock the credential store: {e}")))?;
        let out = f();
        // Closing the descriptor releases the flock even if unlock fails.
        let _ = fs4::FileExt::unlock(&lock);
        out
    }

    fn read_record(&self, key: &str) -> Result<Option<StoredRecord>> {
        let bytes = match fs::read(self.record_path(key)) {
            Ok(b) => b,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(store_error(format!(
                    "cannot read the credential store: {e}"
                )));
            }
        };
        // A file that is not ours (corrupted, truncated by a full disk) is handed up as
        // version 0 with its raw bytes: opening it fails ("no record"), and a writer's
        // compare-and-swap against version 0 replaces it.
        Ok(Some(
            serde_json::from_slice::<RecordFile>(&bytes)
                .ok()
                .and_then(|r| {
                    Some(StoredRecord {
                        version: r.version,
                        data: STANDARD.decode(r.data).ok()?,
                    })
                })
                .unwrap_or(StoredRecord {
                    version: 0,
                    data: bytes,
                }),
        ))
    }

    fn read_lease(&self, key: &str) -> Option<LeaseFile> {
        let bytes = fs::read(self.lease_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes `bytes` to `path` atomically: temp file (0600) + fsync + rename.
    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = path.with_extension(format!(
            "tmp.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| {
            let mut file = create_private(&tmp, true)?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| store_error(format!("cannot write the credential store: {e}")))?;
            fs::rename(&tmp, path)
                .map_err(|e| store_error(format!("cannot write the credential store: {e}")))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl CredentialStore for FileStore {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredRecord>> {
        self.blocking(key, |store, key| store.read_record(key))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let holder = holder.to_owned();
        self.blocking(key, move |store, key| {
            store.locked(key, || {
                let now = unix_ms();
                if let Some(lease) = store.read_lease(key)
                    && lease.holder != holder
                    && lease.until_ms > now
                {
                    return Ok(false);
                }
                let lease = LeaseFile {
                    holder,
                    until_ms: now
                        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
                };
                let bytes = serde_json::to_vec(&lease)
                    .map_err(|e| store_error(format!("cannot encode a lease: {e}")))?;
                store.replace(&store.lease_path(key), &bytes)?;
                Ok(true)
            })
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: u64,
        data: &'a [u8],
    ) -> StoreFuture<'a, bool> {
        let file = RecordFile {
            version: expected + 1,
            data: STANDARD.encode(data),
        };
        self.blocking(key, move |store, key| {
            store.locked(key, || {
                let current = store.read_record(key)?.map_or(0, |r| r.version);
                if current != expected {
                    return Ok(false);
                }
                let bytes = serde_json::to_vec(&file)
                    .map_err(|e| store_error(format!("cannot encode a record: {e}")))?;
                store.replace(&store.record_path(key), &bytes)?;
                Ok(true)
            })
        })
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        let holder = holder.to_owned();
        self.blocking(key, move |store, key| {
            store.locked(key, || {
                if store.read_lease(key).is_some_and(|l| l.holder == holder) {
                    match fs::remove_file(store.lease_path(key)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == IoKind::NotFound => {}
                        Err(e) => {
                            return Err(store_error(format!("cannot release the lease: {e}")));
                        }
                    }
                }
                Ok(())
            })
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

/// Opens (creating 0600) a file; `truncate` for temp files, not for the lock file.
fn create_private(path: &Path, truncate: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| store_error(format!("cannot open {}: {e}", path.display())))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn store_error(message: String) -> Error {
    Error::new(ErrorKind::Transport, message)
}
