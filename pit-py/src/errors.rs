//! The exception classes, mapped from the Rust error types, with the messages the CLI prints.
//!
//! ```text
//! PitError                      every PIT error; `.exit_code` is what `pit` would exit with
//! ├── PitfileError              `.diagnostics`: line, column, field path, message, help
//! ├── RunError                  a run could not start (cluster, fetch of REMOTE parts)
//! ├── LockError                 a lock store failed
//! │   ├── LockBusy              still held after the wait; `.holders`
//! │   └── LeaseLost             the lease expired or was force-released
//! ├── ReportError               a report could not be read or rendered
//! ├── ActionFailed              a post-test action failed; `.results`
//! ├── BrownieError              brownie could not reach or list a server
//! └── SuiteError                a suite did not pass (`RunResult.raise_for_status()`,
//!     │                         `SuiteResult.error()`); `.suite`, `.phase`, `.kind`,
//!     │                         `.component`, `.exit_code`
//!     ├── TestsFailed           the tests ran and something failed (exit code 1)
//!     ├── Interrupted           the run was interrupted (130)
//!     ├── InvalidPlan           the plan cannot be run as it is
//!     ├── BackendFailed         the cluster or sandbox failed
//!     ├── LocksUnavailable      locks busy, lease lost, or the lock store failed
//!     ├── CommandFailed         a deploy command failed
//!     ├── NotHealthy            a status check did not pass in time
//!     ├── TimedOut              a step or the tests did not finish in time
//!     └── TestAppFailed         the test app was unreachable, or its session failed
//! ```

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyList;

use pit_core::exit;
use pit_core::lock::LockError as CoreLockError;

create_exception!(
    pit,
    PitError,
    PyException,
    "Every error PIT raises; `exit_code` is the exit code `pit` would end with."
);
create_exception!(
    pit,
    PitfileError,
    PitError,
    "The pitfile cannot be read or has errors; `diagnostics` lists them."
);
create_exception!(
    pit,
    RunError,
    PitError,
    "A run could not start: the cluster, a REMOTE fetch, the Lock Manager URL."
);
create_exception!(pit, LockError, PitError, "A lock store failed.");
create_exception!(
    pit,
    LockBusy,
    LockError,
    "The locks were still held when the wait ran out; `holders` names who holds them."
);
create_exception!(
    pit,
    LeaseLost,
    LockError,
    "The lease expired or was force-released: what it protected is no longer exclusive."
);
create_exception!(
    pit,
    ReportError,
    PitError,
    "A report could not be read, compared or rendered."
);
create_exception!(
    pit,
    BrownieError,
    PitError,
    "Brownie could not reach, log in to or list a server (a failed delete is in the report instead)."
);
create_exception!(
    pit,
    ActionFailed,
    PitError,
    "A post-test action failed (with `fail_on_error=True`); `results` has every action's dict."
);

create_exception!(
    pit,
    SuiteError,
    PitError,
    "A suite did not pass; `suite`, `phase`, `kind` and `component` say where and how."
);
create_exception!(pit, TestsFailed, SuiteError, "The tests ran and something failed.");
create_exception!(pit, Interrupted, SuiteError, "The run was interrupted.");
create_exception!(pit, InvalidPlan, SuiteError, "The plan cannot be run as it is.");
create_exception!(
    pit,
    BackendFailed,
    SuiteError,
    "The backend (the cluster, the sandbox) failed."
);
create_exception!(
    pit,
    LocksUnavailable,
    SuiteError,
    "The suite's locks stayed busy, its lease was lost, or the lock store failed."
);
create_exception!(
    pit,
    CommandFailed,
    SuiteError,
    "A deploy command failed or did not complete."
);
create_exception!(pit, NotHealthy, SuiteError, "A status check did not pass in time.");
create_exception!(pit, TimedOut, SuiteError, "A step or the tests did not finish in time.");
create_exception!(
    pit,
    TestAppFailed,
    SuiteError,
    "The test app could not be reached, did not publish its URL, or its session failed."
);

/// The exception for a suite that did not pass (`None` when it passed).
pub(crate) fn suite_error(py: Python<'_>, suite: &pit_core::engine::SuiteResult) -> Option<PyErr> {
    use pit_core::engine::{FailureKind as K, SuiteOutcome};
    let (err, code, failure) = match &suite.outcome {
        SuiteOutcome::Passed => return None,
        SuiteOutcome::Failed => (
            TestsFailed::new_err(format!("suite `{}`: the tests failed", suite.id)),
            exit::TESTS_FAILED,
            None,
        ),
        SuiteOutcome::Cancelled { message } => (
            Interrupted::new_err(format!("suite `{}`: {message}", suite.id)),
            exit::INTERRUPTED,
            None,
        ),
        SuiteOutcome::Error(f) => {
            let text = format!("suite `{}`: {}", suite.id, f.message);
            let err = match f.kind {
                K::InvalidPlan => InvalidPlan::new_err(text),
                K::Backend => BackendFailed::new_err(text),
                K::LocksBusy | K::LockLost | K::LockStore => LocksUnavailable::new_err(text),
                K::Command => CommandFailed::new_err(text),
                K::NotHealthy => NotHealthy::new_err(text),
                K::Timeout => TimedOut::new_err(text),
                K::TestApp | K::Session => TestAppFailed::new_err(text),
                _ => SuiteError::new_err(text),
            };
            (err, exit::INFRASTRUCTURE, Some(f))
        }
    };
    let text = |v: Option<String>| {
        v.map_or_else(
            || py.None(),
            |v| {
                v.into_pyobject(py)
                    .map_or_else(|_| py.None(), |s| s.into_any().unbind())
            },
        )
    };
    Some(with_attrs(
        py,
        err,
        code,
        &[
            ("suite", text(Some(suite.id.clone()))),
            ("phase", text(failure.and_then(|f| crate::plain(&f.phase)))),
            ("kind", text(failure.and_then(|f| crate::plain(&f.kind)))),
            ("component", text(failure.and_then(|f| f.component.clone()))),
        ],
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SuiteError", py.get_type::<SuiteError>())?;
    m.add("TestsFailed", py.get_type::<TestsFailed>())?;
    m.add("Interrupted", py.get_type::<Interrupted>())?;
    m.add("InvalidPlan", py.get_type::<InvalidPlan>())?;
    m.add("BackendFailed", py.get_type::<BackendFailed>())?;
    m.add("LocksUnavailable", py.get_type::<LocksUnavailable>())?;
    m.add("CommandFailed", py.get_type::<CommandFailed>())?;
    m.add("NotHealthy", py.get_type::<NotHealthy>())?;
    m.add("TimedOut", py.get_type::<TimedOut>())?;
    m.add("TestAppFailed", py.get_type::<TestAppFailed>())?;
    m.add("PitError", py.get_type::<PitError>())?;
    m.add("PitfileError", py.get_type::<PitfileError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("LockError", py.get_type::<LockError>())?;
    m.add("LockBusy", py.get_type::<LockBusy>())?;
    m.add("LeaseLost", py.get_type::<LeaseLost>())?;
    m.add("ReportError", py.get_type::<ReportError>())?;
    m.add_class::<crate::pitfile::Diagnostic>()?;
    Ok(())
}

/// The message `pit` prints for `e`: the error and its causes, one `caused by:` line each.
pub(crate) fn message(e: &dyn std::error::Error) -> String {
    pit_core::engine::error_chain_with(e, "\n  caused by: ")
}

/// Sets `exit_code` (and the given attributes) on `err`'s exception value.
pub(crate) fn with_attrs(py: Python<'_>, err: PyErr, code: i32, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let value = err.value(py);
    let _ = value.setattr("exit_code", code);
    for (name, v) in attrs {
        let _ = value.setattr(*name, v.bind(py));
    }
    err
}

/// A `PitfileError` for a report of diagnostics: the message is the report as `pit validate`
/// prints it (without colour), `diagnostics` the list.
pub(crate) fn pitfile_error(py: Python<'_>, report: &pit_core::diagnostic::Diagnostics) -> PyErr {
    let diagnostics: Vec<crate::pitfile::Diagnostic> = report
        .diagnostics()
        .iter()
        .map(|d| crate::pitfile::Diagnostic::of(report.file(), d))
        .collect();
    let list = PyList::new(py, diagnostics).map_or_else(|_| py.None(), |l| l.into_any().unbind());
    let text = format!(
        "{}: {} error(s), {} warning(s)\n{}",
        report.file(),
        report.error_count(),
        report.warning_count(),
        report.render(false, 100)
    );
    with_attrs(py, PitfileError::new_err(text), exit::INVALID, &[("diagnostics", list)])
}

/// The error for a pitfile that could not be loaded.
pub(crate) fn load_error(py: Python<'_>, e: &pit_core::pitfile::LoadError) -> PyErr {
    match e {
        pit_core::pitfile::LoadError::Invalid(report) => pitfile_error(py, report),
        other => {
            let empty = PyList::empty(py).into_any().unbind();
            with_attrs(
                py,
                PitfileError::new_err(message(other)),
                exit::INVALID,
                &[("diagnostics", empty)],
            )
        }
    }
}

/// The error for a failed lock operation.
pub(crate) fn lock_error(py: Python<'_>, e: &CoreLockError) -> PyErr {
    let text = message(e);
    match e {
        CoreLockError::Busy { holders, .. } => {
            let holders: Vec<(String, String)> = holders
                .iter()
                .map(|h| (h.id.to_string(), h.owner.name.clone()))
                .collect();
            let list = PyList::new(py, holders).map_or_else(|_| py.None(), |l| l.into_any().unbind());
            with_attrs(py, LockBusy::new_err(text), exit::INFRASTRUCTURE, &[("holders", list)])
        }
        CoreLockError::Lost { .. } => with_attrs(py, LeaseLost::new_err(text), exit::INFRASTRUCTURE, &[]),
        CoreLockError::Invalid(_) => with_attrs(py, LockError::new_err(text), exit::INVALID, &[]),
        CoreLockError::Cancelled { .. } => with_attrs(py, LockError::new_err(text), exit::INTERRUPTED, &[]),
        _ => with_attrs(py, LockError::new_err(text), exit::INFRASTRUCTURE, &[]),
    }
}

/// The error for a run that could not start.
pub(crate) fn driver_error(py: Python<'_>, e: &pit_run::DriverError) -> PyErr {
    match e {
        pit_run::DriverError::Load(load) => load_error(py, load),
        pit_run::DriverError::Resolve(r) => match r.report() {
            Some(report) => pitfile_error(py, report),
            None => with_attrs(py, RunError::new_err(message(e)), e.exit_code(), &[]),
        },
        pit_run::DriverError::Lock(l) => lock_error(py, l),
        _ => with_attrs(py, RunError::new_err(message(e)), e.exit_code(), &[]),
    }
}

/// The error for a report that could not be read.
pub(crate) fn report_error(py: Python<'_>, e: &dyn std::error::Error) -> PyErr {
    with_attrs(py, ReportError::new_err(message(e)), exit::INVALID, &[])
}
