//! `tradeauth_options`: how a session connects (base URL, extra roots, timeouts, refresh).

use std::ffi::c_char;
use std::sync::Mutex;
use std::time::Duration;

use tradeauth::Options;

use crate::handle::{Gate, free};
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

    fn update(&self, f: impl FnOnce(&mut Options)) -> FfiResult {
        let _inside = self.gate.enter("options")?;
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard);
        Ok(())
    }
}

/// What every `tradeauth_options_set_*` / `_add_*` does, inside the panic boundary
/// `name`: checks `options`, then reads and checks the argument (`value`: NULL and
/// non-UTF-8 text, a 0 duration, a PEM without a certificate), and only then applies it
/// under the lock, so a rejected argument changes nothing.
///
/// # Safety
/// `options` is NULL or a live handle, and `value` may rely on the caller's contract for
/// the argument's pointers.
unsafe fn set<T>(
    name: &str,
    options: *mut tradeauth_options,
    value: impl FnOnce() -> Result<T, Failure>,
    apply: impl FnOnce(&mut Options, T),
) -> tradeauth_status {
    boundary(name, || {
        // SAFETY: forwarded contract.
        let options = unsafe { arg_ref(options, "options") }?;
        let value = value()?;
        options.update(|o| apply(o, value))
    })
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

/// The first backoff delay and the largest one, each checked as a duration (their order
/// is core's `Options::try_retry_delays`).
fn retry_delays(base_ms: u64, max_ms: u64) -> Result<(Duration, Duration), Failure> {
    Ok((
        millis(base_ms, "retry base delay")?,
        millis(max_ms, "retry max delay")?,
    ))
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
    // SAFETY: a non-NULL pointer came from Box::into_raw in tradeauth_options_new and is
    // freed once, per the contract.
    unsafe { free("tradeauth_options_free", options, |o| &o.gate) }
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
    // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
    unsafe {
        set(
            "tradeauth_options_set_base_url",
            options,
            || arg_str(url, "url"),
            |o, url| o.base_url = Some(url.to_owned()),
        )
    }
}

/// Trusts the root certificate(s) in this PEM text as well as the bundled roots (a
/// simulator's CA, a corporate proxy). Text without a `CERTIFICATE` block gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` here. NULL/non-UTF-8 gives the same. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_add_root_pem(
    options: *mut tradeauth_options,
    pem: *const c_char,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_add_root_pem",
            options,
            || Ok(Options::new().try_add_root_pem(arg_str(pem, "pem")?)?),
            |o, checked| o.extra_root_certs_pem.extend(checked.extra_root_certs_pem),
        )
    }
}

/// Trusts the root certificate(s) in this PEM file as well. The file is read now; an
/// unreadable file or one without a `CERTIFICATE` block gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` (the message names the path).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_add_root_file(
    options: *mut tradeauth_options,
    path: *const c_char,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_add_root_file",
            options,
            || Ok(Options::new().add_root_file(arg_str(path, "path")?)?),
            |o, with_file| {
                o.extra_root_certs_pem
                    .extend(with_file.extra_root_certs_pem)
            },
        )
    }
}

/// Sets the bound on one HTTP exchange, in milliseconds (default 10000). 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_request_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_request_timeout_ms",
            options,
            || millis(timeout_ms, "request timeout"),
            |o, timeout| o.request_timeout = timeout,
        )
    }
}

/// Sets the bound on one TCP + TLS connect, in milliseconds (default 5000). 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_connect_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_connect_timeout_ms",
            options,
            || millis(timeout_ms, "connect timeout"),
            |o, timeout| o.connect_timeout = timeout,
        )
    }
}

/// Sets the bound on one whole authentication (login / refresh / challenge, retries
/// included), in milliseconds (default 30000). This is the longest a blocking call
/// waits for a credential. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_auth_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_auth_timeout_ms",
            options,
            || millis(timeout_ms, "auth timeout"),
            |o, timeout| o.auth_timeout = timeout,
        )
    }
}

/// Sets how many times a transport error, 5xx or 429 is retried (default 3; 0 = never).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_retries(
    options: *mut tradeauth_options,
    retries: u32,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_max_retries",
            options,
            || Ok(retries),
            |o, retries| o.max_retries = retries,
        )
    }
}

/// Sets how long before expiry a token is renewed, in milliseconds (default: the
/// venue's, e.g. 300000 for Cadenza). Always capped at a quarter of the token's
/// lifetime. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_refresh_window_ms(
    options: *mut tradeauth_options,
    window_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_refresh_window_ms",
            options,
            || millis(window_ms, "refresh window"),
            |o, window| o.refresh_window = Some(window),
        )
    }
}

/// Turns the background refresher on (default) or off. On: a library thread renews
/// the credential inside the refresh window, so the hot path normally never waits.
/// Off: renewal happens on demand, inside the call that finds no valid credential.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_background_refresh(
    options: *mut tradeauth_options,
    enabled: bool,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_background_refresh",
            options,
            || Ok(enabled),
            |o, enabled| o.background_refresh = enabled,
        )
    }
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
    // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
    unsafe {
        set(
            "tradeauth_options_set_store",
            options,
            || arg_str(url, "url"),
            |o, url| o.store = Some(url.to_owned()),
        )
    }
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
    // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
    unsafe {
        set(
            "tradeauth_options_set_store_key",
            options,
            || arg_str(key, "key"),
            |o, key| o.store_key = Some(tradeauth::Secret::new(key)),
        )
    }
}

/// Sets how long a store lease lasts, in milliseconds (default 15000): the longest the
/// other processes wait for a renewing process that died. A live holder keeps its lease
/// for as long as its renewal runs. 0 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_lease_ms(
    options: *mut tradeauth_options,
    lease_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_store_lease_ms",
            options,
            || millis(lease_ms, "store lease"),
            |o, lease| o.store_lease_ttl = lease,
        )
    }
}

/// Allows store records without encryption (for a store that is itself protected).
/// Off by default: a store without a key is an error rather than plaintext by accident.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_plaintext(
    options: *mut tradeauth_options,
    plaintext: bool,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_store_plaintext",
            options,
            || Ok(plaintext),
            |o, plaintext| o.store_plaintext = plaintext,
        )
    }
}

/// Gives sessions built with these options a connection pool and TLS configuration of
/// their own (`true`) instead of the process's shared pool for the same trust (`false`,
/// the default: ten thousand sessions to one venue hold a handful of connections).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_private_pool(
    options: *mut tradeauth_options,
    private_pool: bool,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_private_pool",
            options,
            || Ok(private_pool),
            |o, private_pool| o.private_pool = private_pool,
        )
    }
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
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_retry_delays_ms",
            options,
            || {
                let (base, max) = retry_delays(base_ms, max_ms)?;
                Ok(Options::new().try_retry_delays(base, max)?)
            },
            |o, checked| {
                o.retry_base_delay = checked.retry_base_delay;
                o.retry_max_delay = checked.retry_max_delay;
            },
        )
    }
}

/// Sets how far a venue's `Date` header may be from our clock and still be believed, in
/// milliseconds (default 900000, 15 min); 0 believes no `Date` at all.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_date_skew_ms(
    options: *mut tradeauth_options,
    skew_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_max_date_skew_ms",
            options,
            || Ok(Duration::from_millis(skew_ms)),
            |o, skew| o.max_date_skew = skew,
        )
    }
}

/// Sets the longest token lifetime believed, in milliseconds (default 30 days); a longer
/// stated one is clamped to it. Less than 1000 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`
/// when a session is made.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_max_lifetime_ms(
    options: *mut tradeauth_options,
    lifetime_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_max_lifetime_ms",
            options,
            || millis(lifetime_ms, "max lifetime"),
            |o, lifetime| o.max_lifetime = lifetime,
        )
    }
}

/// Sets the bound on one store operation, connect included, in milliseconds (default
/// 2000); past it the store counts as unreachable. 0 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_timeout_ms(
    options: *mut tradeauth_options,
    timeout_ms: u64,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_store_timeout_ms",
            options,
            || millis(timeout_ms, "store timeout"),
            |o, timeout| o.store_timeout = timeout,
        )
    }
}

/// Sets the Redis key prefix (default `tradeauth:`, or the URL's `?prefix=`). NULL or
/// non-UTF-8 gives `TRADEAUTH_ERR_INVALID_ARGUMENT`. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_prefix(
    options: *mut tradeauth_options,
    prefix: *const c_char,
) -> tradeauth_status {
    // SAFETY: caller contract: NULL or live handle / NUL-terminated string.
    unsafe {
        set(
            "tradeauth_options_set_store_prefix",
            options,
            || arg_str(prefix, "prefix"),
            |o, prefix| o.store_prefix = Some(prefix.to_owned()),
        )
    }
}

/// For a `rediss://` store: trusts the CA certificate(s) in this PEM text for the
/// store's TLS. Text without a `CERTIFICATE` block, NULL or non-UTF-8 gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_options_set_store_ca_pem(
    options: *mut tradeauth_options,
    pem: *const c_char,
) -> tradeauth_status {
    // SAFETY: caller contract.
    unsafe {
        set(
            "tradeauth_options_set_store_ca_pem",
            options,
            || Ok(Options::new().try_store_ca_pem(arg_str(pem, "pem")?)?),
            |o, checked| o.store_ca_pem = checked.store_ca_pem,
        )
    }
}
