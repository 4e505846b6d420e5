//! The exception hierarchy and the one conversion from `tradeauth::Error` to it.
//!
//! Every exception derives from `tradeauth.AuthError`, itself a subclass of `Exception`
//! (never `BaseException`): a Rust panic caught at the boundary becomes `PanicError`.

use std::any::Any;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use tradeauth::{Error, ErrorKind};

create_exception!(
    tradeauth,
    AuthError,
    PyException,
    "Base of every tradeauth error; `kind`, `code`, `status`, `retryable`, `retry_after` describe it."
);
create_exception!(
    tradeauth,
    InvalidArgument,
    AuthError,
    "Bad input from the caller (malformed key, address, URL, option)."
);
create_exception!(
    tradeauth,
    InsecureUrl,
    AuthError,
    "A base URL that is not `https://`."
);
create_exception!(
    tradeauth,
    TransportError,
    AuthError,
    "Connect / TLS / DNS failure: the request got no answer."
);
create_exception!(tradeauth, Timeout, AuthError, "No answer in time.");
create_exception!(
    tradeauth,
    Unauthorized,
    AuthError,
    "The venue rejected the credentials (wrong password, bad signature, unknown key)."
);
create_exception!(
    tradeauth,
    ApiError,
    AuthError,
    "The venue answered with an error (error envelope, 4xx/5xx, JSON-RPC error)."
);
create_exception!(
    tradeauth,
    ProtocolError,
    AuthError,
    "The venue's answer was not what its documentation says (bad JSON, missing field)."
);
create_exception!(
    tradeauth,
    SigningError,
    AuthError,
    "The key could not sign."
);
create_exception!(
    tradeauth,
    ChallengeExpired,
    AuthError,
    "A wallet challenge outlived its nonce."
);
create_exception!(
    tradeauth,
    PanicError,
    AuthError,
    "A bug inside tradeauth was caught at the Python boundary (a Rust panic)."
);

/// Registers the exception classes on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AuthError", py.get_type::<AuthError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("InsecureUrl", py.get_type::<InsecureUrl>())?;
    m.add("TransportError", py.get_type::<TransportError>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("Unauthorized", py.get_type::<Unauthorized>())?;
    m.add("ApiError", py.get_type::<ApiError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("SigningError", py.get_type::<SigningError>())?;
    m.add("ChallengeExpired", py.get_type::<ChallengeExpired>())?;
    m.add("PanicError", py.get_type::<PanicError>())?;
    Ok(())
}

/// The one conversion: a classified `tradeauth::Error` to its Python exception, with the
/// error's kind, code, HTTP status, retryability and `Retry-After` as attributes. The
/// message is the library's, which never contains a secret.
pub(crate) fn to_pyerr(py: Python<'_>, error: &Error) -> PyErr {
    let message = error.message().to_owned();
    let err = match error.kind() {
        ErrorKind::InvalidArgument => InvalidArgument::new_err(message),
        ErrorKind::InsecureUrl => InsecureUrl::new_err(message),
        ErrorKind::Transport => TransportError::new_err(message),
        ErrorKind::Timeout => Timeout::new_err(message),
        ErrorKind::Unauthorized => Unauthorized::new_err(message),
        ErrorKind::ApiError => ApiError::new_err(message),
        ErrorKind::Protocol => ProtocolError::new_err(message),
        ErrorKind::Signing => SigningError::new_err(message),
        ErrorKind::ChallengeExpired => ChallengeExpired::new_err(message),
        ErrorKind::Panic => PanicError::new_err(message),
        // C only (caller buffers); never produced for Python, mapped to the base class.
        ErrorKind::BufferTooSmall => AuthError::new_err(message),
    };
    annotate(
        py,
        &err,
        error.kind(),
        error.status(),
        error.is_retryable(),
        error.retry_after(),
    );
    err
}

/// Sets the descriptive attributes on an exception instance (best effort).
fn annotate(
    py: Python<'_>,
    err: &PyErr,
    kind: ErrorKind,
    status: Option<u16>,
    retryable: bool,
    retry_after: Option<Duration>,
) {
    let value = err.value(py);
    let _ = value.setattr("kind", kind.as_str());
    let _ = value.setattr("code", kind.code());
    let _ = value.setattr("status", status);
    let _ = value.setattr("retryable", retryable);
    let _ = value.setattr("retry_after", retry_after.map(|d| d.as_secs_f64()));
}

/// Shorthand for an `InvalidArgument` exception with attributes.
pub(crate) fn invalid_argument(py: Python<'_>, message: impl Into<String>) -> PyErr {
    to_pyerr(py, &Error::invalid_argument(message))
}

/// A caught panic as `PanicError`, naming no function (callers that know theirs use
/// [`panic_error_in`]).
pub(crate) fn panic_error(py: Python<'_>, payload: Box<dyn Any + Send>) -> PyErr {
    panic_error_in(py, "tradeauth", payload)
}

/// A caught panic in `function` as `PanicError`: "internal error in <function>", as the C
/// ABI says it. The payload is dropped unread: a panic message (an `expect` text, a
/// formatted value) is not vetted for secrets.
pub(crate) fn panic_error_in(
    py: Python<'_>,
    function: &str,
    payload: Box<dyn Any + Send>,
) -> PyErr {
    drop(payload);
    to_pyerr(
        py,
        &Error::new(
            ErrorKind::Panic,
            format!("internal error in {function} (please report this bug)"),
        ),
    )
}

/// Runs `f`, turning a Rust panic into `PanicError` (instead of pyo3's `PanicException`, a
/// `BaseException`) that says only "internal error in <function>".
pub(crate) fn guard_in<T>(
    py: Python<'_>,
    function: &str,
    f: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(panic_error_in(py, function, payload)),
    }
}

/// Test hook: raises the exception for a kind name through the same conversion, so the
/// tests can check kinds no simulator scenario produces (e.g. `signing`).
#[pyfunction]
pub(crate) fn _raise_kind(py: Python<'_>, kind: &str, message: &str) -> PyResult<()> {
    let kind = ErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| invalid_argument(py, format!("unknown error kind {kind:?}")))?;
    Err(to_pyerr(py, &Error::new(kind, message)))
}

/// Test hook: panics inside Rust, to show it surfaces as `PanicError`.
#[pyfunction]
pub(crate) fn _panic(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = message.to_owned();
    guard_in(py, "_panic", move || -> PyResult<()> {
        panic!("{message}")
    })
}

/// A whole number from Python for a count, a lifetime or an id. Not an `int` gives
/// `TypeError` (as pyo3 would); negative or too large gives `tradeauth.InvalidArgument`
/// rather than pyo3's `OverflowError`, so a bad value is one of our errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Count<T>(pub T);

impl<'a, 'py, T> FromPyObject<'a, 'py> for Count<T>
where
    T: TryFrom<i128> + Bounded,
{
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        use pyo3::types::{PyBool, PyInt};
        let py = obj.py();
        if !obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyBool>() {
            let name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "expected an int, got {name}"
            )));
        }
        let range = || format!("must be a whole number from 0 to {}", T::MAX_TEXT);
        let wide: i128 = obj.extract().map_err(|_| invalid_argument(py, range()))?;
        T::try_from(wide)
            .map(Count)
            .map_err(|_| invalid_argument(py, range()))
    }
}

/// The largest value of a `Count`, as text for its error message.
pub(crate) trait Bounded {
    /// `MAX`, written out.
    const MAX_TEXT: &'static str;
}

impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}

impl Bounded for u64 {
    const MAX_TEXT: &'static str = "18446744073709551615";
}
