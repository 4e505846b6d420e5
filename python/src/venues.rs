//! The four venue clients, named and shaped like the venue pages' code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use tradeauth::signer::ExternalSigner;
use tradeauth::{
    CadenzaConfig, CascadeConfig, ExchangeConfig, NewSecret, PartnerConfig, Secret, Session,
};

use crate::client::{BaseClient, Factory, OptionArgs, positive_seconds};
use crate::errors::{Count, invalid_argument, to_pyerr};
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

/// `update_credentials` shared by every client: hands the new secret to the session
/// (GIL released); the next renewal uses it.
fn rotate(py: Python<'_>, base: &BaseClient, secret: NewSecret) -> PyResult<()> {
    base.run(py, move |session| async move {
        session.update_credentials(secret).await
    })
}

/// The Cascade keyword arguments that name the delegate key's source (constructor and
/// `update_credentials`). Exactly one of the key, the keystore or the signer.
struct CascadeKeyArgs {
    delegate_private_key: Option<String>,
    keystore: Option<PathBuf>,
    keystore_password: Option<Py<PyAny>>,
    keystore_password_file: Option<PathBuf>,
    signer: Option<Py<PyAny>>,
    delegate_address: Option<String>,
    signer_timeout: Option<f64>,
}

/// Where a Cascade client's delegate signatures come from, checked.
enum CascadeKey {
    /// The hex private key (from the argument or a decrypted keystore).
    Key(Secret),
    /// A Python callable.
    Signer(ExternalSigner),
}

/// One trailing newline (`\n` or `\r\n`) off a password file's content, as the `_FILE`
/// environment variables do.
fn strip_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

impl CascadeKeyArgs {
    /// The one key source these arguments name; anything else is `InvalidArgument`.
    fn resolve(self, py: Python<'_>) -> PyResult<CascadeKey> {
        let sources = [
            self.delegate_private_key.is_some(),
            self.keystore.is_some(),
            self.signer.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count();
        if sources != 1 {
            return Err(invalid_argument(
                py,
                format!(
                    "Cascade needs exactly one delegate key source: delegate_private_key=, \
                     keystore= (with keystore_password= or keystore_password_file=) or \
                     signer= (with delegate_address=); {sources} given"
                ),
            ));
        }
        let password_given =
            self.keystore_password.is_some() || self.keystore_password_file.is_some();
        if self.keystore.is_none() && password_given {
            return Err(invalid_argument(
                py,
                "keystore_password= and keystore_password_file= go with keystore=",
            ));
        }
        if self.signer.is_none()
            && (self.delegate_address.is_some() || self.signer_timeout.is_some())
        {
            return Err(invalid_argument(
                py,
                "delegate_address= and signer_timeout= go with signer=",
            ));
        }
        if let Some(key) = self.delegate_private_key {
            return Ok(CascadeKey::Key(Secret::new(key)));
        }
        if let Some(path) = self.keystore {
            let password = match (self.keystore_password, self.keystore_password_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid_argument(
                        py,
                        "pass keystore_password= or keystore_password_file=, not both",
                    ));
                }
                (None, None) => {
                    return Err(invalid_argument(
                        py,
                        format!(
                            "keystore= {} needs keystore_password= or keystore_password_file=",
                            path.display()
                        ),
                    ));
                }
                (Some(password), None) => {
                    let password = password.bind(py);
                    if let Ok(text) = password.cast::<PyString>() {
                        PasswordBytes(text.to_cow()?.as_bytes().to_vec())
                    } else if let Ok(bytes) = password.cast::<PyBytes>() {
                        PasswordBytes(bytes.as_bytes().to_vec())
                    } else {
                        return Err(invalid_argument(
                            py,
                            "keystore_password must be str or bytes",
                        ));
                    }
                }
                (None, Some(file)) => {
                    let bytes = std::fs::read(&file).map_err(|e| {
                        invalid_argument(
                            py,
                            format!(
                                "keystore_password_file: cannot read {} ({})",
                                file.display(),
                                e.kind()
                            ),
                        )
                    })?;
                    PasswordBytes(strip_newline(bytes))
                }
            };
            // scrypt can take a while: decrypt with the GIL released.
            let config = py
                .detach(|| CascadeConfig::from_keystore(String::new(), &path, &password))
                .map_err(|e| to_pyerr(py, &e))?;
            return Ok(CascadeKey::Key(config.delegate_private_key));
        }
        let signer = self.signer.expect("one source is given");
        if !signer.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "signer must be a callable taking the 32-byte digest and returning bytes",
            ));
        }
        let Some(address) = self.delegate_address else {
            return Err(invalid_argument(
                py,
                "signer= needs delegate_address= (the address the signer signs for)",
            ));
        };
        let signer = crate::signer::PySigner::new(signer);
        let mut external = ExternalSigner::new(signer, &address).map_err(|e| to_pyerr(py, &e))?;
        if let Some(timeout) = self.signer_timeout {
            external = external
                .with_timeout(positive_seconds(py, "signer_timeout", timeout)?)
                .map_err(|e| to_pyerr(py, &e))?;
        }
        Ok(CascadeKey::Signer(external))
    }
}

/// Bytes overwritten with zeros on drop (a keystore password).
struct PasswordBytes(Vec<u8>);

impl std::ops::Deref for PasswordBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PasswordBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference; volatile so the wipe
            // is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
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

    /// Replaces the password (rotation without a restart): the next login uses it; the
    /// current tokens stay in use until then.
    #[pyo3(signature = (*, password))]
    fn update_credentials(slf: &Bound<'_, Self>, password: String) -> PyResult<()> {
        rotate(
            slf.py(),
            slf.as_super().get(),
            NewSecret::Password(Secret::new(password)),
        )
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

    /// Replaces the HS256 secret key (rotation without a restart): the next minted token
    /// is signed with it.
    #[pyo3(signature = (*, secret_key))]
    fn update_credentials(slf: &Bound<'_, Self>, secret_key: String) -> PyResult<()> {
        rotate(
            slf.py(),
            slf.as_super().get(),
            NewSecret::PartnerSecret(Secret::new(secret_key)),
        )
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
    /// Exactly one key source: `delegate_private_key`, `keystore=` (a Web3 Secret Storage
    /// v3 file) with `keystore_password=` or `keystore_password_file=`, or `signer=` (a
    /// callable signing the 32-byte digest) with `delegate_address=`.
    #[new]
    #[pyo3(
        signature = (deposit_address, delegate_private_key=None, base_url=None, *, keystore=None, keystore_password=None, keystore_password_file=None, signer=None, delegate_address=None, signer_timeout=None, login=true, **options),
        text_signature = "(deposit_address, delegate_private_key=None, base_url=None, *, keystore=None, keystore_password=None, keystore_password_file=None, signer=None, delegate_address=None, signer_timeout=10.0, login=True, **options)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        deposit_address: String,
        delegate_private_key: Option<String>,
        base_url: Option<&str>,
        keystore: Option<PathBuf>,
        keystore_password: Option<Py<PyAny>>,
        keystore_password_file: Option<PathBuf>,
        signer: Option<Py<PyAny>>,
        delegate_address: Option<String>,
        signer_timeout: Option<f64>,
        login: bool,
        options: Option<OptionArgs>,
    ) -> PyResult<(Self, BaseClient)> {
        let key = CascadeKeyArgs {
            delegate_private_key,
            keystore,
            keystore_password,
            keystore_password_file,
            signer,
            delegate_address,
            signer_timeout,
        }
        .resolve(py)?;
        let config = match key {
            CascadeKey::Key(hex_key) => CascadeConfig::new(deposit_address, hex_key),
            CascadeKey::Signer(signer) => CascadeConfig::with_signer(deposit_address, signer),
        };
        let factory: Factory = Arc::new(move |o| Session::cascade(config.clone(), o));
        let base = BaseClient::build(py, options, base_url, factory, login)?;
        Ok((Self, base))
    }

    /// Replaces the delegate key source (rotation without a restart): exactly one of
    /// `delegate_private_key=`, `keystore=` (+ password) or `signer=` (+
    /// `delegate_address=`), as in the constructor. The next challenge is signed with it;
    /// the current session token stays in use until then.
    #[pyo3(
        signature = (*, delegate_private_key=None, keystore=None, keystore_password=None, keystore_password_file=None, signer=None, delegate_address=None, signer_timeout=None),
        text_signature = "($self, *, delegate_private_key=None, keystore=None, keystore_password=None, keystore_password_file=None, signer=None, delegate_address=None, signer_timeout=10.0)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn update_credentials(
        slf: &Bound<'_, Self>,
        delegate_private_key: Option<String>,
        keystore: Option<PathBuf>,
        keystore_password: Option<Py<PyAny>>,
        keystore_password_file: Option<PathBuf>,
        signer: Option<Py<PyAny>>,
        delegate_address: Option<String>,
        signer_timeout: Option<f64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let key = CascadeKeyArgs {
            delegate_private_key,
            keystore,
            keystore_password,
            keystore_password_file,
            signer,
            delegate_address,
            signer_timeout,
        }
        .resolve(py)?;
        let secret = match key {
            CascadeKey::Key(hex_key) => NewSecret::DelegateKey(hex_key),
            CascadeKey::Signer(signer) => NewSecret::Signer(signer),
        };
        rotate(py, slf.as_super().get(), secret)
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

    /// Replaces the trader API key (rotation without a restart): served at once.
    #[pyo3(signature = (*, api_key))]
    fn update_credentials(slf: &Bound<'_, Self>, api_key: String) -> PyResult<()> {
        rotate(
            slf.py(),
            slf.as_super().get(),
            NewSecret::ApiKey(Secret::new(api_key)),
        )
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
