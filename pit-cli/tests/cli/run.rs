use std::io::BufReader;
use std::process::Stdio;

use crate::{pit, read_until, repo, run};

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("pit-cli/tests/fixtures/run").join(name)
}

fn state_dir(name: &str) -> crate::Scratch {
    crate::scratch(&format!("run-{name}"))
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
    // Wait for the slow deploy to start, then interrupt as CI would.
    let seen = read_until(&mut stderr, "slow: deploy");
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

/// A bare repository holding a pitfile whose suite `remote-suite` has one shell component.
fn remote_repository(root: &std::path::Path) -> std::path::PathBuf {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("scripts")).unwrap();
    std::fs::write(
        work.join("pitfile.yml"),
        "version: '1.0'\nprojectName: remote\ntestSuites:\n  - name: Remote suite\n    id: remote-suite\n    deployment:\n      graph:\n        testApp: { name: T, id: t, location: { path: scripts }, deploy: { command: ./ok.sh, params: [test-app] }, undeploy: { command: ./ok.sh } }\n        components:\n          - { name: A, id: a, location: { path: scripts }, deploy: { command: ./ok.sh, params: [component-a] }, undeploy: { command: ./ok.sh } }\n  - name: Not selected\n    id: other\n    deployment:\n      graph:\n        testApp: { name: T, id: t, deploy: { command: ./missing.sh }, undeploy: { command: ./missing.sh } }\n",
    )
    .unwrap();
    let script = work.join("scripts/ok.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"remote script $1\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    use pit_git::testing::git;
    git(&work, &["init", "-q", "-b", "master"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "suites"]);
    git(root, &["clone", "-q", "--bare", "work", "suites.git"]);
    root.join("suites.git")
}

#[test]
fn a_remote_suite_is_fetched_and_its_components_run_from_the_checkout() {
    let state = state_dir("remote");
    std::fs::create_dir_all(&state).unwrap();
    let bare = remote_repository(&state);
    let pitfile = state.join("pitfile.yml");
    std::fs::write(
        &pitfile,
        format!(
            "version: '1.0'\nprojectName: local\ntestSuites:\n  - name: From elsewhere\n    id: from-elsewhere\n    location: {{ type: REMOTE, gitRepository: 'file://{}' }}\n    testSuiteIds: [remote-suite]\n",
            bare.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(pit()
        .args(["run", "--follow", "--state-dir"])
        .arg(state.join("state"))
        .arg(&pitfile));
    // The remote scripts ran from the checkout; the shell test app publishes no URL, so the
    // suite ends in an infrastructure error after its component was ready.
    assert!(err.contains("fetching remote suites"), "{err}");
    assert!(err.contains("[remote-suite] a: ready"), "{err}");
    assert!(err.contains("remote script component-a"), "{err}");
    assert!(out.contains("did not publish its URL"), "{out}");
    assert!(
        !err.contains("missing.sh") && !out.contains("other"),
        "the unselected suite did not run"
    );
    assert_eq!(code, 3);
}

#[test]
fn keep_leaves_the_environment_up_and_says_how_to_remove_it() {
    let state = state_dir("keep");
    let (code, out, err) = run(pit()
        .args(["run", "--keep", "--state-dir"])
        .arg(&state)
        .arg(fixture("failing-check.yml")));
    assert_eq!(code, 3);
    assert!(out.contains("kept up (--keep); to remove it run:"), "{out}");
    assert!(out.contains("undeploy-db"), "the undeploy command is shown: {out}");
    assert!(!err.contains("undeployed"), "nothing was undeployed: {err}");
    let rm = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("rm -r "))
        .expect("an rm line");
    let workspace = std::path::PathBuf::from(rm.trim_matches('\''));
    assert!(workspace.is_dir(), "the workspace is still there");
    // The printed commands work: run them as a person would.
    let commands: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("to remove it run:"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "db (the test app never started), then the workspace: {commands:?}"
    );
    for cmd in &commands {
        let done = std::process::Command::new("sh").args(["-c", cmd]).output().unwrap();
        assert!(
            done.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    assert!(!workspace.exists(), "removed");
}

pub(crate) fn pids_in(file: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (bounded) for every pid in `pids` to end; those still running.
pub(crate) fn until_ended(pids: &[i32]) -> Vec<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let running: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| pit_core::process::is_running(*p))
            .collect();
        if running.is_empty() || std::time::Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn teardown_ends_background_processes_even_those_that_left_the_process_group() {
    // Issue 13: a background child of a deploy command, and one started with setsid,
    // outlived the run.
    let state = state_dir("leftover");
    std::fs::create_dir_all(&state).unwrap();
    let pids_file = state.join("pids");
    let (_, _, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("leftover.yml"))
        .env("TEST_APP_SECONDS", "0")
        .env("PIDS_FILE", &pids_file));
    let pids = pids_in(&pids_file);
    assert_eq!(pids.len(), 2, "the deploy ran: {err}");
    let running = until_ended(&pids);
    for p in &running {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(running.is_empty(), "still running after the run: {running:?}\n{err}");
}

#[test]
fn after_pit_is_killed_the_next_run_ends_its_processes_and_takes_over_its_locks() {
    // Issue 13: after SIGKILL, the next run waited for a lock held by a dead pid, and what
    // the killed run started kept running.
    let state = state_dir("killed");
    std::fs::create_dir_all(&state).unwrap();
    let pids_file = state.join("pids");
    let mut child = pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("leftover.yml"))
        .env("TEST_APP_SECONDS", "120")
        .env("PIDS_FILE", &pids_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let seen = read_until(&mut stderr, "test-app: deploy");
    assert!(seen.contains("test-app: deploy"), "{seen}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let pids = pids_in(&pids_file);
    assert_eq!(pids.len(), 2);
    assert!(
        pids.iter().all(|p| pit_core::process::is_running(*p)),
        "the killed run left them running"
    );

    // `pit lock --embedded` shows the stale holder, and that its process is gone.
    let (code, out, err) = run(pit().args(["lock", "--embedded", "list", "--state-dir"]).arg(&state));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("leftover-lock") && out.contains("gone"), "{out}");

    let (_, out, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg(fixture("leftover.yml"))
        .env("TEST_APP_SECONDS", "0")
        .env("PIDS_FILE", state.join("pids-2")));
    assert!(err.contains("left running by run"), "{err}");
    assert!(
        err.contains("took over locks whose holder's process is gone: leftover-lock held by"),
        "{err}"
    );
    assert!(!err.contains("still held"), "{err}\n{out}");
    let running = until_ended(&pids);
    assert!(running.is_empty(), "{running:?}");
    let running = until_ended(&pids_in(&state.join("pids-2")));
    assert!(running.is_empty(), "{running:?}");
    // And the embedded store can be cleared by hand.
    let (code, _, err) = run(pit()
        .args(["lock", "--embedded", "force-release", "leftover-lock", "--state-dir"])
        .arg(&state));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_lock_manager_mock_serves_the_runs_locks_and_its_commands() {
    // `--lock-manager-mock true` (the existing toolkit's flag): an in-memory Lock Manager for
    // this run; the suite's locks are taken there, and commands reach it by its URL.
    let state = state_dir("mock");
    let (_, _, err) = run(pit()
        .args(["run", "--follow", "--lock-manager-mock", "true", "--state-dir"])
        .arg(&state)
        .arg(fixture("mock-lock.yml")));
    assert!(err.contains("an in-memory Lock Manager at http://127.0.0.1:"), "{err}");
    assert!(
        err.contains("show-locks.deploy.log| locks held: mock-lock-a by locked-suite, mock-lock-b by locked-suite"),
        "{err}"
    );
    assert!(!state.join("locks").exists(), "the embedded store was not used: {err}");
}

#[test]
fn post_test_actions_run_after_the_report_and_show_in_the_summary() {
    // The suite errs (its status check fails): `--on-fail` runs, in a dry run here, and the
    // summary says so; a failed real action adds `action failed`.
    let state = state_dir("actions");
    let (code, out, err) = run(pit()
        .args([
            "run",
            "--actions-dry-run",
            "--on-fail",
            "webhook:env:PIT_TEST_HOOK",
            "--on-pass",
            "slack:env:NEVER",
        ])
        .arg("--state-dir")
        .arg(&state)
        .arg(fixture("failing-check.yml")));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("  action: webhook (onFail): dry run"), "{out}");
    assert!(!out.contains("slack"), "{out}");
    assert!(err.contains("webhook (onFail), would send:"), "{err}");
    assert!(err.contains("\"verdict\": \"error\""), "{err}");
    let (code, out, _) = run(pit()
        .args(["run", "--on-fail", "webhook:env:PIT_TEST_HOOK"])
        .arg("--state-dir")
        .arg(&state)
        .arg(fixture("failing-check.yml"))
        .env("PIT_TEST_HOOK", "http://127.0.0.1:9/hook?sig=s3cret"));
    assert_eq!(code, 3);
    assert!(
        out.contains("  action failed: webhook (onFail): the receiver could not be reached"),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
}
