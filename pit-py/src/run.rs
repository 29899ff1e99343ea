//! `pit.run(…)`: the run `pit run` makes, set up by the same code (`pit_run`).

use std::path::PathBuf;

use pit_core::engine::{Event, RunSummary};
use pit_run::{prepare, Backend, RunSettings};
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RunResult>()?;
    m.add_class::<SuiteResult>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    Ok(())
}

/// How one suite ended.
#[pyclass(module = "pit", frozen)]
#[derive(Debug, Clone)]
pub struct SuiteResult {
    /// The suite id.
    #[pyo3(get)]
    pub id: String,
    /// Its environment (the namespace on Kubernetes).
    #[pyo3(get)]
    pub environment: String,
    /// `"passed"`, `"failed"`, `"error"` or `"cancelled"`.
    #[pyo3(get)]
    pub outcome: String,
    /// What went wrong, for `"error"` and `"cancelled"`.
    #[pyo3(get)]
    pub message: Option<String>,
    /// For `"error"`: where in the suite's life (`"plan"`, `"environment"`, `"locks"`,
    /// `"deploy"`, `"tests"`).
    #[pyo3(get)]
    pub phase: Option<String>,
    /// For `"error"`: what kind of failure (`"not-healthy"`, `"timeout"`, `"locks-busy"` …).
    #[pyo3(get)]
    pub kind: Option<String>,
    /// For `"error"`: the component it happened in, if any.
    #[pyo3(get)]
    pub component: Option<String>,
    /// Where its report was stored (a path, or a URL for a git store).
    #[pyo3(get)]
    pub report_path: Option<String>,
    /// Problems during teardown.
    #[pyo3(get)]
    pub teardown_errors: Vec<String>,
    /// With `keep=True`: the commands that remove what was left up.
    #[pyo3(get)]
    pub kept: Vec<String>,
    /// Post-test actions that failed (each `action (trigger): why`).
    #[pyo3(get)]
    pub action_errors: Vec<String>,
    /// The engine's result, for `error()`.
    core: pit_core::engine::SuiteResult,
}

#[pymethods]
impl SuiteResult {
    /// The exception for this suite's outcome (a `SuiteError` subclass by kind), or `None`
    /// when it passed. Not raised: `RunResult.raise_for_status()` raises.
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        errors::suite_error(py, &self.core).map(|e| e.into_value(py).into_any())
    }

    fn __repr__(&self) -> String {
        format!("<SuiteResult {} {}>", self.id, self.outcome)
    }
}

/// The result of `pit.run`.
#[pyclass(module = "pit", frozen)]
pub struct RunResult {
    summary: RunSummary,
}

#[pymethods]
impl RunResult {
    /// The run id.
    #[getter]
    fn run_id(&self) -> &str {
        &self.summary.run_id
    }

    /// The exit code `pit run` would end with: 0 passed, 1 tests failed, 3 infrastructure
    /// failure, 130 interrupted.
    #[getter]
    fn exit_code(&self) -> i32 {
        self.summary.exit_code()
    }

    /// `"passed"`, `"failed"` (tests failed), `"error"` (infrastructure) or `"cancelled"`.
    #[getter]
    fn status(&self) -> &'static str {
        match self.summary.exit_code() {
            pit_core::exit::OK => "passed",
            pit_core::exit::TESTS_FAILED => "failed",
            pit_core::exit::INTERRUPTED => "cancelled",
            _ => "error",
        }
    }

    /// Whether every suite passed.
    #[getter]
    fn passed(&self) -> bool {
        self.summary.exit_code() == pit_core::exit::OK
    }

    /// One result per suite, in order.
    #[getter]
    fn suites(&self) -> Vec<SuiteResult> {
        self.summary
            .suites
            .iter()
            .map(|s| SuiteResult {
                id: s.id.clone(),
                environment: s.environment.clone(),
                outcome: s.outcome.as_str().to_owned(),
                message: s.outcome.message().map(str::to_owned),
                phase: s.outcome.failure().and_then(|f| crate::plain(&f.phase)),
                kind: s.outcome.failure().and_then(|f| crate::plain(&f.kind)),
                component: s.outcome.failure().and_then(|f| f.component.clone()),
                report_path: s.stored.as_ref().map(|r| r.location.clone()),
                teardown_errors: s.teardown_errors.clone(),
                kept: s.kept.clone(),
                action_errors: s.action_errors.clone(),
                core: s.clone(),
            })
            .collect()
    }

    /// Raises the first suite's exception if any suite did not pass (a `SuiteError`
    /// subclass: `TestsFailed`, `NotHealthy`, `LocksUnavailable` …); returns `None` otherwise.
    fn raise_for_status(&self, py: Python<'_>) -> PyResult<()> {
        match self.summary.suites.iter().find_map(|s| errors::suite_error(py, s)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether a post-test action failed (`SuiteResult.action_errors` says which). A failed
    /// action does not change `status`: check this where it should fail the job.
    #[getter]
    fn has_action_errors(&self) -> bool {
        self.summary.has_action_errors()
    }

    /// Where the suites' reports were stored.
    #[getter]
    fn report_paths(&self) -> Vec<String> {
        self.summary
            .suites
            .iter()
            .filter_map(|s| s.stored.as_ref().map(|r| r.location.clone()))
            .collect()
    }

    /// The whole run as JUnit XML: one test suite per suite, one test case per scenario
    /// stream (what ``pit run --junit FILE`` writes).
    fn to_junit(&self) -> String {
        pit_run::junit(&self.summary)
    }

    /// The summary `pit run -o json` prints, as plain Python data.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::to_py(py, &self.summary)
    }

    fn __bool__(&self) -> bool {
        self.passed()
    }

    fn __repr__(&self) -> String {
        format!("<RunResult {} {}>", self.summary.run_id, self.status())
    }
}

/// Runs the pitfile at `path` as `pit run` does and returns its result. See docs/python.md.
#[pyfunction]
#[pyo3(signature = (
    path="pitfile.yml".into(), *, backend="local", max_parallel=16, on_event=None, state_dir=None,
    report_dir=None, report_store=None, lock_manager=None, kubeconfig=None, parent_namespace=None,
    keep=false, parallel_suites=false, run_id=None, strict=false, workspace=None,
    test_app_access="api-proxy", cluster_url=None, test_app_port=80, commit=None, toolkit_args=false,
    actions=None, actions_dry_run=false, report_url=None,
))]
#[allow(clippy::too_many_arguments)] // keyword arguments, one per `pit run` flag
fn run(
    py: Python<'_>,
    path: PathBuf,
    backend: &str,
    max_parallel: usize,
    on_event: Option<Py<PyAny>>,
    state_dir: Option<PathBuf>,
    report_dir: Option<PathBuf>,
    report_store: Option<&str>,
    lock_manager: Option<String>,
    kubeconfig: Option<PathBuf>,
    parent_namespace: Option<String>,
    keep: bool,
    parallel_suites: bool,
    run_id: Option<&str>,
    strict: bool,
    workspace: Option<PathBuf>,
    test_app_access: &str,
    cluster_url: Option<String>,
    test_app_port: u16,
    commit: Option<String>,
    toolkit_args: bool,
    actions: Option<&Bound<'_, pyo3::types::PyDict>>,
    actions_dry_run: bool,
    report_url: Option<String>,
) -> PyResult<RunResult> {
    let value_error =
        |what: &str, e: &dyn std::fmt::Display| pyo3::exceptions::PyValueError::new_err(format!("{what}: {e}"));
    let backend = match backend {
        "auto" => Backend::Auto,
        "local" => Backend::Local,
        "k8s" => Backend::K8s,
        other => {
            return Err(value_error(
                "backend",
                &format!("`{other}` is not one of auto, local, k8s"),
            ))
        }
    };
    let access = match (test_app_access, cluster_url) {
        ("api-proxy", _) => pit_run::ServiceAccess::ApiProxy { port: test_app_port },
        ("ingress", Some(cluster_url)) => pit_run::ServiceAccess::Ingress { cluster_url },
        ("ingress", None) => return Err(value_error("cluster_url", &"`ingress` access needs the ingress's URL")),
        ("none", _) => pit_run::ServiceAccess::Published,
        (other, _) => {
            return Err(value_error(
                "test_app_access",
                &format!("`{other}` is not one of api-proxy, ingress, none"),
            ))
        }
    };
    if max_parallel == 0 {
        return Err(value_error("max_parallel", &"must be at least 1"));
    }
    let report_store = match (report_store, report_dir) {
        (Some(spec), _) => Some(spec.parse().map_err(|e: String| value_error("report_store", &e))?),
        (None, Some(dir)) => Some(pit_report::store::StoreSpec::Dir(dir)),
        (None, None) => None,
    };
    let settings = RunSettings {
        strict,
        run_id: run_id
            .map(|id| id.parse().map_err(|e| value_error("run_id", &e)))
            .transpose()?,
        max_parallel,
        parallel_suites,
        keep,
        state_dir,
        report_store,
        backend,
        kubeconfig,
        parent_namespace,
        lock_manager,
        workspace,
        access,
        context: {
            // The job's context from the environment, as `pit run` reads it.
            let mut context = pit_run::JobContext::from_env();
            if commit.is_some() {
                context.commit = commit;
            }
            context
        },
        toolkit_args,
        actions: pit_run::ActionSettings {
            extra: crate::actions::actions_from(actions)?,
            dry_run: actions_dry_run,
            report_url,
            ..pit_run::ActionSettings::default()
        },
        ..RunSettings::new(path)
    };
    let loaded = settings.load().map_err(|e| errors::driver_error(py, &e))?;
    let (items, rx) = tokio::sync::mpsc::unbounded_channel::<Item>();
    let (cancel, force) = (CancellationToken::new(), CancellationToken::new());
    let (c, f) = (cancel.clone(), force.clone());
    let work = async move {
        let (events, mut engine_events) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let forward = {
            let items = items.clone();
            tokio::spawn(async move {
                while let Some(e) = engine_events.recv().await {
                    let _ = items.send(Item::Event(e));
                }
            })
        };
        let note = |note: &str| {
            let _ = items.send(Item::Note(note.to_owned()));
        };
        let prepared = prepare(&settings, &loaded, events, &note).await?;
        let summary = prepared.engine.run(&prepared.plan, &prepared.options, &c, &f).await;
        drop(prepared);
        let _ = forward.await;
        Ok::<_, pit_run::DriverError>(summary)
    };
    let logger = py.import("logging")?.call_method1("getLogger", ("pit",))?.unbind();
    let summary = crate::block_on(py, work, &cancel, &force, Some(rx), |py, item| match item {
        // The lines `pit run` prints on the way go to the `pit` logger.
        Item::Note(note) => logger.call_method1(py, "info", (note,)).map(drop),
        Item::Event(event) => match &on_event {
            Some(callback) => callback.call1(py, (crate::to_py(py, &event)?,)).map(drop),
            None => Ok(()),
        },
    })?
    .map_err(|e| errors::driver_error(py, &e))?;
    Ok(RunResult { summary })
}

/// What the run sends to the calling thread.
enum Item {
    Event(Event),
    Note(String),
}
