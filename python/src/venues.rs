//! The four venue clients, named and shaped like the venue pages' code.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use tradeauth::{CadenzaConfig, CascadeConfig, ExchangeConfig, PartnerConfig, Secret, Session};

use crate::client::{BaseClient, Factory, OptionArgs};
use crate::errors::{Count, invalid_argument};
use crate::response::WsAuthReply;

/// A JSON value as the equivalent Python object (via `json.loads`).
fn to_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

/// Converts a `String` to a Python `str` (asyncio path).
fn convert_string(py: Python<'_>, text: String) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyString::new(py, &text).into_any().unbind())
}

/// `ws_auth_message` shared by Cascade and Exchange.
fn ws_message(py: Python<'_>, base: &BaseClient, id: Count<u64>) -> PyResult<String> {
    base.run(py, move |session| async move {
        session.ws_auth_message(id.0).await
    })
}

/// `handle_ws_reply` shared by Cascade and Exchange.
fn ws_reply(py: Python<'_>, base: &BaseClient, text: String) -> PyResult<WsAuthReply> {
    let reply = base.run(py, move |session| async move {
        Ok(session.handle_ws_reply(&text).await)
    })?;
    Ok(WsAuthReply::from_core(reply))
}

/// Cadenza: email + password login, 1 h access token, rotating 7 d refresh token. Like
/// the page's `CadenzaClient`, it logs in at construction (pass `login=False` to defer).
#[pyclass(frozen, extends = BaseClient, module = "tradeauth._native")]
pub(crate) struct CadenzaClient;

#[pymethods]
impl CadenzaClient {
    /// Builds the client (see the class docstring); `login=True` authenticates now.
    #[new]
    #[pyo3(signature = (email, password, base_url=None, *, login=true, **options))]
    fn new(
        py: Python<'_>,
        email: String,
        password: String,
        base_url: Option<&str>,
        login: bool,
        options: Option<OptionArgs>,
    ) -> PyResult<(Self, BaseClient)> {
        let config = CadenzaConfig::new(email, Secret::new(password));
        let factory: Factory = Arc::new(move |o| Session::cadenza(config.clone(), o));
        let base = BaseClient::build(py, options, base_url, factory, login)?;
        Ok((Self, base))
    }

    /// From `CADENZA_EMAIL`, `CADENZA_PASSWORD`, optional `CADENZA_BASE_URL` and
    /// `TRADEAUTH_CA_CERT`.
    #[staticmethod]
    #[pyo3(signature = (*, login=true, **options))]
    fn from_env(py: Python<'_>, login: bool, options: Option<OptionArgs>) -> PyResult<Py<Self>> {
        let factory: Factory = Arc::new(Session::cadenza_from_env);
        let base = BaseClient::build(py, options, None, factory, login)?;
        Py::new(py, (Self, base))
    }

    /// The current access token (logs in or refreshes first if needed).
    #[getter]
    fn access_token(slf: &Bound<'_, Self>) -> PyResult<String> {
        let credential = slf.as_super().get().credential(slf.py())?;
        Ok(credential.token().to_owned())
    }

    /// The current (rotated) refresh token, or None before the first login.
    #[getter]
    fn refresh_token(slf: &Bound<'_, Self>) -> PyResult<Option<String>> {
        let token = slf.as_super().get().run(slf.py(), |session| async move {
            Ok(session.refresh_token().await)
        })?;
        Ok(token.map(|t| t.expose().to_owned()))
    }

    /// When the access token expires, in Unix milliseconds (the page's `expiresAt`).
    #[getter]
    fn expires_at(slf: &Bound<'_, Self>) -> PyResult<Option<u64>> {
        let credential = slf.as_super().get().credential(slf.py())?;
        Ok(credential.expires_at_ms())
    }
}

/// Partner API: locally minted HS256 JWTs `{clientId, iat, exp}`, re-minted before
/// expiry and after a 401 (the page's `makeAuthenticatedRequest`).
#[pyclass(frozen, extends = BaseClient, module = "tradeauth._native")]
pub(crate) struct PartnerClient;

#[pymethods]
impl PartnerClient {
    /// Builds the client (see the class docstring); `login=True` authenticates now.
    #[new]
    #[pyo3(signature = (client_id, secret_key, base_url, ttl=Count(900), *, login=true, **options), text_signature = "(client_id, secret_key, base_url, ttl=900, *, login=True, **options)")]
    fn new(
        py: Python<'_>,
        client_id: String,
        secret_key: String,
        base_url: &str,
        ttl: Count<u64>,
        login: bool,
        options: Option<OptionArgs>,
    ) -> PyResult<(Self, BaseClient)> {
        let Count(ttl) = ttl;
        if ttl == 0 {
            return Err(invalid_argument(py, "ttl must be at least 1 second"));
        }
        let config = PartnerConfig::new(client_id, Secret::new(secret_key))
            .with_ttl(Duration::from_secs(ttl));
        let factory: Factory = Arc::new(move |o| Session::partner(config.clone(), o));
        let base = BaseClient::build(py, options, Some(base_url), factory, login)?;
        Ok((Self, base))
    }

    /// From `PARTNER_CLIENT_ID`, `PARTNER_SECRET_KEY`, `PARTNER_BASE_URL`, optional
    /// `PARTNER_TOKEN_TTL_SECS` and `TRADEAUTH_CA_CERT`.
    #[staticmethod]
    #[pyo3(signature = (*, login=true, **options))]
    fn from_env(py: Python<'_>, login: bool, options: Option<OptionArgs>) -> PyResult<Py<Self>> {
        let factory: Factory = Arc::new(Session::partner_from_env);
        let base = BaseClient::build(py, options, None, factory, login)?;
        Py::new(py, (Self, base))
    }

    /// The current JWT (cached; re-minted when near expiry).
    #[getter]
    fn token(slf: &Bound<'_, Self>) -> PyResult<String> {
        let credential = slf.as_super().get().credential(slf.py())?;
        Ok(credential.token().to_owned())
    }
}

/// Cascade matcher: wallet challenge signed (EIP-191) by a delegate key, bearer JWT for
/// HTTP and the WebSocket. Runs the challenge at construction (`login=False` defers it).
#[pyclass(frozen, extends = BaseClient, module = "tradeauth._native")]
pub(crate) struct CascadeClient;

#[pymethods]
impl CascadeClient {
    /// Builds the client (see the class docstring); `login=True` authenticates now.
    #[new]
    #[pyo3(signature = (deposit_address, delegate_private_key, base_url=None, *, login=true, **options))]
    fn new(
        py: Python<'_>,
        deposit_address: String,
        delegate_private_key: String,
        base_url: Option<&str>,
        login: bool,
        options: Option<OptionArgs>,
    ) -> PyResult<(Self, BaseClient)> {
        let config = CascadeConfig::new(deposit_address, Secret::new(delegate_private_key));
        let factory: Factory = Arc::new(move |o| Session::cascade(config.clone(), o));
        let base = BaseClient::build(py, options, base_url, factory, login)?;
        Ok((Self, base))
    }

    /// From `CASCADE_DEPOSIT_ADDRESS`, `CASCADE_DELEGATE_PRIVATE_KEY`, optional
    /// `CASCADE_BASE_URL` and `TRADEAUTH_CA_CERT`.
    #[staticmethod]
    #[pyo3(signature = (*, login=true, **options))]
    fn from_env(py: Python<'_>, login: bool, options: Option<OptionArgs>) -> PyResult<Py<Self>> {
        let factory: Factory = Arc::new(Session::cascade_from_env);
        let base = BaseClient::build(py, options, None, factory, login)?;
        Py::new(py, (Self, base))
    }

    /// The current session JWT (runs the challenge flow first if needed).
    #[getter]
    fn token(slf: &Bound<'_, Self>) -> PyResult<String> {
        let credential = slf.as_super().get().credential(slf.py())?;
        Ok(credential.token().to_owned())
    }

    /// The claims of the current session token (`sub`, `signer`, `iat`, `exp`).
    #[getter]
    fn claims<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let base = slf.as_super().get();
        base.credential(py)?;
        match base.run(py, |session| async move { Ok(session.claims().await) })? {
            Some(claims) => Ok(Some(to_json(py, &claims)?)),
            None => Ok(None),
        }
    }

    /// The JSON-RPC `auth` message for the WebSocket, with request id `id`.
    #[pyo3(signature = (id=Count(1)), text_signature = "($self, id=1)")]
    fn ws_auth_message(slf: &Bound<'_, Self>, id: Count<u64>) -> PyResult<String> {
        ws_message(slf.py(), slf.as_super().get(), id)
    }

    /// `ws_auth_message()` for asyncio.
    #[pyo3(signature = (id=Count(1)), text_signature = "($self, id=1)")]
    fn aws_auth_message<'py>(
        slf: &Bound<'py, Self>,
        id: Count<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.as_super().get().spawn(
            slf.py(),
            move |session| async move { session.ws_auth_message(id.0).await },
            convert_string,
        )
    }

    /// Interprets a WebSocket message; "Invalid Bearer Token" drops the token so the next
    /// `ws_auth_message()` carries a fresh one.
    fn handle_ws_reply(slf: &Bound<'_, Self>, text: String) -> PyResult<WsAuthReply> {
        ws_reply(slf.py(), slf.as_super().get(), text)
    }
}

/// Exchange: a permanent trader key (`x-api-key`), a static admin token (bearer), or
/// neither for public market data.
#[pyclass(frozen, extends = BaseClient, module = "tradeauth._native")]
pub(crate) struct ExchangeClient;

#[pymethods]
impl ExchangeClient {
    /// Builds the client; the key's format is checked here, nothing is sent.
    #[new]
    #[pyo3(signature = (api_key=None, admin_token=None, base_url=None, **options))]
    fn new(
        py: Python<'_>,
        api_key: Option<String>,
        admin_token: Option<String>,
        base_url: Option<&str>,
        options: Option<OptionArgs>,
    ) -> PyResult<(Self, BaseClient)> {
        let options = options.unwrap_or_default().into_options(py, base_url)?;
        let config =
            ExchangeConfig::from_parts(api_key.map(Secret::new), admin_token.map(Secret::new))
                .map_err(|e| crate::errors::to_pyerr(py, &e))?;
        let factory: Factory = Arc::new(move |o| Session::exchange(config.clone(), o));
        Ok((Self, BaseClient::create(py, factory, options, false)?))
    }

    /// From `EXCHANGE_API_KEY` or `EXCHANGE_ADMIN_TOKEN`, optional `EXCHANGE_BASE_URL` and
    /// `TRADEAUTH_CA_CERT`.
    #[staticmethod]
    #[pyo3(signature = (**options))]
    fn from_env(py: Python<'_>, options: Option<OptionArgs>) -> PyResult<Py<Self>> {
        let factory: Factory = Arc::new(Session::exchange_from_env);
        let base = BaseClient::build(py, options, None, factory, false)?;
        Py::new(py, (Self, base))
    }

    /// The WebSocket `{"op":"authenticate","api_key":...}` message (`id` is ignored).
    #[pyo3(signature = (id=Count(1)), text_signature = "($self, id=1)")]
    fn ws_auth_message(slf: &Bound<'_, Self>, id: Count<u64>) -> PyResult<String> {
        ws_message(slf.py(), slf.as_super().get(), id)
    }

    /// `ws_auth_message()` for asyncio.
    #[pyo3(signature = (id=Count(1)), text_signature = "($self, id=1)")]
    fn aws_auth_message<'py>(
        slf: &Bound<'py, Self>,
        id: Count<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.as_super().get().spawn(
            slf.py(),
            move |session| async move { session.ws_auth_message(id.0).await },
            convert_string,
        )
    }

    /// Interprets a WebSocket message (`{"type":"authenticated",..}` or an error).
    fn handle_ws_reply(slf: &Bound<'_, Self>, text: String) -> PyResult<WsAuthReply> {
        ws_reply(slf.py(), slf.as_super().get(), text)
    }
}
