//! Cascade's delegate key outside the process (an HSM, a KMS, a signing service) through a
//! C callback, a delegate key read from a keystore file, and secret rotation.
//!
//! A C signer is called with `tokio::task::spawn_blocking` (it may block: a network HSM),
//! so it never stalls the runtime; the core bounds each call by the signer's timeout. A
//! call that outlives its timeout cannot be stopped: it goes on on its blocking thread to
//! its end and its answer is thrown away. Each registration (one constructor or
//! `tradeauth_session_update_signer` call) runs at most one call at a time, and starts
//! none once it is retired (replaced, or its session freed).

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use tradeauth::signer::{DigestSigner, ExternalSigner, SignFuture, SignResult};
use tradeauth::{CascadeConfig, NewSecret, Secret, Session};

use crate::options::{options_or_default, tradeauth_options};
use crate::session::{make_session_with_signer, tradeauth_session};
use crate::status::{Failure, boundary, tradeauth_status};
use crate::text::{arg_out, arg_ref, arg_str};

/// The size of the `out` buffer a `tradeauth_sign_fn` is given (its `out_cap`): room for
/// a DER ECDSA signature over secp256k1 (at most 72 bytes) and for 65 bytes `r||s||v`.
pub const TRADEAUTH_SIGN_OUT_CAP: usize = 80;

/// An external signer for Cascade's delegate key.
///
/// Signs the 32-byte EIP-191 digest `digest` (already hashed: sign it as a prehash, do
/// not hash it again) with the delegate key. Writes the signature to `out` (65 bytes
/// `r||s||v` (`v` is ignored), 64 bytes `r||s`, or a DER ECDSA signature; a high `s` is
/// fine, the library normalises it) and its length to `*out_len`, at most `out_cap`
/// (always `TRADEAUTH_SIGN_OUT_CAP`, 80) bytes. Returns 0 on success and any other value
/// on failure: the sign-in then fails with `TRADEAUTH_ERR_SIGNING` and the last error
/// message "the C signer returned N". A signature by another key than the declared
/// delegate address, or a length above `out_cap`, is `TRADEAUTH_ERR_SIGNING` as well.
/// `digest` and `out` are valid only during the call.
///
/// Threads: it is called on a library thread (a blocking-pool thread of the library's
/// runtime, never the thread of the tradeauth call that needed the signature), so it may
/// block, e.g. on a network HSM. One registration (the constructor or
/// `tradeauth_session_update_signer` call that passed it) never runs two calls at once:
/// while a call that outlived its timeout is still running, a new sign-in fails at once
/// with `TRADEAUTH_ERR_SIGNING` instead of calling it again. The same function and
/// `userdata` given to several sessions or registrations may be called concurrently by
/// them: make it thread-safe if you share them. It must not unwind (C++: catch
/// everything) and must not call tradeauth functions on the same session.
pub type tradeauth_sign_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        digest: *const u8,
        out: *mut u8,
        out_cap: usize,
        out_len: *mut usize,
    ) -> i32,
>;

/// The callback, known to be non-NULL.
type RawSignFn = unsafe extern "C" fn(*mut c_void, *const u8, *mut u8, usize, *mut usize) -> i32;

/// The caller's `userdata` pointer.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

// SAFETY: the library only passes the pointer back to the caller's signer, from its own
// blocking threads. The caller of `tradeauth_cascade_new_with_signer` /
// `tradeauth_session_update_signer` promises (documented there) that `userdata` may be
// used from any thread, by concurrent calls of different registrations, and stays valid
// until every call of the signer has returned.
unsafe impl Send for UserData {}
// SAFETY: as above; the library never dereferences it.
unsafe impl Sync for UserData {}

/// One registration of a C signer: whether it may still be called, and the lock that
/// keeps it to one call at a time.
pub(crate) struct Registration {
    running: Mutex<()>,
    retired: AtomicBool,
}

impl Registration {
    /// From now on no new call starts (one running goes on to its end).
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }
}

/// A session's registered C signers.
pub(crate) struct Signers {
    /// `None` once the session's `_free` began: a signer registered later is retired at once.
    list: Mutex<Option<Vec<Arc<Registration>>>>,
}

impl Signers {
    /// The signers of a new session.
    pub(crate) fn new(first: Option<Arc<Registration>>) -> Self {
        Signers {
            list: Mutex::new(Some(first.into_iter().collect())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Arc<Registration>>>> {
        self.list
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session is being freed: retires every signer, and any registered later.
    pub(crate) fn close(&self) {
        if let Some(list) = self.lock().take() {
            list.iter().for_each(|r| r.retire());
        }
    }

    /// The session's delegate key source was replaced: retires the signers held so far,
    /// then keeps `fresh` (if any) as the only one.
    fn replace(&self, fresh: Option<Arc<Registration>>) {
        let mut slot = self.lock();
        match slot.as_mut() {
            Some(list) => {
                list.drain(..).for_each(|r| r.retire());
                list.extend(fresh);
            }
            None => fresh.iter().for_each(|r| r.retire()),
        }
    }
}

/// A C signer as a [`DigestSigner`].
struct CSigner {
    sign: RawSignFn,
    userdata: UserData,
    registration: Arc<Registration>,
}

impl CSigner {
    /// One call of the C function, on a blocking thread.
    fn call(&self, digest: [u8; 32]) -> SignResult {
        let _running = match self.registration.running.try_lock() {
            Ok(guard) => guard,
            // Nothing the lock guards can be left half-done.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(
                    "the C signer is still running an earlier call that timed out; it \
                            is not called again until that call returns"
                        .to_owned(),
                );
            }
        };
        if self.registration.retired.load(Ordering::SeqCst) {
            return Err("the C signer was replaced or its session freed".to_owned());
        }
        let mut out = [0u8; TRADEAUTH_SIGN_OUT_CAP];
        let mut out_len = 0usize;
        // SAFETY: `sign` is the caller's non-NULL signer; `digest` holds 32 bytes and `out`
        // TRADEAUTH_SIGN_OUT_CAP, both live for the call; userdata per the caller's contract.
        let rc = unsafe {
            (self.sign)(
                self.userdata.0,
                digest.as_ptr(),
                out.as_mut_ptr(),
                TRADEAUTH_SIGN_OUT_CAP,
                &mut out_len,
            )
        };
        if rc != 0 {
            return Err(format!("the C signer returned {rc}"));
        }
        if out_len > TRADEAUTH_SIGN_OUT_CAP {
            return Err(format!(
                "the C signer wrote out_len {out_len}, more than out_cap \
                 {TRADEAUTH_SIGN_OUT_CAP}"
            ));
        }
        Ok(out[..out_len].to_vec())
    }
}

impl DigestSigner for CSigner {
    fn sign_digest(&self, digest: [u8; 32]) -> SignFuture<'_> {
        let signer = CSigner {
            sign: self.sign,
            userdata: self.userdata,
            registration: Arc::clone(&self.registration),
        };
        Box::pin(async move {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(
                    "the C signer was asked to sign outside the library's runtime".to_owned(),
                );
            }
            // Dropped on timeout: the blocking call then runs on to its end, unobserved.
            match tokio::task::spawn_blocking(move || signer.call(digest)).await {
                Ok(answer) => answer,
                Err(_) => Err("the C signer's call ended in a panic inside tradeauth".to_owned()),
            }
        })
    }
}

/// Checks the arguments of a C signer and makes its [`ExternalSigner`] and registration.
///
/// # Safety
/// `delegate_address` is NULL or a NUL-terminated string.
unsafe fn external_signer(
    delegate_address: *const c_char,
    sign: tradeauth_sign_fn,
    userdata: *mut c_void,
    timeout_ms: u32,
) -> Result<(ExternalSigner, Arc<Registration>), Failure> {
    // SAFETY: forwarded contract.
    let delegate = unsafe { arg_str(delegate_address, "delegate_address") }?;
    let sign = sign.ok_or_else(|| Failure::null("sign"))?;
    let registration = Arc::new(Registration {
        running: Mutex::new(()),
        retired: AtomicBool::new(false),
    });
    let signer = CSigner {
        sign,
        userdata: UserData(userdata),
        registration: Arc::clone(&registration),
    };
    let mut external = ExternalSigner::new(signer, delegate)?;
    if timeout_ms > 0 {
        external = external.with_timeout(Duration::from_millis(u64::from(timeout_ms)))?;
    }
    Ok((external, registration))
}

/// Makes a Cascade session whose delegate key stays outside the process: each challenge
/// is signed by `sign` (see `tradeauth_sign_fn`), which signs for `delegate_address`
/// (`0x` + 40 hex, any case; a signature that does not recover to it is refused with
/// `TRADEAUTH_ERR_SIGNING` before anything is posted). `timeout_ms` bounds each
/// signature (0: the default 10 s): a signer that has not answered by then fails the
/// sign-in with `TRADEAUTH_ERR_SIGNING`, and its call goes on on its library thread to its
/// end. Nothing is signed or sent yet: the first call that needs a credential signs in.
///
/// `userdata` is passed back to `sign` untouched. It must be usable from another thread
/// and stay valid until `sign` can no longer be called and has returned from every call:
/// until `tradeauth_session_free` (or a `tradeauth_session_update_signer` or
/// `"delegate_private_key"` update that replaces this signer) has returned, after which no
/// new call starts, AND until any call running at that moment has returned. Such a call
/// may outlive the session: one that overran its timeout goes on to its end, and only
/// your `sign` knows when that is (e.g. count calls in and out in `userdata`, or keep
/// `userdata` for the life of the process).
///
/// NULL `deposit_address`, `delegate_address`, `sign` or `out_session`, non-UTF-8 text, a
/// malformed address or a bad option gives `TRADEAUTH_ERR_INVALID_ARGUMENT`. Ownership
/// and other statuses as `tradeauth_cadenza_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cascade_new_with_signer(
    deposit_address: *const c_char,
    delegate_address: *const c_char,
    sign: tradeauth_sign_fn,
    userdata: *mut c_void,
    timeout_ms: u32,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cascade_new_with_signer", || {
        // SAFETY: caller contract (NULL or valid pointers).
        let deposit = unsafe { arg_str(deposit_address, "deposit_address") }?;
        let (signer, registration) =
            unsafe { external_signer(delegate_address, sign, userdata, timeout_ms) }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let config = CascadeConfig::with_signer(deposit, signer);
        unsafe {
            make_session_with_signer(out, Some(registration), || {
                Session::cascade(config, options)
            })
        }
    })
}

/// Makes a Cascade session whose delegate key is decrypted from a Web3 Secret Storage v3
/// keystore file (JSON, as geth, eth_account, Foundry or ethers write it; scrypt or
/// PBKDF2-SHA256, AES-128-CTR). The file is read and decrypted here, on the calling
/// thread (a strong KDF takes a while); the key is kept in memory wiped on free and the
/// password is not kept. A missing or malformed file or a wrong password (the MAC does
/// not match) gives `TRADEAUTH_ERR_INVALID_ARGUMENT` with a last error naming the file
/// (never the password). NULL arguments (except `options`) and non-UTF-8 text give
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Ownership and other statuses as
/// `tradeauth_cascade_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cascade_new_from_keystore(
    deposit_address: *const c_char,
    keystore_path: *const c_char,
    password: *const c_char,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cascade_new_from_keystore", || {
        // SAFETY: caller contract.
        let deposit = unsafe { arg_str(deposit_address, "deposit_address") }?;
        let path = unsafe { arg_str(keystore_path, "keystore_path") }?;
        let password = unsafe { arg_str(password, "password") }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let config = CascadeConfig::from_keystore(deposit, Path::new(path), password.as_bytes())?;
        unsafe { make_session_with_signer(out, None, || Session::cascade(config, options)) }
    })
}

/// Replaces a secret of the session in place (rotation without a restart). `kind` names
/// it: `"password"` (Cadenza), `"secret_key"` (Partner), `"api_key"` (Exchange trader:
/// served from the next `tradeauth_session_header` on) or `"delegate_private_key"`
/// (Cascade, 64 hex with or without `0x`; it also replaces a C signer, which is then no
/// longer called). `value` is copied into memory wiped when replaced or freed; the old
/// secret is wiped. The next renewal uses the new secret; the credential served now stays
/// valid until then, so readers of the header never see a gap. Waits for a renewal in
/// progress to finish first.
///
/// Another `kind`, or one the session's venue does not use (e.g. `"password"` on an
/// Exchange session), or a malformed value gives `TRADEAUTH_ERR_INVALID_ARGUMENT` and
/// changes nothing (the message never contains `value`). NULL arguments give
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Safe from any thread; `TRADEAUTH_ERR_CLOSED` if the
/// session is freed meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_update_secret(
    session: *const tradeauth_session,
    kind: *const c_char,
    value: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_session_update_secret", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let kind = unsafe { arg_str(kind, "kind") }?;
        let value = unsafe { arg_str(value, "value") }?;
        let secret = Secret::new(value);
        let (secret, replaces_signer) = match kind {
            "password" => (NewSecret::Password(secret), false),
            "secret_key" => (NewSecret::PartnerSecret(secret), false),
            "api_key" => (NewSecret::ApiKey(secret), false),
            "delegate_private_key" => (NewSecret::DelegateKey(secret), true),
            _ => {
                return Err(Failure::invalid(
                    "`kind` must be \"password\", \"secret_key\", \"api_key\" or \
                     \"delegate_private_key\"",
                ));
            }
        };
        let held = handle.hold()?;
        held.block_on(|s| async move { s.update_credentials(secret).await })??;
        if replaces_signer {
            held.signers().replace(None);
        }
        Ok(())
    })
}

/// Replaces a Cascade session's delegate key source (its private key, keystore key or
/// earlier C signer) with the C signer `sign` for `delegate_address`; arguments as
/// `tradeauth_cascade_new_with_signer`. The next sign-in uses it; the credential served
/// now stays valid until then. A C signer it replaces starts no new call once this has
/// returned `TRADEAUTH_OK` (a call already running goes on to its end); its `userdata`
/// rules are those of `tradeauth_cascade_new_with_signer`, with this call in the place of
/// `tradeauth_session_free`. The new `userdata` must stay valid as there.
///
/// A session of another venue gives `TRADEAUTH_ERR_INVALID_ARGUMENT`, as do NULL
/// `session`, `delegate_address` or `sign` and a malformed address; on those failures
/// the session is unchanged and the new `sign` is never called. `TRADEAUTH_ERR_CLOSED`
/// if the session is freed meanwhile: then no new call of the new `sign` starts once
/// this has returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_update_signer(
    session: *const tradeauth_session,
    delegate_address: *const c_char,
    sign: tradeauth_sign_fn,
    userdata: *mut c_void,
    timeout_ms: u32,
) -> tradeauth_status {
    boundary("tradeauth_session_update_signer", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let (signer, registration) =
            unsafe { external_signer(delegate_address, sign, userdata, timeout_ms) }?;
        let held = handle.hold()?;
        let outcome =
            held.block_on(|s| async move { s.update_credentials(NewSecret::Signer(signer)).await });
        match outcome {
            Ok(Ok(())) => {
                held.signers().replace(Some(registration));
                Ok(())
            }
            Ok(Err(error)) => {
                registration.retire();
                Err(error.into())
            }
            Err(failure) => {
                // Freed meanwhile: the update may or may not have been applied; either way
                // the session is going, and so is this signer.
                registration.retire();
                Err(failure)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Counts calls in the `AtomicU32` behind `userdata`; the digest's first byte picks
    /// the answer (0: 65 bytes, 1: return 7, else: an `out_len` above `out_cap`).
    unsafe extern "C" fn fake(
        userdata: *mut c_void,
        digest: *const u8,
        out: *mut u8,
        out_cap: usize,
        out_len: *mut usize,
    ) -> i32 {
        // SAFETY: the tests pass an AtomicU32; digest holds 32 bytes, out out_cap.
        unsafe {
            (*userdata.cast::<AtomicU32>()).fetch_add(1, Ordering::SeqCst);
            match *digest {
                0 => {
                    std::ptr::write_bytes(out, 0xab, 65);
                    out_len.write(65);
                    0
                }
                1 => 7,
                _ => {
                    out_len.write(out_cap + 1);
                    0
                }
            }
        }
    }

    fn signer(calls: &AtomicU32) -> CSigner {
        CSigner {
            sign: fake,
            userdata: UserData(std::ptr::from_ref(calls).cast_mut().cast()),
            registration: Arc::new(Registration {
                running: Mutex::new(()),
                retired: AtomicBool::new(false),
            }),
        }
    }

    fn digest(first: u8) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[0] = first;
        d
    }

    #[test]
    fn answers_failures_and_lies_about_the_length() {
        let calls = AtomicU32::new(0);
        let s = signer(&calls);
        assert_eq!(s.call(digest(0)).map(|v| v.len()), Ok(65));
        assert_eq!(s.call(digest(1)), Err("the C signer returned 7".to_owned()));
        let lie = s.call(digest(2)).unwrap_err();
        assert!(
            lie.contains("out_len 81") && lie.contains("out_cap 80"),
            "{lie}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_running_call_blocks_the_next_and_a_retired_signer_is_not_called() {
        let calls = AtomicU32::new(0);
        let s = signer(&calls);
        {
            let _running = s.registration.running.lock().unwrap();
            let busy = s.call(digest(0)).unwrap_err();
            assert!(busy.contains("still running"), "{busy}");
        }
        let signers = Signers::new(Some(Arc::clone(&s.registration)));
        signers.close();
        assert!(
            s.call(digest(0))
                .unwrap_err()
                .contains("replaced or its session freed")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // Registered after close: retired at once.
        let late = Arc::new(Registration {
            running: Mutex::new(()),
            retired: AtomicBool::new(false),
        });
        signers.replace(Some(Arc::clone(&late)));
        assert!(late.retired.load(Ordering::SeqCst));
    }

    #[test]
    fn null_arguments_are_refused_before_anything_else() {
        let mut out: *mut tradeauth_session = std::ptr::null_mut();
        let deposit = c"0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
        let delegate = c"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        // SAFETY: valid C strings, a NULL signer, a writable out.
        let st = unsafe {
            tradeauth_cascade_new_with_signer(
                deposit.as_ptr(),
                delegate.as_ptr(),
                None,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
                &mut out,
            )
        };
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
        assert!(out.is_null());
        // SAFETY: NULL session, valid strings.
        let st = unsafe {
            tradeauth_session_update_secret(std::ptr::null(), c"api_key".as_ptr(), c"x".as_ptr())
        };
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
    }
}
