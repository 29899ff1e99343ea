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

/// A pitfile in a temporary folder (removed with the returned guard); its path.
fn pitfile_with(name: &str, text: &str) -> (crate::Scratch, std::path::PathBuf) {
    let dir = crate::scratch(&format!("hostile-{name}"));
    let file = dir.join("pitfile.yml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

const SECRET: &str = "tok-9f8e7d6c5b4a";

const WITH_SECRETS: &str = r#"version: "1.0"
projectName: secrets
testSuites:
  - name: Remote
    id: remote
    location: { type: REMOTE, gitRepository: "http://ci:${{ env.REPO_TOKEN }}@127.0.0.1:9/suite.git" }
  - name: Local
    id: local
    deployment:
      graph:
        testApp:
          name: App
          id: app
          deploy: { command: ./deploy.sh, params: ["--token", "${{ env.REPO_TOKEN }}"] }
          undeploy: { command: ./undeploy.sh }
        components: []
"#;

#[test]
fn placeholders_are_shown_as_written_never_their_values() {
    // Issue 13: `pit plan`, `validate` and a failed fetch printed `${{ env.X }}` values.
    let (_dir, file) = pitfile_with("secrets", WITH_SECRETS);
    for output in ["human", "json"] {
        let (code, out, err) = run(pit().args(["plan", "-o", output]).arg(&file).env("REPO_TOKEN", SECRET));
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(SECRET) && !err.contains(SECRET), "{output}: {out}{err}");
        assert!(out.contains("${{ env.REPO_TOKEN }}"), "{output}: {out}");
    }
    let (code, out, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(file.parent().unwrap().join("state"))
        .arg(&file)
        .env("REPO_TOKEN", SECRET));
    assert_ne!(code, 0, "nothing listens on port 9");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "{out}{err}");

    let bad_timeout = "version: \"1.0\"\nprojectName: p\ntestSuites:\n  - name: s\n    id: s\n    lock: { timeout: \"${{ env.LOCK_WAIT }}\", ids: [db] }\n    deployment:\n      graph:\n        testApp: { name: a, id: a, deploy: { command: ./d.sh }, undeploy: { command: ./u.sh } }\n        components: []\n";
    let (_dir, file) = pitfile_with("timeout", bad_timeout);
    let (code, out, err) = run(pit().arg("validate").arg(&file).env("LOCK_WAIT", SECRET));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("pit::bad-duration"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}

const VALID: &str = "version: \"1.0\"\nprojectName: p\ntestSuites:\n  - name: s\n    id: s\n    deployment:\n      graph:\n        testApp: { name: a, id: a, deploy: { command: ./d.sh }, undeploy: { command: ./u.sh } }\n        components: []\n";

#[test]
fn a_byte_order_mark_is_no_part_of_the_first_key_and_a_second_document_is_refused() {
    let (_dir, file) = pitfile_with("bom", &format!("\u{feff}{VALID}"));
    let (code, _, err) = run(pit().arg("validate").arg(&file));
    assert_eq!(code, 0, "{err}");
    let (_dir, file) = pitfile_with("two-docs", &format!("{VALID}---\nversion: \"1.0\"\n"));
    let (code, _, err) = run(pit().arg("validate").arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("pit::multiple-documents") && err.contains(":10:1"),
        "{err}"
    );
}

#[test]
fn colliding_and_unprintable_suite_ids_are_refused_with_their_position() {
    let two = format!("{VALID}  - name: t\n    id: \"s/\"\n    deployment:\n      graph:\n        testApp: {{ name: a, id: a, deploy: {{ command: ./d.sh }}, undeploy: {{ command: ./u.sh }} }}\n        components: []\n")
        .replace("id: s\n", "id: s_\n");
    let (_dir, file) = pitfile_with("collide", &two);
    let (code, _, err) = run(pit().arg("validate").arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("pit::colliding-suite-id") && err.contains("testSuites[1].id"),
        "{err}"
    );
    let (_dir, file) = pitfile_with("esc", &VALID.replace("id: s\n", "id: \"s\\e[2J\\0\"\n"));
    let (code, _, err) = run(pit().arg("validate").arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pit::unprintable-id"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn empty_pit_variables_count_as_unset() {
    let (_dir, file) = pitfile_with("empty-env", VALID);
    let (code, _, err) = run(pit().arg("plan").arg(&file).env("PIT_STRICT", "").env("PIT_RUN_ID", ""));
    assert_eq!(code, 0, "{err}");
}
