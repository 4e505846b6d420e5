//! Native module `tradeauth._native`: the venue clients, the pages' free functions and the
//! exception hierarchy, over the `tradeauth` Rust library. The pure-Python package
//! `tradeauth` re-exports these names and adds the `requests` / `httpx` adapters.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

mod bridge;
mod cli;
mod client;
mod errors;
mod logs;
mod metrics;
mod response;
mod signer;
mod venues;
mod ws;

use errors::{Count, guard_in, invalid_argument, to_pyerr};

/// Bytes of a `str` (UTF-8) or `bytes` argument.
fn bytes_of(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = value.cast::<PyString>() {
        Ok(s.to_cow()?.as_bytes().to_vec())
    } else if let Ok(b) = value.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else {
        Err(invalid_argument(py, format!("{name} must be str or bytes")))
    }
}

/// The Partner page's `generate_token`: an HS256 JWT `{clientId, iat, exp = iat + ttl}`
/// signed with `secret_key` (str or bytes), byte for byte what PyJWT gives.
#[pyfunction]
#[pyo3(signature = (client_id, secret_key, ttl=Count(900)), text_signature = "(client_id, secret_key, ttl=900)")]
fn generate_token<'py>(
    py: Python<'py>,
    client_id: &Bound<'py, PyString>,
    secret_key: &Bound<'py, PyAny>,
    ttl: Count<u64>,
) -> PyResult<Bound<'py, PyString>> {
    // Under the abi3 (3.9) API a str's UTF-8 comes as a new `bytes` object; pyo3's `&str`
    // and `to_cow` then copy it into a `String`. Borrowing from the `bytes` instead saves
    // that copy on every call and, for the secret, leaves no unwiped Rust copy behind.
    let id_utf8 = client_id.encode_utf8()?;
    let client_id = std::str::from_utf8(id_utf8.as_bytes())
        .map_err(|_| invalid_argument(py, "client_id is not valid UTF-8"))?;
    let secret_utf8;
    let secret: &[u8] = if let Ok(s) = secret_key.cast::<PyString>() {
        secret_utf8 = s.encode_utf8()?;
        secret_utf8.as_bytes()
    } else if let Ok(b) = secret_key.cast::<PyBytes>() {
        b.as_bytes()
    } else {
        return Err(invalid_argument(py, "secret_key must be str or bytes"));
    };
    guard_in(py, "generate_token", || {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid_argument(py, "the system clock is before 1970"))?
            .as_secs();
        let token =
            tradeauth::mint_token(client_id, secret, iat, ttl.0).map_err(|e| to_pyerr(py, &e))?;
        // Straight from the wiped-on-drop token into the Python str: no plain String copy.
        Ok(PyString::new(py, token.expose()))
    })
}

/// EIP-191 `personal_sign` of `message` (str as UTF-8, or bytes) with a hex private key:
/// `0x` + 130 hex (r, s, v with v = 27/28), as eth_account and viem give.
#[pyfunction]
fn eip191_sign(py: Python<'_>, private_key: &str, message: &Bound<'_, PyAny>) -> PyResult<String> {
    let message = bytes_of(py, "message", message)?;
    guard_in(py, "eip191_sign", || {
        tradeauth::eip191_sign(private_key, &message).map_err(|e| to_pyerr(py, &e))
    })
}

/// Sets the process-wide settings (`worker_threads`, `max_concurrent_renewals`; `None`
/// keeps the one in force) and returns those in force as a dict.
#[pyfunction]
#[pyo3(signature = (*, worker_threads=None, max_concurrent_renewals=None))]
fn configure<'py>(
    py: Python<'py>,
    worker_threads: Option<i64>,
    max_concurrent_renewals: Option<i64>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    // A negative count becomes 0, which core refuses with the setting's name and range.
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    let config = tradeauth::runtime::configure_some(
        worker_threads.map(count),
        max_concurrent_renewals.map(count),
    )
    .map_err(|e| to_pyerr(py, &e))?;
    let d = pyo3::types::PyDict::new(py);
    d.set_item("worker_threads", config.worker_threads)?;
    d.set_item("max_concurrent_renewals", config.max_concurrent_renewals)?;
    Ok(d)
}

/// The `tradeauth._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", tradeauth::VERSION)?;
    m.add("CADENZA_URL", tradeauth::CADENZA_PRODUCTION_URL)?;
    m.add("CADENZA_UAT_URL", tradeauth::CADENZA_UAT_URL)?;
    m.add("CASCADE_URL", tradeauth::CASCADE_URL)?;
    m.add("EXCHANGE_URL", tradeauth::EXCHANGE_URL)?;
    errors::register(m)?;
    m.add_class::<client::BaseClient>()?;
    m.add_class::<venues::CadenzaClient>()?;
    m.add_class::<venues::PartnerClient>()?;
    m.add_class::<venues::CascadeClient>()?;
    m.add_class::<venues::ExchangeClient>()?;
    m.add_class::<response::Response>()?;
    m.add_class::<response::WsAuthReply>()?;
    m.add_class::<ws::WebSocket>()?;
    m.add_class::<ws::WebSocketSync>()?;
    m.add_function(wrap_pyfunction!(generate_token, m)?)?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::prometheus_text, m)?)?;
    m.add_function(wrap_pyfunction!(eip191_sign, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::_bridge_stats, m)?)?;
    m.add_function(wrap_pyfunction!(cli::_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_raise_kind, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_panic, m)?)?;
    Ok(())
}
