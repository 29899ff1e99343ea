use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::{pit, repo, run};

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("pit-cli/tests/fixtures/run").join(name)
}

fn state_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pit-cli-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn an_unset_variable_stops_the_run_before_anything_is_deployed() {
    let state = state_dir("unset");
    let (code, _, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("slow-deploy.yml"))
        .env_remove("SLOW_SECONDS"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("environment variable `SLOW_SECONDS` is not set"), "{err}");
    assert!(!state.join("runs").exists(), "nothing was deployed");
}

#[test]
fn a_failing_status_check_exits_3_naming_the_component_with_its_output() {
    let state = state_dir("check");
    let (code, out, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("failing-check.yml")));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("failing-check: error"), "{out}");
    assert!(out.contains("status check of `db` did not pass within 1s"), "{out}");
    assert!(out.contains("connection refused"), "the last output is quoted: {out}");
    assert!(err.contains("db: undeployed"), "teardown ran: {err}");
}

#[test]
fn json_output_summarises_the_run() {
    let state = state_dir("json");
    let (code, out, _) = run(pit()
        .args(["run", "-o", "json", "--state-dir"])
        .arg(&state)
        .arg(fixture("failing-check.yml")));
    assert_eq!(code, 3);
    let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(json["suites"][0]["outcome"], "error");
    assert!(json["suites"][0]["report"]["timeline"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
}

#[test]
fn sigterm_during_deployment_tears_down_releases_locks_and_exits_130() {
    let state = state_dir("sigterm");
    let mut child = pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("slow-deploy.yml"))
        .env("SLOW_SECONDS", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pit starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut seen = String::new();
    let mut line = String::new();
    // Wait for the slow deploy to start, then interrupt as CI would.
    while stderr.read_line(&mut line).expect("readable") > 0 {
        seen.push_str(&line);
        if line.contains("slow: deploy") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("slow: deploy"), "{seen}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{seen}{rest}");
    for undeployed in ["slow: undeployed", "fast: undeployed"] {
        assert!(rest.contains(undeployed), "{rest}");
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("slow-suite: cancelled"), "{summary}");
    // The lock is free: a second run takes it at once (and fails later for its own reasons).
    let locks = std::fs::read_to_string(state.join("locks/locks.json")).unwrap();
    let held: serde_json::Value = serde_json::from_str(&locks).unwrap();
    assert!(held["held"].as_object().is_some_and(|m| m.is_empty()), "{locks}");
}

#[test]
fn follow_streams_each_commands_output_with_its_name() {
    let state = state_dir("follow");
    let (code, _, err) = run(pit()
        .args(["run", "--follow", "--state-dir"])
        .arg(&state)
        .arg(fixture("failing-check.yml")));
    assert_eq!(code, 3);
    assert!(err.contains("/db.deploy.log| db as pid"), "{err}");
    assert!(err.contains("/db.status-check.log| connection refused as pid"), "{err}");
}
