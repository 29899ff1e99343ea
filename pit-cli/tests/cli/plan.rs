use std::io::Read;
use std::process::Stdio;

use crate::{fixture, pit, repo, run};

const RUN_ID: &str = "01jq3v5c2m8k4r6t9w0x1y2z3a";

#[test]
fn plan_prints_waves_commands_and_teardown() {
    let (code, out, err) = run(pit()
        .args(["plan", "--run-id", RUN_ID])
        .arg(repo().join("examples/shop/pitfile.yml"))
        .env("PAYMENTS_REPO", "git://127.0.0.1/p.git"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("environment: pit-checkout-01jq3v5c2m8k4r6t9w0x1y2z3a"),
        "{out}"
    );
    assert!(out.contains("locks: shop-db (wait up to 10m)"), "{out}");
    assert!(out.contains("wave 2:"), "{out}");
    assert!(out.contains("deploy:   deploy.sh --replicas 2 (timeout 60s)"), "{out}");
    assert!(
        out.contains("teardown: checkout-tests -> catalogue + checkout-svc -> db + cache"),
        "{out}"
    );
}

#[test]
fn plan_json_is_data_on_stdout() {
    let (code, out, _) = run(pit()
        .args(["plan", "-o", "json", "--run-id", RUN_ID])
        .arg(fixture("valid", "anchors-and-aliases.yml")));
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(json["schema"], "pit.plan/v1");
    let waves = json["suites"][0]["waves"].as_array().expect("waves");
    assert_eq!(waves.len(), 3);
    assert_eq!(waves[2][0]["id"], "three");
    assert_eq!(waves[2][0]["deploy"]["statusCheck"]["timeoutSeconds"], 45);
}

#[test]
fn plan_refuses_an_invalid_pitfile_with_exit_2() {
    let (code, out, err) = run(pit().arg("plan").arg(fixture("invalid", "dependency-cycle.yml")));
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(err.contains("a -> b -> c -> a"), "{err}");
}

#[test]
fn a_bad_run_id_is_a_usage_error() {
    let (code, _, err) = run(pit()
        .args(["plan", "--run-id", "nope"])
        .arg(fixture("valid", "minimal.yml")));
    assert_eq!(code, 2);
    assert!(err.contains("is not a run id"), "{err}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = pit()
        .args(["plan", "--run-id", RUN_ID])
        .arg(fixture("valid", "large-graph.yml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pit starts");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("piped")
        .read_exact(&mut first)
        .expect("some output");
    // stdout is dropped (closed) here, before pit has written the rest of the plan.
    let out = child.wait_with_output().expect("pit ends");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
