//! The engine on test doubles (`pit_core::testing`), under tokio's paused clock: no processes,
//! no sleeping, each test in milliseconds whatever the scripted durations.

use std::sync::Arc;
use std::time::Duration;

use pit_core::deploy::StepKind;
use pit_core::engine::{Engine, FailureKind, Phase, RunOptions, RunSummary, SuiteFailure, SuiteOutcome};
use pit_core::lock::LockStore;
use pit_core::naming::RunId;
use pit_core::pitfile::{load_str, LoadOptions};
use pit_core::plan::Plan;
use pit_core::protocol::Outcome;
use pit_core::testing::{
    DeployerCall, MemoryReportSink, MockLockStore, Script, ScriptedDeployer, ScriptedRunner, Session,
};
use tokio_util::sync::CancellationToken;

/// a, then b and c (both need a), then d (needs b and c), then the test app `t`.
const DIAMOND: &str = r#"
version: "1.0"
projectName: p
testSuites:
  - name: S
    id: s
    timeoutSeconds: 30
    lock: { timeout: 1m, ids: [shared] }
    deployment:
      graph:
        testApp: { name: T, id: t, deploy: { command: d, statusCheck: { command: c, timeoutSeconds: 5 } }, undeploy: { command: u } }
        components:
          - { name: A, id: a, deploy: { command: d }, undeploy: { command: u } }
          - { name: B, id: b, dependsOn: [a], deploy: { command: d, timeoutSeconds: 20 }, undeploy: { command: u } }
          - { name: C, id: c, dependsOn: [a], deploy: { command: d, timeoutSeconds: 20 }, undeploy: { command: u } }
          - { name: D, id: d, dependsOn: [b, c], deploy: { command: d }, undeploy: { command: u } }
"#;

fn plan() -> Plan {
    let loaded = load_str("pitfile.yml", DIAMOND, &LoadOptions::default()).unwrap();
    Plan::build(&loaded, RunId::generate())
}

struct Doubles {
    deployer: Arc<ScriptedDeployer>,
    runner: Arc<ScriptedRunner>,
    locks: Arc<MockLockStore>,
    reports: Arc<MemoryReportSink>,
}

impl Doubles {
    fn new(deployer: ScriptedDeployer, session: Session) -> Self {
        Self {
            deployer: Arc::new(deployer),
            runner: ScriptedRunner::new(session),
            locks: Arc::new(MockLockStore::new()),
            reports: MemoryReportSink::new(),
        }
    }

    fn passing(deployer: ScriptedDeployer) -> Self {
        Self::new(
            deployer,
            Session::Report(ScriptedRunner::passing_report(), Duration::from_secs(2)),
        )
    }

    fn engine(&self) -> Engine {
        Engine::new(self.deployer.clone(), self.locks.clone(), self.runner.factory()).with_reports(self.reports.clone())
    }

    async fn run(&self, opts: &RunOptions, cancel: &CancellationToken) -> RunSummary {
        self.engine()
            .run(&plan(), opts, cancel, &CancellationToken::new())
            .await
    }

    /// The runs of `step`, in order.
    fn ran(&self, step: StepKind) -> Vec<String> {
        self.deployer.ran(step)
    }
}

fn options() -> RunOptions {
    RunOptions {
        poll: Duration::from_millis(500),
        ..RunOptions::default()
    }
}

/// The first suite's failure, after checking where it happened and its kind (a panic naming
/// the outcome when it is not an error).
fn error_of(summary: &RunSummary, phase: Phase, kind: FailureKind, component: Option<&str>) -> String {
    let failure: &SuiteFailure = match &summary.suites[0].outcome {
        SuiteOutcome::Error(f) => f,
        other => panic!("not an error: {other:?}"),
    };
    assert_eq!(
        (failure.phase, failure.kind, failure.component.as_deref()),
        (phase, kind, component),
        "{failure:?}"
    );
    failure.message.clone()
}

fn position(list: &[String], id: &str) -> usize {
    list.iter()
        .position(|x| x == id)
        .unwrap_or_else(|| panic!("{id} not in {list:?}"))
}

#[tokio::test(start_paused = true)]
async fn components_deploy_in_dependency_order_and_independent_ones_in_parallel() {
    let ten = Script::Take(Duration::from_secs(10));
    let d = Doubles::passing(
        ScriptedDeployer::new()
            .script("b", StepKind::Deploy, ten.clone())
            .script("c", StepKind::Deploy, ten),
    );
    let started = tokio::time::Instant::now();
    let summary = d.run(&options(), &CancellationToken::new()).await;
    assert!(
        matches!(summary.suites[0].outcome, SuiteOutcome::Passed),
        "{:?}",
        summary.suites[0].outcome
    );
    let deployed = d.ran(StepKind::Deploy);
    assert_eq!(deployed.len(), 5);
    assert_eq!(deployed[0], "a");
    assert!(position(&deployed, "b") < position(&deployed, "d") && position(&deployed, "c") < position(&deployed, "d"));
    assert_eq!(deployed[4], "t", "the test app comes last");
    // b and c ran at once: 10 s, not 20 s, of the tokio clock (plus the 2 s tests).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(12) && took < Duration::from_secs(20),
        "{took:?}"
    );
    // Teardown is the reverse: the test app, d, then b and c, then a; then the environment.
    let undeployed = d.ran(StepKind::Undeploy);
    assert_eq!(undeployed.first().map(String::as_str), Some("t"));
    assert_eq!(undeployed[1], "d");
    assert_eq!(undeployed[4], "a");
    assert!(matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))));
    // The lock was taken and released, and the report stored.
    assert_eq!(d.reports.reports().len(), 1);
    assert_eq!(d.runner.calls().first().map(String::as_str), Some("start"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_deploy_tears_down_only_what_started_in_reverse_order() {
    let d =
        Doubles::passing(ScriptedDeployer::new().script("c", StepKind::Deploy, Script::Fail("no space left".into())));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Deploy, FailureKind::Command, Some("c"));
    assert!(
        message.contains("deploy of `c` failed") && message.contains("no space left"),
        "{message}"
    );
    assert_eq!(summary.exit_code(), 3);
    let deployed = d.ran(StepKind::Deploy);
    assert!(
        !deployed.contains(&"d".to_owned()) && !deployed.contains(&"t".to_owned()),
        "{deployed:?}"
    );
    // Undeployed: those that started (c too: its deploy ran), in reverse wave order.
    let undeployed = d.ran(StepKind::Undeploy);
    assert_eq!(position(&undeployed, "a"), undeployed.len() - 1, "{undeployed:?}");
    assert!(!undeployed.contains(&"d".to_owned()) && !undeployed.contains(&"t".to_owned()));
    assert!(matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))));
    assert!(d.runner.calls().is_empty(), "no tests ran");
    assert_eq!(d.reports.reports()[0].outcome, "error");
}

#[tokio::test(start_paused = true)]
async fn a_status_check_that_never_passes_fails_after_its_timeout() {
    let d = Doubles::passing(ScriptedDeployer::new().script("t", StepKind::StatusCheck, Script::Fail("503".into())));
    let started = tokio::time::Instant::now();
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Deploy, FailureKind::NotHealthy, Some("t"));
    assert!(
        message.contains("status check of `t` did not pass within 5s"),
        "{message}"
    );
    assert!(message.contains("503"), "the last output is quoted: {message}");
    // Retried with backoff (100 ms doubling to 2 s) until the next try would pass 5 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_secs(5),
        "{took:?}"
    );
    assert!(d.ran(StepKind::StatusCheck).len() > 2, "retried with backoff");
    assert_eq!(
        d.ran(StepKind::Undeploy).len(),
        5,
        "everything that started is undeployed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deploy_past_its_timeout_is_stopped() {
    let d = Doubles::passing(ScriptedDeployer::new().script("b", StepKind::Deploy, Script::Hang));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Deploy, FailureKind::Timeout, Some("b"));
    assert!(message.contains("did not finish within 20s"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn tests_that_run_past_the_suite_timeout_fail_it() {
    let d = Doubles::new(ScriptedDeployer::new(), Session::Running);
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Tests, FailureKind::Timeout, Some("t"));
    assert!(message.contains("did not finish within 30s"), "{message}");
    assert_eq!(d.ran(StepKind::Undeploy).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn failing_tests_exit_1_and_erroring_sessions_exit_3() {
    let d = Doubles::new(
        ScriptedDeployer::new(),
        Session::Report(ScriptedRunner::report_with(Outcome::Fail), Duration::ZERO),
    );
    let summary = d.run(&options(), &CancellationToken::new()).await;
    assert!(matches!(summary.suites[0].outcome, SuiteOutcome::Failed));
    assert_eq!(summary.exit_code(), 1);
    let d = Doubles::new(ScriptedDeployer::new(), Session::Error("k6 crashed".into()));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Tests, FailureKind::Session, Some("t"));
    assert!(message.contains("k6 crashed"), "{message}");
}

/// Cancelled while each phase runs: deployment (a hanging deploy) and the tests.
#[tokio::test(start_paused = true)]
async fn cancelling_in_any_phase_tears_everything_down_and_exits_130() {
    for (deployer, session, phase) in [
        (
            ScriptedDeployer::new().script("b", StepKind::Deploy, Script::Hang),
            Session::Report(ScriptedRunner::passing_report(), Duration::ZERO),
            "interrupted during deployment",
        ),
        (
            ScriptedDeployer::new(),
            Session::Running,
            "interrupted during the tests",
        ),
        (
            ScriptedDeployer::new(),
            Session::Running,
            "interrupted while waiting for locks",
        ),
    ] {
        let d = Doubles::new(deployer, session);
        // Someone else holds the suite's lock: the run waits for it (up to a minute).
        let other = if phase.contains("locks") {
            let req = pit_core::testing::lock_request(&["shared"], "someone else", 0, 600_000);
            Some(d.locks.acquire(&req, &CancellationToken::new()).await.unwrap())
        } else {
            None
        };
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            later.cancel();
        });
        let summary = d.run(&options(), &cancel).await;
        let SuiteOutcome::Cancelled { message } = &summary.suites[0].outcome else {
            panic!("{phase}: {:?}", summary.suites[0].outcome)
        };
        assert_eq!(message, phase);
        assert_eq!(summary.exit_code(), 130);
        if other.is_some() {
            assert!(d.ran(StepKind::Deploy).is_empty(), "nothing deployed without the lock");
            assert!(matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))));
            continue;
        }
        assert!(!d.ran(StepKind::Undeploy).is_empty(), "{phase}: torn down");
        assert!(
            matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))),
            "{phase}"
        );
        // The lock is free again.
        let lock_calls = d.locks.calls();
        assert!(
            matches!(lock_calls.last(), Some(pit_core::testing::LockCall::Release(_))),
            "{phase}: {lock_calls:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_mid_run_stops_the_suite_and_still_tears_down() {
    let d = Doubles::new(ScriptedDeployer::new(), Session::Running);
    let locks = d.locks.clone();
    // Renewals come every third of the lease (60 s): the store breaks before the first one.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        locks.fail_with(Some("connection reset"));
    });
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Locks, FailureKind::LockStore, None);
    assert!(
        message.contains("connection reset") && message.ends_with("the suite was stopped"),
        "{message}"
    );
    // The store's own error is the source.
    let source = summary.suites[0].outcome.failure().and_then(SuiteFailure::error);
    assert!(
        source.is_some_and(|e| e.downcast_ref::<pit_core::lock::LockError>().is_some()),
        "{source:?}"
    );
    assert_eq!(d.ran(StepKind::Undeploy).len(), 5, "torn down");
}

#[tokio::test(start_paused = true)]
async fn keep_leaves_the_environment_up_and_says_how_to_remove_it() {
    let d = Doubles::passing(ScriptedDeployer::new());
    let opts = RunOptions {
        keep: true,
        ..options()
    };
    let summary = d.run(&opts, &CancellationToken::new()).await;
    assert!(matches!(summary.suites[0].outcome, SuiteOutcome::Passed));
    assert!(d.ran(StepKind::Undeploy).is_empty());
    assert!(!d.deployer.calls().iter().any(|c| matches!(c, DeployerCall::Remove(_))));
    // A command per component, in teardown order, then the environment's removal.
    let kept = &summary.suites[0].kept;
    assert_eq!(kept.len(), 6, "{kept:?}");
    assert!(
        kept[0].contains("PIT_COMPONENT_ID=t ") && kept[4].contains("PIT_COMPONENT_ID=a "),
        "{kept:?}"
    );
    assert!(kept[5].starts_with("rm -r "), "{kept:?}");
    // The lock is released even so.
    assert!(d
        .locks
        .calls()
        .iter()
        .any(|c| matches!(c, pit_core::testing::LockCall::Release(_))));
    let _ = d.locks.clone() as Arc<dyn LockStore>;
}

#[tokio::test(start_paused = true)]
async fn an_environment_that_cannot_be_created_fails_before_any_lock_or_step() {
    let d = Doubles::passing(ScriptedDeployer::new().fail_environment("quota exceeded"));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Environment, FailureKind::Backend, None);
    assert!(message.contains("quota exceeded"), "{message}");
    assert_eq!(summary.exit_code(), 3);
    assert!(
        matches!(d.deployer.calls().as_slice(), [DeployerCall::Create(_)]),
        "nothing else: {:?}",
        d.deployer.calls()
    );
    assert!(d.locks.calls().is_empty(), "no lock was asked for");
    assert_eq!(d.reports.reports()[0].outcome, "error", "the failure is reported");
}

#[tokio::test(start_paused = true)]
async fn locks_held_for_the_whole_wait_fail_the_suite_with_nothing_deployed() {
    let d = Doubles::passing(ScriptedDeployer::new());
    let req = pit_core::testing::lock_request(&["shared"], "the nightly run", 0, 600_000);
    let held = d.locks.acquire(&req, &CancellationToken::new()).await.unwrap();
    let started = tokio::time::Instant::now();
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let message = error_of(&summary, Phase::Locks, FailureKind::LocksBusy, None);
    assert!(message.contains("the nightly run"), "names the holder: {message}");
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "waited the pitfile's minute"
    );
    assert!(d.ran(StepKind::Deploy).is_empty());
    assert!(matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))));
    d.locks.release(&held).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_teardown_runs_in_exact_reverse_dependency_order_then_the_lock_is_released() {
    // `d` (after b and c, which follow a) fails: the test app never started.
    let d = Doubles::passing(ScriptedDeployer::new().script("d", StepKind::Deploy, Script::Fail("boom".into())));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    error_of(&summary, Phase::Deploy, FailureKind::Command, Some("d"));
    let calls = d.deployer.calls();
    let failed_at = calls
        .iter()
        .position(|c| *c == DeployerCall::Run("d".into(), StepKind::Deploy))
        .unwrap();
    let after: Vec<&DeployerCall> = calls[failed_at + 1..].iter().collect();
    // d first (its deploy ran), then b and c in either order, then a, then the environment.
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(*after[0], DeployerCall::Run("d".into(), StepKind::Undeploy));
    let mut middle: Vec<String> = after[1..3].iter().map(|c| format!("{c:?}")).collect();
    middle.sort();
    assert_eq!(middle, [r#"Run("b", Undeploy)"#, r#"Run("c", Undeploy)"#], "{after:?}");
    assert_eq!(*after[3], DeployerCall::Run("a".into(), StepKind::Undeploy));
    assert!(matches!(after[4], DeployerCall::Remove(_)));
    // The lock goes last: whatever it protects stays exclusive until everything is gone.
    assert!(
        matches!(d.locks.calls().last(), Some(pit_core::testing::LockCall::Release(_))),
        "{:?}",
        d.locks.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_undeploy_is_reported_and_the_rest_is_still_torn_down() {
    let d =
        Doubles::passing(ScriptedDeployer::new().script("b", StepKind::Undeploy, Script::Fail("still in use".into())));
    let summary = d.run(&options(), &CancellationToken::new()).await;
    let suite = &summary.suites[0];
    assert!(matches!(suite.outcome, SuiteOutcome::Passed), "{:?}", suite.outcome);
    assert!(
        suite
            .teardown_errors
            .iter()
            .any(|e| e.contains("`b`") && e.contains("still in use")),
        "{:?}",
        suite.teardown_errors
    );
    let undeployed = d.ran(StepKind::Undeploy);
    assert_eq!(
        undeployed.len(),
        5,
        "every component, b's failure notwithstanding: {undeployed:?}"
    );
    assert_eq!(undeployed.last().map(String::as_str), Some("a"));
    assert!(matches!(d.deployer.calls().last(), Some(DeployerCall::Remove(_))));
}
