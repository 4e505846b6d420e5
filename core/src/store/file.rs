//! The file store (`file:///dir`): several processes on one host.
//!
//! One directory, three files per record key (named by a hash of the key):
//! `NAME.rec` (the record: `{"version":N,"data":"<base64 of the sealed blob>"}`),
//! `NAME.lease` (`{"holder":..,"until_ms":..}`) and `NAME.lock`. Every read-modify-write
//! (lease, compare-and-swap, release) runs under an exclusive `flock` on `NAME.lock`,
//! held for microseconds; the lease itself is a file with a wall-clock expiry, so a
//! holder that crashed or hangs blocks the others at most until then. Records and leases
//! are replaced by write-to-temp + fsync + rename, so a reader never sees half a file.
//! Files are created 0600 and the directory 0700 (Unix). Another local user must not be
//! able to plant a lease that never expires or replay an old record, so an existing
//! directory owned by someone else or writable by group/others is refused, and every file
//! is opened with `O_NOFOLLOW` (a symlink planted where a file goes is refused, not
//! followed).

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
    /// Opens (creating it 0700 if missing) the store directory; refuses one that is not
    /// owned by the current user or is writable by group or others (Unix).
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
        check_private_dir(&dir)?;
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
        read_record_at(&self.record_path(key))
    }

    fn read_lease(&self, key: &str) -> Option<LeaseFile> {
        read_lease_at(&self.lease_path(key))
    }

    /// Every `NAME.rec` and `NAME.lease` in the directory (for `list`).
    fn list_blocking(&self) -> Result<Vec<super::Listed>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| store_error(format!("cannot list the credential store: {e}")))?;
        let mut names = std::collections::BTreeSet::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| store_error(format!("cannot list the credential store: {e}")))?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let stem = file
                .strip_suffix(".rec")
                .or_else(|| file.strip_suffix(".lease"));
            // Only names this store writes (32 hex digits): temp files, locks and
            // anything else in the directory are not records.
            if let Some(stem) =
                stem.filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                names.insert(stem.to_owned());
            }
        }
        let now = unix_ms();
        let mut listed = Vec::with_capacity(names.len());
        for name in names {
            let record_path = self.dir.join(format!("{name}.rec"));
            let lease_path = self.dir.join(format!("{name}.lease"));
            let record = read_record_at(&record_path)?;
            let lease = read_lease_at(&lease_path)
                .filter(|l| l.until_ms > now)
                .map(|l| super::ListedLease {
                    holder: l.holder,
                    expires_in_ms: l.until_ms - now,
                    age_ms: modified_ms(&lease_path).map(|at| now.saturating_sub(at)),
                });
            listed.push(super::Listed {
                written_at_ms: record.as_ref().and_then(|_| modified_ms(&record_path)),
                name,
                record,
                lease,
            });
        }
        Ok(listed)
    }
}

/// When a file was last written, Unix ms (not following a symlink).
fn modified_ms(path: &Path) -> Option<u64> {
    let modified = fs::symlink_metadata(path).ok()?.modified().ok()?;
    u64::try_from(modified.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

fn read_lease_at(path: &Path) -> Option<LeaseFile> {
    let bytes = read_private(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn read_record_at(path: &Path) -> Result<Option<StoredRecord>> {
    let bytes = match read_private(path) {
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
                    // Past the maximum reads as unreadable, like a corrupted file.
                    version: if r.version > super::MAX_VERSION {
                        0
                    } else {
                        r.version
                    },
                    data: STANDARD.decode(r.data).ok()?,
                })
            })
            .unwrap_or(StoredRecord {
                version: 0,
                data: bytes,
            }),
    ))
}

impl FileStore {
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
        let file = super::next_version(expected).map(|version| RecordFile {
            version,
            data: STANDARD.encode(data),
        });
        self.blocking(key, move |store, key| {
            let file = file?;
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
                // The lease was just read under the flock every lease writer takes, so
                // the file is there: any failure to remove it is an error.
                if store.read_lease(key).is_some_and(|l| l.holder == holder) {
                    fs::remove_file(store.lease_path(key))
                        .map_err(|e| store_error(format!("cannot release the lease: {e}")))?;
                }
                Ok(())
            })
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn list(&self) -> StoreFuture<'_, Vec<super::Listed>> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.list_blocking())
                .await
                .map_err(|e| store_error(format!("file store task failed: {e}")))?
        })
    }
}

/// Opens (creating 0600) a file, never through a symlink; `truncate` for temp files, not
/// for the lock file.
fn create_private(path: &Path, truncate: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    no_follow(&mut options);
    options
        .open(path)
        .map_err(|e| store_error(format!("cannot open {}: {e}", path.display())))
}

/// Reads a whole file, never through a symlink (a planted link fails with `ELOOP`).
fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    let mut file = options.open(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// Files are created 0600 and opened with `O_NOFOLLOW` (Unix).
fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// Refuses a store directory another local user could write to: not owned by the
/// effective user, or writable by group or others (Unix; elsewhere the OS ACLs decide).
fn check_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "cannot read the credential store directory {}: {e}",
                    dir.display()
                ),
            )
        })?;
        if !meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the credential store path {} is not a directory",
                    dir.display()
                ),
            ));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the credential store directory {} is owned by uid {}, not by this user (uid {me}); \
                     another user could plant or replay records there",
                    dir.display(),
                    meta.uid()
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the credential store directory {} is writable by group or others (mode {:o}); \
                     make it 0700 (chmod go-w)",
                    dir.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn store_error(message: String) -> Error {
    Error::new(ErrorKind::Transport, message)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use std::time::Duration;

    use super::{FileStore, storage_name, unix_ms};
    use crate::error::ErrorKind;
    use crate::store::CredentialStore;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tradeauth-{name}-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// A fresh private directory and a store opened on it.
    fn opened(name: &str) -> (PathBuf, FileStore) {
        let dir = temp(name);
        let store = FileStore::open(&dir).unwrap();
        (dir, store)
    }

    /// Runs one store call to completion (the tests are synchronous).
    fn block_on<T>(call: impl std::future::Future<Output = T>) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(call)
    }

    /// An operator's listing: every record and live lease under its storage name, with
    /// when it was written and how long the lease has been held and still holds; files
    /// that are not records (locks, temp files, strangers) and lapsed leases are not listed.
    #[test]
    fn list_shows_records_and_live_leases_only() {
        let (dir, store) = opened("list");
        assert_eq!(block_on(store.list()).unwrap(), Vec::new());
        let (a, b, c) = (
            "cadenza|https://h|a",
            "cadenza|https://h|b",
            "cascade|https://h|c",
        );
        let before = unix_ms();
        assert!(block_on(store.compare_and_swap(a, 0, b"one")).unwrap());
        assert!(block_on(store.compare_and_swap(a, 1, b"two")).unwrap());
        assert!(block_on(store.compare_and_swap(b, 0, b"other")).unwrap());
        assert!(block_on(store.try_lease(a, "holder-a", Duration::from_secs(30))).unwrap());
        // A lease without a record (a first login in flight), and a lapsed one.
        assert!(block_on(store.try_lease(c, "holder-c", Duration::from_secs(30))).unwrap());
        assert!(block_on(store.try_lease(b, "gone", Duration::from_millis(1))).unwrap());
        std::thread::sleep(Duration::from_millis(5));
        for stranger in [
            "notes.txt",
            "0123.rec",
            "zz.lease",
            &format!("{}.rec.tmp.1.2", "a".repeat(32)),
        ] {
            std::fs::write(dir.join(stranger), b"x").unwrap();
        }
        let listed = block_on(store.list()).unwrap();
        let after = unix_ms();
        let mut expected: Vec<String> = [a, b, c].iter().map(|k| storage_name(k)).collect();
        expected.sort();
        let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, expected);
        let find = |key: &str| listed.iter().find(|l| l.name == storage_name(key)).unwrap();
        let la = find(a);
        let record = la.record.as_ref().unwrap();
        assert_eq!(
            (record.version, record.data.as_slice()),
            (2, b"two".as_slice())
        );
        let written = la.written_at_ms.unwrap();
        assert!(
            written + 1000 >= before && written <= after,
            "{written} {before} {after}"
        );
        let lease = la.lease.as_ref().unwrap();
        assert_eq!(lease.holder, "holder-a");
        assert!(
            lease.expires_in_ms > 25_000 && lease.expires_in_ms <= 30_000,
            "{lease:?}"
        );
        let age = lease.age_ms.unwrap();
        assert!(age < 5_000, "{lease:?}");
        // b: a record, its lapsed lease not shown.
        let lb = find(b);
        assert_eq!(lb.record.as_ref().unwrap().version, 1);
        assert_eq!(lb.lease, None);
        // c: only a lease.
        let lc = find(c);
        assert_eq!((lc.record.as_ref(), lc.written_at_ms), (None, None));
        assert_eq!(lc.lease.as_ref().unwrap().holder, "holder-c");
        // An old lease file reads as held for as long as it has been there.
        let old = std::time::SystemTime::now() - Duration::from_secs(10);
        let file = std::fs::File::options()
            .write(true)
            .open(store.lease_path(a))
            .unwrap();
        file.set_modified(old).unwrap();
        let listed = block_on(store.list()).unwrap();
        let lease = listed
            .iter()
            .find(|l| l.name == storage_name(a))
            .unwrap()
            .lease
            .clone()
            .unwrap();
        let age = lease.age_ms.unwrap();
        assert!((10_000..15_000).contains(&age), "{lease:?}");
    }

    #[test]
    fn group_or_world_writable_directory_is_refused() {
        for mode in [0o770, 0o707, 0o777, 0o1777, 0o720] {
            let dir = temp("store-mode");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = FileStore::open(&dir).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{mode:o}");
            assert!(
                err.message().contains("writable by group or others"),
                "{err}"
            );
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn directory_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        let dir = if unsafe { libc::geteuid() } == 0 {
            // As root, hand a fresh 0700 directory to `nobody`.
            let dir = temp("store-owner");
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
            dir
        } else {
            // The filesystem root belongs to root, never to this user.
            PathBuf::from("/")
        };
        let err = FileStore::open(&dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("not by this user"), "{err}");
        if dir != std::path::Path::new("/") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn private_directory_is_accepted_and_files_are_0600() {
        let (dir, store) = opened("store-ok");
        let key = "cadenza|https://h/|me";
        assert!(block_on(store.compare_and_swap(key, 0, b"sealed")).unwrap());
        assert!(block_on(store.try_lease(key, "me", std::time::Duration::from_secs(5))).unwrap());
        for path in [
            store.record_path(key),
            store.lease_path(key),
            store.lock_path(key),
        ] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn symlink_planted_at_the_lock_file_is_refused_not_followed() {
        let (dir, store) = opened("store-link");
        let key = "cascade|https://h/|0xabc";
        let target = dir.join("victim");
        std::os::unix::fs::symlink(&target, store.lock_path(key)).unwrap();
        assert!(block_on(store.compare_and_swap(key, 0, b"sealed")).is_err());
        assert!(!target.exists(), "the symlink was followed");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn symlinked_record_and_lease_are_not_read() {
        let (dir, store) = opened("store-link-read");
        let key = "cadenza|https://h/|me";
        // An old record (or a never-expiring lease) elsewhere, linked into place.
        let planted = dir.join("planted");
        std::fs::write(&planted, br#"{"version":7,"data":"c2VhbGVk"}"#).unwrap();
        std::os::unix::fs::symlink(&planted, store.record_path(key)).unwrap();
        assert!(
            block_on(store.read(key)).is_err(),
            "a linked record must not be read"
        );
        let lease = dir.join("lease-elsewhere");
        std::fs::write(
            &lease,
            br#"{"holder":"evil","until_ms":18446744073709551615}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(&lease, store.lease_path(key)).unwrap();
        assert!(
            block_on(store.try_lease(key, "me", std::time::Duration::from_secs(5))).unwrap(),
            "a linked lease must not hold the store"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
