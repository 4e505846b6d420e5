//! `Response` (shaped like a `requests.Response`) and `WsAuthReply`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tradeauth::{Error, ErrorKind, HttpResponse, WsAuthReply as CoreReply};

use crate::errors::to_pyerr;

/// The venue's answer to `request()`: `status_code`, `headers`, `text`, `content`,
/// `json()`, `raise_for_status()`, as on a `requests.Response`.
#[pyclass(frozen, module = "tradeauth._native")]
pub(crate) struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    method: &'static str,
    url: String,
}

impl Response {
    /// Wraps the driver's response to `method url`.
    pub(crate) fn new(mut response: HttpResponse, method: &'static str, url: String) -> Self {
        // Taken, not copied: the driver's response wipes whatever it still holds on drop.
        Response {
            status: response.status,
            headers: std::mem::take(&mut response.headers),
            body: std::mem::take(&mut response.body),
            method,
            url,
        }
    }
}

#[pymethods]
impl Response {
    /// The HTTP status code.
    #[getter]
    fn status_code(&self) -> u16 {
        self.status
    }

    /// Whether the status is below 400.
    #[getter]
    fn ok(&self) -> bool {
        self.status < 400
    }

    /// The response headers (lowercase names; repeated headers joined with ", ").
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in &self.headers {
            match dict.get_item(name)? {
                Some(previous) => {
                    let joined = format!("{}, {value}", previous.extract::<String>()?);
                    dict.set_item(name, joined)?;
                }
                None => dict.set_item(name, value)?,
            }
        }
        Ok(dict)
    }

    /// The body as bytes.
    #[getter]
    fn content<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    /// The body decoded as UTF-8 (invalid bytes replaced).
    #[getter]
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The URL the request went to (no secret: credentials travel in headers only).
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The body parsed as JSON (raises `json.JSONDecodeError`, a `ValueError`, if it is not).
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (PyBytes::new(py, &self.body),))
    }

    /// Raises `Unauthorized` for 401/403 and `ApiError` for any other status >= 400.
    fn raise_for_status(&self, py: Python<'_>) -> PyResult<()> {
        if self.status < 400 {
            return Ok(());
        }
        let kind = if matches!(self.status, 401 | 403) {
            ErrorKind::Unauthorized
        } else {
            ErrorKind::ApiError
        };
        let path = self.url.split('?').next().unwrap_or_default();
        let error = Error::new(
            kind,
            format!("{} {path} answered HTTP {}", self.method, self.status),
        )
        .with_status(self.status)
        .with_retryable(self.status == 429 || self.status >= 500);
        Err(to_pyerr(py, &error))
    }

    /// `<Response [200]>`, as `requests` shows it.
    fn __repr__(&self) -> String {
        format!("<Response [{}]>", self.status)
    }
}

/// What a WebSocket message meant for authentication (`handle_ws_reply`).
#[pyclass(frozen, module = "tradeauth._native")]
pub(crate) struct WsAuthReply {
    kind: &'static str,
    detail: Option<String>,
    message: Option<String>,
}

impl WsAuthReply {
    /// Converts the core's reply.
    pub(crate) fn from_core(reply: CoreReply) -> Self {
        match reply {
            CoreReply::Authenticated { detail } => WsAuthReply {
                kind: "authenticated",
                detail: Some(detail.to_string()),
                message: None,
            },
            CoreReply::Rejected { message } => WsAuthReply {
                kind: "rejected",
                detail: None,
                message: Some(message),
            },
            CoreReply::Unrelated => WsAuthReply {
                kind: "unrelated",
                detail: None,
                message: None,
            },
        }
    }
}

#[pymethods]
impl WsAuthReply {
    /// `"authenticated"`, `"rejected"` or `"unrelated"` (not an auth reply).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether the venue accepted the auth message.
    #[getter]
    fn authenticated(&self) -> bool {
        self.kind == "authenticated"
    }

    /// The venue's answer when authenticated (JSON-RPC `result` or the whole message).
    #[getter]
    fn detail<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match &self.detail {
            Some(text) => Ok(Some(py.import("json")?.call_method1("loads", (text,))?)),
            None => Ok(None),
        }
    }

    /// The venue's rejection message (e.g. "Invalid Bearer Token").
    #[getter]
    fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// True when authenticated.
    fn __bool__(&self) -> bool {
        self.authenticated()
    }

    /// `WsAuthReply(kind="...")`.
    fn __repr__(&self) -> String {
        format!("WsAuthReply(kind={:?})", self.kind)
    }
}
