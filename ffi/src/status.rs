//! Status codes, the calling thread's last error message, and the panic boundary.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tradeauth::{Error, ErrorKind};

use crate::text::copy_out;

/// The result of every fallible call.
///
/// The numbers are fixed and never reused: `TRADEAUTH_OK` is 0 and every error has the
/// number of the matching tradeauth error kind (the same numbers the Rust `ErrorKind::code`
/// and the Python exception hierarchy use). New kinds only ever get new numbers, so a
/// caller may store and compare them across library versions. The enum is 32 bits wide.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum tradeauth_status {
    /// Success: every output was written.
    TRADEAUTH_OK = 0,
    /// Bad input from the caller: a NULL pointer, non-UTF-8 text, a malformed key,
    /// address or URL, a call that is not allowed in this context.
    TRADEAUTH_ERR_INVALID_ARGUMENT = 1,
    /// A URL that is not `https://`.
    TRADEAUTH_ERR_INSECURE_URL = 2,
    /// Connect / TLS / DNS failure: the venue could not be reached.
    TRADEAUTH_ERR_TRANSPORT = 3,
    /// The venue did not answer in time.
    TRADEAUTH_ERR_TIMEOUT = 4,
    /// The venue rejected the credentials (wrong password, bad signature, unknown key).
    TRADEAUTH_ERR_UNAUTHORIZED = 5,
    /// The venue answered with an error (error envelope, 4xx/5xx, JSON-RPC error).
    TRADEAUTH_ERR_API_ERROR = 6,
    /// The venue's answer was not what its documentation says (bad JSON, missing field).
    TRADEAUTH_ERR_PROTOCOL = 7,
    /// The key could not sign.
    TRADEAUTH_ERR_SIGNING = 8,
    /// A wallet challenge outlived its nonce.
    TRADEAUTH_ERR_CHALLENGE_EXPIRED = 9,
    /// The caller's buffer cannot hold the result; the size needed (including the NUL
    /// terminator) was written to the `*written` output and the buffer was not touched.
    TRADEAUTH_ERR_BUFFER_TOO_SMALL = 10,
    /// A bug inside tradeauth was caught at the C boundary; nothing unwound into C.
    TRADEAUTH_ERR_PANIC = 11,
    /// C only: the handle was freed (`_free` began) while this call was starting or
    /// running on another thread. The call did nothing more and wrote no output.
    TRADEAUTH_ERR_CLOSED = 12,
}

impl tradeauth_status {
    /// The status for an error kind (same number).
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => Self::TRADEAUTH_ERR_INVALID_ARGUMENT,
            ErrorKind::InsecureUrl => Self::TRADEAUTH_ERR_INSECURE_URL,
            ErrorKind::Transport => Self::TRADEAUTH_ERR_TRANSPORT,
            ErrorKind::Timeout => Self::TRADEAUTH_ERR_TIMEOUT,
            ErrorKind::Unauthorized => Self::TRADEAUTH_ERR_UNAUTHORIZED,
            ErrorKind::ApiError => Self::TRADEAUTH_ERR_API_ERROR,
            ErrorKind::Protocol => Self::TRADEAUTH_ERR_PROTOCOL,
            ErrorKind::Signing => Self::TRADEAUTH_ERR_SIGNING,
            ErrorKind::ChallengeExpired => Self::TRADEAUTH_ERR_CHALLENGE_EXPIRED,
            ErrorKind::BufferTooSmall => Self::TRADEAUTH_ERR_BUFFER_TOO_SMALL,
            ErrorKind::Panic => Self::TRADEAUTH_ERR_PANIC,
        }
    }
}

/// A failed call on its way out: the status to return and the message to keep.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: tradeauth_status,
    pub(crate) message: String,
}

impl Failure {
    /// A failure of any status.
    pub(crate) fn new(status: tradeauth_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// `TRADEAUTH_ERR_INVALID_ARGUMENT` with a message.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT, message)
    }

    /// The NULL-pointer failure for the argument `name`.
    pub(crate) fn null(name: &str) -> Self {
        Failure::invalid(format!("`{name}` must not be NULL"))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        // Core messages never contain secrets (DESIGN.md "Secrets"), so they pass through.
        Failure::new(
            tradeauth_status::from_kind(error.kind()),
            error.message().to_owned(),
        )
    }
}

/// What the body of an export returns; `Ok` means every output was written.
pub(crate) type FfiResult = Result<(), Failure>;

thread_local! {
    // Per thread, like errno: two threads failing at once each keep their own message.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as the calling thread's last error.
pub(crate) fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; losing the text is fine.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// Runs the body of an exported function: a panic becomes `TRADEAUTH_ERR_PANIC`, a
/// `Failure` becomes its status plus the thread's last error message. `name` is the
/// export's name, for the panic message.
pub(crate) fn boundary(name: &str, body: impl FnOnce() -> FfiResult) -> tradeauth_status {
    // AssertUnwindSafe: what a panic could leave half-updated is either thread-local
    // (the last error), behind poison-tolerant locks, or inside a tradeauth `Session`,
    // whose state machine is only ever changed under its own (non-poisoning) lock.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => tradeauth_status::TRADEAUTH_OK,
        Ok(Err(failure)) => {
            set_last_error(failure.message);
            failure.status
        }
        Err(_) => {
            // The payload is not echoed: a panic message is not vetted for secrets.
            set_last_error(format!(
                "internal error: a panic was caught in {name}; the call did not complete \
                 (please report this bug)"
            ));
            tradeauth_status::TRADEAUTH_ERR_PANIC
        }
    }
}

/// For exports that return a value rather than a status: a panic gives `fallback`.
pub(crate) fn boundary_value<T>(name: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            set_last_error(format!(
                "internal error: a panic was caught in {name} (please report this bug)"
            ));
            fallback
        }
    }
}

/// Copies the calling thread's last error message into `buf` (NUL-terminated).
///
/// The message describes the most recent call on this thread that returned an error
/// status; successful calls leave it unchanged, so read it right after the failure. It
/// is empty if no call on this thread has failed yet. It never contains a secret.
///
/// `buf` must point to `len` writable bytes. On `TRADEAUTH_OK`, `*written` is the
/// message length (not counting the NUL). If the message does not fit,
/// `TRADEAUTH_ERR_BUFFER_TOO_SMALL` is returned, `*written` is the size needed
/// (counting the NUL), `buf` is untouched and the stored message is kept (this call
/// never replaces it, not even on its own failure). `buf` or `written` NULL gives
/// `TRADEAUTH_ERR_INVALID_ARGUMENT`. Thread safety: reads only thread-local state.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_last_error_message(
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> tradeauth_status {
    // Not through `boundary`: this function's own failures must not overwrite the
    // message the caller is trying to read.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if buf.is_null() || written.is_null() {
            return tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT;
        }
        let copied = LAST_ERROR.try_with(|slot| match slot.try_borrow() {
            // SAFETY: buf/len/written are non-NULL and the caller promises buf holds len bytes.
            Ok(message) => unsafe { copy_out(message.as_bytes(), buf, len, written, "message") },
            Err(_) => unsafe { copy_out(b"", buf, len, written, "message") },
        });
        match copied {
            Ok(Ok(())) => tradeauth_status::TRADEAUTH_OK,
            Ok(Err(failure)) => failure.status,
            Err(_) => tradeauth_status::TRADEAUTH_ERR_PANIC,
        }
    }));
    outcome.unwrap_or(tradeauth_status::TRADEAUTH_ERR_PANIC)
}

/// The stable snake_case name of a status, e.g. `"ok"`, `"invalid_argument"`,
/// `"buffer_too_small"` (the Rust `ErrorKind` and Python names); `"unknown"` for a
/// number that is not a status. Returns a static NUL-terminated string: never free it.
/// Takes a plain integer so any value is safe to pass. Thread safety: pure.
#[unsafe(no_mangle)]
pub extern "C" fn tradeauth_status_name(status: u32) -> *const c_char {
    let name: &'static [u8] = match ErrorKind::from_code(status) {
        _ if status == 0 => b"ok\0",
        _ if status == tradeauth_status::TRADEAUTH_ERR_CLOSED as u32 => b"closed\0",
        Some(ErrorKind::InvalidArgument) => b"invalid_argument\0",
        Some(ErrorKind::InsecureUrl) => b"insecure_url\0",
        Some(ErrorKind::Transport) => b"transport\0",
        Some(ErrorKind::Timeout) => b"timeout\0",
        Some(ErrorKind::Unauthorized) => b"unauthorized\0",
        Some(ErrorKind::ApiError) => b"api_error\0",
        Some(ErrorKind::Protocol) => b"protocol\0",
        Some(ErrorKind::Signing) => b"signing\0",
        Some(ErrorKind::ChallengeExpired) => b"challenge_expired\0",
        Some(ErrorKind::BufferTooSmall) => b"buffer_too_small\0",
        Some(ErrorKind::Panic) => b"panic\0",
        None => b"unknown\0",
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn status_numbers_match_error_kinds() {
        assert_eq!(tradeauth_status::TRADEAUTH_OK as u32, 0);
        for kind in ErrorKind::ALL {
            let status = tradeauth_status::from_kind(kind);
            assert_eq!(status as u32, kind.code());
            // SAFETY: tradeauth_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(tradeauth_status_name(kind.code())) };
            assert_eq!(name.to_str().unwrap(), kind.as_str());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(tradeauth_status_name(999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }

    #[test]
    fn panics_are_caught_and_reported() {
        let status = boundary("test", || panic!("boom"));
        assert_eq!(status, tradeauth_status::TRADEAUTH_ERR_PANIC);
        let mut buf = [0 as c_char; 256];
        let mut written = 0usize;
        // SAFETY: buf holds 256 bytes.
        let st = unsafe { tradeauth_last_error_message(buf.as_mut_ptr(), buf.len(), &mut written) };
        assert_eq!(st, tradeauth_status::TRADEAUTH_OK);
        // SAFETY: copy_out NUL-terminates.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert!(text.contains("panic"), "{text}");
        assert!(!text.contains("boom"));
        assert_eq!(written, text.len());
    }

    fn last_error() -> String {
        let mut buf = [0 as c_char; 512];
        let mut written = 0usize;
        // SAFETY: buf holds 512 bytes.
        let st = unsafe { tradeauth_last_error_message(buf.as_mut_ptr(), buf.len(), &mut written) };
        assert_eq!(st, tradeauth_status::TRADEAUTH_OK);
        // SAFETY: copy_out NUL-terminates.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn name(status: u32) -> &'static str {
        // SAFETY: tradeauth_status_name returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(tradeauth_status_name(status)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn the_c_only_statuses_have_their_names() {
        assert_eq!(name(0), "ok");
        assert_eq!(
            name(tradeauth_status::TRADEAUTH_ERR_CLOSED as u32),
            "closed"
        );
        assert_eq!(name(13), "unknown");
        assert_eq!(name(u32::MAX), "unknown");
    }

    #[test]
    fn a_failure_sets_its_status_and_message_and_success_keeps_the_last_one() {
        let st = boundary("t", || Err(Failure::invalid("first")));
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
        assert_eq!(last_error(), "first");
        // Success leaves the message alone (read it right after the failure).
        assert_eq!(boundary("t", || Ok(())), tradeauth_status::TRADEAUTH_OK);
        assert_eq!(last_error(), "first");
        // A core error keeps its kind's number and its message.
        let st = boundary("t", || {
            Err(Failure::from(Error::new(
                ErrorKind::Timeout,
                "no answer in 5 s",
            )))
        });
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_TIMEOUT);
        assert_eq!(last_error(), "no answer in 5 s");
        assert_eq!(
            Failure::null("opts").message,
            "`opts` must not be NULL",
            "the NULL message names the argument"
        );
    }

    #[test]
    fn boundary_value_gives_the_fallback_on_a_panic_only() {
        assert_eq!(boundary_value("t", 7u32, || 3), 3);
        assert_eq!(boundary_value("tradeauth_x", 7u32, || panic!("secret")), 7);
        let message = last_error();
        assert!(message.contains("tradeauth_x"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn reading_the_message_into_a_small_buffer_keeps_it() {
        set_last_error("twenty-one characters".to_owned());
        let mut small = [0 as c_char; 4];
        let mut written = 0usize;
        // SAFETY: small holds 4 bytes.
        let st = unsafe { tradeauth_last_error_message(small.as_mut_ptr(), 4, &mut written) };
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_BUFFER_TOO_SMALL);
        assert_eq!(written, 22);
        assert_eq!(last_error(), "twenty-one characters");
        // SAFETY: NULL outputs are rejected before any write.
        let st = unsafe { tradeauth_last_error_message(std::ptr::null_mut(), 4, &mut written) };
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let st =
            unsafe { tradeauth_last_error_message(small.as_mut_ptr(), 4, std::ptr::null_mut()) };
        assert_eq!(st, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
        assert_eq!(last_error(), "twenty-one characters");
    }
}
