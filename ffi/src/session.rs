//! `tradeauth_session`: one authenticated venue account, its hot path, WebSocket auth
//! and event callbacks.

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tradeauth::{
    CadenzaConfig, CascadeConfig, ExchangeConfig, PartnerConfig, Session, WsAuthReply,
};

use tokio::sync::watch;

use crate::events::{Dispatcher, tradeauth_event_callback};
use crate::handle::{Entered, Gate, closed};
use crate::options::{options_or_default, tradeauth_options};
use crate::signer::{Registration, Signers};
use crate::status::{
    Failure, FfiResult, boundary, boundary_value, set_last_error, tradeauth_status,
};
use crate::text::{arg_out, arg_ref, arg_str, copy_out, fits, opt_str, too_small};

/// An authenticated session with one venue account (Cadenza, Partner, Cascade or
/// Exchange). Made by a `tradeauth_<venue>_new` or `tradeauth_<venue>_from_env`
/// constructor, freed by `tradeauth_session_free`. Every function taking a
/// `const tradeauth_session *` may be called from any number of threads at once, and
/// `tradeauth_session_free` may run while they do: see the header's lifetime rule.
pub struct tradeauth_session {
    gate: Gate,
    session: Session,
    /// Set to `true` when `_free` begins: blocking calls stop waiting and return
    /// `TRADEAUTH_ERR_CLOSED`.
    closing: watch::Sender<bool>,
    events: Mutex<Option<Dispatcher>>,
    /// The C signers registered with this session (constructor, `update_signer`): `_free`
    /// retires them so the library starts no new call of theirs afterwards.
    signers: std::sync::Arc<Signers>,
}

/// What a call keeps of a session once it has left the handle: its own strong reference
/// and the close signal, so the handle can be freed while the call runs.
pub(crate) struct Held {
    session: Session,
    closing: watch::Receiver<bool>,
    signers: std::sync::Arc<Signers>,
}

impl tradeauth_session {
    /// Enters the handle (failing with `TRADEAUTH_ERR_CLOSED` once `_free` has begun).
    fn enter(&self) -> Result<Entered<'_>, Failure> {
        self.gate.enter("session")
    }

    /// The session, for a call that never blocks: `work` runs inside the handle (so
    /// `_free` waits for it) on a borrowed session.
    pub(crate) fn with_session<T>(&self, work: impl FnOnce(&Session) -> T) -> Result<T, Failure> {
        let _inside = self.enter()?;
        Ok(work(&self.session))
    }

    /// Takes this call's own references. After this the handle must not be touched.
    pub(crate) fn hold(&self) -> Result<Held, Failure> {
        let _inside = self.enter()?;
        Ok(Held {
            session: self.session.clone(),
            closing: self.closing.subscribe(),
            signers: std::sync::Arc::clone(&self.signers),
        })
    }
}

impl Held {
    /// The session, for non-blocking reads.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// The session's registered C signers (usable after the handle is freed).
    pub(crate) fn signers(&self) -> &Signers {
        &self.signers
    }

    /// Runs `work` on the library's runtime from the caller's thread, unless the handle is
    /// freed first: then `TRADEAUTH_ERR_CLOSED` (the work is dropped where it stands).
    pub(crate) fn block_on<F: Future>(
        &self,
        work: impl FnOnce(Session) -> F,
    ) -> Result<F::Output, Failure> {
        let mut closing = self.closing.clone();
        let work = work(self.session.clone());
        block_on(async move {
            tokio::select! {
                biased;
                // An error means the sender is gone: freed as well.
                _ = closing.wait_for(|closed| *closed) => Err(closed("session")),
                out = work => Ok(out),
            }
        })?
    }
}

/// What a venue's WebSocket message means for authentication.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum tradeauth_ws_reply {
    /// Not an answer to the auth message (market data, another request's answer).
    TRADEAUTH_WS_UNRELATED = 0,
    /// The venue accepted the auth message: the connection is authenticated.
    TRADEAUTH_WS_AUTHENTICATED = 1,
    /// The venue refused it (e.g. "Invalid Bearer Token"); the reason is in
    /// `tradeauth_last_error_message`.
    TRADEAUTH_WS_REJECTED = 2,
}

/// Runs a future to completion on the library's runtime from the caller's thread (core
/// refuses a call from a thread that is inside a runtime).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    Ok(tradeauth::runtime::block_on(future)?)
}

/// Builds a session inside the shared runtime (its background refresher is spawned on
/// the current runtime) and hands it out through `out`.
///
/// # Safety
/// `out` is non-NULL and writable.
unsafe fn make_session(
    out: *mut *mut tradeauth_session,
    build: impl FnOnce() -> tradeauth::Result<Session>,
) -> FfiResult {
    // SAFETY: forwarded contract.
    unsafe { make_session_with_signer(out, None, build) }
}

/// [`make_session`] for a session whose config holds the C signer `registration`,
/// which the handle keeps so `_free` can retire it.
///
/// # Safety
/// `out` is non-NULL and writable.
pub(crate) unsafe fn make_session_with_signer(
    out: *mut *mut tradeauth_session,
    registration: Option<std::sync::Arc<Registration>>,
    build: impl FnOnce() -> tradeauth::Result<Session>,
) -> FfiResult {
    let runtime = tradeauth::runtime::shared()?;
    let session = {
        let _entered = runtime.enter();
        build()?
    };
    let handle = Box::new(tradeauth_session {
        gate: Gate::new(),
        session,
        closing: watch::Sender::new(false),
        events: Mutex::new(None),
        signers: std::sync::Arc::new(Signers::new(registration)),
    });
    // SAFETY: per the contract.
    unsafe { out.write(Box::into_raw(handle)) };
    Ok(())
}

/// Makes a Cadenza session (email + password; rotating refresh tokens). Nothing is sent
/// yet: the first call that needs a credential logs in.
///
/// `email` and `password` are copied (the password into memory that is wiped when the
/// session is freed). `options` may be NULL for the defaults (production URL). On
/// `TRADEAUTH_OK` `*out_session` owns a new session: free it with
/// `tradeauth_session_free`. NULL `email`/`password`/`out_session`, non-UTF-8 text or a
/// bad option gives `TRADEAUTH_ERR_INVALID_ARGUMENT`; an `http://` base URL gives
/// `TRADEAUTH_ERR_INSECURE_URL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cadenza_new(
    email: *const c_char,
    password: *const c_char,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cadenza_new", || {
        // SAFETY (all four): caller contract, NULL or valid pointers.
        let email = unsafe { arg_str(email, "email") }?;
        let password = unsafe { arg_str(password, "password") }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let config = CadenzaConfig::new(email, password);
        unsafe { make_session(out, || Session::cadenza(config, options)) }
    })
}

/// Makes a Partner session: HS256 JWTs `{clientId, iat, exp}` minted locally with
/// `secret_key` and renewed before expiry or after a 401. `ttl_secs` is the token
/// lifetime (`exp - iat`); 0 means the page's 900 s. The Partner API has no public host,
/// so `options` must set the base URL (else `TRADEAUTH_ERR_INVALID_ARGUMENT`).
/// Ownership and statuses as `tradeauth_cadenza_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_partner_new(
    client_id: *const c_char,
    secret_key: *const c_char,
    ttl_secs: u64,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_partner_new", || {
        // SAFETY: caller contract.
        let client_id = unsafe { arg_str(client_id, "client_id") }?;
        let secret_key = unsafe { arg_str(secret_key, "secret_key") }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let mut config = PartnerConfig::new(client_id, secret_key);
        if ttl_secs > 0 {
            config = config.with_ttl(Duration::from_secs(ttl_secs));
        }
        unsafe { make_session(out, || Session::partner(config, options)) }
    })
}

/// Makes a Cascade session: `GET /auth?account=DEPOSIT` challenge, EIP-191 signature by
/// the delegate key, `POST /auth`, bearer JWT (renewed before expiry or after a 401).
/// `deposit_address` is `0x` + 40 hex; `delegate_private_key` is 64 hex with or without
/// `0x` (copied into memory wiped on free; never printed). A malformed address or key
/// gives `TRADEAUTH_ERR_INVALID_ARGUMENT` here, before anything is sent. Ownership and
/// other statuses as `tradeauth_cadenza_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cascade_new(
    deposit_address: *const c_char,
    delegate_private_key: *const c_char,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cascade_new", || {
        // SAFETY: caller contract.
        let deposit = unsafe { arg_str(deposit_address, "deposit_address") }?;
        let key = unsafe { arg_str(delegate_private_key, "delegate_private_key") }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let config = CascadeConfig::new(deposit, key);
        unsafe { make_session(out, || Session::cascade(config, options)) }
    })
}

/// Makes an Exchange session. Give exactly one of `api_key` (trader: `x-api-key:
/// exch_` + 32 lowercase hex, format checked here) and `admin_token` (operator:
/// `Authorization: Bearer`); both NULL makes a public session (market data only, no
/// header). Both set gives `TRADEAUTH_ERR_INVALID_ARGUMENT`. Ownership and other
/// statuses as `tradeauth_cadenza_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_exchange_new(
    api_key: *const c_char,
    admin_token: *const c_char,
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_exchange_new", || {
        // SAFETY: caller contract.
        let api_key = unsafe { opt_str(api_key, "api_key") }?;
        let admin_token = unsafe { opt_str(admin_token, "admin_token") }?;
        let out = arg_out(out_session, "out_session")?;
        let options = unsafe { options_or_default(options) }?;
        let config =
            ExchangeConfig::from_parts(api_key.map(Into::into), admin_token.map(Into::into))?;
        unsafe { make_session(out, || Session::exchange(config, options)) }
    })
}

/// Makes a Cadenza session from `CADENZA_EMAIL`, `CADENZA_PASSWORD` and optionally
/// `CADENZA_BASE_URL` and `TRADEAUTH_CA_CERT` (a PEM file to trust). A base URL set in
/// `options` (may be NULL) wins over the environment. A missing variable gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT` naming it. Ownership as `tradeauth_cadenza_new`.
/// Reads the process environment: do not call while another thread calls `setenv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cadenza_from_env(
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cadenza_from_env", || {
        let out = arg_out(out_session, "out_session")?;
        // SAFETY: caller contract.
        let options = unsafe { options_or_default(options) }?;
        unsafe { make_session(out, || Session::cadenza_from_env(options)) }
    })
}

/// Makes a Partner session from `PARTNER_CLIENT_ID`, `PARTNER_SECRET_KEY`,
/// `PARTNER_BASE_URL` and optionally `PARTNER_TOKEN_TTL_SECS` and `TRADEAUTH_CA_CERT`.
/// As `tradeauth_cadenza_from_env` otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_partner_from_env(
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_partner_from_env", || {
        let out = arg_out(out_session, "out_session")?;
        // SAFETY: caller contract.
        let options = unsafe { options_or_default(options) }?;
        unsafe { make_session(out, || Session::partner_from_env(options)) }
    })
}

/// Makes a Cascade session from `CASCADE_DEPOSIT_ADDRESS`,
/// `CASCADE_DELEGATE_PRIVATE_KEY` and optionally `CASCADE_BASE_URL` and
/// `TRADEAUTH_CA_CERT`. As `tradeauth_cadenza_from_env` otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_cascade_from_env(
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_cascade_from_env", || {
        let out = arg_out(out_session, "out_session")?;
        // SAFETY: caller contract.
        let options = unsafe { options_or_default(options) }?;
        unsafe { make_session(out, || Session::cascade_from_env(options)) }
    })
}

/// Makes an Exchange session from `EXCHANGE_API_KEY` (trader) or `EXCHANGE_ADMIN_TOKEN`
/// (operator), and optionally `EXCHANGE_BASE_URL` and `TRADEAUTH_CA_CERT`. Exactly one
/// of the two must be set. As `tradeauth_cadenza_from_env` otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_exchange_from_env(
    options: *const tradeauth_options,
    out_session: *mut *mut tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_exchange_from_env", || {
        let out = arg_out(out_session, "out_session")?;
        // SAFETY: caller contract.
        let options = unsafe { options_or_default(options) }?;
        unsafe { make_session(out, || Session::exchange_from_env(options)) }
    })
}

/// Frees a session: stops its event callback (waiting for a running call to return,
/// unless called from inside that callback) and its background refresher, and wipes its
/// secrets. NULL is a no-op.
///
/// It may be called while other threads are inside calls on `session`: those calls
/// return promptly — with their own result if they had it, else with
/// `TRADEAUTH_ERR_CLOSED` (a login or request in flight is abandoned; as after a
/// timeout, whether an abandoned POST reached the venue is unknown) — and this function
/// returns only after every such call has stopped using the handle. A call that *starts*
/// after this has returned uses freed memory, as with any freed pointer; call it once
/// per session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_free(session: *mut tradeauth_session) {
    let _ = boundary("tradeauth_session_free", || {
        if session.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL pointer came from Box::into_raw in a constructor and is
        // freed once, per the contract; until the box is rebuilt below only shared
        // references to it exist (other threads' calls).
        let shared = unsafe { &*session };
        shared.gate.close();
        shared.closing.send_replace(true);
        // No new call of a C signer starts from now on (one running goes on to its end).
        shared.signers.close();
        // Calls inside hold the handle only while they copy (long work runs on their own
        // references and has just been told to stop), so this wait is short.
        shared.gate.wait_empty();
        // No call is inside and none can enter: the callback slot is ours alone now.
        let dispatcher = shared
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(dispatcher) = dispatcher {
            dispatcher.stop();
        }
        // SAFETY: as above; no other thread can reach the handle any more.
        drop(unsafe { Box::from_raw(session) });
        Ok(())
    });
}

/// The hot path: copies the header to put on the next request into caller buffers,
/// e.g. name `"authorization"` and value `"Bearer eyJ..."`, or `"x-api-key"` and
/// `"exch_..."`. Both are NUL-terminated; `*name_written` / `*value_written` get their
/// lengths (not counting the NUL).
///
/// While a valid credential is cached (the normal case, with background refresh on)
/// this takes no lock, allocates nothing and never blocks: one atomic load and two
/// copies. Only when no valid credential is cached (first use, after an invalidation,
/// refresh failures) does it block the calling thread until the one login/refresh in
/// flight finishes (at most the auth timeout); concurrent callers share that one login.
///
/// If either buffer is too small, returns `TRADEAUTH_ERR_BUFFER_TOO_SMALL`, writes the
/// sizes needed (counting the NUL) to both `*name_written` and `*value_written` and
/// leaves both buffers untouched (64 and 4096 bytes are always enough for the venues
/// supported). Any NULL pointer gives `TRADEAUTH_ERR_INVALID_ARGUMENT`; other statuses
/// are the login's (`TRADEAUTH_ERR_UNAUTHORIZED`, `TRADEAUTH_ERR_TRANSPORT`, ...).
/// The value is a secret: do not log it. Safe from any number of threads at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_header(
    session: *const tradeauth_session,
    name_buf: *mut c_char,
    name_len: usize,
    name_written: *mut usize,
    value_buf: *mut c_char,
    value_len: usize,
    value_written: *mut usize,
) -> tradeauth_status {
    boundary("tradeauth_session_header", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let name_buf = arg_out(name_buf, "name_buf")?;
        let name_written = arg_out(name_written, "name_written")?;
        let value_buf = arg_out(value_buf, "value_buf")?;
        let value_written = arg_out(value_written, "value_written")?;
        let inside = handle.enter()?;
        // The common case: copy straight out of the cached credential, borrowed (no `Arc`
        // clone, so no shared refcount for threads to contend on).
        let cached = handle.session.with_current(|credential| {
            credential.map(|credential| {
                // SAFETY: the pointers were checked non-NULL above; caller contract for sizes.
                unsafe {
                    write_header(
                        credential,
                        (name_buf, name_len, name_written),
                        (value_buf, value_len, value_written),
                    )
                }
            })
        });
        if let Some(outcome) = cached {
            return outcome;
        }
        drop(inside);
        let held = handle.hold()?;
        let credential = held.block_on(|s| async move { s.credential().await })??;
        // SAFETY: as above.
        unsafe {
            write_header(
                &credential,
                (name_buf, name_len, name_written),
                (value_buf, value_len, value_written),
            )
        }
    })
}

/// Copies a credential's header name and value into the caller's buffers (or writes the
/// sizes needed and fails if either is too small, leaving both buffers untouched).
///
/// # Safety
/// Every pointer is non-NULL and each buffer holds the length given with it.
unsafe fn write_header(
    credential: &tradeauth::Credential,
    (name_buf, name_len, name_written): (*mut c_char, usize, *mut usize),
    (value_buf, value_len, value_written): (*mut c_char, usize, *mut usize),
) -> FfiResult {
    {
        let name = credential.header_name().as_bytes();
        let value = credential.header_value().as_bytes();
        if !fits(name, name_len) || !fits(value, value_len) {
            // SAFETY: both `written` pointers are non-NULL (checked above).
            unsafe {
                name_written.write(name.len() + 1);
                value_written.write(value.len() + 1);
            }
            let (what, len, needed) = if fits(name, name_len) {
                ("header value", value_len, value.len() + 1)
            } else {
                ("header name", name_len, name.len() + 1)
            };
            return Err(too_small(what, len, needed));
        }
        // SAFETY: non-NULL, sizes checked; the caller promises the buffers' lengths.
        unsafe {
            copy_out(name, name_buf, name_len, name_written, "header name")?;
            copy_out(value, value_buf, value_len, value_written, "header value")?;
        }
        Ok(())
    }
}

/// The caller's own transport saw the venue reject a credential (HTTP 401, "Invalid
/// Bearer Token"): drop it so the next `tradeauth_session_header` re-authenticates.
///
/// `rejected_value` is the header value that was rejected, or NULL for "whatever is
/// current". Passing it makes N threads reporting the same 401 cause one
/// re-authentication: a value that was already replaced is ignored. May block briefly
/// while a login in flight finishes. NULL `session` or non-UTF-8 `rejected_value` gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Safe from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_invalidate(
    session: *const tradeauth_session,
    rejected_value: *const c_char,
) -> tradeauth_status {
    boundary("tradeauth_session_invalidate", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let rejected = unsafe { opt_str(rejected_value, "rejected_value") }?;
        let held = handle.hold()?;
        let Some(current) = held.session().current() else {
            return Ok(());
        };
        if rejected.is_some_and(|value| value != current.header_value()) {
            return Ok(());
        }
        held.block_on(|s| async move { s.invalidate(&current).await })?;
        Ok(())
    })
}

/// Renews the credential now, whatever its age (a forced refresh: Cadenza uses its
/// refresh token, Partner mints, Cascade runs a new challenge), and blocks until done.
/// The old credential stays available to the hot path until the new one replaces it.
/// Statuses are the renewal's; NULL `session` gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_refresh(
    session: *const tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_session_refresh", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let held = handle.hold()?;
        held.block_on(|s| async move { s.refresh().await })??;
        Ok(())
    })
}

/// Wipes every credential of the session (tokens, refresh token); the next call that
/// needs one logs in again. Blocks while a login in flight finishes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_logout(
    session: *const tradeauth_session,
) -> tradeauth_status {
    boundary("tradeauth_session_logout", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let held = handle.hold()?;
        held.block_on(|s| async move { s.logout().await })?;
        Ok(())
    })
}

/// Copies the venue's WebSocket auth message for the current credential into `buf`
/// (logging in first if needed): Cascade's JSON-RPC
/// `{"jsonrpc":"2.0","id":ID,"method":"auth","params":{"bearer":..}}` with `id`, or
/// Exchange's `{"op":"authenticate","api_key":..}` (`id` unused). The text carries a
/// secret: send it, do not log it. Buffer rules as `tradeauth_session_header` (4096
/// bytes are enough). Cadenza and Partner have no WebSocket auth:
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_ws_auth_message(
    session: *const tradeauth_session,
    id: u64,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> tradeauth_status {
    boundary("tradeauth_session_ws_auth_message", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let buf = arg_out(buf, "buf")?;
        let written = arg_out(written, "written")?;
        let held = handle.hold()?;
        let message = held.block_on(|s| async move { s.ws_auth_message(id).await })??;
        // SAFETY: non-NULL; the caller promises buf holds len bytes.
        unsafe { copy_out(message.as_bytes(), buf, len, written, "WebSocket message") }
    })
}

/// Classifies a text message received on the venue's WebSocket after sending the auth
/// message: `TRADEAUTH_WS_AUTHENTICATED`, `TRADEAUTH_WS_REJECTED` (the venue's reason is
/// then in `tradeauth_last_error_message`; a rejected Cascade token is dropped so the
/// next auth message carries a fresh one) or `TRADEAUTH_WS_UNRELATED` (market data etc.:
/// keep reading). Returns `TRADEAUTH_OK` in all three cases. NULL or non-UTF-8 `text`
/// gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_ws_handle_reply(
    session: *const tradeauth_session,
    text: *const c_char,
    out_result: *mut tradeauth_ws_reply,
) -> tradeauth_status {
    boundary("tradeauth_session_ws_handle_reply", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let out = arg_out(out_result, "out_result")?;
        let held = handle.hold()?;
        let text = text.to_owned();
        let reply = held.block_on(|s| async move { s.handle_ws_reply(&text).await })?;
        let result = match reply {
            WsAuthReply::Authenticated { .. } => tradeauth_ws_reply::TRADEAUTH_WS_AUTHENTICATED,
            WsAuthReply::Rejected { message } => {
                set_last_error(format!("the venue rejected the WebSocket auth: {message}"));
                tradeauth_ws_reply::TRADEAUTH_WS_REJECTED
            }
            WsAuthReply::Unrelated => tradeauth_ws_reply::TRADEAUTH_WS_UNRELATED,
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(result) };
        Ok(())
    })
}

/// For engines with their own WebSocket stack: how many milliseconds from now the next
/// auth message is due on a connection authenticated with the current credential (the
/// session's next renewal, or the credential's end if sooner; 0: now). `UINT64_MAX` when
/// nothing is scheduled (Exchange's permanent key never needs another). After that time,
/// `tradeauth_session_ws_auth_message` carries the renewed credential: send it on the
/// open connection. NULL arguments give `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_ws_reauth_due_ms(
    session: *const tradeauth_session,
    out_ms: *mut u64,
) -> tradeauth_status {
    boundary("tradeauth_session_ws_reauth_due_ms", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let out = arg_out(out_ms, "out_ms")?;
        let held = handle.hold()?;
        let due = held.block_on(|s| async move { s.ws_reauth_due().await })?;
        let ms = due.map_or(u64::MAX, |at| {
            let left = at.saturating_duration_since(tradeauth::time::deadline_now());
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(ms) };
        Ok(())
    })
}

/// For engines with their own WebSocket stack: whether an outgoing message (the venue's
/// JSON, NUL-terminated) needs an authenticated connection, by the venue's rules
/// (Exchange: `place_order`, `cancel_order`, the `orders` and `fills` channels; Cascade:
/// every method but `subscribe`/`unsubscribe`/`ping`, and the `orders` and `positions`
/// channels). Hold such a message until `tradeauth_session_ws_handle_reply` said
/// `TRADEAUTH_WS_AUTHENTICATED`. Text that is not JSON gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`, as do NULL arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_ws_is_private(
    session: *const tradeauth_session,
    json: *const c_char,
    out_private: *mut bool,
) -> tradeauth_status {
    boundary("tradeauth_session_ws_is_private", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let json = unsafe { arg_str(json, "json") }?;
        let out = arg_out(out_private, "out_private")?;
        let message = tradeauth::parse_ws_message(json)?;
        let held = handle.hold()?;
        let rules = held.block_on(|s| async move { s.ws_rules().await })??;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write((rules.is_private)(&message)) };
        Ok(())
    })
}

/// Registers `callback` to be told about authentication events (logged in, refreshed,
/// logged in again, failed), replacing any previous one; a NULL `callback` removes it.
/// See `tradeauth_event_callback` for the thread it runs on and what it may do.
///
/// `userdata` is passed back untouched; it must stay valid, and be usable from another
/// thread, until the callback is replaced or removed, or the session freed. When this
/// function returns, a replaced callback is no longer running nor will it be called
/// again (unless this is called from inside it: then it finishes its current call).
/// Events that happened before registration are not replayed. NULL `session` gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_set_event_callback(
    session: *const tradeauth_session,
    callback: tradeauth_event_callback,
    userdata: *mut c_void,
) -> tradeauth_status {
    boundary("tradeauth_session_set_event_callback", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        // Inside for the whole call: it touches the handle's callback slot throughout.
        // `_free` waits for it (bounded by a running callback's return, as documented).
        let _inside = handle.enter()?;
        let lock = || {
            handle
                .events
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        // Stop the old one first (outside the lock: its callback may be the caller and
        // may itself call into this session), so no event is delivered twice.
        let old = lock().take();
        if let Some(old) = old {
            old.stop();
        }
        if let Some(callback) = callback {
            let fresh = Dispatcher::start(&handle.session, callback, userdata)?;
            let displaced = lock().replace(fresh);
            // Another thread registered concurrently: last writer wins.
            if let Some(displaced) = displaced {
                displaced.stop();
            }
        }
        Ok(())
    })
}

/// The venue's name: `"cadenza"`, `"partner"`, `"cascade"` or `"exchange"`; NULL if
/// `session` is NULL. A static string: never free it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_venue(
    session: *const tradeauth_session,
) -> *const c_char {
    boundary_value("tradeauth_session_venue", std::ptr::null(), || {
        // SAFETY: caller contract.
        match unsafe { session.as_ref() } {
            None => std::ptr::null(),
            Some(handle) => {
                let Ok(_inside) = handle.enter() else {
                    return std::ptr::null();
                };
                handle.session.venue().as_cstr().as_ptr()
            }
        }
    })
}

/// Copies the account label (email, client id, deposit address, or the Exchange role)
/// into `buf`; it is never a secret. Buffer rules as `tradeauth_session_header`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_account(
    session: *const tradeauth_session,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> tradeauth_status {
    boundary("tradeauth_session_account", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let buf = arg_out(buf, "buf")?;
        let written = arg_out(written, "written")?;
        let _inside = handle.enter()?;
        // SAFETY: non-NULL; the caller promises buf holds len bytes.
        unsafe {
            copy_out(
                handle.session.account().as_bytes(),
                buf,
                len,
                written,
                "account",
            )
        }
    })
}

/// Writes the venue's wall-clock expiry of the current credential (Unix milliseconds)
/// to `*out_unix_ms`, or 0 if there is no valid credential now or it never expires
/// (Exchange keys). Never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_expires_at_ms(
    session: *const tradeauth_session,
    out_unix_ms: *mut u64,
) -> tradeauth_status {
    boundary("tradeauth_session_expires_at_ms", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        let out = arg_out(out_unix_ms, "out_unix_ms")?;
        let expiry = {
            let _inside = handle.enter()?;
            handle.session.expires_at_ms().unwrap_or(0)
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(expiry) };
        Ok(())
    })
}
