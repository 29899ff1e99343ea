//! Post-test actions inside a run: they run after the report is stored, show in the run's
//! timeline, never change the stored report, and fail the run only when asked.

use std::sync::{Arc, Mutex};

use pit_core::testing::{MemoryReportSink, MockLockStore, ScriptedDeployer, ScriptedRunner, Session};
use pit_run::pit_actions::action::Outcome;
use pit_run::pit_actions::testing::Receiver;
use pit_run::{ActionSettings, CancellationToken, Custom, RunSettings};

const PITFILE: &str = r#"
version: "1.0"
projectName: notified
postTestActions:
  onPass:
    - action: webhook
      url: { env: HOOK_URL }
  onFail:
    - action: slack
      webhook: { env: NEVER_READ }
testSuites:
  - name: Smoke
    id: smoke
    deployment:
      graph:
        testApp: { name: T, id: t, deploy: { command: ./deploy.sh } }
"#;

/// A passing run of [`PITFILE`] with `actions`; its summary and what the store kept.
async fn passing_run(
    name: &str,
    actions: ActionSettings,
) -> (pit_core::engine::RunSummary, Vec<pit_core::sink::SuiteReport>) {
    let root = tempfile::tempdir().unwrap();
    let pitfile = root.path().join("pitfile.yml");
    std::fs::write(&pitfile, PITFILE).unwrap();
    let reports = MemoryReportSink::new();
    let runner = ScriptedRunner::new(Session::Report(
        ScriptedRunner::passing_report(),
        std::time::Duration::ZERO,
    ));
    let settings = RunSettings {
        state_dir: Some(root.path().join(name)),
        deployer: Some(Custom(Arc::new(ScriptedDeployer::new()))),
        locks: Some(Custom(Arc::new(MockLockStore::new()))),
        reports: Some(Custom(reports.clone())),
        runner: Some(Custom(runner.factory())),
        actions,
        ..RunSettings::new(&pitfile)
    };
    let summary = pit_run::run(&settings, &CancellationToken::new(), &|_: &str| {})
        .await
        .unwrap();
    (summary, reports.reports())
}

fn env(vars: Vec<(&'static str, String)>) -> Option<Custom<pit_run::pit_actions::secret::Env>> {
    Some(Custom(Arc::new(move |n: &str| {
        vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    })))
}

fn action_steps(summary: &pit_core::engine::RunSummary) -> Vec<(String, String)> {
    summary.suites[0]
        .report
        .timeline
        .iter()
        .filter(|e| e.step == "post-test-action")
        .map(|e| (e.outcome.clone(), e.detail.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_passed_suites_actions_run_after_its_report_is_stored_and_join_its_timeline() {
    let r = Receiver::ok().await;
    let (summary, stored) = passing_run(
        "sent",
        ActionSettings {
            env: env(vec![("HOOK_URL", format!("{}/hook", r.url))]),
            ..ActionSettings::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.suites);
    let got = r.bodies();
    assert_eq!(got.len(), 1, "only onPass ran");
    assert_eq!(got[0]["data"]["verdict"], "passed");
    assert_eq!(got[0]["data"]["run_id"], summary.run_id);
    let steps = action_steps(&summary);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].0, "ok");
    assert!(steps[0].1.starts_with("webhook (onPass): sent (HTTP 200"), "{steps:?}");
    // The stored report is the one stored before the actions ran.
    assert_eq!(stored.len(), 1);
    assert!(stored[0].timeline.iter().all(|e| e.step != "post-test-action"));
    assert!(summary.suites[0].action_errors.is_empty());
}

#[tokio::test]
async fn a_failed_action_is_a_warning_unless_the_run_fails_on_action_errors() {
    // Nothing listens on port 9 of loopback.
    let (summary, stored) = passing_run(
        "failed",
        ActionSettings {
            env: env(vec![("HOOK_URL", "http://127.0.0.1:9/hook?token=s3cret".into())]),
            ..ActionSettings::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0);
    assert_eq!(summary.exit_code_failing_on_actions(), 3);
    let errors = &summary.suites[0].action_errors;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("webhook (onPass): the receiver could not be reached"),
        "{errors:?}"
    );
    assert!(!format!("{:?}", summary.suites).contains("s3cret"));
    // The report was stored whole, with its passed outcome.
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].outcome, "passed");
}

#[tokio::test]
async fn a_dry_run_gives_each_body_to_the_printer_and_sends_nothing() {
    let r = Receiver::ok().await;
    let printed: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let (summary, _) = passing_run(
        "dry",
        ActionSettings {
            dry_run: true,
            report_url: Some("https://reports.example.com/{project}/{suite}/{run}/".into()),
            env: env(vec![("HOOK_URL", r.url.clone())]),
            printer: Some(Custom(Arc::new({
                let printed = printed.clone();
                move |label: &str, out: &Outcome| {
                    if let Outcome::DryRun { body } = out {
                        printed.lock().unwrap().push((label.to_owned(), body.clone()));
                    }
                }
            }))),
            ..ActionSettings::default()
        },
    )
    .await;
    assert!(r.calls().is_empty());
    let printed = printed.lock().unwrap().clone();
    assert_eq!(printed.len(), 1);
    assert_eq!(printed[0].0, "webhook (onPass)");
    assert_eq!(
        printed[0].1["data"]["links"]["report"],
        format!("https://reports.example.com/notified/smoke/{}/", summary.run_id)
    );
    assert_eq!(action_steps(&summary)[0].0, "dry-run");
}
