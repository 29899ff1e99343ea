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

/// Makes a Test Runner client for the test app's base URL.
pub type RunnerFactory = Arc<dyn Fn(&str) -> Arc<dyn TestRunnerClient> + Send + Sync>;

/// Makes a lock store for the base URL of a Lock Manager PIT deployed (see
/// [`Engine::with_deployed_lock_manager`]); `Err` says why the URL cannot be used.
pub type LockStoreFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn LockStore>, String> + Send + Sync>;

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

/// How a suite ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum SuiteOutcome {
    /// Every test stream passed.
    Passed,
    /// The tests ran and something failed.
    Failed,
    /// The infrastructure failed: environment, lock, deploy, status check, test app, timeout.
    Error {
        /// What went wrong, naming where.
        message: String,
    },
    /// The run was interrupted.
    Cancelled {
        /// Where it was.
        message: String,
    },
}

impl SuiteOutcome {
    /// `passed`, `failed`, `error` or `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error { .. } => "error",
            Self::Cancelled { .. } => "cancelled",
        }
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
        }
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

    #[tracing::instrument(skip_all, fields(run_id = %plan.run_id, suite = %suite.id))]
    async fn run_suite(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        opts: &RunOptions,
        cancel: &CancellationToken,
        force: &CancellationToken,
    ) -> SuiteResult {
        let started_ms = now_ms();
        let timeline = Timeline::default();
        let sid = suite.id.to_string();
        self.emit(
            &sid,
            EventKind::SuiteStarted {
                environment: suite.environment.clone(),
            },
        );
        let mut result = SuiteResult {
            id: sid.clone(),
            environment: suite.environment.clone(),
            outcome: SuiteOutcome::Passed,
            stored: None,
            teardown_errors: Vec::new(),
            kept: Vec::new(),
            report: SuiteReport {
                schema: "pit.suite-report/v1".into(),
                run_id: plan.run_id.to_string(),
                project: plan.project.clone(),
                suite_id: sid.clone(),
                suite_name: suite.name.clone(),
                outcome: String::new(),
                error: None,
                started_ms,
                finished_ms: 0,
                timeline: Vec::new(),
                test_report: None,
                spec_hash: Some(suite.spec_hash()),
            },
        };

        let outcome = 'suite: {
            if suite.remote.is_some() || unresolved(suite) || plan.lock_manager.as_ref().is_some_and(is_remote) {
                break 'suite SuiteOutcome::Error {
                    message: format!(
                        "suite `{sid}` has REMOTE parts that were not fetched (hint: pass the plan through `pit_core::resolve::resolve` first)"
                    ),
                };
            }
            let t = timeline.start("environment", None);
            let env = match self
                .deployer
                .create_environment(&EnvironmentRequest {
                    run_id: plan.run_id,
                    project: plan.project.clone(),
                    suite: suite.id.clone(),
                    name: suite.environment.clone(),
                })
                .await
            {
                Ok(env) => {
                    timeline.end(t, "ok", None);
                    env
                }
                Err(e) => {
                    timeline.end(t, "failed", Some(error_chain(&e)));
                    break 'suite SuiteOutcome::Error {
                        message: error_chain(&e),
                    };
                }
            };

            // The Lock Manager PIT deploys for this suite, if any: `lock_phase` starts deploying
            // it first thing, so teardown always undeploys it.
            let lock_manager = plan
                .lock_manager
                .as_ref()
                .filter(|_| suite.locks.is_some() && self.lock_manager.is_some());
            // Log tailing runs from here to the end of teardown.
            let stop_tailing = CancellationToken::new();
            let mut tailing = JoinSet::new();
            for c in suite.components().chain(lock_manager).filter(|c| c.log_tailing) {
                tailing.spawn(
                    self.clone()
                        .tail(sid.clone(), env.clone(), c.clone(), stop_tailing.clone()),
                );
            }

            let locked = self
                .lock_phase(plan, suite, &env, opts, cancel, &timeline, lock_manager)
                .await;
            let started = Arc::new(Mutex::new(Vec::<bool>::new()));
            let (store, lease, outcome) = match locked {
                Err(outcome) => (self.locks.clone(), None, outcome),
                Ok((store, lease)) => {
                    let suite_cancel = cancel.child_token();
                    let work =
                        self.deploy_and_test(plan, suite, &env, opts, &suite_cancel, &timeline, &started, &mut result);
                    let outcome = match &lease {
                        None => work.await,
                        Some(lease) => {
                            let stop = CancellationToken::new();
                            let (outcome, lost) = tokio::join!(
                                async {
                                    let o = work.await;
                                    stop.cancel();
                                    o
                                },
                                self.keep_alive(&*store, lease, opts.lock_ttl, &stop, &suite_cancel)
                            );
                            match lost {
                                Some(e) => SuiteOutcome::Error {
                                    message: format!("{e}; the suite was stopped"),
                                },
                                None => outcome,
                            }
                        }
                    };
                    (store, lease, outcome)
                }
            };
            let outcome = if cancel.is_cancelled() && !matches!(outcome, SuiteOutcome::Cancelled { .. }) {
                SuiteOutcome::Cancelled {
                    message: "interrupted".into(),
                }
            } else {
                outcome
            };

            if matches!(outcome, SuiteOutcome::Error { .. }) {
                let start_ms = now_ms();
                let found = self.deployer.collect_forensics(&env).await;
                let (outcome, detail) = match found {
                    None => (None, None),
                    Some(Ok(summary)) => {
                        self.emit(
                            &sid,
                            EventKind::Forensics {
                                summary: summary.clone(),
                            },
                        );
                        (Some("ok"), Some(summary))
                    }
                    Some(Err(e)) => (Some("failed"), Some(error_chain(&e))),
                };
                // Only backends that gather something add a step to the timeline.
                if let Some(outcome) = outcome {
                    timeline.record(TimelineEntry {
                        step: "forensics".into(),
                        component: None,
                        start_ms,
                        end_ms: now_ms(),
                        outcome: outcome.into(),
                        detail,
                    });
                }
            }
            let started = started.lock().expect("no panics while held").clone();
            if opts.keep {
                result.kept = self.keep_instructions(plan, suite, &env, opts, &started, lock_manager);
            } else {
                self.emit(&sid, EventKind::TearingDown);
                result.teardown_errors = self.teardown(plan, suite, &env, opts, &started, force, &timeline).await;
            }
            if let Some(lease) = lease {
                let t = timeline.start("release", None);
                match store.release(&lease).await {
                    Ok(()) => timeline.end(t, "ok", None),
                    Err(e) => {
                        timeline.end(t, "failed", Some(error_chain(&e)));
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            if !opts.keep {
                if let Some(lm) = lock_manager {
                    let vars = undeploy_env(base_env(plan, suite, &env, opts), &env, lm);
                    if let Err(e) = self.undeploy_component(&sid, &env, lm, &vars, force, &timeline).await {
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            stop_tailing.cancel();
            while tailing.join_next().await.is_some() {}
            if !opts.keep {
                // What the suite's commands left running (a background child, a `setsid`
                // daemon) ends with the suite.
                let start_ms = now_ms();
                let tag = crate::process::process_tag(&plan.run_id.to_string(), &env.name);
                let ended = crate::process::end_tagged(|t| t == tag, Duration::from_secs(5)).await;
                if !ended.is_empty() {
                    let pids: Vec<String> = ended.iter().map(ToString::to_string).collect();
                    timeline.record(TimelineEntry {
                        step: "leftover-processes".into(),
                        component: None,
                        start_ms,
                        end_ms: now_ms(),
                        outcome: "ended".into(),
                        detail: Some(format!(
                            "ended {} process(es) the suite's commands left running: pid {}",
                            ended.len(),
                            pids.join(", ")
                        )),
                    });
                }
            }
            if !opts.keep {
                let t = timeline.start("environment-removal", None);
                match self.deployer.remove_environment(&env).await {
                    Ok(()) => timeline.end(t, "ok", None),
                    Err(e) => {
                        timeline.end(t, "failed", Some(error_chain(&e)));
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            outcome
        };

        result.report.outcome = outcome.as_str().to_owned();
        result.report.error = match &outcome {
            SuiteOutcome::Error { message } | SuiteOutcome::Cancelled { message } => Some(message.clone()),
            _ => None,
        };
        result.report.finished_ms = now_ms();
        result.report.timeline = timeline.entries();
        result.outcome = outcome;
        if let Some(sink) = &self.reports {
            match sink.store(&result.report).await {
                Ok(stored) => result.stored = Some(stored),
                Err(e) => result
                    .teardown_errors
                    .push(format!("the report was not stored: {}", error_chain(&e))),
            }
        }
        self.emit(
            &sid,
            EventKind::SuiteFinished {
                outcome: result.outcome.as_str().to_owned(),
            },
        );
        result
    }

    /// Streams `c`'s logs as [`EventKind::Log`] events until `stop`.
    async fn tail(self, sid: String, env: Environment, c: ComponentPlan, stop: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forward = async {
            while let Some(line) = rx.recv().await {
                self.emit(
                    &sid,
                    EventKind::Log {
                        component: c.id.to_string(),
                        line,
                    },
                );
            }
        };
        let stream = async {
            let r = self
                .deployer
                .stream_logs(&env, &c.id, c.log_container.as_deref(), tx, &stop)
                .await;
            if let Err(e) = r {
                tracing::warn!(component = %c.id, error = %error_chain(&e), "log tailing stopped");
            }
        };
        tokio::join!(stream, forward);
    }

    /// Deploys the suite's Lock Manager when PIT deploys one (`lock_manager`: its deployment
    /// starts, so it is undeployed whatever happens here), then takes the suite's locks. Returns the store the locks live in and the lease, or the
    /// suite's outcome when either failed.
    #[allow(clippy::too_many_arguments)] // the suite's whole context, as deploy_and_test
    async fn lock_phase(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        cancel: &CancellationToken,
        timeline: &Timeline,
        lock_manager: Option<&ComponentPlan>,
    ) -> Result<(Arc<dyn LockStore>, Option<Lease>), SuiteOutcome> {
        let sid = suite.id.to_string();
        // A failure while the run is being interrupted is the interruption.
        let outcome = |interrupted: &str, message: String| {
            if cancel.is_cancelled() {
                SuiteOutcome::Cancelled {
                    message: interrupted.into(),
                }
            } else {
                SuiteOutcome::Error { message }
            }
        };
        let failed = |message: String| outcome("interrupted while deploying the Lock Manager", message);
        let mut store = self.locks.clone();
        if let (Some(lm), Some(connect)) = (lock_manager, &self.lock_manager) {
            let vars = component_env(base_env(plan, suite, env, opts), env, lm);
            let outputs = self
                .deploy_component(&sid, env, lm, &vars, cancel, timeline)
                .await
                .map_err(|e| failed(format!("the Lock Manager: {}", error_chain(&e))))?;
            let url = self
                .published_or_derived(env, &outputs, LOCK_MANAGER_URL_KEY, lm.id.as_str(), lm.id.as_str())
                .await
                .map_err(|e| failed(format!("the Lock Manager: {}", error_chain(&e))))?;
            let Some(url) = url else {
                return Err(failed(format!(
                    "Lock Manager `{}` did not publish its URL (hint: its deploy command writes `{LOCK_MANAGER_URL_KEY}=http://…` to the file named by $PIT_OUTPUTS)",
                    lm.id
                )));
            };
            store = connect(&url).map_err(|e| failed(format!("the Lock Manager at {url}: {e}")))?;
        }
        let Some(locks) = &suite.locks else {
            return Ok((store, None));
        };
        self.emit(
            &sid,
            EventKind::WaitingForLocks {
                ids: locks.ids.iter().map(ToString::to_string).collect(),
            },
        );
        let t = timeline.start("lock", None);
        let req = LockRequest {
            ids: locks.ids.clone(),
            owner: LockOwner {
                name: format!("pit run {}/{sid} (pid {})", plan.run_id, std::process::id()),
                run_id: Some(plan.run_id.to_string()),
                suite: Some(sid.clone()),
                ci_job: std::env::var("CI_JOB_URL")
                    .or_else(|_| std::env::var("GITHUB_RUN_ID"))
                    .ok(),
            },
            ttl: opts.lock_ttl,
            wait: Duration::from_millis(u64::try_from(locks.timeout_ms).unwrap_or(u64::MAX)),
        };
        let progress = |p: &crate::lock::WaitProgress| {
            self.emit(
                &sid,
                EventKind::LockQueue {
                    position: p.position,
                    holders: p.holders.iter().map(ToString::to_string).collect(),
                },
            );
        };
        match store.acquire_with_progress(&req, cancel, &progress).await {
            Ok(lease) => {
                if !lease.taken_over.is_empty() {
                    self.emit(
                        &sid,
                        EventKind::StaleLocksTakenOver {
                            holders: lease.taken_over.iter().map(ToString::to_string).collect(),
                        },
                    );
                }
                timeline.end(t, "ok", Some(fencing_detail(&lease)));
                self.emit(&sid, EventKind::LocksTaken);
                Ok((store, Some(lease)))
            }
            Err(e) => {
                let status = if cancel.is_cancelled() { "cancelled" } else { "failed" };
                timeline.end(t, status, Some(error_chain(&e)));
                Err(outcome("interrupted while waiting for locks", error_chain(&e)))
            }
        }
    }

    /// Deploys `c` with `vars` and waits for its status check; returns what it published.
    async fn deploy_component(
        &self,
        sid: &str,
        env: &Environment,
        c: &ComponentPlan,
        vars: &BTreeMap<String, String>,
        cancel: &CancellationToken,
        timeline: &Timeline,
    ) -> Result<BTreeMap<String, String>, DeployError> {
        let begun = now_ms();
        let step = |kind, cmd: &CommandPlan| step_for(c, kind, cmd, vars, self.toolkit_args);
        self.emit(
            sid,
            EventKind::StepStarted {
                component: c.id.to_string(),
                step: StepKind::Deploy,
            },
        );
        let t = timeline.start(StepKind::Deploy.as_str(), Some(c));
        let deployed = self
            .deployer
            .deploy(env, &step(StepKind::Deploy, &c.deploy), cancel)
            .await;
        timeline.finish(t, &deployed.as_ref().map(|_| None));
        if let Err(e) = deployed {
            self.emit(sid, failed_event(c, StepKind::Deploy, &e));
            return Err(e);
        }
        let own = read_outputs(&outputs_file(env, c));
        if let Some(check) = &c.deploy.status_check {
            self.emit(
                sid,
                EventKind::StepStarted {
                    component: c.id.to_string(),
                    step: StepKind::StatusCheck,
                },
            );
            let t = timeline.start(StepKind::StatusCheck.as_str(), Some(c));
            let mut s = step(StepKind::StatusCheck, &c.deploy);
            // The check sees what the deploy published (its URL, say).
            s.env.extend(own.clone());
            s.argv.clone_from(&check.argv);
            s.timeout = Duration::from_secs(check.timeout_seconds);
            let checked = self.deployer.status_check(env, &s, cancel).await;
            timeline.finish(t, &checked.as_ref().map(|n| Some(format!("{n} attempt(s)"))));
            if let Err(e) = checked {
                self.emit(sid, failed_event(c, StepKind::StatusCheck, &e));
                return Err(e);
            }
        }
        self.emit(
            sid,
            EventKind::Ready {
                component: c.id.to_string(),
                elapsed_ms: now_ms().saturating_sub(begun),
            },
        );
        Ok(own)
    }

    /// The URL a component published under `key`, else the one the backend derives for its
    /// `service` ([`Deployer::service_url`]).
    async fn published_or_derived(
        &self,
        env: &Environment,
        published: &BTreeMap<String, String>,
        key: &str,
        service: &str,
        route: &str,
    ) -> Result<Option<String>, DeployError> {
        match published.get(key) {
            Some(url) => Ok(Some(url.clone())),
            None => {
                let url = self.deployer.service_url(env, service, route).await?;
                if let Some(url) = &url {
                    tracing::info!(%service, %url, "no {key} published: reaching it through the backend");
                }
                Ok(url)
            }
        }
    }

    /// Runs `c`'s undeploy command with `vars` (cut short only by `force`).
    async fn undeploy_component(
        &self,
        sid: &str,
        env: &Environment,
        c: &ComponentPlan,
        vars: &BTreeMap<String, String>,
        force: &CancellationToken,
        timeline: &Timeline,
    ) -> Result<(), DeployError> {
        // Without an undeploy command, removing the environment cleans up.
        let Some(undeploy) = &c.undeploy else {
            return Ok(());
        };
        let t = timeline.start(StepKind::Undeploy.as_str(), Some(c));
        let step = step_for(c, StepKind::Undeploy, undeploy, vars, self.toolkit_args);
        let done = self.deployer.deploy(env, &step, force).await;
        timeline.finish(t, &done.as_ref().map(|_| None));
        match &done {
            Ok(_) => self.emit(
                sid,
                EventKind::Undeployed {
                    component: c.id.to_string(),
                },
            ),
            Err(e) => self.emit(sid, failed_event(c, StepKind::Undeploy, e)),
        }
        done.map(drop)
    }

    /// Renews `lease` every third of `ttl` until `stop`; if it is lost, cancels the suite and
    /// says why.
    async fn keep_alive(
        &self,
        store: &dyn LockStore,
        lease: &Lease,
        ttl: Duration,
        stop: &CancellationToken,
        suite: &CancellationToken,
    ) -> Option<String> {
        let mut lease = lease.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(ttl / 3) => {}
            }
            match store.renew(&lease, ttl).await {
                Ok(renewed) => lease = renewed,
                Err(e) => {
                    suite.cancel();
                    return Some(error_chain(&e));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the suite's whole context; a struct would only rename it
    async fn deploy_and_test(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        cancel: &CancellationToken,
        timeline: &Timeline,
        started: &Arc<Mutex<Vec<bool>>>,
        result: &mut SuiteResult,
    ) -> SuiteOutcome {
        let sid = suite.id.to_string();
        // A plan built by hand (not by `Plan::build`) may lack the test app, which everything
        // below waits for: an error, not a panic.
        if suite.test_app.is_none() {
            return SuiteOutcome::Error {
                message: format!(
                    "suite `{sid}` has no test app to run the tests (hint: build plans with `Plan::build` or give `test_app`)"
                ),
            };
        }
        let comps: Vec<&ComponentPlan> = suite.components().collect();
        let n = comps.len();
        let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
        // The test app (last) waits for every component.
        let deps: Vec<Vec<usize>> = comps
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    (0..n - 1).collect()
                } else {
                    c.depends_on.iter().map(|d| index[d.as_str()]).collect()
                }
            })
            .collect();
        *started.lock().expect("no panics while held") = vec![false; n];
        let outputs: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::new(Mutex::new(vec![BTreeMap::new(); n]));
        let ancestors = ancestors(&deps);
        let base = base_env(plan, suite, env, opts);

        let results = run_graph(&deps, &vec![true; n], opts.max_parallel, Some(cancel), |i| {
            let c = comps[i].clone();
            let mut vars = base.clone();
            {
                let outs = outputs.lock().expect("no panics while held");
                for &a in &ancestors[i] {
                    vars.extend(outs[a].clone());
                }
            }
            let vars = component_env(vars, env, &c);
            started.lock().expect("no panics while held")[i] = true;
            let (engine, env, cancel, timeline, outputs, sid) = (
                self.clone(),
                env.clone(),
                cancel.clone(),
                timeline.clone(),
                outputs.clone(),
                sid.clone(),
            );
            async move {
                let own = engine
                    .deploy_component(&sid, &env, &c, &vars, &cancel, &timeline)
                    .await?;
                outputs.lock().expect("no panics while held")[i] = own;
                Ok(())
            }
        })
        .await;

        let failures: Vec<&DeployError> = results.iter().flatten().filter_map(|r| r.as_ref().err()).collect();
        if let Some(first) = failures.iter().find(|e| !e.is_cancelled()) {
            return SuiteOutcome::Error {
                message: error_chain(*first),
            };
        }
        if !failures.is_empty() || results.iter().any(Option::is_none) {
            return SuiteOutcome::Cancelled {
                message: "interrupted during deployment".into(),
            };
        }

        // The tests.
        let test_app = comps[n - 1];
        let published = outputs.lock().expect("no panics while held")[n - 1].clone();
        let url = match self
            .published_or_derived(
                env,
                &published,
                TEST_APP_URL_KEY,
                test_app.id.as_str(),
                suite.id.as_str(),
            )
            .await
        {
            Ok(url) => url,
            Err(e) => {
                return SuiteOutcome::Error {
                    message: format!("cannot reach test app `{}`: {}", test_app.id, error_chain(&e)),
                }
            }
        };
        let Some(url) = url else {
            return SuiteOutcome::Error {
                message: format!(
                    "test app `{}` did not publish its URL (hint: its deploy command writes `{TEST_APP_URL_KEY}=http://…` to the file named by $PIT_OUTPUTS)",
                    test_app.id
                ),
            };
        };
        let client = (self.runner)(&url);
        let t = timeline.start("test", None);
        let session = match client.start(&suite.id).await {
            Ok(s) => s.session_id.to_string(),
            Err(e) => {
                timeline.end(t, "failed", Some(error_chain(&e)));
                return SuiteOutcome::Error {
                    message: error_chain(&e),
                };
            }
        };
        self.emit(
            &sid,
            EventKind::TestsStarted {
                session: session.clone(),
            },
        );
        let timeout = Duration::from_secs(suite.timeout_seconds);
        match client.wait_for_report(&session, timeout, opts.poll, cancel).await {
            Ok(report) => {
                let passed = report.passed();
                timeline.end(
                    t,
                    if passed { "ok" } else { "failed" },
                    Some(format!("session {session}")),
                );
                self.emit(&sid, EventKind::TestsFinished { passed });
                result.report.test_report = Some(report);
                if passed {
                    SuiteOutcome::Passed
                } else {
                    SuiteOutcome::Failed
                }
            }
            Err(crate::runner::RunnerError::Cancelled) => {
                timeline.end(t, "cancelled", None);
                SuiteOutcome::Cancelled {
                    message: "interrupted during the tests".into(),
                }
            }
            Err(e) => {
                timeline.end(t, "failed", Some(error_chain(&e)));
                SuiteOutcome::Error {
                    message: error_chain(&e),
                }
            }
        }
    }

    /// Undeploys what was started, the test app first, each component once everything that
    /// depends on it is gone. Collects errors instead of stopping.
    #[allow(clippy::too_many_arguments)] // as deploy_and_test
    async fn teardown(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        started: &[bool],
        force: &CancellationToken,
        timeline: &Timeline,
    ) -> Vec<String> {
        let comps: Vec<&ComponentPlan> = suite.components().collect();
        let n = comps.len();
        let mut errors = Vec::new();
        if n > 0 && started.len() == n {
            let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
            // Reverse edges: a component waits for its dependents (and everything for the test app).
            let mut waits: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (i, c) in comps.iter().enumerate().take(n - 1) {
                for d in &c.depends_on {
                    waits[index[d.as_str()]].push(i);
                }
                waits[i].push(n - 1);
            }
            let base = base_env(plan, suite, env, opts);
            let sid = suite.id.to_string();
            let results = run_graph(&waits, started, opts.max_parallel, None, |i| {
                let c = comps[i].clone();
                let vars = undeploy_env(base.clone(), env, &c);
                let (env, force, timeline, engine, sid) =
                    (env.clone(), force.clone(), timeline.clone(), self.clone(), sid.clone());
                async move {
                    engine
                        .undeploy_component(&sid, &env, &c, &vars, &force, &timeline)
                        .await
                }
            })
            .await;
            errors.extend(
                results
                    .into_iter()
                    .flatten()
                    .filter_map(Result::err)
                    .map(|e| error_chain(&e)),
            );
        }
        errors
    }

    /// Shell commands, in teardown order, that undeploy what `--keep` left up: each with the
    /// variables PIT would have given it (quoted for a POSIX shell; PIT itself never uses one).
    fn keep_instructions(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        started: &[bool],
        lock_manager: Option<&ComponentPlan>,
    ) -> Vec<String> {
        let comps: Vec<&ComponentPlan> = suite
            .components()
            .zip(started.iter().chain(std::iter::repeat(&false)))
            .filter_map(|(c, &s)| s.then_some(c))
            .collect();
        let mut out: Vec<String> = suite
            .teardown
            .iter()
            .flatten()
            .filter_map(|id| comps.iter().find(|c| &c.id == id))
            .copied()
            .chain(lock_manager)
            .filter_map(|c| Some((c, c.undeploy.as_ref()?)))
            .map(|(c, undeploy)| {
                let base = base_env(plan, suite, env, opts);
                let step = step_for(c, StepKind::Undeploy, undeploy, &base, self.toolkit_args);
                // PIT's own variables and the component's outputs; the user's extra ones are
                // already in their shell.
                let pit_only = base
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("PIT_") && !opts.env.contains_key(k))
                    .collect();
                let vars = undeploy_env(pit_only, env, c);
                let assignments: Vec<String> = vars
                    .iter()
                    .map(|(k, v)| format!("{k}={}", crate::plan::shell_quote(v)))
                    .collect();
                let argv: Vec<String> = step.argv.iter().map(|a| crate::plan::shell_quote(a)).collect();
                format!(
                    "(cd {} && env {} {})",
                    crate::plan::shell_quote(&step.cwd.display().to_string()),
                    assignments.join(" "),
                    argv.join(" ")
                )
            })
            .collect();
        out.push(format!(
            "rm -r {}",
            crate::plan::shell_quote(&env.workspace.display().to_string())
        ));
        out
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

fn unresolved(suite: &SuitePlan) -> bool {
    suite.components().any(is_remote)
}

fn is_remote(c: &ComponentPlan) -> bool {
    matches!(c.workdir, WorkDir::Git { .. })
}

fn base_env(plan: &Plan, suite: &SuitePlan, env: &Environment, opts: &RunOptions) -> BTreeMap<String, String> {
    let mut vars = opts.env.clone();
    vars.insert("PIT_RUN_ID".into(), plan.run_id.to_string());
    vars.insert("PIT_PROJECT".into(), plan.project.clone());
    vars.insert("PIT_SUITE_ID".into(), suite.id.to_string());
    if let Some(test_app) = &suite.test_app {
        vars.insert("PIT_TEST_APP_ID".into(), test_app.id.to_string());
    }
    vars.insert("PIT_NAMESPACE".into(), env.name.clone());
    vars.insert("PIT_WORKSPACE".into(), env.workspace.display().to_string());
    vars.insert(
        crate::process::PROCESS_TAG_ENV.into(),
        crate::process::process_tag(&plan.run_id.to_string(), &env.name),
    );
    vars
}

/// `vars` plus what every command of `c` gets: its id and its outputs file.
fn component_env(mut vars: BTreeMap<String, String>, env: &Environment, c: &ComponentPlan) -> BTreeMap<String, String> {
    vars.insert("PIT_COMPONENT_ID".into(), c.id.to_string());
    vars.insert("PIT_OUTPUTS".into(), outputs_file(env, c).display().to_string());
    vars
}

/// What an undeploy command gets: `base`, the component's own outputs, and its id and outputs
/// file.
fn undeploy_env(mut vars: BTreeMap<String, String>, env: &Environment, c: &ComponentPlan) -> BTreeMap<String, String> {
    vars.extend(read_outputs(&outputs_file(env, c)));
    component_env(vars, env, c)
}

fn outputs_file(env: &Environment, c: &ComponentPlan) -> std::path::PathBuf {
    env.outputs.join(format!("{}.env", c.id))
}

/// The step of `c`'s `cmd`; with `toolkit_args`, its arguments as the existing toolkit passes
/// them (see [`Engine::with_toolkit_args`]).
fn step_for(
    c: &ComponentPlan,
    kind: StepKind,
    cmd: &CommandPlan,
    vars: &BTreeMap<String, String>,
    toolkit_args: bool,
) -> Step {
    // Plans are resolved before they run (see `unresolved`), so only local directories remain.
    let cwd = match &c.workdir {
        WorkDir::Local { path } => path.clone(),
        WorkDir::Git { path, .. } => std::path::PathBuf::from(path),
    };
    let mut argv = cmd.argv.clone();
    if toolkit_args && !argv.is_empty() {
        let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
        argv.insert(1, var("PIT_NAMESPACE"));
        if kind == StepKind::Deploy && vars.get("PIT_TEST_APP_ID").is_some_and(|t| *t == c.id.as_str()) {
            argv.push(var("PIT_SUITE_ID"));
        }
    }
    Step {
        kind,
        component: c.id.clone(),
        argv,
        cwd,
        env: vars.clone(),
        timeout: Duration::from_secs(cmd.timeout_seconds),
    }
}

/// Reads `key=value` lines; blank lines, `#` comments and keys that are not variable names are
/// skipped.
pub fn read_outputs(path: &std::path::Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| {
            let mut chars = k.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect()
}

fn failed_event(c: &ComponentPlan, step: StepKind, e: &DeployError) -> EventKind {
    EventKind::StepFailed {
        component: c.id.to_string(),
        step,
        error: error_chain(e),
    }
}

fn fencing_detail(lease: &Lease) -> String {
    let tokens: Vec<String> = lease.fencing.iter().map(|(id, t)| format!("{id}#{t}")).collect();
    format!("lease {} ({})", lease.id, tokens.join(", "))
}

/// An error and its causes, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    error_chain_with(e, ": ")
}

/// An error and its causes, joined with `separator` (`"\n  caused by: "` gives the lines `pit`
/// prints).
pub fn error_chain_with(e: &dyn std::error::Error, separator: &str) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(separator);
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The run's timeline, shared by concurrent steps.
#[derive(Debug, Clone, Default)]
struct Timeline(Arc<Mutex<Vec<TimelineEntry>>>);

impl Timeline {
    fn start(&self, step: &str, component: Option<&ComponentPlan>) -> usize {
        let mut v = self.0.lock().expect("no panics while held");
        v.push(TimelineEntry {
            step: step.to_owned(),
            component: component.map(|c| c.id.to_string()),
            start_ms: now_ms(),
            end_ms: 0,
            outcome: "running".into(),
            detail: None,
        });
        v.len() - 1
    }

    fn end(&self, at: usize, outcome: &str, detail: Option<String>) {
        let mut v = self.0.lock().expect("no panics while held");
        let e = &mut v[at];
        e.end_ms = now_ms();
        e.outcome = outcome.to_owned();
        e.detail = detail;
    }

    fn finish(&self, at: usize, result: &Result<Option<String>, &DeployError>) {
        match result {
            Ok(detail) => self.end(at, "ok", detail.clone()),
            Err(e) if e.is_cancelled() => self.end(at, "cancelled", None),
            Err(e) => self.end(at, "failed", Some(error_chain(*e))),
        }
    }

    fn record(&self, entry: TimelineEntry) {
        self.0.lock().expect("no panics while held").push(entry);
    }

    fn entries(&self) -> Vec<TimelineEntry> {
        self.0.lock().expect("no panics while held").clone()
    }
}
