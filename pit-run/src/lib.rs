//! # pit-run
//!
//! What `pit run` sets up before the engine starts, shared by the CLI and the Python bindings
//! (`pit.run`), so both behave the same: the plan with its REMOTE parts fetched, the backend,
//! the lock store (the embedded one, a Lock Manager, or one deployed for each suite), the report
//! store and the engine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pit_run::DriverError> {
//! use pit_run::{prepare, RunSettings};
//! let settings = RunSettings::new("examples/node-1/pitfile.yml");
//! let loaded = settings.load()?;
//! let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
//! let run = prepare(&settings, &loaded, events, &|note: &str| eprintln!("{note}")).await?;
//! let summary = run.engine.run(&run.plan, &run.options, &Default::default(), &Default::default()).await;
//! println!("exit code {}", summary.exit_code());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// What a program that embeds a run needs, so that it depends on this crate and tokio only.
pub use async_trait::async_trait;
pub use pit_actions;
pub use pit_core;
/// How a test app that publishes no URL is reached on Kubernetes.
pub use pit_k8s::ServiceAccess;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
pub use tokio_util::sync::CancellationToken;

use pit_core::deploy::{Deployer, LocalDeployer};
use pit_core::diagnostic::Severity;
use pit_core::engine::{Engine, Event, RunOptions};
use pit_core::lock::{FileLockStore, LockStore};
use pit_core::naming::RunId;
use pit_core::pitfile::{LoadError, LoadOptions, Loaded};
use pit_core::plan::Plan;
use pit_core::resolve::SourceFetcher;
use pit_core::runner::{HttpTestRunnerClient, TestRunnerClient};
use pit_core::sink::ReportSink;
use pit_report::store::{AnyStore, StoreSpec};

/// Where suites run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// k8s when a kubeconfig is given, else local.
    #[default]
    Auto,
    /// Sandboxes on this machine.
    Local,
    /// A namespace per suite.
    K8s,
}

/// The settings of one run: what `pit run`'s flags say.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The pitfile.
    pub pitfile: PathBuf,
    /// Make every unknown key an error.
    pub strict: bool,
    /// Use this run id instead of a new one.
    pub run_id: Option<RunId>,
    /// Most commands running at once within a suite.
    pub max_parallel: usize,
    /// Run suites concurrently where their lock sets do not overlap.
    pub parallel_suites: bool,
    /// Leave the environments up after the tests.
    pub keep: bool,
    /// Where runs, logs, embedded locks and (by default) reports are kept
    /// (default: [`default_state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Where reports go (default: `dir:<state dir>/reports`).
    pub report_store: Option<StoreSpec>,
    /// Where suites run.
    pub backend: Backend,
    /// The cluster's kubeconfig (default: `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// k8s: make suites' namespaces HNC sub-namespaces of this one.
    pub parent_namespace: Option<String>,
    /// A running Lock Manager to take locks from (token from `PIT_LOCK_TOKEN`).
    pub lock_manager: Option<String>,
    /// The folder LOCAL paths are relative to (default: the pitfile's folder); see
    /// [`LoadOptions::workspace`].
    pub workspace: Option<PathBuf>,
    /// k8s: how to reach a test app (or deployed Lock Manager) that publishes no URL.
    pub access: pit_k8s::ServiceAccess,
    /// k8s: how long to wait for a namespace to be created or deleted (default 120 s).
    pub namespace_timeout: Option<Duration>,
    /// What the frontend knows of the CI job and its environment: the job, the commit, the
    /// report author, tokens, the kubeconfig (default: nothing; frontends give
    /// [`JobContext::from_env`]).
    pub context: JobContext,
    /// Extra variables for every command.
    pub env: std::collections::BTreeMap<String, String>,
    /// Start a Lock Manager over memory on a loopback port for this run and take every lock
    /// there: neither `lock_manager` nor the one the pitfile deploys is used (the existing
    /// toolkit's `--lock-manager-mock true`). Commands get its URL as `PIT_LOCK_MANAGER_URL`.
    pub lock_manager_mock: bool,
    /// Call commands as the existing toolkit's deployer does (namespace first); see
    /// [`Engine::with_toolkit_args`].
    pub toolkit_args: bool,
    /// A backend of the embedding program's own, in place of `backend`.
    pub deployer: Option<Custom<dyn Deployer>>,
    /// A lock store of the embedding program's own, in place of `lock_manager`, the mock and
    /// the embedded store (the pitfile's `lockManager.deploy` is not used with it).
    pub locks: Option<Custom<dyn LockStore>>,
    /// A report store of the embedding program's own, in place of `report_store`.
    pub reports: Option<Custom<dyn ReportSink>>,
    /// How test apps are called, in place of HTTP (the Test Runner protocol).
    pub runner: Option<Custom<RunnerFn>>,
    /// How REMOTE suites and components are fetched, in place of git.
    pub fetcher: Option<Custom<dyn SourceFetcher>>,
    /// The post-test actions: the pitfile's `postTestActions`, and more.
    pub actions: ActionSettings,
}

/// How a run's post-test actions run (see `docs/actions.md`): the pitfile's
/// `postTestActions` section, these `extra` actions, and how.
#[derive(Debug, Clone, Default)]
pub struct ActionSettings {
    /// Actions beside the pitfile's, each under its trigger (`pit run --on-fail …`).
    pub extra: Vec<(pit_actions::summary::Trigger, pit_actions::action::Action)>,
    /// Render each message instead of sending it (nothing is tagged either).
    pub dry_run: bool,
    /// The report's URL for the messages; `{project}`, `{suite}` and `{run}` stand for the
    /// report's.
    pub report_url: Option<String>,
    /// Where secrets named `{env: NAME}` are read (default: the process environment).
    pub env: Option<Custom<pit_actions::secret::Env>>,
    /// Gets each action's label and outcome as it ends (a dry run's body is in it).
    pub printer: Option<Custom<ActionPrinter>>,
}

/// Gets a post-test action's label (`teams (onFail)`) and outcome.
pub type ActionPrinter = pit_actions::hook::Printer;

/// Makes the client of a test app from its URL (a [`pit_core::engine::RunnerFactory`] is an
/// `Arc` of it).
pub type RunnerFn = dyn Fn(&str) -> Arc<dyn TestRunnerClient> + Send + Sync;

/// A part the embedding program gives (such as its own [`Deployer`]); its `Debug` says only
/// that it is there.
pub struct Custom<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for Custom<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for Custom<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Custom(..)")
    }
}

impl RunSettings {
    /// The defaults of `pit run FILE`.
    pub fn new(pitfile: impl Into<PathBuf>) -> Self {
        Self {
            pitfile: pitfile.into(),
            strict: false,
            run_id: None,
            max_parallel: 16,
            parallel_suites: false,
            keep: false,
            state_dir: None,
            report_store: None,
            backend: Backend::Auto,
            kubeconfig: None,
            parent_namespace: None,
            lock_manager: None,
            workspace: None,
            access: pit_k8s::ServiceAccess::default(),
            namespace_timeout: None,
            context: JobContext::default(),
            env: std::collections::BTreeMap::new(),
            lock_manager_mock: false,
            toolkit_args: false,
            deployer: None,
            locks: None,
            reports: None,
            runner: None,
            fetcher: None,
            actions: ActionSettings::default(),
        }
    }

    /// Loads the pitfile as `pit run` does: an unset `${{ env.NAME }}` is an error, since
    /// nothing must be deployed with a hole in its settings.
    ///
    /// # Errors
    /// [`DriverError::Load`]; [`LoadError::Invalid`] carries every diagnostic.
    pub fn load(&self) -> Result<Loaded, DriverError> {
        pit_core::pitfile::load_file(&self.pitfile, &self.load_options()).map_err(DriverError::Load)
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            strict: self.strict,
            unset_env: Severity::Error,
            workspace: self.workspace.clone(),
            ..LoadOptions::default()
        }
    }

    /// The kubeconfig in use: the setting, else the context's (`KUBECONFIG`).
    pub fn kubeconfig(&self) -> Option<PathBuf> {
        self.kubeconfig.clone().or_else(|| self.context.kubeconfig.clone())
    }

    /// Whether suites run on Kubernetes.
    pub fn uses_k8s(&self) -> bool {
        match self.backend {
            Backend::K8s => true,
            Backend::Local => false,
            Backend::Auto => self.kubeconfig().is_some(),
        }
    }
}

/// What a run knows of the CI job and the machine it runs in. The frontend gives it (the CLI
/// and `pit.run` use [`JobContext::from_env`]); no library code reads these variables on its
/// own. Its `Debug` never shows the tokens.
///
/// ```
/// use pit_run::JobContext;
/// let vars = [("GITHUB_SERVER_URL", "https://github.com"), ("GITHUB_REPOSITORY", "acme/shop"),
///     ("GITHUB_RUN_ID", "42"), ("GITHUB_SHA", "0123abc"), ("PIT_LOCK_TOKEN", "s3cret")];
/// let context = JobContext::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
/// assert_eq!(context.job.as_deref(), Some("https://github.com/acme/shop/actions/runs/42"));
/// assert_eq!(context.commit.as_deref(), Some("0123abc"));
/// assert!(!format!("{context:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default)]
pub struct JobContext {
    /// The CI job (its URL where the CI gives one): shown to whoever waits for the run's locks
    /// and recorded on its namespaces.
    pub job: Option<String>,
    /// The branch tested, recorded in reports.
    pub branch: Option<String>,
    /// The commit tested, recorded in reports.
    pub commit: Option<String>,
    /// The author of report commits in a git store, name and email (default `PIT
    /// <pit@localhost>`).
    pub author: (Option<String>, Option<String>),
    /// The Lock Manager's bearer token.
    pub lock_token: Option<String>,
    /// Credentials for HTTPS git servers (REMOTE suites, a git report store).
    pub git: pit_git::Credentials,
    /// The kubeconfig, when no setting names one.
    pub kubeconfig: Option<PathBuf>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job)
            .field("branch", &self.branch)
            .field("commit", &self.commit)
            .field("author", &self.author)
            .field("lock_token", &self.lock_token.as_ref().map(|_| "REDACTED"))
            .field("git", &self.git)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl JobContext {
    /// From this process's environment (see [`from_vars`](Self::from_vars)).
    pub fn from_env() -> Self {
        Self::from_vars(|n| std::env::var(n).ok())
    }

    /// From the variables `var` gives (an empty value counts as unset):
    /// - the job: `PIT_CI_JOB`, else GitHub Actions' run URL, GitLab's `CI_JOB_URL`, Jenkins'
    ///   `BUILD_URL`;
    /// - the branch and commit: `PIT_BRANCH`/`PIT_COMMIT`, else GitHub's
    ///   `GITHUB_REF_NAME`/`GITHUB_SHA`, GitLab's `CI_COMMIT_REF_NAME`/`CI_COMMIT_SHA`,
    ///   Jenkins' `GIT_BRANCH`/`GIT_COMMIT`;
    /// - the report author: `PIT_GIT_AUTHOR_NAME`, `PIT_GIT_AUTHOR_EMAIL`;
    /// - tokens: `PIT_LOCK_TOKEN`, `PIT_GIT_TOKEN` (with `PIT_GIT_USERNAME`);
    /// - `KUBECONFIG`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |n: &str| var(n).filter(|v| !v.is_empty());
        let first = |names: &[&str]| names.iter().find_map(|n| var(n));
        let github = || {
            Some(format!(
                "{}/{}/actions/runs/{}",
                var("GITHUB_SERVER_URL")?,
                var("GITHUB_REPOSITORY")?,
                var("GITHUB_RUN_ID")?
            ))
        };
        Self {
            job: var("PIT_CI_JOB")
                .or_else(github)
                .or_else(|| first(&["CI_JOB_URL", "BUILD_URL"])),
            branch: first(&["PIT_BRANCH", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "GIT_BRANCH"]),
            commit: first(&["PIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"]),
            author: (var("PIT_GIT_AUTHOR_NAME"), var("PIT_GIT_AUTHOR_EMAIL")),
            lock_token: var(pit_lock::TOKEN_ENV),
            git: pit_git::Credentials {
                username: var(pit_git::USERNAME_ENV),
                token: var(pit_git::TOKEN_ENV),
            },
            kubeconfig: var("KUBECONFIG").map(PathBuf::from),
        }
    }

    /// The branch and commit, for reports.
    pub fn report_context(&self) -> pit_report::store::RunContext {
        pit_report::store::RunContext {
            branch: self.branch.clone(),
            git_commit: self.commit.clone(),
        }
    }
}

/// Where PIT keeps its state when no state directory is given: `$XDG_STATE_HOME/pit`, else
/// `~/.local/state/pit`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pit")
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The pitfile could not be read, or has errors.
    #[error(transparent)]
    Load(LoadError),
    /// A REMOTE suite or component could not be fetched or read.
    #[error(transparent)]
    Resolve(#[from] pit_core::resolve::ResolveError),
    /// The Lock Manager URL is not usable.
    #[error(transparent)]
    Lock(#[from] pit_core::lock::LockError),
    /// The cluster could not be reached.
    #[error(transparent)]
    Cluster(#[from] pit_k8s::ConnectError),
    /// The mock Lock Manager could not start.
    #[error("cannot start the mock Lock Manager on loopback")]
    MockLockManager(#[source] std::io::Error),
    /// A post-test action of the pitfile cannot run.
    #[error("postTestActions: {0}")]
    Actions(String),
}

impl DriverError {
    /// The exit code `pit run` ends with (see `pit_core::exit`).
    pub fn exit_code(&self) -> i32 {
        use pit_core::exit;
        match self {
            DriverError::Load(_) | DriverError::Actions(_) => exit::INVALID,
            DriverError::Resolve(pit_core::resolve::ResolveError::Fetch { .. }) => exit::INFRASTRUCTURE,
            DriverError::Resolve(_) => exit::INVALID,
            DriverError::Lock(pit_core::lock::LockError::Invalid(_)) => exit::INVALID,
            DriverError::Lock(_) | DriverError::Cluster(_) | DriverError::MockLockManager(_) => exit::INFRASTRUCTURE,
        }
    }
}

/// A run ready to start: `engine.run(&plan, &options, …)`.
pub struct PreparedRun {
    /// The plan, REMOTE parts fetched.
    pub plan: Plan,
    /// The engine, sending its events where [`prepare`] was told.
    pub engine: Engine,
    /// The run's options.
    pub options: RunOptions,
    /// Where the run's environments, logs and outputs are kept.
    pub run_dir: PathBuf,
    /// The Lock Manager started for this run ([`RunSettings::lock_manager_mock`]); it stops
    /// when this is dropped, so keep it until the run has ended.
    pub lock_manager_mock: Option<pit_lock::testing::MockLockManager>,
    /// Summarizes each suite's report as its post-test actions see it (compared with the
    /// suite's earlier runs in the run's report store): what `pit run`'s CI summary shows.
    pub summarizer: pit_actions::hook::Summarizer,
}

/// The run's post-test actions, if it has any: the pitfile's (templates relative to its
/// folder) and the settings' extra ones.
fn post_test_actions(
    settings: &RunSettings,
    loaded: &Loaded,
    summarizer: pit_actions::hook::Summarizer,
) -> Result<Option<pit_actions::hook::PostTestActions>, DriverError> {
    let dir = settings.pitfile.parent().unwrap_or(std::path::Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let mut actions = match &loaded.pitfile.post_test_actions {
        Some(section) => pit_actions::hook::actions_of(section, dir).map_err(DriverError::Actions)?,
        None => Vec::new(),
    };
    actions.extend(settings.actions.extra.iter().cloned());
    if actions.is_empty() {
        return Ok(None);
    }
    let a = &settings.actions;
    let runner = match &a.env {
        Some(Custom(env)) => {
            let env = env.clone();
            pit_actions::action::Runner::new(move |n| env(n))
        }
        None => pit_actions::action::Runner::from_env(),
    };
    let hook = pit_actions::hook::PostTestActions::new(runner.dry_run(a.dry_run).with_workdir(dir), actions)
        .with_summarizer(summarizer);
    Ok(Some(match &a.printer {
        Some(Custom(print)) => hook.with_printer(print.clone()),
        None => hook,
    }))
}

/// The whole run's JUnit XML: one `<testsuite>` per suite (see [`pit_report::to_junit_all`]),
/// what `pit run --junit FILE` writes.
///
/// ```
/// let summary = pit_core::engine::RunSummary { run_id: "01jq".into(), suites: Vec::new() };
/// assert!(pit_run::junit(&summary).contains(r#"<testsuites name="pit run 01jq" tests="0""#));
/// ```
pub fn junit(summary: &pit_core::engine::RunSummary) -> String {
    let reports: Vec<pit_report::Report> = summary
        .suites
        .iter()
        .map(|s| pit_report::Report::from_suite(&s.report))
        .collect();
    pit_report::to_junit_all(&format!("pit run {}", summary.run_id), &reports)
}

/// The Lock Manager client for `url`, with `token`.
///
/// # Errors
/// [`pit_core::lock::LockError::Invalid`] for a URL that cannot be used.
pub fn lock_client(url: &str, token: Option<String>) -> Result<pit_lock::HttpLockStore, pit_core::lock::LockError> {
    pit_lock::HttpLockStore::new(url, token)
}

/// Loads `settings`' pitfile, sets the run up and runs it, as `pit run` does: the whole run in
/// one call. `note` gets the lines `pit run` prints on the way; `cancel` interrupts the run
/// (teardown still runs before this returns).
///
/// # Errors
/// [`DriverError`] when the run cannot start; a run that starts returns its summary whatever
/// its suites' outcomes.
pub async fn run(
    settings: &RunSettings,
    cancel: &CancellationToken,
    note: &(dyn Fn(&str) + Sync),
) -> Result<pit_core::engine::RunSummary, DriverError> {
    let loaded = settings.load()?;
    let (events, _ignored) = tokio::sync::mpsc::unbounded_channel();
    let run = prepare(settings, &loaded, events, note).await?;
    // `run` (with its mock Lock Manager, if any) lives until the run has ended.
    Ok(run
        .engine
        .run(&run.plan, &run.options, cancel, &CancellationToken::new())
        .await)
}

/// Sets up the run of `loaded` as `settings` say: fetches REMOTE parts, picks the backend and
/// the lock and report stores, and builds the engine, which sends its events to `events`.
/// `note` gets the lines `pit run` prints on the way ("backend: Kubernetes …").
///
/// # Errors
/// [`DriverError`] when the run cannot start.
pub async fn prepare(
    settings: &RunSettings,
    loaded: &Loaded,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    note: &(dyn Fn(&str) + Sync),
) -> Result<PreparedRun, DriverError> {
    let run_id = settings.run_id.unwrap_or_else(RunId::generate);
    let plan = Plan::build(loaded, run_id);
    let state = settings.state_dir.clone().unwrap_or_else(default_state_dir);
    let state = std::path::absolute(&state).unwrap_or(state);
    let run_dir = state.join("runs").join(run_id.to_string());
    let report_store = settings
        .report_store
        .clone()
        .unwrap_or_else(|| StoreSpec::Dir(state.join("reports")));
    let job = &settings.context;
    let reports: Arc<dyn ReportSink> = match &settings.reports {
        Some(Custom(own)) => own.clone(),
        None => Arc::new(
            AnyStore::open(&report_store, &state.join("report-repos"))
                .with_context(job.report_context())
                .with_author(job.author.0.clone(), job.author.1.clone())
                .with_credentials(job.git.clone()),
        ),
    };
    let plan = if pit_core::resolve::needs_fetching(&plan) {
        note("fetching remote suites and components");
        let fetcher: Arc<dyn SourceFetcher> = match &settings.fetcher {
            Some(Custom(own)) => own.clone(),
            None => Arc::new(pit_git::GitCache::new(state.join("sources")).with_credentials(job.git.clone())),
        };
        pit_core::resolve::resolve(plan, &*fetcher, &settings.load_options()).await?
    } else {
        plan
    };
    let own_locks = settings.locks.as_ref().map(|Custom(own)| own.clone());
    let mock = if settings.lock_manager_mock && own_locks.is_none() {
        let mock = pit_lock::testing::MockLockManager::start()
            .await
            .map_err(DriverError::MockLockManager)?;
        note(&format!(
            "the Lock Manager is mocked (--lock-manager-mock true): an in-memory Lock Manager at {} for this run only",
            mock.url()
        ));
        Some(mock)
    } else {
        None
    };
    let lock_manager = settings
        .lock_manager
        .as_ref()
        .filter(|_| mock.is_none() && own_locks.is_none());
    let locks: Arc<dyn LockStore> = match (own_locks.clone(), &mock, lock_manager) {
        (Some(own), _, _) => own,
        (None, Some(mock), _) => Arc::new(mock.client()),
        (None, None, Some(url)) => Arc::new(lock_client(url, job.lock_token.clone())?),
        (None, None, None) => Arc::new(FileLockStore::new(state.join("locks"))),
    };
    // A Lock Manager given in the settings is shared and already running: the pitfile's
    // `lockManager.deploy` is for runs without one.
    let given = lock_manager.is_some() || mock.is_some() || own_locks.is_some();
    let deploy_lock_manager = !given && plan.lock_manager.is_some();
    if !given && plan.lock_manager_enabled && plan.lock_manager.is_none() {
        note(
            "lockManager is enabled but has no `deploy` and no --lock-manager was given: locks go to the embedded \
             lock store, exclusive on this machine only (hint: pass --lock-manager URL or set PIT_LOCK_MANAGER)",
        );
    }
    // What the suites of a killed `pit` left running (on this host) ends now.
    for (run, pids) in pit_core::process::end_left_by_dead_runs(&state.join("runs"), Duration::from_secs(5)).await {
        note(&format!(
            "ended {} process(es) left running by run {run}, whose pit process is gone",
            pids.len()
        ));
    }
    if let Err(e) = pit_core::process::claim_run_dir(&run_dir) {
        note(&format!("cannot record this run in {}: {e}", run_dir.display()));
    }
    note(&format!("run {run_id}: logs in {}", run_dir.display()));
    let deployer: Arc<dyn Deployer> = if let Some(Custom(own)) = &settings.deployer {
        note("backend: the embedding program's own");
        own.clone()
    } else if settings.uses_k8s() {
        let kubeconfig = settings.kubeconfig();
        let client = pit_k8s::client(kubeconfig.as_deref()).await?;
        note("backend: Kubernetes (a namespace per suite)");
        let deployer = pit_k8s::K8sDeployer::new(client, &run_dir, kubeconfig)
            .with_parent_namespace(settings.parent_namespace.clone())
            .with_access(settings.access.clone());
        Arc::new(match settings.namespace_timeout {
            Some(t) => deployer.with_timeout(t),
            None => deployer,
        })
    } else {
        Arc::new(LocalDeployer::new(&run_dir))
    };
    let runner: pit_core::engine::RunnerFactory = match &settings.runner {
        Some(Custom(own)) => own.clone(),
        None => Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    };
    let engine = Engine::new(deployer, locks, runner)
        .with_reports(reports.clone())
        .with_events(events)
        .with_toolkit_args(settings.toolkit_args);
    let summarizer = pit_actions::hook::Summarizer::default()
        .with_reports(reports.clone())
        .with_context(job.report_context())
        .with_links(settings.actions.report_url.clone(), job.job.clone());
    let engine = match post_test_actions(settings, loaded, summarizer.clone())? {
        Some(hook) => engine.with_after_report(Arc::new(hook)),
        None => engine,
    };
    let engine = if deploy_lock_manager {
        let token = job.lock_token.clone();
        engine.with_deployed_lock_manager(Arc::new(move |url: &str| {
            lock_client(url, token.clone()).map(|c| Arc::new(c) as Arc<dyn LockStore>)
        }))
    } else {
        engine
    };
    let mut env = settings.env.clone();
    if let Some(mock) = &mock {
        env.insert(pit_core::plan::LOCK_MANAGER_URL_KEY.to_owned(), mock.url().to_owned());
    }
    let options = RunOptions {
        max_parallel: settings.max_parallel,
        keep: settings.keep,
        parallel_suites: settings.parallel_suites,
        env,
        ci_job: job.job.clone(),
        ..RunOptions::default()
    };
    Ok(PreparedRun {
        plan,
        engine,
        options,
        run_dir,
        lock_manager_mock: mock,
        summarizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(vars: &[(&str, &str)]) -> JobContext {
        JobContext::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn the_job_context_comes_from_each_cis_variables_and_pit_s_own_win() {
        let gitlab = context(&[
            ("CI_JOB_URL", "https://gitlab.example.com/shop/-/jobs/7"),
            ("CI_COMMIT_SHA", "abc"),
            ("CI_COMMIT_REF_NAME", "main"),
        ]);
        assert_eq!(gitlab.job.as_deref(), Some("https://gitlab.example.com/shop/-/jobs/7"));
        assert_eq!(
            (gitlab.branch.as_deref(), gitlab.commit.as_deref()),
            (Some("main"), Some("abc"))
        );
        let jenkins = context(&[("BUILD_URL", "https://jenkins/job/3/"), ("GIT_COMMIT", "def")]);
        assert_eq!(jenkins.job.as_deref(), Some("https://jenkins/job/3/"));
        assert_eq!(jenkins.commit.as_deref(), Some("def"));
        // PIT's own variables win; empty values count as unset.
        let own = context(&[
            ("PIT_CI_JOB", "nightly"),
            ("CI_JOB_URL", "https://gitlab/jobs/1"),
            ("PIT_COMMIT", ""),
            ("GITHUB_SHA", "0123"),
            ("PIT_GIT_TOKEN", "t0k3n"),
            ("PIT_LOCK_TOKEN", "l0ck"),
            ("KUBECONFIG", ""),
        ]);
        assert_eq!(
            (own.job.as_deref(), own.commit.as_deref()),
            (Some("nightly"), Some("0123"))
        );
        assert_eq!(own.git.token.as_deref(), Some("t0k3n"));
        assert!(own.kubeconfig.is_none());
        let shown = format!("{own:?}");
        assert!(!shown.contains("t0k3n") && !shown.contains("l0ck"), "{shown}");
        // Nothing set: nothing known.
        assert!(context(&[]).job.is_none());
    }
}
