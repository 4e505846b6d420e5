//! Running the library's futures from Python: blocking calls (GIL released, Ctrl-C
//! honoured) and asyncio awaitables, both on the one shared runtime (core rebuilds it in a
//! forked child).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::errors::{panic_error, to_pyerr};

/// How often a blocking call wakes to let Python deliver signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(200);

/// Set by the `atexit` hook: from then on runtime workers no longer attach to Python.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Runtime workers currently attached (or attaching) to Python.
static ATTACHED: AtomicUsize = AtomicUsize::new(0);

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
/// running loop that resolves with its (converted) result. The future is resolved through
/// `loop.call_soon_threadsafe`, so the event loop never blocks; the runtime worker attaches
/// to Python only for that call and holds no lock while it does. Cancelling the asyncio
/// future aborts the Rust task.
pub(crate) fn spawn_awaitable<'py, F, T>(
    py: Python<'py>,
    future: F,
    convert: Convert<T>,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = tradeauth::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let awaitable = event_loop.call_method0("create_future")?;
    let rt = runtime(py)?;
    let task = rt.spawn(future);
    let abort = task.abort_handle();
    let loop_ref = event_loop.unbind();
    let future_ref = awaitable.clone().unbind();
    rt.spawn(async move {
        let joined = task.await;
        // None: the interpreter is shutting down; nobody is left to await the result.
        let _ = attach_from_worker(move |py| {
            let result = match joined {
                Ok(Ok(value)) => convert(py, value),
                Ok(Err(error)) => Err(to_pyerr(py, &error)),
                Err(join) if join.is_panic() => Err(panic_error(py, join.into_panic())),
                // Aborted because the asyncio future was cancelled: nothing to deliver.
                Err(_) => return,
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
    });
    awaitable.call_method1("add_done_callback", (AbortOnCancel { abort },))?;
    Ok(awaitable)
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
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
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
