//! How suites and runs end.

#[allow(clippy::wildcard_imports)] // the engine's own types
use super::*;

/// How a suite ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum SuiteOutcome {
    /// Every test stream passed.
    Passed,
    /// The tests ran and something failed.
    Failed,
    /// The infrastructure failed: environment, lock, deploy, status check, test app, timeout.
    Error(SuiteFailure),
    /// The run was interrupted.
    Cancelled {
        /// Where it was.
        message: String,
    },
}

impl SuiteOutcome {
    /// What went wrong, naming where: for `error` and `cancelled`.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Error(f) => Some(&f.message),
            Self::Cancelled { message } => Some(message),
            Self::Passed | Self::Failed => None,
        }
    }

    /// The failure, for `error`.
    pub fn failure(&self) -> Option<&SuiteFailure> {
        match self {
            Self::Error(f) => Some(f),
            _ => None,
        }
    }

    /// `passed`, `failed`, `error` or `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error(_) => "error",
            Self::Cancelled { .. } => "cancelled",
        }
    }
}

/// Where in its life a suite failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Before anything ran: the plan cannot be run as it is.
    Plan,
    /// Creating the suite's environment.
    Environment,
    /// Deploying the suite's Lock Manager, taking its locks, or keeping them.
    Locks,
    /// Deploying a component (or the test app) and checking its status.
    Deploy,
    /// Reaching the test app and running the tests.
    Tests,
}

/// What kind of failure: what a program that embeds PIT may act on (retry a busy lock, page
/// someone for a broken cluster, fix a pitfile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The plan cannot be run as it is (REMOTE parts not fetched, no test app).
    InvalidPlan,
    /// The backend (the cluster, the sandbox) failed.
    Backend,
    /// The locks stayed held by others for the whole wait.
    LocksBusy,
    /// The lease was lost while the suite ran: what it protected was no longer exclusive.
    LockLost,
    /// The lock store (a Lock Manager) failed or could not be reached.
    LockStore,
    /// A command failed (exit code) or did not complete.
    Command,
    /// A status check did not pass in time.
    NotHealthy,
    /// Something did not finish within its time (a step, the tests).
    Timeout,
    /// The test app could not be reached, or did not publish its URL, or answered wrongly.
    TestApp,
    /// The test app said the session failed.
    Session,
}

impl FailureKind {
    /// The kind of a deployment failure.
    pub fn of_deploy(e: &DeployError) -> Self {
        match e {
            DeployError::Environment { .. } | DeployError::Backend { .. } => Self::Backend,
            DeployError::NotHealthy { .. } => Self::NotHealthy,
            DeployError::Process {
                source: crate::process::ProcessError::TimedOut { .. },
                ..
            } => Self::Timeout,
            _ => Self::Command,
        }
    }

    /// The kind of a lock failure.
    pub fn of_lock(e: &crate::lock::LockError) -> Self {
        use crate::lock::LockError;
        match e {
            LockError::Busy { .. } => Self::LocksBusy,
            LockError::Lost { .. } => Self::LockLost,
            _ => Self::LockStore,
        }
    }

    /// The kind of a test runner failure.
    pub fn of_runner(e: &crate::runner::RunnerError) -> Self {
        use crate::runner::RunnerError;
        match e {
            RunnerError::TimedOut { .. } => Self::Timeout,
            RunnerError::SessionFailed { .. } => Self::Session,
            _ => Self::TestApp,
        }
    }
}

/// Why a suite ended in error: the phase, the component where there is one, the kind, the
/// message `pit run` prints (the error and its causes), and the error itself.
///
/// ```
/// use pit_core::engine::{FailureKind, Phase, SuiteFailure};
/// let f = SuiteFailure::new(Phase::Deploy, FailureKind::NotHealthy, "status check of `db` did not pass within 30s")
///     .in_component("db");
/// assert_eq!(f.to_string(), "status check of `db` did not pass within 30s");
/// assert_eq!(serde_json::to_value(&f).unwrap()["kind"], "not-healthy");
/// ```
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SuiteFailure {
    /// Where in the suite's life.
    pub phase: Phase,
    /// What kind.
    pub kind: FailureKind,
    /// The component (or test app, or Lock Manager) it happened in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// What went wrong, naming where: the error and its causes.
    pub message: String,
    /// The error, with its own sources (a backend's error can be downcast, for example to
    /// `kube::Error`).
    #[serde(skip)]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl SuiteFailure {
    /// A failure without an underlying error.
    pub fn new(phase: Phase, kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            phase,
            kind,
            component: None,
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `error`: the message is its chain, after `context` if given.
    pub fn caused_by(
        phase: Phase,
        kind: FailureKind,
        context: Option<&str>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let chain = error_chain(&error);
        Self {
            phase,
            kind,
            component: None,
            message: match context {
                Some(c) => format!("{c}: {chain}"),
                None => chain,
            },
            source: Some(Arc::new(error)),
        }
    }

    /// A failed deployment step of a component.
    pub fn deploy(error: DeployError) -> Self {
        let component = error.component().map(str::to_owned);
        let phase = if matches!(error, DeployError::Environment { .. }) {
            Phase::Environment
        } else {
            Phase::Deploy
        };
        Self {
            component,
            ..Self::caused_by(phase, FailureKind::of_deploy(&error), None, error)
        }
    }

    /// The same, in `component`.
    #[must_use]
    pub fn in_component(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }

    /// The error, if the failure has one.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl PartialEq for SuiteFailure {
    /// Equal when all but the error are: errors do not compare.
    fn eq(&self, other: &Self) -> bool {
        (self.phase, self.kind, &self.component, &self.message)
            == (other.phase, other.kind, &other.component, &other.message)
    }
}

impl Eq for SuiteFailure {}

impl std::fmt::Display for SuiteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SuiteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// One suite's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteResult {
    /// Suite id.
    pub id: String,
    /// Its environment.
    pub environment: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: SuiteOutcome,
    /// Where the report was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredReport>,
    /// Problems during teardown (already logged; the environment may need a look).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teardown_errors: Vec<String>,
    /// Post-test actions that failed (see [`super::AfterReport`]): warnings, unless the
    /// frontend is told to fail on them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub action_errors: Vec<String>,
    /// Commands that remove a kept environment (with `keep`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// The full record.
    pub report: SuiteReport,
}

/// A whole run's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// Per suite, in order.
    pub suites: Vec<SuiteResult>,
}

impl RunSummary {
    /// Whether a post-test action failed in any suite.
    pub fn has_action_errors(&self) -> bool {
        self.suites.iter().any(|s| !s.action_errors.is_empty())
    }

    /// The exit code, where a failed post-test action counts as an infrastructure failure
    /// when the outcome is otherwise a pass (`--fail-on-action-error`).
    pub fn exit_code_failing_on_actions(&self) -> i32 {
        match self.exit_code() {
            crate::exit::OK if self.has_action_errors() => crate::exit::INFRASTRUCTURE,
            code => code,
        }
    }

    /// The documented exit code: 130 if interrupted, else 3 if any suite had an infrastructure
    /// failure, else 1 if any tests failed, else 0.
    pub fn exit_code(&self) -> i32 {
        let has = |f: fn(&SuiteOutcome) -> bool| self.suites.iter().any(|s| f(&s.outcome));
        if has(|o| matches!(o, SuiteOutcome::Cancelled { .. })) {
            crate::exit::INTERRUPTED
        } else if has(|o| matches!(o, SuiteOutcome::Error { .. })) {
            crate::exit::INFRASTRUCTURE
        } else if has(|o| matches!(o, SuiteOutcome::Failed)) {
            crate::exit::TESTS_FAILED
        } else {
            crate::exit::OK
        }
    }
}
