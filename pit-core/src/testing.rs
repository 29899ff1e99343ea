//! In-memory doubles for users' unit tests (feature `testing`).
//!
//! - [`MemoryLockStore`]: a real lock store in memory: it refuses a second holder, hands out
//!   growing fencing tokens, expires leases, and wakes waiters when a lease is released.
//! - [`MockLockStore`]: a [`MemoryLockStore`] that records every call and can be told to fail
//!   or to report the ids busy, for testing how code reacts.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use pit_core::lock::{LockOwner, LockRequest, LockStore};
//! use pit_core::testing::{LockCall, MockLockStore};
//!
//! let store = MockLockStore::new();
//! store.set_busy(Some("the nightly run"));
//! let req = LockRequest { ids: vec!["db".into()], owner: LockOwner::default(), ttl: Duration::from_secs(5), wait: Duration::ZERO };
//! let err = store.acquire(&req, &Default::default()).await.unwrap_err();
//! assert!(err.to_string().contains("the nightly run"));
//! assert_eq!(store.calls(), vec![LockCall::Acquire(vec!["db".into()])]);
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lock::{now_ms, wait_for, Blocked, Holder, Lease, LockError, LockOwner, LockRequest, LockStore, LockTable};
use crate::pitfile::LockId;

/// A lock store in memory, with the same behaviour as the real ones.
#[derive(Debug)]
pub struct MemoryLockStore {
    table: Mutex<LockTable>,
    /// Bumped on every release, to wake waiters.
    released: watch::Sender<u64>,
}

impl Default for MemoryLockStore {
    fn default() -> Self {
        Self {
            table: Mutex::default(),
            released: watch::Sender::new(0),
        }
    }
}

impl MemoryLockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockStore for MemoryLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        // Subscribed before the first attempt, so a release in between is not missed.
        let mut released = self.released.subscribe();
        wait_for(req, cancel, Some(&mut released), &|_| {}, || async {
            Ok(self
                .table
                .lock()
                .expect("no panics while held")
                .try_acquire(req, now_ms())
                .map_err(Blocked::from))
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.table
            .lock()
            .expect("no panics while held")
            .renew(lease, ttl, now_ms())
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.table.lock().expect("no panics while held").release(lease);
        self.released.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// A call made to a [`MockLockStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockCall {
    /// `acquire` with these ids.
    Acquire(Vec<LockId>),
    /// `renew` of this lease id.
    Renew(String),
    /// `release` of this lease id.
    Release(String),
}

/// A [`MemoryLockStore`] that records calls and can be told to misbehave.
#[derive(Debug, Default)]
pub struct MockLockStore {
    inner: MemoryLockStore,
    calls: Mutex<Vec<LockCall>>,
    fail: Mutex<Option<String>>,
    busy: Mutex<Option<String>>,
}

impl MockLockStore {
    /// A store that behaves until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<LockCall> {
        self.calls.lock().expect("no panics while held").clone()
    }

    /// Makes every later call fail as a broken store would (`None`: behave again).
    pub fn fail_with(&self, message: Option<&str>) {
        *self.fail.lock().expect("no panics while held") = message.map(str::to_owned);
    }

    /// Makes every later acquire find its ids held by `holder` (`None`: behave again).
    pub fn set_busy(&self, holder: Option<&str>) {
        *self.busy.lock().expect("no panics while held") = holder.map(str::to_owned);
    }

    fn record(&self, call: LockCall) -> Result<(), LockError> {
        self.calls.lock().expect("no panics while held").push(call);
        match self.fail.lock().expect("no panics while held").clone() {
            Some(message) => Err(LockError::Store {
                path: "mock".into(),
                source: std::io::Error::other(message),
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl LockStore for MockLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        self.record(LockCall::Acquire(req.ids.clone()))?;
        let busy = self.busy.lock().expect("no panics while held").clone();
        if let Some(holder) = busy {
            let holders = req
                .ids
                .iter()
                .map(|id| Holder {
                    id: id.clone(),
                    owner: LockOwner {
                        name: holder.clone(),
                        ..LockOwner::default()
                    },
                    expires_at_ms: now_ms() + 60_000,
                })
                .collect();
            return Err(LockError::Busy {
                wanted: req.ids.clone(),
                holders,
                waited: req.wait,
            });
        }
        self.inner.acquire(req, cancel).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.record(LockCall::Renew(lease.id.clone()))?;
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.record(LockCall::Release(lease.id.clone()))?;
        self.inner.release(lease).await
    }
}

/// A lock request for tests: `ids` for `owner`, waiting up to `wait_ms`, leased for `ttl_ms`.
pub fn lock_request(ids: &[&str], owner: &str, wait_ms: u64, ttl_ms: u64) -> LockRequest {
    LockRequest {
        ids: ids.iter().map(|i| (*i).into()).collect(),
        owner: LockOwner {
            name: owner.into(),
            ..Default::default()
        },
        ttl: Duration::from_millis(ttl_ms),
        wait: Duration::from_millis(wait_ms),
    }
}

/// The behaviour every [`LockStore`] must have, as one async test: exclusivity, all-or-none,
/// renew, release, growing fencing tokens, expiry, cancellation, refusing bad requests, and
/// never two holders under contention (4 tasks × 10 rounds). Run it against your store:
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// pit_core::testing::lock_contract(std::sync::Arc::new(pit_core::testing::MemoryLockStore::new())).await;
/// # });
/// ```
///
/// # Panics
/// Where the store breaks the contract, naming what broke.
pub async fn lock_contract(store: Arc<dyn LockStore>) {
    let never = CancellationToken::new();
    // Exclusive, all or none.
    let a = store
        .acquire(&lock_request(&["x", "y"], "a", 0, 30_000), &never)
        .await
        .unwrap();
    let err = store
        .acquire(&lock_request(&["y", "z"], "b", 50, 30_000), &never)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Busy { holders, .. } if holders.len() == 1 && holders[0].owner.name == "a"),
        "{err}"
    );
    let z = store
        .acquire(&lock_request(&["z"], "c", 0, 30_000), &never)
        .await
        .expect("z was not taken by the failed request");
    // Renew, release, fencing.
    let a2 = store.renew(&a, Duration::from_secs(60)).await.unwrap();
    assert!(a2.expires_at_ms >= a.expires_at_ms);
    store.release(&a2).await.unwrap();
    store.release(&a2).await.expect("releasing twice is harmless");
    assert!(matches!(
        store.renew(&a2, Duration::from_secs(1)).await,
        Err(LockError::Lost { .. })
    ));
    let b = store
        .acquire(&lock_request(&["x"], "b", 0, 30_000), &never)
        .await
        .unwrap();
    assert!(b.fencing[&"x".into()] > a.fencing[&"x".into()], "fencing tokens grow");
    store.release(&b).await.unwrap();
    store.release(&z).await.unwrap();
    // Expiry frees a lease within its TTL.
    let short = store
        .acquire(&lock_request(&["e"], "short", 0, 100), &never)
        .await
        .unwrap();
    let taken = store
        .acquire(&lock_request(&["e"], "next", 3_000, 30_000), &never)
        .await
        .unwrap();
    assert!(matches!(
        store.renew(&short, Duration::from_secs(1)).await,
        Err(LockError::Lost { .. })
    ));
    store.release(&taken).await.unwrap();
    // Cancellation ends a wait.
    let held = store
        .acquire(&lock_request(&["c"], "holder", 0, 30_000), &never)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(matches!(
        store.acquire(&lock_request(&["c"], "w", 60_000, 30_000), &cancel).await,
        Err(LockError::Cancelled { .. })
    ));
    store.release(&held).await.unwrap();
    // Bad requests.
    assert!(matches!(
        store.acquire(&lock_request(&[], "a", 0, 1000), &never).await,
        Err(LockError::Invalid(_))
    ));
    assert!(matches!(
        store.acquire(&lock_request(&["a"], "a", 0, 0), &never).await,
        Err(LockError::Invalid(_))
    ));
    // Never two holders at once, under contention (bounded: 4 workers x 10 rounds).
    let inside = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (store, inside) = (store.clone(), inside.clone());
        workers.spawn(async move {
            for _ in 0..10 {
                let lease = store
                    .acquire(
                        &lock_request(&["hot"], &format!("w{w}"), 10_000, 30_000),
                        &CancellationToken::new(),
                    )
                    .await
                    .unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                store.release(&lease).await.unwrap();
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}

/// What a step of a [`ScriptedDeployer`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Exit 0 at once (the default).
    Succeed,
    /// Exit 1 with this output.
    Fail(String),
    /// Exit 0 after this long (on tokio's clock: instant under a paused clock), unless the run
    /// is cancelled first.
    Take(Duration),
    /// Never end by itself: only the run's cancellation, or the step's timeout, ends it.
    Hang,
}

/// What a [`ScriptedDeployer`] was asked, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployerCall {
    /// An environment was created.
    Create(String),
    /// A step ran: component and step.
    Run(String, crate::deploy::StepKind),
    /// A URL was derived for a service.
    ServiceUrl(String),
    /// An environment was removed.
    Remove(String),
}

/// A [`Deployer`](crate::deploy::Deployer) that runs nothing: each component's steps do what
/// their [`Script`] says, every call is recorded, and every service is reachable at
/// `scripted://<service>` (give the engine a runner factory such as [`ScriptedRunner`]'s).
///
/// ```
/// # async fn demo() {
/// use pit_core::deploy::StepKind;
/// use pit_core::testing::{Script, ScriptedDeployer};
/// let deployer = ScriptedDeployer::new()
///     .script("db", StepKind::Deploy, Script::Take(std::time::Duration::from_secs(3)))
///     .script("api", StepKind::StatusCheck, Script::Fail("connection refused".into()));
/// // … run an engine with it, then:
/// assert!(deployer.calls().is_empty());
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo());
/// ```
#[derive(Debug, Default)]
pub struct ScriptedDeployer {
    scripts: Mutex<std::collections::HashMap<(String, crate::deploy::StepKind), Script>>,
    calls: Mutex<Vec<DeployerCall>>,
    /// Why creating an environment fails, if it does.
    environment_fails: Option<String>,
}

impl ScriptedDeployer {
    /// Every step succeeds at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// `component`'s `step` does what `script` says.
    #[must_use]
    pub fn script(self, component: &str, step: crate::deploy::StepKind, script: Script) -> Self {
        self.scripts
            .lock()
            .expect("no panics while held")
            .insert((component.to_owned(), step), script);
        self
    }

    /// Creating an environment fails, the backend saying `message` (the call is still
    /// recorded).
    #[must_use]
    pub fn fail_environment(mut self, message: &str) -> Self {
        self.environment_fails = Some(message.to_owned());
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<DeployerCall> {
        self.calls.lock().expect("no panics while held").clone()
    }

    /// The components whose `step` ran, in order.
    pub fn ran(&self, step: crate::deploy::StepKind) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                DeployerCall::Run(component, s) if s == step => Some(component),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: DeployerCall) {
        self.calls.lock().expect("no panics while held").push(call);
    }
}

#[async_trait]
impl crate::deploy::Deployer for ScriptedDeployer {
    async fn create_environment(
        &self,
        req: &crate::deploy::EnvironmentRequest,
    ) -> Result<crate::deploy::Environment, crate::deploy::DeployError> {
        self.record(DeployerCall::Create(req.name.clone()));
        if let Some(message) = &self.environment_fails {
            return Err(crate::deploy::DeployError::Backend {
                name: req.name.clone(),
                action: "creating",
                source: message.clone().into(),
            });
        }
        let root = std::env::temp_dir().join("pit-scripted").join(&req.name);
        Ok(crate::deploy::Environment {
            name: req.name.clone(),
            workspace: root.join("workspace"),
            logs: root.join("logs"),
            outputs: root.join("outputs"),
        })
    }

    async fn remove_environment(&self, env: &crate::deploy::Environment) -> Result<(), crate::deploy::DeployError> {
        self.record(DeployerCall::Remove(env.name.clone()));
        Ok(())
    }

    async fn run(
        &self,
        _env: &crate::deploy::Environment,
        step: &crate::deploy::Step,
        cancel: &CancellationToken,
    ) -> Result<crate::process::Finished, crate::deploy::DeployError> {
        let component = step.component.to_string();
        self.record(DeployerCall::Run(component.clone(), step.kind));
        let script = self
            .scripts
            .lock()
            .expect("no panics while held")
            .get(&(component, step.kind))
            .cloned()
            .unwrap_or(Script::Succeed);
        let started = tokio::time::Instant::now();
        let program = step.argv.first().cloned().unwrap_or_default();
        let stopped = |source| crate::deploy::DeployError::Process {
            component: step.component.clone(),
            kind: step.kind,
            source,
        };
        let finished = |code: i32, tail: String| crate::process::Finished {
            code: Some(code),
            elapsed: started.elapsed(),
            tail,
        };
        let wait = match &script {
            Script::Succeed => return Ok(finished(0, String::new())),
            Script::Fail(output) => return Ok(finished(1, output.clone())),
            Script::Take(d) => Some(*d),
            Script::Hang => None,
        };
        let limit = tokio::time::sleep(step.timeout);
        let done = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = done => Ok(finished(0, String::new())),
            () = limit => Err(stopped(crate::process::ProcessError::TimedOut { program, timeout: step.timeout, tail: String::new() })),
            () = cancel.cancelled() => Err(stopped(crate::process::ProcessError::Cancelled { program })),
        }
    }

    async fn service_url(
        &self,
        _env: &crate::deploy::Environment,
        service: &str,
        _route: &str,
    ) -> Result<Option<String>, crate::deploy::DeployError> {
        self.record(DeployerCall::ServiceUrl(service.to_owned()));
        Ok(Some(format!("scripted://{service}")))
    }
}

/// How a [`ScriptedRunner`]'s test session ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// COMPLETED with this report, after this long.
    Report(crate::protocol::TestReport, Duration),
    /// ERROR with this message.
    Error(String),
    /// RUNNING for ever (until the suite's timeout or the run's end).
    Running,
}

/// A [`TestRunnerClient`](crate::runner::TestRunnerClient) whose one session ends as told;
/// it records the calls (`start`, `status`, `report`).
///
/// ```
/// use pit_core::testing::{ScriptedRunner, Session};
/// let runner = ScriptedRunner::new(Session::Report(ScriptedRunner::passing_report(), std::time::Duration::ZERO));
/// let factory = runner.factory(); // for `Engine::new`
/// # let _ = factory;
/// ```
#[derive(Debug)]
pub struct ScriptedRunner {
    session: Session,
    started: Mutex<Option<tokio::time::Instant>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedRunner {
    /// A runner whose session ends as `session` says.
    pub fn new(session: Session) -> Arc<Self> {
        Arc::new(Self {
            session,
            started: Mutex::default(),
            calls: Mutex::default(),
        })
    }

    /// A report with one passing stream.
    pub fn passing_report() -> crate::protocol::TestReport {
        Self::report_with(crate::protocol::Outcome::Pass)
    }

    /// A report with one stream of the given outcome.
    pub fn report_with(outcome: crate::protocol::Outcome) -> crate::protocol::TestReport {
        crate::protocol::TestReport {
            executed_scenarios: vec![crate::protocol::Scenario {
                name: "scripted".into(),
                start_time: serde_json::Value::Null,
                end_time: serde_json::Value::Null,
                streams: vec![crate::protocol::Stream {
                    name: "stream".into(),
                    requirements: vec![],
                    observations: vec![],
                    outcome,
                }],
                component_ids: vec![],
                metadata: serde_json::Value::Null,
            }],
        }
    }

    /// A factory for [`Engine::new`](crate::engine::Engine::new) that hands out this runner for
    /// every URL.
    pub fn factory(self: &Arc<Self>) -> crate::engine::RunnerFactory {
        let me = self.clone();
        Arc::new(move |_url: &str| me.clone() as Arc<dyn crate::runner::TestRunnerClient>)
    }

    /// The calls so far: `start`, `status`, `report`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("no panics while held").clone()
    }

    fn record(&self, call: &str) {
        self.calls.lock().expect("no panics while held").push(call.to_owned());
    }

    fn status_now(&self) -> crate::protocol::SessionStatus {
        use crate::protocol::SessionStatus;
        let started = *self.started.lock().expect("no panics while held");
        match (&self.session, started) {
            (_, None) => SessionStatus::Pending,
            (Session::Report(_, after), Some(t)) if t.elapsed() >= *after => SessionStatus::Completed,
            (Session::Error(_), Some(_)) => SessionStatus::Error,
            _ => SessionStatus::Running,
        }
    }
}

#[async_trait]
impl crate::runner::TestRunnerClient for ScriptedRunner {
    async fn start(
        &self,
        suite: &crate::pitfile::SuiteId,
    ) -> Result<crate::protocol::StartResponse, crate::runner::RunnerError> {
        self.record("start");
        *self.started.lock().expect("no panics while held") = Some(tokio::time::Instant::now());
        Ok(crate::protocol::StartResponse {
            session_id: 1u64.into(),
            test_suite_id: suite.clone(),
        })
    }

    async fn status(
        &self,
        _session: &str,
        _wait: Option<Duration>,
    ) -> Result<crate::protocol::StatusResponse, crate::runner::RunnerError> {
        self.record("status");
        Ok(crate::protocol::StatusResponse {
            session_id: 1u64.into(),
            test_suite_id: crate::pitfile::SuiteId::default(),
            status: self.status_now(),
            error: match &self.session {
                Session::Error(m) => Some(m.clone()),
                _ => None,
            },
        })
    }

    async fn report(&self, _session: &str) -> Result<crate::protocol::ReportResponse, crate::runner::RunnerError> {
        self.record("report");
        Ok(crate::protocol::ReportResponse {
            session_id: 1u64.into(),
            test_suite_id: crate::pitfile::SuiteId::default(),
            status: self.status_now(),
            data: match &self.session {
                Session::Report(r, _) => Some(r.clone()),
                _ => None,
            },
            error: None,
        })
    }
}

/// A [`ReportSink`](crate::sink::ReportSink) in memory: every report stored, in order.
#[derive(Debug, Default)]
pub struct MemoryReportSink {
    reports: Mutex<Vec<crate::sink::SuiteReport>>,
}

impl MemoryReportSink {
    /// An empty sink.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Every report stored so far.
    pub fn reports(&self) -> Vec<crate::sink::SuiteReport> {
        self.reports.lock().expect("no panics while held").clone()
    }
}

#[async_trait]
impl crate::sink::ReportSink for MemoryReportSink {
    async fn store(
        &self,
        report: &crate::sink::SuiteReport,
    ) -> Result<crate::sink::StoredReport, crate::sink::SinkError> {
        let mut reports = self.reports.lock().expect("no panics while held");
        reports.push(report.clone());
        Ok(crate::sink::StoredReport {
            location: format!("memory:{}", reports.len()),
        })
    }

    async fn list(&self, project: &str, suite: &str) -> Result<Vec<crate::sink::SuiteReport>, crate::sink::SinkError> {
        Ok(self
            .reports()
            .into_iter()
            .filter(|r| r.project == project && r.suite_id == suite)
            .collect())
    }
}
