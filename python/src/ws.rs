//! `client.websocket(path)` (asyncio) and `client.websocket_sync(path)` (blocking): the
//! core's WebSocket client that stays authenticated (`tradeauth::WsClient`), as a context
//! manager and an iterator of the venue's messages (parsed JSON), in order.
//!
//! The connection is made when the context is entered (or `connect()` is called), not when
//! the object is built; closing the context closes it. Waiting never holds the GIL: the
//! asyncio class resolves `asyncio.Future`s from the library's runtime, the blocking one
//! runs its calls through `bridge::block_on`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use serde_json::Value;
use tradeauth::{Error, ErrorKind, Privacy, Session, WsBuilder, WsClient};

use crate::bridge::{block_on, spawn_awaitable};
use crate::client::{positive_seconds, seconds};
use crate::errors::{invalid_argument, to_pyerr};

/// The keyword options of `client.websocket()` / `client.websocket_sync()`, in seconds
/// (`None`: the library's default).
pub(crate) struct WsArgs {
    /// No frame for this long: the connection is taken for dead and replaced.
    pub(crate) idle_timeout: Option<f64>,
    /// How often a ping goes out on a quiet connection.
    pub(crate) ping_interval: Option<f64>,
    /// How long a private message may wait for authentication before its send fails.
    pub(crate) hold_timeout: Option<f64>,
    /// How long the venue may take to answer the auth message.
    pub(crate) auth_timeout: Option<f64>,
}

/// Where one Python WebSocket object stands.
enum Slot {
    /// Built, not connected yet: the builder to connect with.
    Ready(Box<WsBuilder>),
    /// `connect()` is running.
    Connecting,
    /// Connected (the core client reconnects by itself from here on).
    Open(Arc<WsClient>),
    /// Closed by the caller, or the connect failed.
    Closed,
}

/// The state shared by a Python WebSocket object and the futures it starts.
#[derive(Clone)]
struct Conn(Arc<Mutex<Slot>>);

/// Marks a connect that never finished (its future was cancelled) as closed.
struct ConnectGuard(Option<Conn>);

impl Drop for ConnectGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            let mut slot = conn.lock();
            if matches!(*slot, Slot::Connecting) {
                *slot = Slot::Closed;
            }
        }
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Transport, "the WebSocket client is closed")
}

impl Conn {
    /// The builder for `session`'s WebSocket at `path`, with the keyword options checked.
    fn new(py: Python<'_>, session: Session, path: &str, args: WsArgs) -> PyResult<Self> {
        let mut builder = session.websocket(path);
        if let Some(t) = args.idle_timeout {
            builder = builder.idle_timeout(positive_seconds(py, "idle_timeout", t)?);
        }
        if let Some(t) = args.ping_interval {
            builder = builder.ping_interval(positive_seconds(py, "ping_interval", t)?);
        }
        if let Some(t) = args.hold_timeout {
            builder = builder.hold_timeout(positive_seconds(py, "hold_timeout", t)?);
        }
        if let Some(t) = args.auth_timeout {
            builder = builder.auth_timeout(positive_seconds(py, "auth_timeout", t)?);
        }
        Ok(Conn(Arc::new(Mutex::new(Slot::Ready(Box::new(builder))))))
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The builder, once: a WebSocket object connects one time.
    fn take_builder(&self) -> tradeauth::Result<WsBuilder> {
        let mut slot = self.lock();
        match std::mem::replace(&mut *slot, Slot::Connecting) {
            Slot::Ready(builder) => Ok(*builder),
            other => {
                let closed = matches!(other, Slot::Closed);
                *slot = other;
                Err(if closed {
                    closed_error()
                } else {
                    Error::invalid_argument(
                        "this WebSocket is already connected (or connecting); make another \
                         with client.websocket()",
                    )
                })
            }
        }
    }

    /// Connects and authenticates with `builder` (from [`take_builder`](Self::take_builder)).
    async fn connect(self, builder: WsBuilder) -> tradeauth::Result<()> {
        let mut guard = ConnectGuard(Some(self.clone()));
        let result = builder.connect().await;
        guard.0 = None;
        let mut slot = self.lock();
        match result {
            Ok(client) if matches!(*slot, Slot::Connecting) => {
                *slot = Slot::Open(Arc::new(client));
                Ok(())
            }
            // Closed while it connected: the new client is dropped (which closes it).
            Ok(_) => Err(closed_error()),
            Err(error) => {
                *slot = Slot::Closed;
                Err(error)
            }
        }
    }

    /// The connected client.
    fn client(&self) -> tradeauth::Result<Arc<WsClient>> {
        match &*self.lock() {
            Slot::Open(client) => Ok(client.clone()),
            Slot::Ready(_) | Slot::Connecting => Err(Error::invalid_argument(
                "the WebSocket is not connected: use `async with client.websocket(...)` / \
                 `with client.websocket_sync(...)`, or call connect() first",
            )),
            Slot::Closed => Err(closed_error()),
        }
    }

    /// The state name: the core's once connected, else `connecting` / `closed`.
    fn state(&self) -> &'static str {
        match &*self.lock() {
            Slot::Ready(_) | Slot::Connecting => "connecting",
            Slot::Open(client) => client.state().as_str(),
            Slot::Closed => "closed",
        }
    }

    fn is_closed(&self) -> bool {
        matches!(*self.lock(), Slot::Closed)
    }

    /// Marks the object closed and gives the client to close, if it was connected.
    fn take_for_close(&self) -> Option<Arc<WsClient>> {
        match std::mem::replace(&mut *self.lock(), Slot::Closed) {
            Slot::Open(client) => Some(client),
            _ => None,
        }
    }
}

/// Closes `client` (a close frame, bounded by a second); nothing to do without one.
async fn close(client: Option<Arc<WsClient>>) -> tradeauth::Result<()> {
    if let Some(client) = client {
        client.close().await;
    }
    Ok(())
}

/// Sends `message` (a subscription if `subscription`) on `client`.
async fn send(
    client: Arc<WsClient>,
    message: Value,
    privacy: Privacy,
    subscription: bool,
) -> tradeauth::Result<()> {
    if subscription {
        client.subscribe_as(message, privacy).await
    } else {
        client.send_as(message, privacy).await
    }
}

/// The next message's text. With `ends` (iteration), `None` once the caller closed the
/// object; otherwise that is the core's "closed" error.
async fn next(
    conn: Conn,
    client: Arc<WsClient>,
    timeout: Option<Duration>,
    ends: bool,
) -> tradeauth::Result<Option<String>> {
    let received = match timeout {
        Some(t) => client.recv_timeout(t).await,
        None => client.recv().await,
    };
    match received {
        Ok(text) => Ok(Some(text)),
        Err(_) if ends && conn.is_closed() => Ok(None),
        Err(error) => Err(error),
    }
}

/// A message from Python: a dict (anything `json.dumps` takes) or a JSON string; it must
/// be a JSON object.
fn message_of(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Value> {
    const TAKES: &str = "a WebSocket message must be a dict or a JSON object string";
    let text = if let Ok(s) = message.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else {
        py.import("json")?
            .call_method1("dumps", (message,))
            .map_err(|_| invalid_argument(py, TAKES))?
            .extract::<String>()?
    };
    tradeauth::parse_ws_message(&text).map_err(|_| invalid_argument(py, TAKES))
}

/// `private=`: `None` is the venue's rules, `True` / `False` state it.
fn privacy_of(private: Option<bool>) -> Privacy {
    match private {
        None => Privacy::Auto,
        Some(true) => Privacy::Private,
        Some(false) => Privacy::Public,
    }
}

/// `recv(timeout=)`: `None` waits for ever.
fn timeout_of(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout.map(|t| seconds(py, "timeout", t)).transpose()
}

/// A received text as the Python object `json.loads` makes of it.
fn parsed(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    match py.import("json")?.call_method1("loads", (text,)) {
        Ok(value) => Ok(value.unbind()),
        Err(_) => Err(to_pyerr(
            py,
            &Error::new(
                ErrorKind::Protocol,
                "the venue sent a WebSocket message that is not JSON",
            ),
        )),
    }
}

fn convert_object(_py: Python<'_>, object: Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(object)
}

fn convert_none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

fn convert_message(py: Python<'_>, text: Option<String>) -> PyResult<Py<PyAny>> {
    parsed(py, text.as_deref().unwrap_or("null"))
}

fn convert_next(py: Python<'_>, text: Option<String>) -> PyResult<Py<PyAny>> {
    match text {
        Some(text) => parsed(py, &text),
        None => Err(PyStopAsyncIteration::new_err(())),
    }
}

/// An awaitable that is already done: `await` gives its value at once. `async for`
/// hands a message that was already waiting over this way, without a round trip through
/// the runtime and the event loop (measured: ~160 us per message that way, which capped
/// `async for` at ~6,000 messages/s).
#[pyclass(frozen, module = "tradeauth._native")]
pub(crate) struct Ready {
    value: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Ready {
    fn __await__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let taken = self.value.lock().unwrap_or_else(|e| e.into_inner()).take();
        let value = taken.unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }
}

/// A message already waiting in the client, as a done awaitable; `None` if none is.
fn waiting(py: Python<'_>, conn: &Conn, client: &WsClient) -> PyResult<Option<Py<PyAny>>> {
    let value = match client.try_recv() {
        None => return Ok(None),
        Some(Ok(text)) => parsed(py, &text)?,
        Some(Err(_)) if conn.is_closed() => return Err(PyStopAsyncIteration::new_err(())),
        Some(Err(error)) => return Err(to_pyerr(py, &error)),
    };
    let ready = Ready {
        value: Mutex::new(Some(value)),
    };
    Ok(Some(Py::new(py, ready)?.into_any()))
}

fn repr(kind: &str, path: &str, conn: &Conn, py: Python<'_>) -> PyResult<String> {
    let quoted = PyString::new(py, path).repr()?.to_cow()?.into_owned();
    Ok(format!("{kind}(path={quoted}, state='{}')", conn.state()))
}

/// An authenticated venue WebSocket for asyncio, made by `client.websocket(path)`:
/// `async with` connects (and authenticates) and closes; `async for` yields the venue's
/// messages as parsed JSON, in order. Private messages are held until the venue has
/// accepted the credential; the connection re-authenticates and reconnects by itself.
#[pyclass(frozen, module = "tradeauth._native")]
pub(crate) struct WebSocket {
    conn: Conn,
    path: String,
}

impl WebSocket {
    pub(crate) fn new(
        py: Python<'_>,
        session: Session,
        path: &str,
        args: WsArgs,
    ) -> PyResult<Self> {
        Ok(Self {
            conn: Conn::new(py, session, path, args)?,
            path: path.to_owned(),
        })
    }

    fn message<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        private: Option<bool>,
        subscription: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let message = message_of(py, message)?;
        let client = self.conn.client().map_err(|e| to_pyerr(py, &e))?;
        spawn_awaitable(
            py,
            send(client, message, privacy_of(private), subscription),
            convert_none,
        )
    }
}

#[pymethods]
impl WebSocket {
    /// Connects and authenticates (for a session that can); resolves to this object.
    fn connect<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let conn = slf.get().conn.clone();
        let builder = conn.take_builder().map_err(|e| to_pyerr(py, &e))?;
        let me = slf.clone().into_any().unbind();
        spawn_awaitable(
            py,
            async move { conn.connect(builder).await.map(|()| me) },
            convert_object,
        )
    }

    /// `async with`: `connect()`.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::connect(slf)
    }

    /// Leaving `async with`: `close()` (an exception inside is not suppressed).
    #[pyo3(signature = (*exc_info))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        exc_info: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = exc_info;
        self.close(py)
    }

    /// Closes the connection and stops reconnecting; held sends fail, iteration ends.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        spawn_awaitable(py, close(self.conn.take_for_close()), convert_none)
    }

    /// Sends a subscription (a dict or JSON string) and replays it on every reconnect;
    /// a private one (the venue's rules, or `private=True`) only once authenticated.
    #[pyo3(signature = (message, *, private=None))]
    fn subscribe<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        private: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.message(py, message, private, true)
    }

    /// Sends one message (an order, a query); a private one waits for authentication.
    /// Resolves once it is written to the socket.
    #[pyo3(signature = (message, *, private=None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        private: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.message(py, message, private, false)
    }

    /// The next message (parsed JSON); `Timeout` if none comes within `timeout` seconds
    /// (nothing is lost: a later call gets it).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_of(py, timeout)?;
        let client = self.conn.client().map_err(|e| to_pyerr(py, &e))?;
        spawn_awaitable(
            py,
            next(self.conn.clone(), client, timeout, false),
            convert_message,
        )
    }

    fn __aiter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    /// `async for`: the next message; ends once the WebSocket is closed.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.conn.is_closed() {
            return Err(PyStopAsyncIteration::new_err(()));
        }
        let client = self.conn.client().map_err(|e| to_pyerr(py, &e))?;
        if let Some(ready) = waiting(py, &self.conn, &client)? {
            return Ok(ready.into_bound(py));
        }
        spawn_awaitable(
            py,
            next(self.conn.clone(), client, None, true),
            convert_next,
        )
    }

    /// "connecting", "authenticating", "authenticated", "open" (no WebSocket auth for
    /// this session), "reconnecting" or "closed".
    #[getter]
    fn state(&self) -> &'static str {
        self.conn.state()
    }

    /// The path it connects to.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        repr("WebSocket", &self.path, &self.conn, py)
    }
}

/// The blocking twin of [`WebSocket`], made by `client.websocket_sync(path)`: `with`
/// connects and closes, `for` yields the messages; every wait releases the GIL.
#[pyclass(frozen, module = "tradeauth._native")]
pub(crate) struct WebSocketSync {
    conn: Conn,
    path: String,
}

impl WebSocketSync {
    pub(crate) fn new(
        py: Python<'_>,
        session: Session,
        path: &str,
        args: WsArgs,
    ) -> PyResult<Self> {
        Ok(Self {
            conn: Conn::new(py, session, path, args)?,
            path: path.to_owned(),
        })
    }

    fn message(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        private: Option<bool>,
        subscription: bool,
    ) -> PyResult<()> {
        let message = message_of(py, message)?;
        let client = self.conn.client().map_err(|e| to_pyerr(py, &e))?;
        block_on(py, send(client, message, privacy_of(private), subscription))
    }

    fn receive(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        ends: bool,
    ) -> PyResult<Option<String>> {
        let client = self.conn.client().map_err(|e| to_pyerr(py, &e))?;
        block_on(py, next(self.conn.clone(), client, timeout, ends))
    }
}

#[pymethods]
impl WebSocketSync {
    /// Connects and authenticates (for a session that can); returns this object.
    fn connect<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let conn = slf.get().conn.clone();
        let builder = conn.take_builder().map_err(|e| to_pyerr(py, &e))?;
        block_on(py, conn.connect(builder))?;
        Ok(slf.clone())
    }

    /// `with`: `connect()`.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        Self::connect(slf)
    }

    /// Leaving `with`: `close()` (an exception inside is not suppressed).
    #[pyo3(signature = (*exc_info))]
    fn __exit__(&self, py: Python<'_>, exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        let _ = exc_info;
        self.close(py)
    }

    /// Closes the connection and stops reconnecting; held sends fail, iteration ends.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block_on(py, close(self.conn.take_for_close()))
    }

    /// Sends a subscription (a dict or JSON string) and replays it on every reconnect;
    /// a private one (the venue's rules, or `private=True`) only once authenticated.
    #[pyo3(signature = (message, *, private=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        private: Option<bool>,
    ) -> PyResult<()> {
        self.message(py, message, private, true)
    }

    /// Sends one message (an order, a query); a private one waits for authentication.
    /// Returns once it is written to the socket.
    #[pyo3(signature = (message, *, private=None))]
    fn send(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        private: Option<bool>,
    ) -> PyResult<()> {
        self.message(py, message, private, false)
    }

    /// The next message (parsed JSON); `Timeout` if none comes within `timeout` seconds
    /// (nothing is lost: a later call gets it).
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = timeout_of(py, timeout)?;
        let text = self.receive(py, timeout, false)?;
        convert_message(py, text)
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    /// `for`: the next message; ends once the WebSocket is closed.
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.conn.is_closed() {
            return Err(PyStopIteration::new_err(()));
        }
        match self.receive(py, None, true)? {
            Some(text) => parsed(py, &text),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// "connecting", "authenticating", "authenticated", "open" (no WebSocket auth for
    /// this session), "reconnecting" or "closed".
    #[getter]
    fn state(&self) -> &'static str {
        self.conn.state()
    }

    /// The path it connects to.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        repr("WebSocketSync", &self.path, &self.conn, py)
    }
}
