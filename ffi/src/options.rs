//! `tradeauth_options`: how a session connects (base URL, extra roots, timeouts, refresh).

use std::ffi::c_char;
use std::sync::Mutex;
use std::time::Duration;

use tradeauth::Options;

use crate::handle::Gate;
use crate::status::{Failure, FfiResult, boundary, tradeauth_status};
use crate::text::{arg_out, arg_ref, arg_str};

/// Session options: base URL, extra trusted root certificates, timeouts, retries and
/// refresh behaviour. Made by `tradeauth_options_new`, freed by `tradeauth_options_free`.
/// Constructors copy it, so it may be reused or freed right after a session is made.
/// Safe to use from any thread (setters lock an internal mutex), and
/// `tradeauth_options_free` may run while other threads use it (see the header's
/// lifetime rule).
pub struct tradeauth_options {
    gate: Gate,
    inner: Mutex<Options>,
}

impl tradeauth_options {
    /// A copy of the current options (what a session constructor takes).
    pub(crate) fn snapshot(&self) -> Result<Options, Failure> {
        let _inside = self.gate.enter("options")?;
        // A poisoned lock only means a setter panicked mid-way; the value is still whole.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone())
    }

    fn update(&self, f: impl FnOnce(&mut Options) -> FfiResult) -> FfiResult {
        let _inside = self.gate.enter("options")?;
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// Reads an optional options handle: NULL means the defaults.
///
/// # Safety
/// `options` is NULL or a live handle.
pub(crate) unsafe fn options_or_default(
    options: *const tradeauth_options,
) -> Result<Options, Failure> {
    // SAFETY: forwarded contract.
    match unsafe { options.as_ref() } {
        Some(options) => options.snapshot(),
        None => Ok(Options::default()),
    }
}

fn millis(ms: u64, name: &str) -> Result<Duration, Failure> {
    if ms == 0 {
        return Err(Failure::invalid(format!(
            "{name} must be greater than zero"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Makes options with the defaults: the venue's production URL, the bundled Mozilla
/// roots, 10 s per request, 5 s to connect, 30 s per authentication, 3 retries,
/// background refresh on, the venue's default refresh window.
///
/// On `TRADEAUTH_OK` `*out_options` owns a new handle: free it with
/// `tradeauth_options_free`. `out_options` NULL gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_new(
    out_options: *mut *mut tradeauth_options,
) -> tradeauth_status {
    boundary("tradeauth_options_new", || {
        let out = arg_out(out_options, "out_options")?;
        let handle = Box::new(tradeauth_options {
            gate: Gate::new(),
            inner: Mutex::new(Options::default()),
        });
        // SAFETY: out is non-NULL and writable per the contract.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Frees options made by `tradeauth_options_new`. NULL is a no-op. Sessions made from
/// them are not affected. Calls using them on other threads finish first (later ones
/// get `TRADEAUTH_ERR_CLOSED`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_free(options: *mut tradeauth_options) {
    let _ = boundary("tradeauth_options_free", || {
        if !options.is_null() {
            // SAFETY: a non-NULL pointer came from Box::into_raw in tradeauth_options_new
            // and is freed once, per the contract; until the box is rebuilt only shared
            // references to it exist.
            let shared = unsafe { &*options };
            shared.gate.close();
            shared.gate.wait_empty();
            // SAFETY: no call is inside and none can enter.
            drop(unsafe { Box::from_raw(options) });
        }
        Ok(())
    });
}

/// Sets the venue base URL, e.g. `"https://127.0.0.1:8443"` (Partner's is the venue
/// root). It must be `https://`; that is checked when a session is made
/// (`TRADEAUTH_ERR_INSECURE_URL`). NULL `options`/`url` or non-UTF-8 `url` gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. The string is copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_base_url(
    options: *mut tradeauth_options,
    url: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_set_base_url", || {
        // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
        let options = unsafe { arg_ref(options, "options") }?;
        let url = unsafe { arg_str(url, "url") }?;
        options.update(|o| {
            o.base_url = Some(url.to_owned());
            Ok(())
        })
    })
}

/// Trusts the root certificate(s) in this PEM text as well as the bundled roots (a
/// simulator's CA, a corporate proxy). Text without a `CERTIFICATE` block gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` here. NULL/non-UTF-8 gives the same. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_add_root_pem(
    options: *mut tradeauth_options,
    pem: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_add_root_pem", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let pem = unsafe { arg_str(pem, "pem") }?;
        let checked = Options::new().try_add_root_pem(pem)?;
        options.update(|o| {
            o.extra_root_certs_pem.extend(checked.extra_root_certs_pem);
            Ok(())
        })
    })
}

/// Trusts the root certificate(s) in this PEM file as well. The file is read now; an
/// unreadable file or one without a `CERTIFICATE` block gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` (the message names the path).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_add_root_file(
    options: *mut tradeauth_options,
    path: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_add_root_file", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let path = unsafe { arg_str(path, "path") }?;
        let with_file = Options::new().add_root_file(path)?;
        options.update(|o| {
            o.extra_root_certs_pem
                .extend(with_file.extra_root_certs_pem);
            Ok(())
        })
    })
}

/// Sets the bound on one HTTP exchange, in milliseconds (default 10000). 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_request_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_request_timeout_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let timeout = millis(timeout_ms, "request timeout")?;
        options.update(|o| {
            o.request_timeout = timeout;
            Ok(())
        })
    })
}

/// Sets the bound on one TCP + TLS connect, in milliseconds (default 5000). 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_connect_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_connect_timeout_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let timeout = millis(timeout_ms, "connect timeout")?;
        options.update(|o| {
            o.connect_timeout = timeout;
            Ok(())
        })
    })
}

/// Sets the bound on one whole authentication (login / refresh / challenge, retries
/// included), in milliseconds (default 30000). This is the longest a blocking call
/// waits for a credential. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_auth_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_auth_timeout_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let timeout = millis(timeout_ms, "auth timeout")?;
        options.update(|o| {
            o.auth_timeout = timeout;
            Ok(())
        })
    })
}

/// Sets how many times a transport error, 5xx or 429 is retried (default 3; 0 = never).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_retries(
    options: *mut tradeauth_options,
    retries: u32,
) -> tradeauth_status {
    boundary("tradeauth_options_set_max_retries", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        options.update(|o| {
            o.max_retries = retries;
            Ok(())
        })
    })
}

/// Sets how long before expiry a token is renewed, in milliseconds (default: the
/// venue's, e.g. 300000 for Cadenza). Always capped at a quarter of the token's
/// lifetime. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_refresh_window_ms(
    options: *mut tradeauth_options,
    window_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_refresh_window_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let window = millis(window_ms, "refresh window")?;
        options.update(|o| {
            o.refresh_window = Some(window);
            Ok(())
        })
    })
}

/// Turns the background refresher on (default) or off. On: a library thread renews
/// the credential inside the refresh window, so the hot path normally never waits.
/// Off: renewal happens on demand, inside the call that finds no valid credential.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_background_refresh(
    options: *mut tradeauth_options,
    enabled: bool,
) -> tradeauth_status {
    boundary("tradeauth_options_set_background_refresh", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        options.update(|o| {
            o.background_refresh = enabled;
            Ok(())
        })
    })
}

/// Shares the credential between processes through a store: `"memory:"` (default, this
/// process only), `"file:///var/lib/tradeauth"` (one host), or
/// `"redis://[:password@]host:6379/0"` / `"rediss://..."` (several hosts). One process
/// renews, the others adopt its result; the hot path never touches the store. Records
/// are encrypted at rest with the key from `tradeauth_options_set_store_key` or the
/// `TRADEAUTH_STORE_KEY` environment variable (64 hex chars); without a key, making the
/// session fails unless `tradeauth_options_set_store_plaintext(options, true)`. The URL
/// is checked when a session is made. NULL or non-UTF-8 arguments give
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. The string is copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store(
    options: *mut tradeauth_options,
    url: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store", || {
        // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
        let options = unsafe { arg_ref(options, "options") }?;
        let url = unsafe { arg_str(url, "url") }?;
        options.update(|o| {
            o.store = Some(url.to_owned());
            Ok(())
        })
    })
}

/// Sets the key that encrypts store records at rest: 32 bytes as 64 hex characters (or
/// base64). It is a secret: copied into memory that is wiped when the options are freed,
/// and never printed. NULL or non-UTF-8 `key` gives `TRADEAUTH_ERR_INVALID_ARGUMENT`; a
/// malformed key is reported when a session is made.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_key(
    options: *mut tradeauth_options,
    key: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_key", || {
        // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
        let options = unsafe { arg_ref(options, "options") }?;
        let key = unsafe { arg_str(key, "key") }?;
        options.update(|o| {
            o.store_key = Some(tradeauth::Secret::new(key));
            Ok(())
        })
    })
}

/// Sets how long a store lease lasts, in milliseconds (default 15000): the longest the
/// other processes wait for a renewing process that died. A live holder keeps its lease
/// for as long as its renewal runs. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_lease_ms(
    options: *mut tradeauth_options,
    lease_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_lease_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let lease = millis(lease_ms, "store lease")?;
        options.update(|o| {
            o.store_lease_ttl = lease;
            Ok(())
        })
    })
}

/// Allows store records without encryption (for a store that is itself protected).
/// Off by default: a store without a key is an error rather than plaintext by accident.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_plaintext(
    options: *mut tradeauth_options,
    plaintext: bool,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_plaintext", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        options.update(|o| {
            o.store_plaintext = plaintext;
            Ok(())
        })
    })
}

/// Sets the first backoff delay and the largest one, in milliseconds (defaults 100 and
/// 5000); the delay doubles per retry, with full jitter. 0 for either, or `max_ms` below
/// `base_ms`, gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_retry_delays_ms(
    options: *mut tradeauth_options,
    base_ms: u64,
    max_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_retry_delays_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let base = millis(base_ms, "retry base delay")?;
        let max = millis(max_ms, "retry max delay")?;
        if max < base {
            return Err(Failure::invalid(
                "the retry max delay must not be less than the base delay",
            ));
        }
        options.update(|o| {
            o.retry_base_delay = base;
            o.retry_max_delay = max;
            Ok(())
        })
    })
}

/// Sets how far a venue's `Date` header may be from our clock and still be believed, in
/// milliseconds (default 900000, 15 min); 0 believes no `Date` at all.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_date_skew_ms(
    options: *mut tradeauth_options,
    skew_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_max_date_skew_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        options.update(|o| {
            o.max_date_skew = Duration::from_millis(skew_ms);
            Ok(())
        })
    })
}

/// Sets the longest token lifetime believed, in milliseconds (default 30 days); a longer
/// stated one is clamped to it. Less than 1000 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`
/// when a session is made.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_lifetime_ms(
    options: *mut tradeauth_options,
    lifetime_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_max_lifetime_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let lifetime = millis(lifetime_ms, "max lifetime")?;
        options.update(|o| {
            o.max_lifetime = lifetime;
            Ok(())
        })
    })
}

/// Sets the bound on one store operation, connect included, in milliseconds (default
/// 2000); past it the store counts as unreachable. 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_timeout_ms", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let timeout = millis(timeout_ms, "store timeout")?;
        options.update(|o| {
            o.store_timeout = timeout;
            Ok(())
        })
    })
}

/// Sets the Redis key prefix (default `tradeauth:`, or the URL's `?prefix=`). NULL or
/// non-UTF-8 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_prefix(
    options: *mut tradeauth_options,
    prefix: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_prefix", || {
        // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
        let options = unsafe { arg_ref(options, "options") }?;
        let prefix = unsafe { arg_str(prefix, "prefix") }?;
        options.update(|o| {
            o.store_prefix = Some(prefix.to_owned());
            Ok(())
        })
    })
}

/// For a `rediss://` store: trusts the CA certificate(s) in this PEM text for the
/// store's TLS. Text without a `CERTIFICATE` block, NULL or non-UTF-8 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_ca_pem(
    options: *mut tradeauth_options,
    pem: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_options_set_store_ca_pem", || {
        // SAFETY: caller contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let pem = unsafe { arg_str(pem, "pem") }?;
        let checked = Options::new().try_store_ca_pem(pem)?;
        options.update(|o| {
            o.store_ca_pem = checked.store_ca_pem;
            Ok(())
        })
    })
}
