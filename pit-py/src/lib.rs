//! # pit-py
//!
//! The native part of the Python package `pit` (`import pit`), built with maturin into an abi3
//! wheel. The Python layer (`pit-py/python/pit`) re-exports it with docstrings and type stubs;
//! see `docs/python.md`.
//!
//! - [`pitfile`]: `Pitfile.load` / `from_str`, `.validate()`, `.plan()`;
//! - [`run`]: `pit.run(…)`, the same run as `pit run` (through `pit_run`);
//! - [`lock`]: `LockClient` (the Lock Manager), `MemoryLockStore`, leases as context managers;
//! - [`report`]: `Report.load`, `.to_html()`, `.to_junit()`, `.compare(…)`;
//! - [`testapp`]: serving a Python function as a Test Runner App;
//! - [`actions`]: post-test actions on a report (`pit.actions`);
//! - [`brownie`]: the janitor's modules, stale databases, topics and indices (`pit.brownie`);
//! - [`errors`]: the exception classes, with the messages the CLI prints.
#![warn(missing_docs)]

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub mod actions;
pub mod brownie;
pub mod errors;
pub mod lock;
pub mod pitfile;
pub mod report;
pub mod run;
pub mod testapp;

/// The runtime every call shares (started on first use).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pit")
            .build()
            .expect("the async runtime starts")
    })
}

/// A unit-like enum's serialised name (`"not-healthy"`).
pub(crate) fn plain(v: &impl Serialize) -> Option<String> {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned))
}

/// Plain Python data (dicts, lists, strings, numbers) for `value`, through JSON.
pub(crate) fn to_py(py: Python<'_>, value: &impl Serialize) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| errors::PitError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// Python data as a serde value, through JSON.
pub(crate) fn from_py<T: serde::de::DeserializeOwned>(value: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let py = value.py();
    let text: String = py.import("json")?.call_method1("dumps", (value,))?.extract()?;
    serde_json::from_str(&text).map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{what}: {e}")))
}

/// Runs `work` on the shared runtime with the GIL released, so other Python threads go on.
///
/// Signals are checked every 50 ms. When a handler raises (Ctrl-C: `KeyboardInterrupt`),
/// `cancel` is cancelled and `work` is awaited to its end (so that it can clean up) before the
/// exception is raised; a second one while it cleans up cancels `force`. `on_item` is called,
/// with the GIL, for every item `items` yields while `work` runs, also while it cleans up; if it
/// raises, that is handled as a signal is (and later errors are dropped).
pub(crate) fn block_on<T, I>(
    py: Python<'_>,
    work: impl Future<Output = T> + Send + 'static,
    cancel: &CancellationToken,
    force: &CancellationToken,
    mut items: Option<tokio::sync::mpsc::UnboundedReceiver<I>>,
    mut on_item: impl FnMut(Python<'_>, I) -> PyResult<()>,
) -> PyResult<T>
where
    T: Send + 'static,
    I: Send,
{
    let rt = runtime();
    let mut handle = rt.spawn(work);
    let mut raised: Option<PyErr> = None;
    loop {
        enum Step<T, I> {
            Done(T),
            Item(I),
            /// Every sender of `items` is gone.
            Closed,
            Tick,
        }
        let step = py.detach(|| {
            rt.block_on(async {
                let next_item = async {
                    match items.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    item = next_item => item.map_or(Step::Closed, Step::Item),
                    done = &mut handle => Step::Done(done),
                    () = tokio::time::sleep(Duration::from_millis(50)) => Step::Tick,
                }
            })
        });
        match step {
            Step::Done(done) => {
                let value = done.map_err(|e| errors::PitError::new_err(format!("the work panicked: {e}")))?;
                // Items sent just before the end still reach the callback.
                if let Some(rx) = items.as_mut() {
                    while let Ok(item) = rx.try_recv() {
                        if let Err(e) = on_item(py, item) {
                            raised.get_or_insert(e);
                        }
                    }
                }
                return match raised {
                    Some(e) => Err(e),
                    None => Ok(value),
                };
            }
            // Items keep coming while `work` cleans up (teardown progress, say); only the
            // first error counts.
            Step::Item(item) => {
                if let Err(e) = on_item(py, item) {
                    cancel.cancel();
                    raised.get_or_insert(e);
                }
            }
            Step::Closed => items = None,
            Step::Tick => {}
        }
        if let Err(e) = py.check_signals() {
            if raised.is_none() {
                cancel.cancel();
                raised = Some(e);
            } else {
                force.cancel();
            }
        }
    }
}

/// The native module, `pit._pit`.
#[pymodule]
fn _pit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    actions::register(m)?;
    brownie::register(m)?;
    pitfile::register(m)?;
    run::register(m)?;
    lock::register(m)?;
    report::register(m)?;
    testapp::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
