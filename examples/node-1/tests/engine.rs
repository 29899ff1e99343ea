//! `pit run`'s engine against real processes: the example's services, shell scripts that hang
//! or fail, the embedded file lock store and the directory report store.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pit_core::deploy::LocalDeployer;
use pit_core::engine::{Engine, EventKind, RunOptions, RunSummary, SuiteFailure, SuiteOutcome};
use pit_core::lock::{FileLockStore, LockOwner, LockRequest, LockStore};
use pit_core::naming::RunId;
use pit_core::pitfile::{load_file, LoadOptions};
use pit_core::plan::Plan;
use pit_core::runner::HttpTestRunnerClient;
use pit_core::sink::{ReportSink, SuiteReport};
use pit_core::testing::MemoryLockStore;
use pit_report::store::DirStore;
use tokio_util::sync::CancellationToken;

struct Harness {
    /// The run's state directory, removed with the harness.
    _scratch: tempfile::TempDir,
    state: PathBuf,
    engine: Engine,
    locks: FileLockStore,
    events: tokio::sync::mpsc::UnboundedReceiver<pit_core::engine::Event>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn harness(name: &str) -> Harness {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("pit-engine-{name}-"))
        .tempdir()
        .unwrap();
    let state = scratch.path().to_path_buf();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let locks = FileLockStore::new(state.join("locks"));
    let engine = Engine::new(
        Arc::new(LocalDeployer::new(state.join("runs")).with_grace(Duration::from_millis(500))),
        Arc::new(locks.clone()),
        Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    )
    .with_reports(Arc::new(DirStore::new(state.join("reports"))))
    .with_events(tx);
    Harness {
        _scratch: scratch,
        state,
        engine,
        locks,
        events,
    }
}

fn options() -> RunOptions {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_node-1"))
        .parent()
        .expect("a directory")
        .display()
        .to_string();
    RunOptions {
        env: BTreeMap::from([("PIT_EXAMPLE_BIN_DIR".to_owned(), bin_dir)]),
        poll: Duration::from_millis(100),
        ..RunOptions::default()
    }
}

fn plan(file: &str, env: &[(&str, &str)]) -> Plan {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let opts = LoadOptions {
        env: Some(env),
        unset_env: pit_core::diagnostic::Severity::Error,
        ..LoadOptions::default()
    };
    let loaded = load_file(&fixture(file), &opts).unwrap_or_else(|e| panic!("{e:?}"));
    Plan::build(&loaded, RunId::generate())
}

async fn run(h: &Harness, plan: &Plan) -> RunSummary {
    h.engine
        .run(plan, &options(), &CancellationToken::new(), &CancellationToken::new())
        .await
}

/// The pids the example's processes reported in their deploy logs ("… as pid N"), which are
/// kept after teardown.
fn started_pids(state: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for log in walk(&state.join("runs")) {
        if log.to_string_lossy().ends_with(".deploy.log") {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            for line in text.lines() {
                if let Some(rest) = line.split(" as pid ").nth(1) {
                    pids.push(rest.split_whitespace().next().unwrap().parse().unwrap());
                }
            }
        }
    }
    pids
}

/// Every file below `dir`, at any depth.
fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn entry<'a>(report: &'a SuiteReport, step: &str, component: &str) -> &'a pit_core::sink::TimelineEntry {
    report
        .timeline
        .iter()
        .find(|e| e.step == step && e.component.as_deref() == Some(component))
        .unwrap_or_else(|| panic!("no {step} of {component} in {:#?}", report.timeline))
}

async fn lock_is_free(locks: &FileLockStore) {
    let req = LockRequest {
        ids: vec!["node-1-store".into()],
        owner: LockOwner {
            name: "checker".into(),
            ..Default::default()
        },
        ttl: Duration::from_secs(5),
        wait: Duration::ZERO,
    };
    let lease = locks
        .acquire(&req, &CancellationToken::new())
        .await
        .expect("the run released its lock");
    locks.release(&lease).await.unwrap();
}

#[tokio::test]
async fn the_happy_path_deploys_in_dependency_order_tests_and_cleans_up() {
    let mut h = harness("happy");
    let summary = run(&h, &plan("happy.yml", &[("MAX_P95_MS", "500")])).await;
    // The store has `logTailing.enabled`: its command output arrived as events, nobody else's.
    let mut logs = Vec::new();
    while let Ok(e) = h.events.try_recv() {
        if let EventKind::Log { component, line } = e.kind {
            logs.push((component, line));
        }
    }
    assert!(
        logs.iter()
            .any(|(c, l)| c == "store" && l.starts_with("started node-1")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|(c, l)| c == "store" && l.starts_with("stopped pid")),
        "undeploy output too: {logs:?}"
    );
    assert!(logs.iter().all(|(c, _)| c == "store"), "{logs:?}");
    let suite = &summary.suites[0];
    assert_eq!(suite.outcome, SuiteOutcome::Passed, "{:#?}", suite.report);
    assert_eq!(summary.exit_code(), 0);
    assert!(suite.teardown_errors.is_empty(), "{:?}", suite.teardown_errors);

    let r = &suite.report;
    // Dependents start only after their dependencies are healthy…
    let api = entry(r, "deploy", "api");
    for dep in ["store", "audit"] {
        assert!(
            entry(r, "status-check", dep).end_ms <= api.start_ms,
            "api started before {dep} was healthy"
        );
    }
    assert!(entry(r, "status-check", "api").end_ms <= entry(r, "deploy", "test-app").start_ms);
    // …independent components overlap…
    let (store, audit) = (entry(r, "deploy", "store"), entry(r, "deploy", "audit"));
    assert!(
        store.start_ms < audit.end_ms && audit.start_ms < store.end_ms,
        "store and audit did not overlap"
    );
    // …and teardown runs in reverse.
    assert!(entry(r, "undeploy", "test-app").end_ms <= entry(r, "undeploy", "api").start_ms);
    assert!(entry(r, "undeploy", "api").end_ms <= entry(r, "undeploy", "store").start_ms);

    let report = r.test_report.as_ref().expect("the test app's report");
    assert!(report.passed());
    let stored = h.engine_reports(r).await;
    assert_eq!(stored.len(), 1, "the report was stored");
    let pids = started_pids(&h.state);
    assert_eq!(pids.len(), 4, "four processes were started");
    assert!(pids.iter().all(|&p| !alive(p)), "every process was stopped");
    lock_is_free(&h.locks).await;
}

impl Harness {
    async fn engine_reports(&self, r: &SuiteReport) -> Vec<SuiteReport> {
        DirStore::new(self.state.join("reports"))
            .list(&r.project, &r.suite_id)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_test_app_reporting_fail_exits_1() {
    let h = harness("fail");
    // No latency can meet a p95 of 0 ms.
    let summary = run(&h, &plan("happy.yml", &[("MAX_P95_MS", "0")])).await;
    assert_eq!(summary.suites[0].outcome, SuiteOutcome::Failed);
    assert_eq!(summary.exit_code(), 1);
    assert!(started_pids(&h.state).iter().all(|&p| !alive(p)));
}

#[tokio::test]
async fn a_failing_status_check_tears_down_and_names_the_component() {
    let h = harness("check");
    let summary = run(&h, &plan("failing-check.yml", &[])).await;
    let suite = &summary.suites[0];
    assert_eq!(summary.exit_code(), 3);
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &suite.outcome else {
        panic!("{:?}", suite.outcome)
    };
    assert!(
        message.contains("status check of `broken-svc` did not pass"),
        "{message}"
    );
    assert!(
        message.contains("database connection refused"),
        "the last output is quoted: {message}"
    );
    // What started is undeployed (the failing undeploy is reported, not fatal); what never
    // started is not touched.
    let r = &suite.report;
    assert_eq!(entry(r, "undeploy", "store").outcome, "ok");
    assert_eq!(entry(r, "undeploy", "broken-svc").outcome, "failed");
    assert!(r.timeline.iter().all(|e| e.component.as_deref() != Some("never")));
    assert!(r.timeline.iter().all(|e| e.component.as_deref() != Some("test-app")));
    assert_eq!(suite.teardown_errors.len(), 1, "{:?}", suite.teardown_errors);
    assert!(started_pids(&h.state).iter().all(|&p| !alive(p)));
    lock_is_free(&h.locks).await;
}

#[tokio::test]
async fn a_deploy_that_hangs_is_stopped_with_its_whole_group() {
    let h = harness("hang");
    let summary = run(&h, &plan("hanging-deploy.yml", &[])).await;
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &summary.suites[0].outcome else {
        panic!("{:?}", summary.suites[0].outcome)
    };
    assert!(message.contains("deploy of `slow` did not complete"), "{message}");
    assert!(message.contains("did not finish within 1s"), "{message}");
    assert_eq!(summary.exit_code(), 3);
    let log = walk(&h.state.join("runs"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("slow.deploy.log"))
        .expect("its log is kept");
    let text = std::fs::read_to_string(log).unwrap();
    let sleeper: i32 = text
        .split("as pid ")
        .nth(1)
        .expect("it said its pid")
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(sleeper), "the hanging deploy's process is gone");
    assert!(started_pids(&h.state).iter().all(|&p| !alive(p)));
    lock_is_free(&h.locks).await;
}

#[tokio::test]
async fn an_interrupted_run_undeploys_everything_and_releases_its_lock() {
    let mut h = harness("interrupt");
    let plan = plan("interrupted.yml", &[]);
    let cancel = CancellationToken::new();
    let opts = options();
    let force = CancellationToken::new();
    let run = h.engine.run(&plan, &opts, &cancel, &force);
    let interrupt = async {
        // As Ctrl-C would, once the slow component is deploying.
        while let Some(e) = h.events.recv().await {
            if matches!(&e.kind, EventKind::StepStarted { component, .. } if component == "slow") {
                cancel.cancel();
                break;
            }
        }
    };
    let (summary, ()) = tokio::join!(run, interrupt);
    let suite = &summary.suites[0];
    assert!(
        matches!(suite.outcome, SuiteOutcome::Cancelled { .. }),
        "{:?}",
        suite.outcome
    );
    assert_eq!(summary.exit_code(), 130);
    assert_eq!(entry(&suite.report, "deploy", "slow").outcome, "cancelled");
    assert_eq!(entry(&suite.report, "undeploy", "store").outcome, "ok");
    assert!(started_pids(&h.state).iter().all(|&p| !alive(p)));
    lock_is_free(&h.locks).await;
}

#[tokio::test]
async fn a_held_lock_makes_the_suite_fail_naming_the_holder_before_deploying() {
    let h = harness("busy");
    let req = LockRequest {
        ids: vec!["node-1-store".into()],
        owner: LockOwner {
            name: "the nightly run".into(),
            ..Default::default()
        },
        ttl: Duration::from_secs(60),
        wait: Duration::ZERO,
    };
    let held = h.locks.acquire(&req, &CancellationToken::new()).await.unwrap();
    let summary = run(&h, &plan("busy.yml", &[("MAX_P95_MS", "500")])).await;
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &summary.suites[0].outcome else {
        panic!("{:?}", summary.suites[0].outcome)
    };
    assert!(message.contains("`node-1-store` held by the nightly run"), "{message}");
    assert_eq!(summary.exit_code(), 3);
    assert!(
        summary.suites[0].report.timeline.iter().all(|e| e.step != "deploy"),
        "nothing was deployed"
    );
    h.locks.release(&held).await.unwrap();
}

#[tokio::test]
async fn parallel_suites_overlap_unless_they_share_a_lock() {
    let h = harness("parallel");
    let opts = RunOptions {
        parallel_suites: true,
        ..options()
    };
    let summary = h
        .engine
        .run(
            &plan("three-suites.yml", &[]),
            &opts,
            &CancellationToken::new(),
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        summary.exit_code(),
        0,
        "{:#?}",
        summary.suites.iter().map(|s| &s.outcome).collect::<Vec<_>>()
    );
    let span = |i: usize| {
        (
            summary.suites[i].report.started_ms,
            summary.suites[i].report.finished_ms,
        )
    };
    let ((s1, e1), (s2, e2), (s3, _)) = (span(0), span(1), span(2));
    assert_eq!(
        summary.suites.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2", "s3"],
        "results keep pitfile order"
    );
    assert!(s1 < e2 && s2 < e1, "s1 and s2 (different locks) overlap");
    assert!(s3 >= e1, "s3 shares s1's lock and starts after it");
}

#[tokio::test]
async fn a_lost_lease_stops_the_suite_and_still_tears_down() {
    use pit_core::testing::MockLockStore;
    let scratch = tempfile::Builder::new().prefix("pit-engine-lease-").tempdir().unwrap();
    let state = scratch.path().to_path_buf();
    let locks = Arc::new(MockLockStore::new());
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::new(
        Arc::new(LocalDeployer::new(state.join("runs")).with_grace(Duration::from_millis(500))),
        locks.clone(),
        Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    )
    .with_events(tx);
    // Renewals every 100 ms; the store breaks once the slow component is deploying.
    let opts = RunOptions {
        lock_ttl: Duration::from_millis(300),
        ..options()
    };
    let plan = plan("interrupted.yml", &[]);
    let (never, force) = (CancellationToken::new(), CancellationToken::new());
    let run = engine.run(&plan, &opts, &never, &force);
    let breaker = async {
        while let Some(e) = events.recv().await {
            if matches!(&e.kind, EventKind::StepStarted { component, .. } if component == "slow") {
                locks.fail_with(Some("connection reset by peer"));
                break;
            }
        }
    };
    let (summary, ()) = tokio::join!(run, breaker);
    let suite = &summary.suites[0];
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &suite.outcome else {
        panic!("{:?}", suite.outcome)
    };
    assert!(
        message.contains("connection reset by peer") && message.contains("the suite was stopped"),
        "{message}"
    );
    assert_eq!(summary.exit_code(), 3);
    assert_eq!(
        entry(&suite.report, "deploy", "slow").outcome,
        "cancelled",
        "the deploy in flight was stopped"
    );
    assert_eq!(
        entry(&suite.report, "undeploy", "store").outcome,
        "ok",
        "teardown still ran"
    );
    assert!(
        locks
            .calls()
            .iter()
            .any(|c| matches!(c, pit_core::testing::LockCall::Release(_))),
        "release was attempted"
    );
    assert!(started_pids(&state).iter().all(|&p| !alive(p)));
}

/// An engine whose plans deploy their Lock Manager: the store for its URL is `store`, and the
/// URLs asked for are recorded.
fn with_lock_manager(h: Harness, store: Arc<MemoryLockStore>) -> (Harness, Arc<std::sync::Mutex<Vec<String>>>) {
    let urls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = urls.clone();
    let engine = h.engine.clone().with_deployed_lock_manager(Arc::new(move |url: &str| {
        seen.lock().unwrap().push(url.to_owned());
        Ok(store.clone() as Arc<dyn LockStore>)
    }));
    (Harness { engine, ..h }, urls)
}

#[tokio::test]
async fn a_deployed_lock_manager_is_up_before_the_locks_and_removed_after_their_release() {
    let store = Arc::new(MemoryLockStore::new());
    let (h, urls) = with_lock_manager(harness("lock-manager"), store.clone());
    let plan = plan(
        "lock-manager.yml",
        &[("LOCK_MANAGER_URL", "http://lock-manager.invalid")],
    );
    let summary = run(&h, &plan).await;
    let suite = &summary.suites[0];
    assert!(matches!(suite.outcome, SuiteOutcome::Passed), "{:?}", suite.outcome);
    assert_eq!(*urls.lock().unwrap(), ["http://lock-manager.invalid"]);
    let t = &suite.report.timeline;
    let at = |step: &str, component: Option<&str>| {
        t.iter()
            .find(|e| e.step == step && e.component.as_deref() == component)
            .unwrap_or_else(|| panic!("no {step} of {component:?} in {t:?}"))
    };
    let deployed = at("deploy", Some("lock-manager"));
    let lock = at("lock", None);
    let release = at("release", None);
    let undeployed = at("undeploy", Some("lock-manager"));
    let removed = at("environment-removal", None);
    assert!(
        deployed.end_ms <= lock.start_ms,
        "the Lock Manager is up before the locks are asked for"
    );
    assert!(
        t.iter()
            .filter(|e| e.step == "undeploy" && e.component.as_deref() != Some("lock-manager"))
            .all(|e| e.end_ms <= release.start_ms),
        "the locks are held until every component is gone"
    );
    assert!(release.end_ms <= undeployed.start_ms && undeployed.end_ms <= removed.start_ms);
    assert_eq!(undeployed.outcome, "ok");
    // The locks went to the deployed Lock Manager's store, and are free again.
    assert!(
        lock.detail.as_deref().is_some_and(|d| d.contains("node-1-store#1")),
        "{lock:?}"
    );
    let again = LockRequest {
        ids: vec!["node-1-store".into()],
        owner: LockOwner::default(),
        ttl: Duration::from_secs(5),
        wait: Duration::ZERO,
    };
    store.acquire(&again, &CancellationToken::new()).await.unwrap();
    // Not the embedded store.
    h.locks.acquire(&again, &CancellationToken::new()).await.unwrap();
}

#[tokio::test]
async fn a_lock_manager_that_publishes_no_url_fails_the_suite_and_is_still_removed() {
    let (h, urls) = with_lock_manager(harness("lock-manager-no-url"), Arc::new(MemoryLockStore::new()));
    let summary = run(&h, &plan("lock-manager.yml", &[("LOCK_MANAGER_URL", "")])).await;
    let suite = &summary.suites[0];
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &suite.outcome else {
        panic!("{:?}", suite.outcome)
    };
    assert!(
        message.contains("did not publish its URL") && message.contains("PIT_LOCK_MANAGER_URL=http://"),
        "{message}"
    );
    assert_eq!(summary.exit_code(), 3);
    assert!(urls.lock().unwrap().is_empty());
    let t = &suite.report.timeline;
    assert!(t.iter().all(|e| e.step != "lock"), "no lock was asked for: {t:?}");
    assert!(
        t.iter()
            .any(|e| e.step == "undeploy" && e.component.as_deref() == Some("lock-manager") && e.outcome == "ok"),
        "{t:?}"
    );
    assert!(t.iter().any(|e| e.step == "environment-removal" && e.outcome == "ok"));
    assert!(started_pids(&h.state).is_empty(), "no component was deployed");
}

/// The local backend, but one that derives a URL for any service (as the k8s backend does
/// through the API server or the ingress), recording what it was asked.
struct Deriving {
    local: LocalDeployer,
    asked: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl pit_core::deploy::Deployer for Deriving {
    async fn create_environment(
        &self,
        req: &pit_core::deploy::EnvironmentRequest,
    ) -> Result<pit_core::deploy::Environment, pit_core::deploy::DeployError> {
        self.local.create_environment(req).await
    }

    async fn remove_environment(
        &self,
        env: &pit_core::deploy::Environment,
    ) -> Result<(), pit_core::deploy::DeployError> {
        self.local.remove_environment(env).await
    }

    async fn run(
        &self,
        env: &pit_core::deploy::Environment,
        step: &pit_core::deploy::Step,
        cancel: &CancellationToken,
    ) -> Result<pit_core::process::Finished, pit_core::deploy::DeployError> {
        self.local.run(env, step, cancel).await
    }

    async fn service_url(
        &self,
        env: &pit_core::deploy::Environment,
        service: &str,
        route: &str,
    ) -> Result<Option<String>, pit_core::deploy::DeployError> {
        self.asked.lock().unwrap().push((service.to_owned(), route.to_owned()));
        Ok(Some(format!("http://{}.{route}.derived.invalid", env.name)))
    }
}

/// Issue 14: a deployed Lock Manager that publishes no URL is reached at the one the backend
/// derives for its Service (the component id).
#[tokio::test]
async fn a_lock_manager_that_publishes_no_url_is_reached_where_the_backend_says() {
    let scratch = tempfile::Builder::new()
        .prefix("pit-engine-derived-")
        .tempdir()
        .unwrap();
    let state = scratch.path().to_path_buf();
    let deployer = Arc::new(Deriving {
        local: LocalDeployer::new(state.join("runs")),
        asked: std::sync::Mutex::default(),
    });
    let store = Arc::new(MemoryLockStore::new());
    let urls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (seen, lm_store) = (urls.clone(), store.clone());
    let engine = Engine::new(
        deployer.clone(),
        Arc::new(FileLockStore::new(state.join("locks"))),
        Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    )
    .with_deployed_lock_manager(Arc::new(move |url: &str| {
        seen.lock().unwrap().push(url.to_owned());
        Ok(lm_store.clone() as Arc<dyn LockStore>)
    }));
    let summary = engine
        .run(
            &plan("lock-manager.yml", &[("LOCK_MANAGER_URL", "")]),
            &options(),
            &CancellationToken::new(),
            &CancellationToken::new(),
        )
        .await;
    let suite = &summary.suites[0];
    assert!(matches!(suite.outcome, SuiteOutcome::Passed), "{:?}", suite.outcome);
    let urls = urls.lock().unwrap().clone();
    assert_eq!(urls.len(), 1);
    assert!(urls[0].ends_with(".lock-manager.derived.invalid"), "{urls:?}");
    // Asked for the Lock Manager only: the test app published its URL, which wins.
    assert_eq!(
        *deployer.asked.lock().unwrap(),
        [("lock-manager".to_owned(), "lock-manager".to_owned())]
    );
}

/// Issue 15: a plan built by hand without a test app is an error for its suite, not a panic.
#[tokio::test]
async fn a_hand_built_plan_without_a_test_app_is_an_error_not_a_panic() {
    let h = harness("no-test-app");
    let mut plan = plan("happy.yml", &[("MAX_P95_MS", "1000")]);
    plan.suites[0].test_app = None;
    let summary = run(&h, &plan).await;
    let SuiteOutcome::Error(SuiteFailure { message, .. }) = &summary.suites[0].outcome else {
        panic!("{:?}", summary.suites[0].outcome)
    };
    assert!(message.contains("has no test app"), "{message}");
    assert_eq!(summary.exit_code(), 3);
}
