//! Report stores: a directory, and a bare git repository served by `git daemon` on loopback
//! with 8 concurrent writers.

use std::io::Write as _;
use std::sync::Arc;

use pit_core::sink::{ReportSink, SuiteReport};
use pit_git::testing::{git, GitDaemon};
use pit_report::store::{DirStore, GitStore, RunContext};
use pit_report::Report;

mod support;
use support::{report, scratch, suite_report};

/// A suite record carrying `report`'s scenarios, as the engine would store it.
fn suite_of(run: &str, latency: f64, minute: u64) -> SuiteReport {
    let mut s = suite_report("passed");
    s.run_id = run.into();
    s.started_ms += minute * 60_000;
    s.finished_ms += minute * 60_000;
    s.test_report = Some(report(run, latency, 140.0).to_suite().test_report.unwrap());
    s
}

fn context() -> RunContext {
    RunContext {
        branch: Some("main".into()),
        git_commit: Some("0123456789abcdef0123".into()),
    }
}

#[tokio::test]
async fn the_directory_store_keeps_json_html_junit_and_an_index_and_compares_with_earlier_runs() {
    let (_guard, root) = scratch("dir");
    let store = DirStore::new(&root).with_context(context());
    for (i, latency) in [100.0, 101.0, 99.0, 140.0].into_iter().enumerate() {
        store
            .store(&suite_of(&format!("01jq00000000000000000000d{i}"), latency, i as u64))
            .await
            .unwrap();
    }
    let run = root.join("shop/checkout/01jq00000000000000000000d3");
    for file in ["report.json", "report.html", "junit.xml"] {
        assert!(run.join(file).is_file(), "{file} is stored");
    }
    let stored = Report::load(&run.join("report.json")).unwrap();
    assert_eq!(stored.branch.as_deref(), Some("main"));
    assert_eq!(stored.git_commit.as_deref(), Some("0123456789abcdef0123"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains(r#"id="regressions""#) && html.contains("against 3 earlier runs"),
        "compared with the earlier runs"
    );
    let index = std::fs::read_to_string(root.join("shop/checkout/index.html")).unwrap();
    assert!(index.contains(r#"id="run-count">4 runs"#), "{index}");
    let listed = store.list("shop", "checkout").await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0].run_id, "01jq00000000000000000000d0", "oldest first");
    assert_eq!(store.suites().unwrap(), [("shop".to_owned(), "checkout".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_runs_pushing_reports_at_once_all_get_in() {
    let (_guard, root) = scratch("git");
    git(&root, &["init", "-q", "--bare", "reports.git"]);
    let daemon = GitDaemon::start(&root);
    let url = daemon.url("reports.git");
    let writers: Vec<_> = (0..8)
        .map(|i| {
            // Each writer its own local repository, as separate CI jobs would have.
            let store = Arc::new(GitStore::new(&url, None, root.join(format!("cache-{i}"))).with_context(context()));
            tokio::spawn(async move {
                store
                    .push(&suite_of(&format!("01jq00000000000000000000g{i}"), 100.0, i))
                    .await
            })
        })
        .collect();
    let mut attempts = 0;
    for w in writers {
        let pushed = w.await.unwrap().unwrap();
        assert!(pushed.stored.location.starts_with(&url), "{}", pushed.stored.location);
        attempts += pushed.attempts;
    }
    // Past the harness's capture, for the CI log: how much the writers collided.
    let _ = writeln!(std::io::stderr(), "git store: 8 reports pushed in {attempts} attempts");
    // Every report is on the project's branch, in a commit of its own.
    let reader = GitStore::new(&url, None, root.join("reader"));
    let reports = reader.reports("shop", "checkout").await.unwrap();
    let mut runs: Vec<String> = reports.iter().filter_map(|r| r.run_id.clone()).collect();
    runs.sort();
    let expected: Vec<String> = (0..8).map(|i| format!("01jq00000000000000000000g{i}")).collect();
    assert_eq!(runs, expected, "no report was lost");
    let clone = root.join("clone");
    git(&root, &["clone", "-q", "-b", "shop", &url, "clone"]);
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s"])
        .current_dir(&clone)
        .output()
        .unwrap();
    let subjects = String::from_utf8(log.stdout).unwrap();
    assert_eq!(subjects.lines().count(), 8, "{subjects}");
    assert!(
        subjects.contains("pit: report of shop/checkout, run 01jq00000000000000000000g3, passed"),
        "{subjects}"
    );
    assert!(clone.join("checkout/index.html").is_file());
}

#[tokio::test]
async fn an_unreachable_repository_is_a_clear_error_without_the_token() {
    let (_guard, checkout) = scratch("unreachable");
    let store = GitStore::new(
        "http://user:s3cret-token@127.0.0.1:1/reports.git",
        Some("main".into()),
        checkout,
    );
    let err = store
        .store(&suite_of("01jq00000000000000000000u1", 100.0, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("http://127.0.0.1:1/reports.git"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
