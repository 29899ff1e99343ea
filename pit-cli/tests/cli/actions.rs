//! `pit actions run` on a stored report: dry runs, a real receiver on loopback, failures that
//! warn or fail the job, and secrets that are never written.

use std::sync::{Arc, Mutex};

use crate::{pit, repo, run};

fn report() -> std::path::PathBuf {
    repo().join("pit-report/tests/testdata/existing-toolkit-report.json")
}

/// A receiver on loopback answering 200 to every POST; what it got.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new().fallback({
        let got = got.clone();
        move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }
    });
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[test]
fn a_dry_run_prints_the_message_of_the_reports_verdict_only() {
    let (code, out, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--on-pass", "slack:env:PIT_TEST_NO_SUCH_HOOK"])
        .args(["--on-fail", "webhook:env:PIT_TEST_NO_SUCH_HOOK", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("webhook (dry run)") && !err.contains("slack"), "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).expect("stdout is the JSON payload");
    assert_eq!(body["type"], "pit.run.finished");
    assert_eq!(body["data"]["failing"][0]["stream"], "POST /orders");
}

#[test]
fn actions_are_sent_and_a_failing_one_warns_or_fails_the_job_without_showing_its_url() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, got) = receiver(&rt);
    let (code, _, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args([
            "--on-fail",
            "teams:env:PIT_TEST_TEAMS",
            "--report-url",
            "https://reports.example.com/1/",
        ])
        .env("PIT_TEST_TEAMS", format!("{url}/workflow?sig=s3cret")));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("teams sent (HTTP 200, 1 call(s))"), "{err}");
    let card = got.lock().unwrap()[0].clone();
    assert_eq!(card["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert!(card.to_string().contains("https://reports.example.com/1/"));
    // A receiver that is gone: a warning, exit 0; with --fail-on-action-error, exit 3.
    let gone = "http://127.0.0.1:9/hook?sig=s3cret";
    for (flag, expected) in [(None, 0), (Some("--fail-on-action-error"), 3)] {
        let (code, out, err) = run(pit()
            .args(["actions", "run"])
            .arg(report())
            .args(["--on-fail", "webhook:env:PIT_TEST_HOOK"])
            .args(flag)
            .env("PIT_TEST_HOOK", gone));
        assert_eq!(code, expected, "{err}");
        assert!(err.contains("warning: ") && err.contains("webhook failed"), "{err}");
        assert!(!out.contains("s3cret") && !err.contains("s3cret"), "{err}");
    }
}

#[test]
fn a_webhook_url_written_on_the_command_line_is_refused() {
    let (code, _, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--on-fail", "slack:https://hooks.slack.com/services/T0/B0/s3cret"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("env:NAME or file:PATH"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn the_pitfiles_post_test_actions_run_with_templates_from_its_folder() {
    let dir = std::env::temp_dir().join(format!("pit-cli-actions-pitfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("pitfile.yml"),
        "version: '1.0'\nprojectName: p\npostTestActions:\n  onFail:\n    - action: slack\n      webhook: { env: PIT_TEST_NO_SUCH_HOOK }\n      template: short.json.j2\ntestSuites:\n  - name: S\n    id: s\n    deployment: { graph: { testApp: { name: T, id: t, deploy: { command: d }, undeploy: { command: u } } } }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("short.json.j2"),
        "{\"text\": {{ summary.suite ~ \" \" ~ summary.verdict }}}",
    )
    .unwrap();
    let (code, out, err) = run(pit()
        .args(["actions", "run", "--dry-run", "--pitfile"])
        .arg(dir.join("pitfile.yml"))
        .arg(report()));
    assert_eq!(code, 0, "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).expect("the payload");
    assert!(body["text"].as_str().unwrap().ends_with(" failed"), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
