//! Serving a Python function as a Test Runner App (`pit.testapp`): the protocol is
//! `pit_testapp`'s, the same the Rust test apps serve.

use std::path::PathBuf;
use std::sync::Arc;

use pit_core::protocol::TestReport;
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve_testapp, m)?)?;
    Ok(())
}

/// Calls `tests(suite_id)` and turns what it returns (an object with `to_protocol()`, or the
/// protocol's `{"executedScenarios": [...]}` as a dict) into a report. A Python exception is
/// printed with its traceback and becomes the session's error.
fn call_tests(py: Python<'_>, tests: &Py<PyAny>, suite: &str) -> Result<TestReport, String> {
    let run = || -> PyResult<TestReport> {
        let mut report = tests.call1(py, (suite,))?.into_bound(py);
        if report.hasattr("to_protocol")? {
            report = report.call_method0("to_protocol")?;
        }
        crate::from_py(&report, "the test function's report")
    };
    run().map_err(|e| {
        e.print(py);
        let kind = e
            .get_type(py)
            .name()
            .map_or_else(|_| "Exception".to_owned(), |n| n.to_string());
        format!("{kind}: {}", e.value(py))
    })
}

/// Serves `tests` (called with the suite id, in a worker thread, once per `POST /start`) over
/// the Test Runner protocol on `host:port` (port 0: a free one) until Ctrl-C. Once listening, it
/// writes the base URL to `url_file` (a file or FIFO) and calls `on_listening(url)`.
#[pyfunction]
#[pyo3(signature = (tests, *, host="127.0.0.1", port=0, url_file=None, on_listening=None))]
fn serve_testapp(
    py: Python<'_>,
    tests: Py<PyAny>,
    host: &str,
    port: u16,
    url_file: Option<PathBuf>,
    on_listening: Option<Py<PyAny>>,
) -> PyResult<()> {
    let listener = py
        .detach(|| crate::runtime().block_on(tokio::net::TcpListener::bind((host, port))))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot listen on {host}:{port}: {e}")))?;
    let url = format!("http://{}", listener.local_addr()?);
    if let Some(file) = &url_file {
        let line = format!("{url}\n");
        py.detach(|| std::fs::write(file, line)).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot write the URL to {}: {e}", file.display()))
        })?;
    }
    if let Some(callback) = on_listening {
        callback.call1(py, (url.clone(),))?;
    }
    let tests = Arc::new(tests);
    let app = move |suite: pit_core::pitfile::SuiteId| {
        let tests = tests.clone();
        async move {
            tokio::task::spawn_blocking(move || Python::attach(|py| call_tests(py, &tests, suite.as_str())))
                .await
                .unwrap_or_else(|e| Err(format!("the test function did not finish: {e}")))
        }
    };
    let (stop, force) = (CancellationToken::new(), CancellationToken::new());
    let shutdown = stop.clone().cancelled_owned();
    let served = crate::block_on(
        py,
        pit_testapp::serve_until(listener, app, shutdown),
        &stop,
        &force,
        None::<tokio::sync::mpsc::UnboundedReceiver<()>>,
        |_, ()| Ok(()),
    )?;
    served.map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("the test app stopped serving {url}: {e}")))
}
