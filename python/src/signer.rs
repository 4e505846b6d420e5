//! A Python callable as Cascade's external signer (`signer=` on `CascadeClient`): an HSM,
//! a cloud KMS or a wallet reached from Python, so the delegate key never enters the
//! process.
//!
//! The callable takes the 32-byte EIP-191 digest and returns the signature (`bytes`,
//! `bytearray` or `memoryview`: 65 bytes r||s||v, 64 bytes r||s or DER), or a coroutine
//! (any awaitable) of it. It runs on tokio's blocking pool, never on a runtime worker and
//! never on the caller's event loop: the GIL is taken only on that blocking thread, for
//! the call, and a coroutine is run there with `asyncio.run` (a fresh loop of its own).
//! Nothing is held while the GIL is taken, and no GIL is held while the library waits,
//! so the signer's thread may block as long as it likes: the core bounds the wait by the
//! signer's timeout and drops it (the thread finishes later, its answer is discarded).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use tradeauth::signer::{DigestSigner, SignFuture, SignResult};

use crate::bridge::attach_from_worker;

/// A Python callable `fn(digest: bytes) -> bytes | Awaitable[bytes]`.
pub(crate) struct PySigner {
    /// Shared so the future can own it without the GIL (cloning an `Arc`, not the `Py`).
    callable: Arc<Py<PyAny>>,
}

impl PySigner {
    /// Wraps `callable`; the caller has checked that it is callable.
    pub(crate) fn new(callable: Py<PyAny>) -> Self {
        PySigner {
            callable: Arc::new(callable),
        }
    }
}

impl DigestSigner for PySigner {
    fn sign_digest(&self, digest: [u8; 32]) -> SignFuture<'_> {
        let callable = Arc::clone(&self.callable);
        Box::pin(async move {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| "the Python signer was called outside the library's runtime")?;
            // Dropped on timeout: the blocking thread then finishes on its own.
            match handle.spawn_blocking(move || call(&callable, digest)).await {
                Ok(answer) => answer,
                Err(join) if join.is_panic() => Err("the Python signer call panicked".to_owned()),
                Err(_) => Err("the Python signer call was cancelled".to_owned()),
            }
        })
    }
}

/// Calls the signer on this (blocking-pool) thread with the GIL held only here.
fn call(callable: &Py<PyAny>, digest: [u8; 32]) -> SignResult {
    attach_from_worker(|py| {
        let answer = callable
            .bind(py)
            .call1((PyBytes::new(py, &digest),))
            .and_then(|value| settle(py, value))
            .map_err(|e| describe(py, &e))?;
        signature_bytes(&answer)
    })
    .unwrap_or_else(|| Err("the Python interpreter is shutting down".to_owned()))
}

/// A coroutine (or other awaitable) result run to completion with `asyncio.run` on this
/// thread, which has no running loop; anything else as it is.
fn settle<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if !value.hasattr("__await__")? {
        return Ok(value);
    }
    let asyncio = py.import("asyncio")?;
    let coroutine = if asyncio
        .call_method1("iscoroutine", (&value,))?
        .is_truthy()?
    {
        value
    } else {
        // A Future-like awaitable: `asyncio.run` takes only coroutines, so wrap it in one.
        awaiter(py)?.bind(py).call1((value,))?
    };
    asyncio.call_method1("run", (coroutine,))
}

/// `async def _await(a): return await a`, compiled once.
fn awaiter(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static AWAITER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    AWAITER.get_or_try_init(py, || {
        let module = PyModule::from_code(
            py,
            c"async def _await(a):\n    return await a\n",
            c"tradeauth_signer_awaiter.py",
            c"tradeauth_signer_awaiter",
        )?;
        Ok(module.getattr("_await")?.unbind())
    })
}

/// The signer's answer as bytes: `bytes`, `bytearray` or `memoryview`; anything else is
/// refused, naming its type.
fn signature_bytes(answer: &Bound<'_, PyAny>) -> SignResult {
    if let Ok(bytes) = answer.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = answer.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if answer.is_instance_of::<PyMemoryView>() {
        let copied = answer
            .py()
            .get_type::<PyBytes>()
            .call1((answer,))
            .map_err(|e| describe(answer.py(), &e))?;
        if let Ok(bytes) = copied.cast::<PyBytes>() {
            return Ok(bytes.as_bytes().to_vec());
        }
    }
    Err(format!(
        "the Python signer returned {}, expected bytes",
        type_name(answer)
    ))
}

/// `ExcType: message` for a Python exception (no traceback).
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let value = error.value(py);
    let message = value
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = type_name(value.as_any());
    if message.is_empty() {
        kind
    } else {
        format!("{kind}: {message}")
    }
}

/// The (unqualified) type name of a Python object.
fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "object".to_owned())
}
