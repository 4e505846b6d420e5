//! `BaseClient`: what every venue client shares (hot-path headers, authenticated requests,
//! invalidation, async variants, repr, no pickling). Fork safety is the core session's
//! own (a client inherited by a forked child rebuilds its runtime-bound parts there).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMapping, PyString, PyTuple};
use tradeauth::{Credential, HttpResponse, Method, Options, Secret, Session, Venue};

use crate::bridge::{block_on, runtime, spawn_awaitable};
use crate::errors::{Count, guard_in, invalid_argument, to_pyerr};
use crate::response::Response;

/// Builds a venue's session from options.
pub(crate) type Factory = Arc<dyn Fn(Options) -> tradeauth::Result<Session> + Send + Sync>;

/// The keyword options every client constructor takes (its `**options`), one per
/// `Options::SCHEMA` entry that names a Python keyword. `None` for any of them means the
/// default, as leaving it out does.
#[derive(Default)]
pub(crate) struct OptionArgs {
    /// Extra CA: a PEM file path (str or os.PathLike) or PEM text.
    ca_cert: Option<Py<PyAny>>,
    /// Bound on one HTTP exchange, seconds.
    timeout: Option<f64>,
    /// Bound on one TCP + TLS connect, seconds.
    connect_timeout: Option<f64>,
    /// Bound on one whole authentication incl. retries, seconds.
    auth_timeout: Option<f64>,
    /// Retries on transport errors, 5xx and 429.
    max_retries: Option<Count<u32>>,
    /// First backoff delay, seconds.
    retry_base_delay: Option<f64>,
    /// Largest backoff delay, seconds.
    retry_max_delay: Option<f64>,
    /// Renew in the background before expiry.
    background_refresh: Option<bool>,
    /// How long before expiry to renew, seconds.
    refresh_window: Option<f64>,
    /// How far a venue's `Date` may be from our clock and still be believed, seconds.
    max_date_skew: Option<f64>,
    /// The longest token lifetime believed, seconds.
    max_lifetime: Option<f64>,
    /// Shared credential store URL ("memory:", "file:///dir", "redis://...").
    store: Option<String>,
    /// The store's encryption key (64 hex chars); else `TRADEAUTH_STORE_KEY`.
    store_key: Option<String>,
    /// Allow unencrypted store records.
    store_plaintext: Option<bool>,
    /// How long a store lease lasts, seconds (the longest another process waits for a
    /// holder that died mid-refresh).
    store_lease: Option<f64>,
    /// Bound on one store operation, seconds.
    store_timeout: Option<f64>,
    /// Redis key prefix.
    store_prefix: Option<String>,
    /// A `rediss://` store's CA: a PEM file path or PEM text.
    store_ca_cert: Option<Py<PyAny>>,
    /// A connection pool of this client's own instead of the process's shared one.
    private_pool: Option<bool>,
}

/// The keywords [`OptionArgs`] takes, for the error that names an unknown one.
const OPTION_KEYWORDS: &str = "ca_cert, timeout, connect_timeout, auth_timeout, max_retries, \
     retry_base_delay, retry_max_delay, background_refresh, refresh_window, max_date_skew, \
     max_lifetime, store, store_key, store_plaintext, store_lease, store_timeout, \
     store_prefix, store_ca_cert, private_pool";

/// A keyword's value as `T`, or a `TypeError` naming the keyword and what it takes.
fn keyword<'py, T>(key: &str, value: &Bound<'py, PyAny>, takes: &str) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
{
    value
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{key} must be {takes}")))
}

impl<'a, 'py> FromPyObject<'a, 'py> for OptionArgs {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let dict = obj.cast::<PyDict>()?;
        let mut args = OptionArgs::default();
        const SECONDS: &str = "a number of seconds";
        for (key, value) in dict.iter() {
            let key: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            match key.as_str() {
                "ca_cert" => args.ca_cert = Some(value.unbind()),
                "timeout" => args.timeout = Some(keyword(&key, &value, SECONDS)?),
                "connect_timeout" => args.connect_timeout = Some(keyword(&key, &value, SECONDS)?),
                "auth_timeout" => args.auth_timeout = Some(keyword(&key, &value, SECONDS)?),
                "max_retries" => args.max_retries = Some(value.extract()?),
                "retry_base_delay" => args.retry_base_delay = Some(keyword(&key, &value, SECONDS)?),
                "retry_max_delay" => args.retry_max_delay = Some(keyword(&key, &value, SECONDS)?),
                "background_refresh" => {
                    args.background_refresh = Some(keyword(&key, &value, "a bool")?)
                }
                "refresh_window" => args.refresh_window = Some(keyword(&key, &value, SECONDS)?),
                "max_date_skew" => args.max_date_skew = Some(keyword(&key, &value, SECONDS)?),
                "max_lifetime" => args.max_lifetime = Some(keyword(&key, &value, SECONDS)?),
                "store" => args.store = Some(keyword(&key, &value, "a store URL string")?),
                "store_key" => args.store_key = Some(keyword(&key, &value, "a key string")?),
                "store_plaintext" => args.store_plaintext = Some(keyword(&key, &value, "a bool")?),
                "store_lease" => args.store_lease = Some(keyword(&key, &value, SECONDS)?),
                "store_timeout" => args.store_timeout = Some(keyword(&key, &value, SECONDS)?),
                "store_prefix" => args.store_prefix = Some(keyword(&key, &value, "a string")?),
                "store_ca_cert" => args.store_ca_cert = Some(value.unbind()),
                "private_pool" => args.private_pool = Some(keyword(&key, &value, "a bool")?),
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument '{other}' (the options are: \
                         {OPTION_KEYWORDS})"
                    )));
                }
            }
        }
        Ok(args)
    }
}

/// Seconds from Python to a `Duration`, rejecting negative, NaN and infinite values.
pub(crate) fn seconds(py: Python<'_>, name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid_argument(
            py,
            format!("{name} must be a finite, non-negative number of seconds"),
        )
    })
}

/// More than zero seconds: a zero lease or store timeout would make every call fail.
pub(crate) fn positive_seconds(py: Python<'_>, name: &str, value: f64) -> PyResult<Duration> {
    let d = seconds(py, name, value)?;
    if d.is_zero() {
        return Err(invalid_argument(
            py,
            format!("{name} must be more than 0 seconds"),
        ));
    }
    Ok(d)
}

/// Where a `ca_cert`-style keyword's certificates are: PEM text itself, or a file.
enum Pem {
    Text(String),
    File(PathBuf),
}

/// A `ca_cert`-style keyword's value: a str holding a PEM block is the text; any other
/// str or os.PathLike is a path (core reads and checks either).
fn pem_source(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Pem> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_cow()?;
        if text.contains("-----BEGIN") {
            return Ok(Pem::Text(text.into_owned()));
        }
    }
    value
        .extract()
        .map(Pem::File)
        .map_err(|_| invalid_argument(py, format!("{name} must be a PEM file path or PEM text")))
}

impl OptionArgs {
    /// The core `Options` for these keywords and a base URL (`None`: the venue's default,
    /// or the environment for `from_env`).
    pub(crate) fn into_options(self, py: Python<'_>, base_url: Option<&str>) -> PyResult<Options> {
        let mut options = Options::new();
        if let Some(url) = base_url {
            options = options.base_url(url);
        }
        if let Some(ca) = self.ca_cert {
            options = match pem_source(py, "ca_cert", ca.bind(py))? {
                Pem::Text(pem) => options.try_add_root_pem(pem),
                Pem::File(path) => options.add_root_file(path),
            }
            .map_err(|e| to_pyerr(py, &e))?;
        }
        if let Some(t) = self.timeout {
            options = options.request_timeout(seconds(py, "timeout", t)?);
        }
        if let Some(t) = self.connect_timeout {
            options.connect_timeout = positive_seconds(py, "connect_timeout", t)?;
        }
        if let Some(t) = self.auth_timeout {
            options = options.auth_timeout(seconds(py, "auth_timeout", t)?);
        }
        if let Some(n) = self.max_retries {
            options = options.max_retries(n.0);
        }
        if self.retry_base_delay.is_some() || self.retry_max_delay.is_some() {
            let base = match self.retry_base_delay {
                Some(d) => seconds(py, "retry_base_delay", d)?,
                None => options.retry_base_delay,
            };
            let max = match self.retry_max_delay {
                Some(d) => seconds(py, "retry_max_delay", d)?,
                None => options.retry_max_delay,
            };
            options = options
                .try_retry_delays(base, max)
                .map_err(|e| to_pyerr(py, &e))?;
        }
        if let Some(b) = self.background_refresh {
            options = options.background_refresh(b);
        }
        if let Some(w) = self.refresh_window {
            options = options.refresh_window(seconds(py, "refresh_window", w)?);
        }
        if let Some(d) = self.max_date_skew {
            options = options.max_date_skew(seconds(py, "max_date_skew", d)?);
        }
        if let Some(d) = self.max_lifetime {
            options = options.max_lifetime(seconds(py, "max_lifetime", d)?);
        }
        if let Some(url) = self.store {
            options = options.store(url);
        }
        if let Some(key) = self.store_key {
            options = options.store_key(Secret::new(key));
        }
        if let Some(p) = self.private_pool {
            options = options.private_pool(p);
        }
        if let Some(p) = self.store_plaintext {
            options = options.store_plaintext(p);
        }
        if let Some(lease) = self.store_lease {
            options = options.store_lease_ttl(positive_seconds(py, "store_lease", lease)?);
        }
        if let Some(t) = self.store_timeout {
            options = options.store_timeout(positive_seconds(py, "store_timeout", t)?);
        }
        if let Some(prefix) = self.store_prefix {
            options = options.store_prefix(prefix);
        }
        if let Some(ca) = self.store_ca_cert {
            options = match pem_source(py, "store_ca_cert", ca.bind(py))? {
                Pem::Text(pem) => options.try_store_ca_pem(pem),
                Pem::File(path) => options.store_ca_file(path),
            }
            .map_err(|e| to_pyerr(py, &e))?;
        }
        Ok(options)
    }
}

/// Common base of the venue clients; not constructible itself.
#[pyclass(frozen, subclass, module = "tradeauth._native")]
pub(crate) struct BaseClient {
    session: Session,
    /// The session's machine sends requests without a credential (Exchange without a key).
    public: bool,
    venue: Venue,
    account: String,
    base_url: String,
}

/// The header name as the pages write it.
fn display_name(name: &str) -> &str {
    if name == "authorization" {
        "Authorization"
    } else {
        name
    }
}

impl BaseClient {
    /// Builds the session on the shared runtime (so its refresher and log forwarder run
    /// there) and, if `login`, authenticates before returning (GIL released).
    /// A venue client's base from its constructor's `**options` keywords and base URL
    /// (`None`: the venue's default), read and checked first, then the session that
    /// `factory` makes; logs in now if `login`. What every `__new__` and `from_env` ends
    /// with.
    pub(crate) fn build(
        py: Python<'_>,
        options: Option<OptionArgs>,
        base_url: Option<&str>,
        factory: Factory,
        login: bool,
    ) -> PyResult<Self> {
        let options = options.unwrap_or_default().into_options(py, base_url)?;
        Self::create(py, factory, options, login)
    }

    pub(crate) fn create(
        py: Python<'_>,
        factory: Factory,
        options: Options,
        login: bool,
    ) -> PyResult<Self> {
        let wants_store = options.store.is_some();
        let session = start(py, &factory, options)?;
        if wants_store && !session.capabilities().shareable {
            // Before this took `**options`, the keyword did not exist for these venues:
            // say so rather than ignore it.
            return Err(invalid_argument(
                py,
                format!(
                    "store= is for venues whose login can be shared; {} has nothing to share",
                    session.venue().as_str()
                ),
            ));
        }
        crate::metrics::register(&session);
        let client = BaseClient {
            public: session.capabilities().public,
            venue: session.venue(),
            account: session.account().to_owned(),
            base_url: session.base_url().to_owned(),
            session,
        };
        if login && !client.public {
            client.credential(py)?;
        }
        Ok(client)
    }

    /// The client's session (an `Arc` clone).
    pub(crate) fn session(&self, _py: Python<'_>) -> PyResult<Session> {
        Ok(self.session.clone())
    }

    /// A valid credential: the cached one without blocking, else one login/refresh (GIL
    /// released while it runs).
    pub(crate) fn credential(&self, py: Python<'_>) -> PyResult<Arc<Credential>> {
        let session = self.session(py)?;
        if let Some(credential) = session.current() {
            return Ok(credential);
        }
        block_on(py, async move { session.credential().await })
    }

    /// Runs an async session call with the GIL released.
    pub(crate) fn run<T, F, Fut>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = tradeauth::Result<T>> + Send,
        T: Send,
    {
        let session = self.session(py)?;
        block_on(py, f(session))
    }

    /// Starts an async session call and returns an asyncio future of its result.
    pub(crate) fn spawn<'py, T, F, Fut>(
        &self,
        py: Python<'py>,
        f: F,
        convert: crate::bridge::Convert<T>,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = tradeauth::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let session = self.session(py)?;
        spawn_awaitable(py, f(session), convert)
    }
}

/// Builds a session inside the shared runtime's context and forwards its events to the
/// `tradeauth` logger in every process that uses it (core re-runs the hook in a forked
/// child, where the session has new parts and the runtime is new).
fn start(py: Python<'_>, factory: &Factory, options: Options) -> PyResult<Session> {
    let rt = runtime(py)?;
    let session = guard_in(py, "the client constructor", || {
        let _entered = rt.enter();
        factory(options).map_err(|e| to_pyerr(py, &e))
    })?;
    session.on_each_process(crate::logs::forward);
    Ok(session)
}

/// `headers()` as a Python dict: `{"Authorization": "Bearer ..."}` or `{"x-api-key": ...}`.
fn header_dict<'py>(
    py: Python<'py>,
    credential: Option<&Credential>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    if let Some(c) = credential {
        // The two possible names are interned once, not built on every call.
        match c.header_name() {
            "authorization" => dict.set_item(pyo3::intern!(py, "Authorization"), c.header_value()),
            "x-api-key" => dict.set_item(pyo3::intern!(py, "x-api-key"), c.header_value()),
            other => dict.set_item(display_name(other), c.header_value()),
        }?;
    }
    Ok(dict)
}

/// Converts an optional credential to the `headers()` dict (asyncio path).
fn convert_headers(py: Python<'_>, credential: Option<Arc<Credential>>) -> PyResult<Py<PyAny>> {
    Ok(header_dict(py, credential.as_deref())?.into_any().unbind())
}

/// Converts `()` to `None` (asyncio path).
fn convert_none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// A request copied into owned Rust values before the GIL is released.
struct RequestArgs {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

/// The method name (any case) as the core's `Method`.
fn parse_method(py: Python<'_>, method: &str) -> PyResult<Method> {
    method
        .parse()
        .map_err(|_| invalid_argument(py, "method must be one of GET, POST, PUT, PATCH, DELETE"))
}

/// `str(value)`, or the text itself for `str`.
fn text_of(value: &Bound<'_, PyAny>) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Ok(value.str()?.to_cow()?.into_owned()),
    }
}

/// Pairs from a mapping or a sequence of 2-tuples; a list/tuple value repeats the key
/// (as `requests` does) and `None` values are skipped.
fn pairs(py: Python<'_>, what: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = if let Ok(m) = value.cast::<PyMapping>()
    {
        m.items()?.extract()?
    } else {
        value.extract().map_err(|_| {
            invalid_argument(
                py,
                format!("{what} must be a mapping or a sequence of pairs"),
            )
        })?
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let key = text_of(&k)?;
        if v.is_none() {
            continue;
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            for item in v.try_iter()? {
                out.push((key.clone(), text_of(&item?)?));
            }
        } else {
            out.push((key, text_of(&v)?));
        }
    }
    Ok(out)
}

/// Copies `request()`'s Python arguments into owned Rust values (body encoded here).
#[allow(clippy::too_many_arguments)]
fn request_args(
    py: Python<'_>,
    method: &str,
    endpoint: &str,
    params: Option<&Bound<'_, PyAny>>,
    json: Option<&Bound<'_, PyAny>>,
    data: Option<&Bound<'_, PyAny>>,
    headers: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<RequestArgs> {
    let method = parse_method(py, method)?;
    let query = match params {
        Some(p) if !p.is_none() => pairs(py, "params", p)?,
        _ => Vec::new(),
    };
    let mut header_pairs = match headers {
        Some(h) if !h.is_none() => pairs(py, "headers", h)?,
        _ => Vec::new(),
    };
    let json = json.filter(|j| !j.is_none());
    let data = data.filter(|d| !d.is_none());
    let mut content_type = None;
    let body = match (json, data) {
        (Some(_), Some(_)) => {
            return Err(invalid_argument(py, "pass json= or data=, not both"));
        }
        (Some(j), None) => {
            let text: String = py.import("json")?.call_method1("dumps", (j,))?.extract()?;
            content_type = Some("application/json");
            Some(text.into_bytes())
        }
        (None, Some(d)) => {
            if let Ok(b) = d.cast::<PyBytes>() {
                Some(b.as_bytes().to_vec())
            } else if let Ok(s) = d.cast::<PyString>() {
                Some(s.to_cow()?.as_bytes().to_vec())
            } else {
                let form = pairs(py, "data", d)?;
                let encoded: String = py
                    .import("urllib.parse")?
                    .call_method1("urlencode", (form,))?
                    .extract()?;
                content_type = Some("application/x-www-form-urlencoded");
                Some(encoded.into_bytes())
            }
        }
        (None, None) => None,
    };
    if let Some(ct) = content_type
        && !header_pairs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        header_pairs.push(("content-type".to_owned(), ct.to_owned()));
    }
    Ok(RequestArgs {
        method,
        path: endpoint.to_owned(),
        query,
        headers: header_pairs,
        body,
        timeout: timeout.map(|t| seconds(py, "timeout", t)).transpose()?,
    })
}

/// Sends one authenticated request through the session (401 -> renew + retry once).
async fn send(
    session: Session,
    args: RequestArgs,
) -> tradeauth::Result<(HttpResponse, Method, String)> {
    let mut builder = session.request(args.method, args.path.clone());
    for (k, v) in &args.query {
        builder = builder.query(k, v);
    }
    for (k, v) in &args.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = args.body {
        builder = builder.body(body);
    }
    if let Some(t) = args.timeout {
        builder = builder.timeout(t);
    }
    let response = builder.send().await?;
    let url = format!(
        "{}{}",
        session.base_url().trim_end_matches('/'),
        ensure_slash(&args.path)
    );
    Ok((response, args.method, url))
}

/// `path` with a leading slash.
fn ensure_slash(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// Wraps a finished request as a `Response` (asyncio path).
fn convert_response(py: Python<'_>, out: (HttpResponse, Method, String)) -> PyResult<Py<PyAny>> {
    let (response, method, url) = out;
    Ok(Py::new(py, Response::new(response, method.as_str(), url))?.into_any())
}

/// The credential a caller sent, from the headers dict it attached.
fn sent_credential(py: Python<'_>, sent: &Bound<'_, PyAny>) -> PyResult<Option<Credential>> {
    for (name, value) in pairs(py, "headers", sent)? {
        let header: &'static str = if name.eq_ignore_ascii_case("authorization") {
            "authorization"
        } else if name.eq_ignore_ascii_case("x-api-key") {
            "x-api-key"
        } else {
            continue;
        };
        return Credential::new(header, Secret::from(value), None, None)
            .map(Some)
            .map_err(|e| to_pyerr(py, &e));
    }
    Ok(None)
}

#[pymethods]
impl BaseClient {
    /// The venue: "cadenza", "partner", "cascade" or "exchange".
    #[getter(venue)]
    fn py_venue(&self) -> &'static str {
        self.venue.as_str()
    }

    /// The account label (email, client id, deposit address, role); never a secret.
    #[getter]
    fn account(&self) -> &str {
        &self.account
    }

    /// The venue base URL requests go to.
    #[getter]
    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A snapshot of this client's counters and gauges as a dict (logins, refreshes,
    /// relogins, renewal_failures, renewal_seconds, expires_in_seconds, ...); no I/O.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::metrics::as_dict(py, &self.session.metrics())
    }

    /// Whether the venue can issue a new credential after a 401 (not Exchange's keys).
    #[getter]
    fn renewable(&self) -> bool {
        self.session.capabilities().renewable
    }

    /// The hot path: the current auth header as a dict. Reads the cached credential
    /// without a lock or I/O; only when none is valid does it authenticate (GIL released).
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        {
            // Borrow the cached credential (no `Arc` clone) and build the dict from it.
            if let Some(dict) = self
                .session
                .with_current(|credential| credential.map(|c| header_dict(py, Some(c))))
            {
                return dict;
            }
        }
        if self.public {
            return header_dict(py, None);
        }
        let credential = self.credential(py)?;
        header_dict(py, Some(&credential))
    }

    /// The current auth header dict if a valid credential is cached, else None; never
    /// blocks (`{}` for a public Exchange client).
    fn current_headers<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        if let Some(credential) = self.session.current() {
            return header_dict(py, Some(&credential)).map(Some);
        }
        if self.public {
            return header_dict(py, None).map(Some);
        }
        Ok(None)
    }

    /// `headers()` for asyncio: awaits the login/refresh on the library's runtime.
    fn aheaders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let public = self.public;
        self.spawn(
            py,
            move |session| async move {
                if public && session.current().is_none() {
                    return Ok(None);
                }
                session.credential().await.map(Some)
            },
            convert_headers,
        )
    }

    /// An authenticated request to `endpoint` (relative to the base URL). On 401 the
    /// credential is renewed once and the request retried once; GET/PUT/DELETE are also
    /// retried on network errors, 5xx and 429. Returns a `Response`.
    #[pyo3(signature = (method, endpoint, *, params=None, json=None, data=None, headers=None, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        endpoint: &str,
        params: Option<&Bound<'_, PyAny>>,
        json: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Response> {
        let args = request_args(py, method, endpoint, params, json, data, headers, timeout)?;
        let (response, method, url) = self.run(py, move |session| send(session, args))?;
        Ok(Response::new(response, method.as_str(), url))
    }

    /// `request()` for asyncio: runs on the library's runtime, awaitable from the loop.
    #[pyo3(signature = (method, endpoint, *, params=None, json=None, data=None, headers=None, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn arequest<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        endpoint: &str,
        params: Option<&Bound<'_, PyAny>>,
        json: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = request_args(py, method, endpoint, params, json, data, headers, timeout)?;
        self.spawn(py, move |session| send(session, args), convert_response)
    }

    /// Your own transport saw the venue reject the headers you sent (HTTP 401): drop that
    /// credential so the next `headers()` renews it. Stale reports are ignored.
    fn invalidate(&self, py: Python<'_>, sent_headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(credential) = sent_credential(py, sent_headers)? else {
            return Ok(());
        };
        self.run(py, move |session| async move {
            session.invalidate(&credential).await;
            Ok(())
        })
    }

    /// `invalidate()` for asyncio.
    fn ainvalidate<'py>(
        &self,
        py: Python<'py>,
        sent_headers: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let credential = sent_credential(py, sent_headers)?;
        self.spawn(
            py,
            move |session| async move {
                if let Some(credential) = credential {
                    session.invalidate(&credential).await;
                }
                Ok(())
            },
            convert_none,
        )
    }

    /// Renews the credential now (Cadenza: with the refresh token). No-op for Exchange.
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        if !self.renewable() {
            return Ok(());
        }
        self.run(
            py,
            |session| async move { session.refresh().await.map(|_| ()) },
        )
    }

    /// `refresh()` for asyncio.
    fn arefresh<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let renewable = self.renewable();
        self.spawn(
            py,
            move |session| async move {
                if renewable {
                    session.refresh().await?;
                }
                Ok(())
            },
            convert_none,
        )
    }

    /// Wipes every credential held in memory; the next use logs in again.
    fn logout(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |session| async move {
            session.logout().await;
            Ok(())
        })
    }

    /// `logout()` for asyncio.
    fn alogout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(
            py,
            |session| async move {
                session.logout().await;
                Ok(())
            },
            convert_none,
        )
    }

    /// An authenticated WebSocket to `path` on the venue (`"/ws"`), for asyncio:
    /// `async with client.websocket("/ws") as ws:` connects and authenticates with this
    /// client's credential, and keeps the connection authenticated and reconnected.
    /// Options in seconds: `idle_timeout` (silence before a reconnect, default 30),
    /// `ping_interval` (default a third of it), `hold_timeout` (how long a private message
    /// may wait for auth, default 30), `auth_timeout` (default the request timeout).
    #[pyo3(signature = (path, *, idle_timeout=None, ping_interval=None, hold_timeout=None, auth_timeout=None))]
    fn websocket(
        &self,
        py: Python<'_>,
        path: &str,
        idle_timeout: Option<f64>,
        ping_interval: Option<f64>,
        hold_timeout: Option<f64>,
        auth_timeout: Option<f64>,
    ) -> PyResult<crate::ws::WebSocket> {
        let args = crate::ws::WsArgs {
            idle_timeout,
            ping_interval,
            hold_timeout,
            auth_timeout,
        };
        crate::ws::WebSocket::new(py, self.session(py)?, path, args)
    }

    /// `websocket()`'s blocking twin: `with client.websocket_sync("/ws") as ws:`.
    #[pyo3(signature = (path, *, idle_timeout=None, ping_interval=None, hold_timeout=None, auth_timeout=None))]
    fn websocket_sync(
        &self,
        py: Python<'_>,
        path: &str,
        idle_timeout: Option<f64>,
        ping_interval: Option<f64>,
        hold_timeout: Option<f64>,
        auth_timeout: Option<f64>,
    ) -> PyResult<crate::ws::WebSocketSync> {
        let args = crate::ws::WsArgs {
            idle_timeout,
            ping_interval,
            hold_timeout,
            auth_timeout,
        };
        crate::ws::WebSocketSync::new(py, self.session(py)?, path, args)
    }

    /// A `requests.auth.AuthBase` that attaches `headers()` and retries once on 401.
    fn requests_auth<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("tradeauth.requests")?
            .getattr("RequestsAuth")?
            .call1((slf,))
    }

    /// An `httpx.Auth` that attaches `headers()` and retries once on 401 (sync and async).
    fn httpx_auth<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("tradeauth.httpx")?
            .getattr("HttpxAuth")?
            .call1((slf,))
    }

    /// `CadenzaClient(venue='cadenza', account='you@example.com', base_url='https://...')`:
    /// the venue and the account label, never a secret.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.get();
        let quoted = |s: &str| -> PyResult<String> {
            Ok(PyString::new(py, s).repr()?.to_cow()?.into_owned())
        };
        Ok(format!(
            "{}(venue={}, account={}, base_url={})",
            slf.get_type().name()?,
            quoted(this.venue.as_str())?,
            quoted(&this.account)?,
            quoted(&this.base_url)?
        ))
    }

    /// Refuses pickling and copying: a client holds secrets and a live session.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "tradeauth clients hold secrets and cannot be pickled or copied; build a new \
             client in the other process (e.g. with from_env())",
        ))
    }
}
