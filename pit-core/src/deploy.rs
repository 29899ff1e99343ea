//! Deployers: where a suite's environment lives and how its commands run.
//!
//! A [`Deployer`] creates and removes a suite's environment and runs the pitfile's commands in
//! it. [`LocalDeployer`] gives every suite a sandbox directory and runs commands as local
//! processes; the Kubernetes deployer (pit-k8s) gives it a namespace. Both share the provided
//! methods [`Deployer::deploy`] (which also runs undeploy commands) and [`Deployer::status_check`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

// tokio's clock: the same as the system's in a run, and paused (instant) in tests.
use tokio::time::Instant;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::naming::RunId;
use crate::pitfile::{ComponentId, SuiteId};
use crate::process::{self, CommandSpec, Finished, ProcessError};

/// What a suite's environment is for.
#[derive(Debug, Clone)]
pub struct EnvironmentRequest {
    /// The run.
    pub run_id: RunId,
    /// The pitfile's project.
    pub project: String,
    /// The suite.
    pub suite: SuiteId,
    /// Its name: a DNS-1123 label (see [`crate::naming::environment_name`]).
    pub name: String,
    /// The CI job running the run, where the frontend knows it ([`RunOptions::ci_job`]): a
    /// backend may record it on the environment.
    ///
    /// [`RunOptions::ci_job`]: crate::engine::RunOptions::ci_job
    pub ci_job: Option<String>,
}

/// A suite's environment, as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Namespace or sandbox name.
    pub name: String,
    /// A directory the suite's commands share (`PIT_WORKSPACE`).
    pub workspace: PathBuf,
    /// Where each command's log is kept; survives the environment.
    pub logs: PathBuf,
    /// Where components write their outputs (`PIT_OUTPUTS` files).
    pub outputs: PathBuf,
}

/// Where a backend's forensics bundle for `env` goes: beside its logs, kept after teardown.
pub fn forensics_dir(env: &Environment) -> PathBuf {
    env.logs.with_file_name("forensics")
}

/// Which command of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// `deploy.command`.
    Deploy,
    /// `deploy.statusCheck.command`.
    StatusCheck,
    /// `undeploy.command`.
    Undeploy,
}

impl StepKind {
    /// `deploy`, `status-check` or `undeploy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::StatusCheck => "status-check",
            Self::Undeploy => "undeploy",
        }
    }
}

/// One command of one component, ready to run.
#[derive(Debug, Clone)]
pub struct Step {
    /// Which command.
    pub kind: StepKind,
    /// Whose.
    pub component: ComponentId,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables for it (`PIT_*` and the outputs of the components it depends on).
    pub env: BTreeMap<String, String>,
    /// Time limit (for a status check: the time to keep retrying).
    pub timeout: Duration,
}

/// A step that did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The environment could not be created or removed.
    #[error("cannot prepare environment `{name}`")]
    Environment {
        /// The environment.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The backend failed on its own terms (a cluster's API, say), keeping its error as the
    /// source: `downcast_ref` reaches the backend's type (`kube::Error` for pit-k8s).
    #[error("the backend failed {action} environment `{name}`")]
    Backend {
        /// The environment.
        name: String,
        /// What it was doing: `creating`, `removing`.
        action: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The command exited non-zero.
    #[error("{} of `{component}` failed with exit code {}{}", kind.as_str(), code.map_or("none (killed by a signal)".to_owned(), |c| c.to_string()), quote(tail))]
    Failed {
        /// The component.
        component: ComponentId,
        /// The step.
        kind: StepKind,
        /// Exit code.
        code: Option<i32>,
        /// The end of its output.
        tail: String,
    },
    /// The status check never passed in its time.
    #[error("status check of `{component}` did not pass within {}s ({attempts} attempts){}", timeout.as_secs(), quote(last_output))]
    NotHealthy {
        /// The component.
        component: ComponentId,
        /// The check's time limit.
        timeout: Duration,
        /// How many times it ran.
        attempts: u32,
        /// What the last attempt printed.
        last_output: String,
    },
    /// The command could not run to its end.
    #[error("{} of `{component}` did not complete", kind.as_str())]
    Process {
        /// The component.
        component: ComponentId,
        /// The step.
        kind: StepKind,
        /// Why.
        #[source]
        source: ProcessError,
    },
}

impl DeployError {
    /// The component whose step failed, if it was a component's.
    pub fn component(&self) -> Option<&str> {
        match self {
            Self::Failed { component, .. } | Self::NotHealthy { component, .. } | Self::Process { component, .. } => {
                Some(component.as_str())
            }
            Self::Environment { .. } | Self::Backend { .. } => None,
        }
    }

    /// Whether the step was stopped because the run is ending, not because it failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            Self::Process {
                source: ProcessError::Cancelled { .. },
                ..
            }
        )
    }
}

fn quote(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = tail.lines().collect();
        let last = &lines[lines.len().saturating_sub(10)..];
        format!("; last output:\n    {}", last.join("\n    "))
    }
}

/// Creates environments and runs commands in them.
///
/// Implement the three required methods; `deploy` (for deploy and undeploy commands) and `status_check` are built on
/// [`Deployer::run`].
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pit_core::deploy::{Deployer, EnvironmentRequest, LocalDeployer};
/// # let state = tempfile::tempdir()?;
/// let deployer = LocalDeployer::new(state.path().join("sandboxes"));
/// let env = deployer
///     .create_environment(&EnvironmentRequest {
///         run_id: pit_core::naming::RunId::generate(),
///         project: "demo".into(),
///         suite: "smoke".into(),
///         name: "pit-smoke-demo".into(),
///         ci_job: None,
///     })
///     .await?;
/// assert!(env.workspace.is_dir());
/// deployer.remove_environment(&env).await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait Deployer: Send + Sync {
    /// Creates the suite's environment. Must succeed again for the same request (idempotent).
    async fn create_environment(&self, req: &EnvironmentRequest) -> Result<Environment, DeployError>;

    /// Removes the environment and everything deployed in it; copes with half-made ones.
    async fn remove_environment(&self, env: &Environment) -> Result<(), DeployError>;

    /// Runs one command in the environment.
    async fn run(&self, env: &Environment, step: &Step, cancel: &CancellationToken) -> Result<Finished, DeployError>;

    /// After a failure, before teardown: gathers what explains it (events, the state of the
    /// workloads, container logs) into [`forensics_dir`]`(env)` and returns a one-line summary.
    /// `None` when the backend has nothing to add (the local one: its logs are kept anyway).
    async fn collect_forensics(&self, env: &Environment) -> Option<Result<String, DeployError>> {
        let _ = env;
        None
    }

    /// A base URL for `service` (a component id: the test app, or a deployed Lock Manager) in
    /// `env`, for when its deploy command published none. `route` is the path segment an
    /// ingress routes to it by: the suite id for a test app, as the existing toolkit's
    /// ingresses do. Whatever serves the URL (such as a local proxy) lives until the
    /// environment is removed.
    ///
    /// `Ok(None)` (the default, and the local backend's answer): the published URL is the only
    /// way.
    async fn service_url(&self, env: &Environment, service: &str, route: &str) -> Result<Option<String>, DeployError> {
        let _ = (env, service, route);
        Ok(None)
    }

    /// Runs a deploy or undeploy command and requires exit code 0.
    async fn deploy(
        &self,
        env: &Environment,
        step: &Step,
        cancel: &CancellationToken,
    ) -> Result<Finished, DeployError> {
        let done = self.run(env, step, cancel).await?;
        if done.success() {
            Ok(done)
        } else {
            Err(DeployError::Failed {
                component: step.component.clone(),
                kind: step.kind,
                code: done.code,
                tail: done.tail,
            })
        }
    }

    /// Runs a status check until it exits 0, with backoff (100 ms doubling to 2 s), for up to
    /// `step.timeout` in all. Returns the number of attempts.
    async fn status_check(
        &self,
        env: &Environment,
        step: &Step,
        cancel: &CancellationToken,
    ) -> Result<u32, DeployError> {
        let deadline = Instant::now() + step.timeout;
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            let attempt = Step {
                timeout: remaining,
                ..step.clone()
            };
            let last_output = match self.run(env, &attempt, cancel).await {
                Ok(done) if done.success() => return Ok(attempts),
                Ok(done) => done.tail,
                Err(DeployError::Process {
                    source: ProcessError::TimedOut { tail, .. },
                    ..
                }) => tail,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if now + delay >= deadline {
                return Err(DeployError::NotHealthy {
                    component: step.component.clone(),
                    timeout: step.timeout,
                    attempts,
                    last_output,
                });
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => {
                    return Err(DeployError::Process {
                        component: step.component.clone(),
                        kind: step.kind,
                        source: ProcessError::Cancelled { program: step.argv.first().cloned().unwrap_or_default() },
                    })
                }
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Where the log of `component`'s `kind` command is kept.
    fn log_path(&self, env: &Environment, component: &ComponentId, kind: StepKind) -> PathBuf {
        env.logs.join(format!("{component}.{}.log", kind.as_str()))
    }

    /// Streams `component`'s logs line by line into `out` until `stop` (for components with
    /// `logTailing.enabled`). `container` picks a container where a component has several.
    ///
    /// The default follows the component's command logs (deploy, status check, undeploy),
    /// reading them every 200 ms; a cluster deployer streams its pods' logs instead.
    async fn stream_logs(
        &self,
        env: &Environment,
        component: &ComponentId,
        container: Option<&str>,
        out: tokio::sync::mpsc::UnboundedSender<String>,
        stop: &CancellationToken,
    ) -> Result<(), DeployError> {
        let _ = container; // local commands have no containers
        let files: Vec<PathBuf> = [StepKind::Deploy, StepKind::StatusCheck, StepKind::Undeploy]
            .into_iter()
            .map(|k| self.log_path(env, component, k))
            .collect();
        let mut offsets = vec![0u64; files.len()];
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => false,
                () = stop.cancelled() => true,
            };
            for (file, seen) in files.iter().zip(offsets.iter_mut()) {
                for line in new_lines(file, seen, stopping) {
                    if out.send(line).is_err() {
                        return Ok(());
                    }
                }
            }
            if stopping {
                return Ok(());
            }
        }
    }
}

/// The complete lines added to `file` after byte `seen` (all of the rest when `all`), moving
/// `seen` past them.
fn new_lines(file: &Path, seen: &mut u64, all: bool) -> Vec<String> {
    let Ok(bytes) = std::fs::read(file) else {
        return Vec::new();
    };
    let start = usize::try_from(*seen).unwrap_or(usize::MAX).min(bytes.len());
    let new = &bytes[start..];
    let end = if all {
        new.len()
    } else {
        new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    };
    *seen += end as u64;
    String::from_utf8_lossy(&new[..end])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs commands as local processes, each suite in a sandbox directory.
///
/// Layout under `root` (by default `<state dir>/runs/<run id>`):
/// `<environment>/workspace/` (shared by the suite's commands, removed at teardown),
/// `<environment>/outputs/` and `<environment>/logs/` (kept, for reports and debugging).
#[derive(Debug, Clone)]
pub struct LocalDeployer {
    root: PathBuf,
    grace: Duration,
}

impl LocalDeployer {
    /// A deployer whose environments live under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            grace: Duration::from_secs(5),
        }
    }

    /// Sets the time between SIGTERM and SIGKILL for commands that must be stopped.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The directory environments are created in.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl Deployer for LocalDeployer {
    async fn create_environment(&self, req: &EnvironmentRequest) -> Result<Environment, DeployError> {
        let base = self.root.join(&req.name);
        let env = Environment {
            name: req.name.clone(),
            workspace: base.join("workspace"),
            logs: base.join("logs"),
            outputs: base.join("outputs"),
        };
        for dir in [&env.workspace, &env.logs, &env.outputs] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| DeployError::Environment {
                    name: req.name.clone(),
                    source,
                })?;
        }
        Ok(env)
    }

    async fn remove_environment(&self, env: &Environment) -> Result<(), DeployError> {
        match tokio::fs::remove_dir_all(&env.workspace).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DeployError::Environment {
                name: env.name.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    async fn run(&self, env: &Environment, step: &Step, cancel: &CancellationToken) -> Result<Finished, DeployError> {
        let spec = CommandSpec {
            argv: step.argv.clone(),
            cwd: step.cwd.clone(),
            env: step.env.clone(),
            timeout: step.timeout,
            grace: self.grace,
            log: self.log_path(env, &step.component, step.kind),
        };
        process::run(&spec, cancel)
            .await
            .map_err(|source| DeployError::Process {
                component: step.component.clone(),
                kind: step.kind,
                source,
            })
    }
}
