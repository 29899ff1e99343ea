//! The orchestration engine: what `pit run` does for every suite.
//!
//! For each suite of a [`Plan`]: create the environment, take the locks, deploy the components
//! (each as soon as its dependencies are healthy, independent ones concurrently), deploy the
//! test app, run the tests, tear down in reverse dependency order, release the locks, and store
//! the [`SuiteReport`]. Teardown and release happen on every path: success, failure, timeout and
//! cancellation. A second cancellation (`force`) cuts teardown short.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use pit_core::{deploy::LocalDeployer, engine::{Engine, RunOptions}, lock::FileLockStore};
//! use pit_core::{naming::RunId, pitfile, plan::Plan, runner::HttpTestRunnerClient};
//!
//! let loaded = pitfile::load_file("pitfile.yml".as_ref(), &Default::default()).unwrap();
//! let run_id = RunId::generate();
//! let engine = Engine::new(
//!     Arc::new(LocalDeployer::new(format!("/tmp/pit/runs/{run_id}"))),
//!     Arc::new(FileLockStore::new("/tmp/pit/locks")),
//!     Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
//! );
//! let plan = Plan::build(&loaded, run_id);
//! let summary = engine.run(&plan, &RunOptions::default(), &Default::default(), &Default::default()).await;
//! std::process::exit(summary.exit_code());
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::deploy::{DeployError, Deployer, Environment, EnvironmentRequest, Step, StepKind};
use crate::lock::{now_ms, Lease, LockOwner, LockRequest, LockStore};
use crate::pitfile::LockId;
use crate::plan::{CommandPlan, ComponentPlan, Plan, SuitePlan, WorkDir, LOCK_MANAGER_URL_KEY};
use crate::protocol::TEST_APP_URL_KEY;
use crate::runner::TestRunnerClient;
use crate::sink::{ReportSink, StoredReport, SuiteReport, TimelineEntry};

mod outcome;
mod suite;
mod timeline;
mod vars;

pub use outcome::{FailureKind, Phase, RunSummary, SuiteFailure, SuiteOutcome, SuiteResult};
use timeline::Timeline;
pub use vars::read_outputs;
use vars::*;

/// Makes a Test Runner client for the test app's base URL.
pub type RunnerFactory = Arc<dyn Fn(&str) -> Arc<dyn TestRunnerClient> + Send + Sync>;

/// Makes a lock store for the base URL of a Lock Manager PIT deployed (see
/// [`Engine::with_deployed_lock_manager`]); `Err` says why the URL cannot be used.
pub type LockStoreFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn LockStore>, crate::lock::LockError> + Send + Sync>;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most commands running at once within a suite (default: 16; deploy commands mostly
    /// wait on other systems, so this is not about cores).
    pub max_parallel: usize,
    /// Leave environments up after the tests (no undeploy), for debugging.
    pub keep: bool,
    /// Lease length; leases are renewed every third of it (default: 60 s).
    pub lock_ttl: Duration,
    /// How often to ask a test app without long-poll support for its status (default: 1 s).
    pub poll: Duration,
    /// Extra variables for every command (PIT's own `PIT_*` win).
    pub env: BTreeMap<String, String>,
    /// Run suites concurrently where their lock sets do not overlap (default: one after
    /// another). Suites that share a lock id keep their pitfile order.
    pub parallel_suites: bool,
    /// The CI job running the run (its URL or id), shown to whoever waits for the run's locks
    /// and given to the backend; the frontend reads it from the CI's variables.
    pub ci_job: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            max_parallel: 16,
            keep: false,
            lock_ttl: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            env: BTreeMap::new(),
            parallel_suites: false,
            ci_job: None,
        }
    }
}

/// Something that happened, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unix ms.
    pub at_ms: u64,
    /// The suite.
    pub suite: String,
    /// What.
    pub kind: EventKind,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EventKind {
    /// The suite starts.
    SuiteStarted {
        /// Its environment.
        environment: String,
    },
    /// Waiting for locks.
    WaitingForLocks {
        /// The ids.
        ids: Vec<String>,
    },
    /// Still waiting for locks: the request's place in the Lock Manager's queue (1: next) and
    /// who holds them. Sent when either changes.
    LockQueue {
        /// The place in the queue.
        position: u32,
        /// `id held by owner`, for each held id.
        holders: Vec<String>,
    },
    /// Locks whose holder's process was gone (a `pit` killed on this host) were taken over.
    StaleLocksTakenOver {
        /// `id held by owner`, for each id taken over.
        holders: Vec<String>,
    },
    /// Locks taken.
    LocksTaken,
    /// A failed suite's forensics bundle was gathered (before teardown).
    Forensics {
        /// What it found, and where it is.
        summary: String,
    },
    /// A command starts.
    StepStarted {
        /// The component.
        component: String,
        /// The step.
        step: StepKind,
    },
    /// A component is deployed and healthy.
    Ready {
        /// The component.
        component: String,
        /// Deploy plus check, in ms.
        elapsed_ms: u64,
    },
    /// A step failed.
    StepFailed {
        /// The component.
        component: String,
        /// The step.
        step: StepKind,
        /// Why.
        error: String,
    },
    /// A line of a component's log (components with `logTailing.enabled`).
    Log {
        /// The component.
        component: String,
        /// The line.
        line: String,
    },
    /// The tests started.
    TestsStarted {
        /// The session.
        session: String,
    },
    /// The tests ended.
    TestsFinished {
        /// Whether every stream passed.
        passed: bool,
    },
    /// Teardown starts.
    TearingDown,
    /// A component was undeployed.
    Undeployed {
        /// The component.
        component: String,
    },
    /// The suite ended.
    SuiteFinished {
        /// `passed`, `failed`, `error` or `cancelled`.
        outcome: String,
    },
}

/// Runs plans.
#[derive(Clone)]
pub struct Engine {
    deployer: Arc<dyn Deployer>,
    locks: Arc<dyn LockStore>,
    runner: RunnerFactory,
    reports: Option<Arc<dyn ReportSink>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    lock_manager: Option<LockStoreFactory>,
    toolkit_args: bool,
    after_report: Option<Arc<dyn AfterReport>>,
}

/// What runs once a suite's report is stored: the post-test actions (pit-run gives
/// pit-actions'; the engine knows nothing of them). It never changes the stored report.
#[async_trait::async_trait]
pub trait AfterReport: Send + Sync {
    /// Called once per suite that was not interrupted, after its report was stored (`stored`
    /// is `None` when storing failed, or there is no store). Returns one timeline entry per
    /// thing done, step `post-test-action`; an entry whose outcome is `failed` is an action
    /// error ([`SuiteResult::action_errors`]).
    async fn after_report(&self, report: &SuiteReport, stored: Option<&StoredReport>) -> Vec<TimelineEntry>;
}

impl Engine {
    /// An engine deploying with `deployer`, locking with `locks`, and reaching test apps
    /// through clients made by `runner`.
    pub fn new(deployer: Arc<dyn Deployer>, locks: Arc<dyn LockStore>, runner: RunnerFactory) -> Self {
        Self {
            deployer,
            locks,
            runner,
            reports: None,
            events: None,
            lock_manager: None,
            toolkit_args: false,
            after_report: None,
        }
    }

    /// Runs `hook` once each suite's report is stored (the post-test actions).
    #[must_use]
    pub fn with_after_report(mut self, hook: Arc<dyn AfterReport>) -> Self {
        self.after_report = Some(hook);
        self
    }

    /// Calls every command as the existing toolkit's deployer does: the environment's name
    /// (the namespace) as the first argument, then the command's `params`, and for the test
    /// app's deploy the suite id last. Its deploy scripts read `$1` as the namespace. PIT's own
    /// convention (off by default) passes `params` alone; `PIT_NAMESPACE` and `PIT_SUITE_ID`
    /// carry the same values.
    #[must_use]
    pub fn with_toolkit_args(mut self, on: bool) -> Self {
        self.toolkit_args = on;
        self
    }

    /// Deploys the plan's Lock Manager ([`Plan::lock_manager`], from the pitfile's
    /// `lockManager` section) in each suite's environment before the suite's locks are taken, as
    /// the existing toolkit does, and takes them through the store `connect` makes for the URL
    /// it publishes ([`crate::plan::LOCK_MANAGER_URL_KEY`]). It is undeployed after the locks
    /// are released. Suites without locks do not deploy it.
    ///
    /// Without this (or when the plan deploys no Lock Manager), locks go to the store given to
    /// [`Engine::new`].
    #[must_use]
    pub fn with_deployed_lock_manager(mut self, connect: LockStoreFactory) -> Self {
        self.lock_manager = Some(connect);
        self
    }

    /// Stores every suite's report in `sink`.
    #[must_use]
    pub fn with_reports(mut self, sink: Arc<dyn ReportSink>) -> Self {
        self.reports = Some(sink);
        self
    }

    /// Sends progress events to `events`.
    #[must_use]
    pub fn with_events(mut self, events: mpsc::UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs every suite of `plan`, one after another.
    ///
    /// `cancel` asks for a graceful stop (teardown still runs); `force` also cuts teardown
    /// short. Never fails as a whole: each suite's outcome is in the summary.
    pub async fn run(
        &self,
        plan: &Plan,
        opts: &RunOptions,
        cancel: &CancellationToken,
        force: &CancellationToken,
    ) -> RunSummary {
        let mut suites = Vec::new();
        if !opts.parallel_suites {
            for suite in &plan.suites {
                suites.push(self.run_suite(plan, suite, opts, cancel, force).await);
            }
            return RunSummary {
                run_id: plan.run_id.to_string(),
                suites,
            };
        }
        let locks_of =
            |i: usize| -> Vec<LockId> { plan.suites[i].locks.as_ref().map(|l| l.ids.clone()).unwrap_or_default() };
        let mut results: Vec<Option<SuiteResult>> = vec![None; plan.suites.len()];
        let mut pending: Vec<usize> = (0..plan.suites.len()).collect();
        let mut running: HashMap<usize, Vec<LockId>> = HashMap::new();
        let mut set = JoinSet::new();
        let shared = Arc::new((plan.clone(), opts.clone(), cancel.clone(), force.clone()));
        loop {
            // Start every waiting suite whose locks are free of running suites and of suites
            // before it that still wait (so suites sharing a lock keep their order).
            let mut blocked: Vec<LockId> = running.values().flatten().cloned().collect();
            pending.retain(|&i| {
                let locks = locks_of(i);
                let free = locks.iter().all(|l| !blocked.contains(l));
                blocked.extend(locks.iter().cloned());
                if free {
                    running.insert(i, locks);
                    let (engine, shared) = (self.clone(), shared.clone());
                    set.spawn(async move {
                        let (plan, opts, cancel, force) = &*shared;
                        (i, engine.run_suite(plan, &plan.suites[i], opts, cancel, force).await)
                    });
                }
                !free
            });
            let Some(joined) = set.join_next().await else { break };
            let (i, result) = match joined {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue,
            };
            running.remove(&i);
            results[i] = Some(result);
        }
        suites.extend(results.into_iter().flatten());
        RunSummary {
            run_id: plan.run_id.to_string(),
            suites,
        }
    }

    fn emit(&self, suite: &str, kind: EventKind) {
        tracing::debug!(suite, event = ?kind, "event");
        if let Some(tx) = &self.events {
            let _ = tx.send(Event {
                at_ms: now_ms(),
                suite: suite.to_owned(),
                kind,
            });
        }
    }
}

/// Runs `task(i)` for every included node once all its included `deps` are done, at most
/// `max_parallel` at once. With `cancel`, a dependency is done when it succeeded, and the first
/// failure cancels the token so nothing new starts; without (teardown), a failed node counts as
/// done too. Returns each node's result (`None`: never ran).
async fn run_graph<T, E, F, Fut>(
    deps: &[Vec<usize>],
    include: &[bool],
    max_parallel: usize,
    cancel: Option<&CancellationToken>,
    mut task: F,
) -> Vec<Option<Result<T, E>>>
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(|d| d.iter().filter(|&&j| include[j]).count()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| include[i] && remaining[i] == 0).collect();
    let permits = Arc::new(Semaphore::new(max_parallel.max(1)));
    let mut set = JoinSet::new();
    let mut results: Vec<Option<Result<T, E>>> = (0..n).map(|_| None).collect();
    let mut stopped = false;
    loop {
        while !stopped && cancel.is_none_or(|c| !c.is_cancelled()) {
            let Some(i) = ready.pop_front() else { break };
            let fut = task(i);
            let permits = permits.clone();
            set.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                (i, fut.await)
            });
        }
        let Some(joined) = set.join_next().await else { break };
        let (i, outcome) = match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue, // aborted: only when the set is dropped
        };
        // Without a cancel token (teardown), a failure must not strand what waits for it.
        match (&outcome, cancel) {
            (Err(_), Some(c)) => {
                stopped = true;
                c.cancel();
            }
            _ => {
                for &d in &dependents[i] {
                    if include[d] {
                        remaining[d] -= 1;
                        if remaining[d] == 0 {
                            ready.push_back(d);
                        }
                    }
                }
            }
        }
        results[i] = Some(outcome);
    }
    results
}

/// For each node, every node it depends on directly or not, in index order.
fn ancestors(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    (0..deps.len())
        .map(|i| {
            let mut seen = vec![false; deps.len()];
            let mut stack = deps[i].clone();
            while let Some(d) = stack.pop() {
                if !std::mem::replace(&mut seen[d], true) {
                    stack.extend(&deps[d]);
                }
            }
            (0..deps.len()).filter(|&j| seen[j]).collect()
        })
        .collect()
}

/// An error and its causes, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    error_chain_with(e, ": ")
}

/// An error and its causes, joined with `separator` (`"\n  caused by: "` gives the lines `pit`
/// prints). A cause whose text was already said (an error that quotes its source) is not
/// repeated.
pub fn error_chain_with(e: &dyn std::error::Error, separator: &str) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(separator);
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}
