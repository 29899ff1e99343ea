//! `pit actions run` on a stored report: dry runs, a real receiver on loopback, failures that
//! warn or fail the job, and secrets that are never written.

use pit_actions::testing::Receiver;
use pit_git::testing::{git, git_output, GitDaemon};

use crate::{pit, repo, run};

fn report() -> std::path::PathBuf {
    repo().join("pit-report/tests/testdata/existing-toolkit-report.json")
}

/// A receiver on loopback answering 200 to every call, served by `rt`.
fn receiver(rt: &tokio::runtime::Runtime) -> Receiver {
    rt.block_on(Receiver::ok())
}

#[test]
fn a_dry_run_prints_the_message_of_the_reports_verdict_only() {
    let (code, out, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--on-pass", "slack:env:PIT_TEST_NO_SUCH_HOOK"])
        .args(["--on-fail", "webhook:env:PIT_TEST_NO_SUCH_HOOK", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("webhook (onFail): dry run") && !err.contains("slack"),
        "{err}"
    );
    let body: serde_json::Value = serde_json::from_str(&out).expect("stdout is the JSON payload");
    assert_eq!(body["type"], "pit.run.finished");
    assert_eq!(body["data"]["failing"][0]["stream"], "POST /orders");
}

#[test]
fn actions_are_sent_and_a_failing_one_warns_or_fails_the_job_without_showing_its_url() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = receiver(&rt);
    let url = r.url.clone();
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
    assert!(err.contains("teams (onFail): sent (HTTP 200, 1 call(s))"), "{err}");
    let card = r.bodies()[0].clone();
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
        assert!(
            err.contains("warning: ") && err.contains("webhook (onFail): the receiver could not be reached"),
            "{err}"
        );
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
    let dir = crate::scratch("actions-pitfile");
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

/// A passed copy of the toolkit report, written into `dir` as `pit-report.json`.
fn passed_report(dir: &std::path::Path) -> std::path::PathBuf {
    let mut r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report()).unwrap()).unwrap();
    for sc in r["scenarios"].as_array_mut().unwrap() {
        for st in sc["streams"].as_array_mut().unwrap() {
            st["outcome"] = "PASS".into();
        }
    }
    let path = dir.join("passed/pit-report.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, r.to_string()).unwrap();
    path
}

/// A bare repository `app.git` under `base` with one commit on `main`; its id.
fn tagged_repository(base: &std::path::Path) -> String {
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(base, &["init", "-q", "--bare", "-b", "main", "app.git"]);
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("f"), "x").unwrap();
    git(&work, &["add", "f"]);
    git(&work, &["commit", "-q", "-m", "x"]);
    git(&work, &["push", "-q", base.join("app.git").to_str().unwrap(), "main"]);
    git_output(&work, &["rev-parse", "HEAD"]).trim().to_owned()
}

#[test]
fn the_existing_toolkits_flags_post_to_teams_and_tag_the_repository_end_to_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = receiver(&rt);
    let url = r.url.clone();
    let base = tempfile::tempdir().unwrap();
    let sha = tagged_repository(base.path());
    let daemon = GitDaemon::start(base.path());
    let workspace = base.path().join("workspace");
    passed_report(&workspace);
    let hook = format!("{url}/workflow?sig=s3cret");
    let toolkit = |dry_run: &str| {
        let mut cmd = pit();
        cmd.args(["actions", "run", "--app-root-dir", "/opt/pta", "--dry-run", dry_run])
            .arg("--workspace")
            .arg(&workspace)
            .args(["--test-pass-actions", "tag-git-repository"])
            .args(["--test-fail-actions", "post-to-teams,tag-git-repository"])
            .args(["--teams-webhook", &hook])
            .args(["--git-repository-url", &daemon.url("app.git")])
            .args(["--git-ref", "refs/remotes/origin/main"])
            .args(["--exit-code-on-test-failure", "7"]);
        cmd
    };
    let tags = || git_output(&base.path().join("app.git"), &["tag", "--list"]);

    // A dry run (`--dry-run true`) changes nothing and sends nothing.
    let (code, out, err) = run(&mut toolkit("true"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--app-root-dir is accepted but not used"), "{err}");
    assert!(out.contains(&format!("\"tag\": \"dpt-pass-{}\"", &sha[..7])), "{out}");
    assert_eq!(tags(), "");
    assert!(r.calls().is_empty());

    // For real: the passed report tags the commit.
    let (code, _, err) = run(&mut toolkit("false"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("tagged {} as dpt-pass-{}", &sha[..7], &sha[..7])),
        "{err}"
    );
    assert_eq!(tags(), format!("dpt-pass-{}\n", &sha[..7]));

    // A failed report joins it: reports are taken passed first, failed last, so the failure's
    // tag wins, Teams hears of it, and the job exits with the code asked for.
    let failed = workspace.join("failed/pit-report.json");
    std::fs::create_dir_all(failed.parent().unwrap()).unwrap();
    std::fs::copy(report(), &failed).unwrap();
    let (code, out, err) = run(&mut toolkit("false"));
    assert_eq!(code, 7, "{err}");
    assert_eq!(tags(), format!("dpt-fail-{}\n", &sha[..7]));
    let cards = r.bodies();
    assert_eq!(cards.len(), 1, "{err}");
    assert_eq!(cards[0]["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"), "{err}");
}

#[test]
fn the_toolkits_flags_without_dry_run_false_are_a_dry_run_as_there() {
    let base = tempfile::tempdir().unwrap();
    let sha = tagged_repository(base.path());
    let (code, out, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--test-fail-actions", "tag-git-repository", "--git-ref", &sha])
        .arg("--git-repository-url")
        .arg(base.path().join("app.git")));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("a dry run, as there"), "{err}");
    assert!(out.contains("dpt-fail-"), "{out}");
    assert_eq!(git_output(&base.path().join("app.git"), &["tag", "--list"]), "");
    // post-to-teams without a webhook is skipped with a warning, as there.
    let (code, _, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--test-fail-actions", "post-to-teams"])
        .env_remove("TEAMS_WEBHOOK"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("post-to-teams is not run"), "{err}");
    // An unknown id is a usage error naming the ids.
    let (code, _, err) = run(pit()
        .args(["actions", "run"])
        .arg(report())
        .args(["--test-fail-actions", "post-to-slack"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("post-to-teams") && err.contains("tag-git-repository"),
        "{err}"
    );
}
