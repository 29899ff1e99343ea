//! Drop-in for the existing PIT toolkit (issue 14): its test apps, pitfiles, reports and
//! pipeline flags work unchanged.

use crate::run::{pids_in, until_ended};
use crate::{pit, repo, run, walk};

fn state_dir(name: &str) -> crate::Scratch {
    crate::scratch(&format!("toolkit-{name}"))
}

fn workspace() -> std::path::PathBuf {
    repo().join("examples/toolkit-compat")
}

fn pitfile() -> std::path::PathBuf {
    workspace().join("node-1/pitfile.yml")
}

/// The whole suite through `pit run`, with a test app that answers as the existing ones do
/// (numeric session ids, no long poll, `data.executedScenarios`, DISTRIBUTION latency), and
/// components without `undeploy` laid out for `--workspace`.
#[test]
fn a_suite_of_the_existing_toolkit_runs_unchanged_end_to_end() {
    let state = state_dir("e2e");
    let pids_file = state.join("pids");
    let (code, out, err) = run(pit()
        .args(["run", "-o", "json", "--workspace"])
        .arg(workspace())
        .arg("--state-dir")
        .arg(&state)
        .arg(pitfile())
        .env("PIDS_FILE", &pids_file));
    assert_eq!(code, 0, "{out}\n{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    let suite = &summary["suites"][0];
    assert_eq!(suite["outcome"], "passed", "{suite}");
    assert!(
        err.contains("tests started (session 1)"),
        "the numeric id was read: {err}"
    );
    let logs = std::fs::read_to_string(
        walk(&state)
            .into_iter()
            .find(|p| p.ends_with("node-1.deploy.log"))
            .expect("a deploy log"),
    )
    .unwrap();
    assert!(
        logs.contains("deploy.sh of node-1 called with: \n"),
        "PIT's convention: no arguments: {logs}"
    );
    // The report keeps what the app sent: both scenarios, a latency distribution by percentile.
    let report_path = suite["stored"]["location"].as_str().expect("stored");
    let report = pit_report::Report::load(std::path::Path::new(report_path)).expect("report");
    assert_eq!(report.scenarios.len(), 2);
    let keys: Vec<String> = report.figures().into_iter().map(|f| f.key).collect();
    assert!(keys.iter().any(|k| k.ends_with("/default/latency.99")), "{keys:?}");
    // Nothing undeploys the components: ending the environment stopped both processes.
    let pids = pids_in(&pids_file);
    assert_eq!(pids.len(), 2, "{err}");
    assert!(until_ended(&pids).is_empty(), "processes outlived the run");
}

/// Without the workspace, paths are the pitfile's: `validate` says so, with the fix.
#[test]
fn without_its_workspace_validation_fails_and_names_the_flag() {
    let (code, _, err) = run(pit().arg("validate").arg(pitfile()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pit::location-not-found"), "{err}");
    assert!(err.contains("node-1/pit-test-app"), "{err}");
    assert!(err.contains("--workspace"), "the hint names the flag: {err}");
    let (code, _, err) = run(pit().args(["validate", "--workspace"]).arg(workspace()).arg(pitfile()));
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("unknown key `trigger`"),
        "the toolkit's trigger is known: {err}"
    );
    // The plan says what nothing undeploys.
    let (code, plan, err) = run(pit().args(["plan", "--workspace"]).arg(workspace()).arg(pitfile()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        plan.matches("undeploy: none (nothing undeploys it: removing the environment cleans up)")
            .count(),
        2,
        "{plan}"
    );
    assert!(
        plan.contains(&format!("in:       {}", workspace().join("node-1").display())),
        "a component without a path runs in <workspace>/<id>: {plan}"
    );
}

/// The report the existing toolkit's report UI ships (number `schemaVersion`, `values`).
#[test]
fn reports_of_the_existing_toolkit_render_and_convert() {
    let report = repo().join("pit-report/tests/testdata/toolkit/ui-sample-number-version.json");
    let (code, out, err) = run(pit().args(["report", "render"]).arg(&report));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Refund"), "rendered");
    let (code, out, err) = run(pit().args(["report", "junit"]).arg(&report));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("failures=\"1\""), "{out}");
}

/// A CI job of the existing toolkit, with `pit` for its deployer's name and every flag as it
/// passes them (`--flag value`).
#[test]
fn the_existing_deployers_flags_are_accepted_and_mapped() {
    let state = state_dir("flags");
    let root = state.join("git");
    std::fs::create_dir_all(&root).unwrap();
    pit_git::testing::git(&root, &["init", "-q", "--bare", "reports.git"]);
    let reports = root.join("reports.git");
    let (code, out, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .args(["--follow", "--commit-sha", "0123abc", "--workspace"])
        .arg(workspace())
        .arg("--pitfile")
        .arg(pitfile())
        .args(["--parent-ns", "ci-parent", "--subns-prefix", "pit"])
        .args(["--subns-name-generator-type", "DATE", "--report-repository"])
        .arg(&reports)
        .args(["--report-branch-name", "node-1", "--report-user-name", "CI Bot"])
        .args(["--report-user-email", "ci@example.com", "--target-environment", "local"])
        .args(["--namespace-timeout", "300", "--cluster-url", "http://localhost"])
        .args(["--lock-manager-mock", "true", "--use-kube-proxy", "false"])
        .args(["--lock-manager-api-retries", "3", "--enable-cleanups", "true"])
        .args(["--test-runner-app-port", "80"]));
    assert_eq!(code, 0, "{out}\n{err}");
    // Flags PIT has no use for are accepted with a warning that says so.
    for flag in [
        "--subns-prefix pit is accepted but not used",
        "--subns-name-generator-type DATE is accepted but not used",
        "--lock-manager-api-retries 3 is accepted but not used",
        "--test-runner-app-port is not used with the ingress",
    ] {
        assert!(err.contains(&format!("warning: {flag}")), "{flag}: {err}");
    }
    // The others are mapped: the lock mock, the target environment, the report repository
    // with its branch and author, and the commit.
    assert!(err.contains("the Lock Manager is mocked"), "{err}");
    // Called with the deployer's flags, commands get its arguments: the namespace first, and
    // the suite id last for the test app.
    assert!(
        err.contains("deploy.sh of node-1 called with: pit-testset-node-1-default-"),
        "{err}"
    );
    let test_app = err
        .lines()
        .find(|l| l.contains("deploy.sh of test app called with: pit-testset-node-1-default-"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(test_app.ends_with(" testset-node-1-default"), "{test_app}");
    assert!(err.contains("target environment: local"), "{err}");
    let log = pit_git::testing::git_output(&reports, &["log", "-1", "--format=%an <%ae>%n%B", "node-1"]);
    assert!(log.starts_with("CI Bot <ci@example.com>"), "{log}");
    let files = pit_git::testing::git_output(&reports, &["ls-tree", "-r", "--name-only", "node-1"]);
    let path = files.lines().find(|f| f.ends_with("/report.json")).expect("a report");
    let report = pit_git::testing::git_output(&reports, &["show", &format!("node-1:{path}")]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["gitCommit"], "0123abc");
}

#[test]
fn the_toolkits_flags_stay_out_of_the_short_help_and_say_what_is_wrong() {
    let (_, short, _) = run(pit().args(["run", "-h"]));
    assert!(!short.contains("--subns-prefix"), "{short}");
    let (_, long, _) = run(pit().args(["run", "--help"]));
    assert!(long.contains("Flags of the existing PIT toolkit"), "{long}");
    assert!(long.contains("--lock-manager-mock"), "{long}");
    let (code, _, err) = run(pit().args(["run", "--use-kube-proxy", "yes"]).arg(pitfile()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`yes` is neither `true` nor `false`"), "{err}");
    let (code, _, err) = run(pit().args(["run", "--pitfile", "a.yml"]).arg(pitfile()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the pitfile is given twice"), "{err}");
    let (code, _, err) = run(pit().args(["run", "--use-kube-proxy", "false"]).arg(pitfile()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cluster-url"), "ingress without its URL: {err}");
}
