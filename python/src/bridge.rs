//! Running the library's futures from Python: blocking calls (GIL released, Ctrl-C
//! honoured) and asyncio awaitables, both on the one shared runtime (core rebuilds it in a
//! forked child).

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyWeakrefReference;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::errors::{invalid_argument, panic_error, to_pyerr};

/// How often a blocking call wakes to let Python deliver signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(200);

/// Set by the `atexit` hook: from then on runtime workers no longer attach to Python.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Runtime workers currently attached (or attaching) to Python.
static ATTACHED: AtomicUsize = AtomicUsize::new(0);
/// Results an event loop settled from its queue, the batches they came in, and results
/// handed over by a worker attaching to Python instead (a loop without `add_reader`):
/// what `_bridge_stats` reports, for the tests.
static SETTLED: AtomicUsize = AtomicUsize::new(0);
static BATCHES: AtomicUsize = AtomicUsize::new(0);
static WORKER_HANDOFFS: AtomicUsize = AtomicUsize::new(0);

/// Test hook: how asyncio results reached their loops so far (`settled`, `batches`,
/// `worker_handoffs`, `loops`: the loops holding a wake-up socket).
#[pyfunction]
pub(crate) fn _bridge_stats(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let stats = pyo3::types::PyDict::new(py);
    stats.set_item("settled", SETTLED.load(Ordering::SeqCst))?;
    stats.set_item("batches", BATCHES.load(Ordering::SeqCst))?;
    stats.set_item("worker_handoffs", WORKER_HANDOFFS.load(Ordering::SeqCst))?;
    stats.set_item(
        "loops",
        LOOPS.lock().unwrap_or_else(PoisonError::into_inner).len(),
    )?;
    Ok(stats)
}

/// Runs `f` with the GIL from a runtime worker thread, unless the interpreter is exiting.
///
/// A thread that waits for the GIL while CPython finalizes is ended with `pthread_exit`,
/// which cannot unwind through Rust frames (the process would abort). So the `atexit`
/// hook (`_at_exit`) closes the gate and waits, GIL released, for workers already inside;
/// a worker checks the gate only after announcing itself (both sides `SeqCst`), so no
/// worker can slip past it.
pub(crate) fn attach_from_worker<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    ATTACHED.fetch_add(1, Ordering::SeqCst);
    let out = if CLOSED.load(Ordering::SeqCst) {
        None
    } else {
        Python::try_attach(f)
    };
    ATTACHED.fetch_sub(1, Ordering::SeqCst);
    out
}

/// Registered with `atexit` by the package: stops runtime workers from calling into
/// Python and lets the ones in flight finish (bounded at 2 s).
#[pyfunction]
pub(crate) fn _at_exit(py: Python<'_>) {
    CLOSED.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while ATTACHED.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// The shared runtime of this process (rebuilt lazily in a forked child).
pub(crate) fn runtime(py: Python<'_>) -> PyResult<&'static Runtime> {
    tradeauth::runtime::shared().map_err(|e| to_pyerr(py, &e))
}

/// Runs `future` to completion from a Python thread: the GIL is released for the whole
/// wait, pending signals are checked every 200 ms (Ctrl-C cancels the call), and a panic
/// becomes `PanicError`. Inputs must already be owned Rust values.
pub(crate) fn block_on<F, T>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = tradeauth::Result<T>> + Send,
    T: Send,
{
    let outcome = py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut future = pin!(future);
            loop {
                // Core's block_on refuses a nested call (a thread inside a runtime, e.g. a
                // logging handler on a worker) instead of panicking. The timer is made
                // inside it: it needs the runtime's context.
                let slice = tradeauth::runtime::block_on(async {
                    tokio::time::timeout(SIGNAL_POLL, future.as_mut()).await
                });
                match slice {
                    Err(refused) => return Ok(Err(refused)),
                    Ok(Ok(done)) => return Ok(done),
                    Ok(Err(_)) => {
                        // Ctrl-C (KeyboardInterrupt) cancels the call. Skipped once the
                        // interpreter is exiting (attaching then could end this thread).
                        if !CLOSED.load(Ordering::SeqCst) {
                            Python::try_attach(|py| py.check_signals()).transpose()?;
                        }
                    }
                }
            }
        }))
    });
    match outcome {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(to_pyerr(py, &error)),
        Ok(Err(interrupted)) => Err(interrupted),
        Err(payload) => Err(panic_error(py, payload)),
    }
}

/// Converts a finished future's value to a Python object (called with the GIL held).
pub(crate) type Convert<T> = fn(Python<'_>, T) -> PyResult<Py<PyAny>>;

/// Starts `future` on the library's runtime and returns an `asyncio.Future` of the
/// running loop that resolves with its (converted) result. Cancelling the asyncio future
/// aborts the Rust task.
///
/// The runtime worker that finishes the future never touches Python: it queues the result
/// for the loop ([`Completions`]) and, if no wake-up is pending, writes one byte the loop
/// watches (`add_reader`). The loop's thread then settles every queued future at once,
/// GIL already held. Workers queueing on the GIL for each response, as they did through
/// `call_soon_threadsafe`, cost more than the request itself (BENCHMARKS.md, issue #21).
/// A loop without `add_reader` (Windows' proactor) gets that older path.
pub(crate) fn spawn_awaitable<'py, F, T>(
    py: Python<'py>,
    future: F,
    convert: Convert<T>,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = tradeauth::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let event_loop = get_running_loop(py)?;
    let awaitable = event_loop.call_method0(intern!(py, "create_future"))?;
    let rt = runtime(py)?;
    let future_ref = awaitable.clone().unbind();
    let task = match completions_for(py, &event_loop)? {
        Some(completions) => rt.spawn(async move {
            let outcome = AssertUnwindSafe(future).catch_unwind().await;
            // Only runs if not aborted: a cancelled asyncio future gets nothing.
            completions.push(Box::new(move |py| {
                let result = match outcome {
                    // A panic here would lose the rest of the loop's batch: caught.
                    Ok(Ok(value)) => {
                        std::panic::catch_unwind(AssertUnwindSafe(|| convert(py, value)))
                            .unwrap_or_else(|payload| Err(panic_error(py, payload)))
                    }
                    Ok(Err(error)) => Err(to_pyerr(py, &error)),
                    Err(payload) => Err(panic_error(py, payload)),
                };
                // Fails only for a future settled meanwhile (cancelled): nothing to tell.
                let _ = settle(py, future_ref.bind(py), result);
            }));
        }),
        None => {
            let loop_ref = event_loop.clone().unbind();
            rt.spawn(async move {
                let outcome = AssertUnwindSafe(future).catch_unwind().await;
                WORKER_HANDOFFS.fetch_add(1, Ordering::SeqCst);
                // None: the interpreter is shutting down; nobody is left to await it.
                let _ = attach_from_worker(move |py| {
                    let result = match outcome {
                        Ok(Ok(value)) => convert(py, value),
                        Ok(Err(error)) => Err(to_pyerr(py, &error)),
                        Err(payload) => Err(panic_error(py, payload)),
                    };
                    let (ok, value) = match result {
                        Ok(value) => (true, value),
                        Err(error) => (false, error.into_value(py).into_any()),
                    };
                    let Ok(resolver) = resolver(py) else { return };
                    // Fails only if the loop is closed; then there is no one to tell.
                    let _ = loop_ref.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (resolver, future_ref, ok, value),
                    );
                });
            })
        }
    };
    let abort = task.abort_handle();
    awaitable.call_method1(intern!(py, "add_done_callback"), (AbortOnCancel { abort },))?;
    Ok(awaitable)
}

/// `asyncio.get_running_loop()` (the function looked up once).
fn get_running_loop<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?
        .bind(py)
        .call0()
}

/// A finished call's result, settled on the loop's thread with the GIL held.
type Settle = Box<dyn FnOnce(Python<'_>) + Send>;

/// One event loop's finished calls, and the socket pair that wakes it to settle them.
struct Completions {
    queue: Mutex<Vec<Settle>>,
    /// A wake-up byte is written and not yet read: later results ride on it.
    wake_pending: AtomicBool,
    /// Written by runtime workers (non-blocking).
    wake_tx: UnixStream,
    /// Watched by the loop (`add_reader`); read empty before each batch.
    wake_rx: UnixStream,
}

impl Completions {
    fn new() -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Completions {
            queue: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        })
    }

    /// From a runtime worker: queue `settle` and wake the loop unless a wake-up is pending.
    fn push(&self, settle: Settle) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(settle);
        // After the push: a batch taken after `wake_pending` went false sees this result,
        // and one taken before it was cleared means this swap sees false and wakes again.
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            // A full socket buffer (WouldBlock) already holds a wake-up; a closed loop
            // has no one to wake.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    /// On the loop's thread: empties the wake-up socket and settles every queued result.
    fn drain(&self, py: Python<'_>) {
        let mut sink = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        self.wake_pending.store(false, Ordering::SeqCst);
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return;
        }
        BATCHES.fetch_add(1, Ordering::SeqCst);
        SETTLED.fetch_add(batch.len(), Ordering::SeqCst);
        for settle in batch {
            settle(py);
        }
    }
}

/// The loop's reader callback for a [`Completions`].
#[pyclass(frozen, module = "tradeauth._native")]
struct DrainCompletions {
    completions: Arc<Completions>,
}

#[pymethods]
impl DrainCompletions {
    /// Called by the event loop when the wake-up socket is readable.
    fn __call__(&self, py: Python<'_>) {
        self.completions.drain(py);
    }
}

/// The loops seen so far (held weakly) and their completions.
type Loops = Vec<(Py<PyWeakrefReference>, Arc<Completions>)>;

/// The loops seen so far and their completions (see [`completions_for`]).
static LOOPS: Mutex<Loops> = Mutex::new(Vec::new());

/// The [`Completions`] of `event_loop`, made and registered with it (`add_reader`) on its
/// first call; `None` for a loop that cannot watch a socket.
fn completions_for(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
) -> PyResult<Option<Arc<Completions>>> {
    static NO_READER: Mutex<Vec<Py<PyWeakrefReference>>> = Mutex::new(Vec::new());
    let same = |weak: &Py<PyWeakrefReference>| {
        weak.bind(py)
            .upgrade()
            .is_some_and(|alive| alive.is(event_loop))
    };
    // The locks are never held across a call into Python (which could switch threads).
    {
        let loops = LOOPS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, completions)) = loops.iter().find(|(weak, _)| same(weak)) {
            return Ok(Some(Arc::clone(completions)));
        }
    }
    if NO_READER
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(same)
    {
        return Ok(None);
    }
    let weak = PyWeakrefReference::new(event_loop)?.unbind();
    let completions = Arc::new(Completions::new().map_err(|e| {
        invalid_argument(py, format!("cannot make the loop's wake-up socket: {e}"))
    })?);
    let fd = completions.wake_rx.as_raw_fd();
    let reader = DrainCompletions {
        completions: Arc::clone(&completions),
    };
    match event_loop.call_method1(intern!(py, "add_reader"), (fd, reader)) {
        Ok(_) => {}
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyNotImplementedError>(py) => {
            NO_READER
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(weak);
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let mut loops = LOOPS.lock().unwrap_or_else(PoisonError::into_inner);
    // Loops that are gone: their completions close with the last task that holds them.
    loops.retain(|(weak, _)| weak.bind(py).upgrade().is_some());
    loops.push((weak, Arc::clone(&completions)));
    Ok(Some(completions))
}

/// Settles `future` with `result` unless it is already done (cancelled meanwhile).
fn settle(py: Python<'_>, future: &Bound<'_, PyAny>, result: PyResult<Py<PyAny>>) -> PyResult<()> {
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match result {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
        Err(error) => future.call_method1(intern!(py, "set_exception"), (error.into_value(py),))?,
    };
    Ok(())
}

/// `_resolve_future` as a Python callable, made once.
fn resolver(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static RESOLVER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(resolve_future, py)?.into_any().unbind())
        })
        .map(|f| f.clone_ref(py))
}

/// Runs on the event loop's thread: settles the future unless it was cancelled meanwhile.
#[pyfunction]
fn resolve_future(future: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    let py = future.py();
    let result = if ok {
        Ok(value.unbind())
    } else {
        Err(PyErr::from_value(value))
    };
    settle(py, future, result)
}

/// A done-callback that aborts the Rust task when the asyncio future is cancelled.
#[pyclass(frozen, module = "tradeauth._native")]
struct AbortOnCancel {
    abort: AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    /// Called by asyncio with the finished future.
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.abort.abort();
        }
        Ok(())
    }
}
