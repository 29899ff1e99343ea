//! What `pit run` gives CI systems: `--junit FILE`, and under GitHub Actions a step summary and
//! `::error` annotations (docs/ci.md). The node-1 example, with a latency requirement no run
//! meets, so that one stream fails.

use std::path::{Path, PathBuf};

use crate::{pit, repo, run};

#[path = "../../../pit-report/tests/common/junit_schema.rs"]
mod junit_schema;

fn scratch(name: &str) -> crate::Scratch {
    crate::scratch(&format!("ci-{name}"))
}

/// The node-1 example's pitfile in `dir`, its test app requiring a p95 latency of 1 ns.
fn failing_pitfile(dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(repo().join("examples/node-1/pitfile.yml")).unwrap();
    let needle = r#"params: [PIT_TEST_APP_URL, node-1-test-app, --requests, "200"]"#;
    assert!(original.contains(needle), "the example's test app params changed");
    let pitfile = dir.join("pitfile.yml");
    std::fs::write(
        &pitfile,
        original.replace(
            needle,
            r#"params: [PIT_TEST_APP_URL, node-1-test-app, --requests, "20", --max-p95-ms, "0.000001"]"#,
        ),
    )
    .unwrap();
    pitfile
}

/// `pit run` of that pitfile, with the example's programs, as GitHub Actions runs it.
fn pit_run(dir: &Path, junit: &Path) -> (i32, String, String) {
    let bins = Path::new(env!("CARGO_BIN_EXE_pit")).parent().unwrap().to_path_buf();
    run(pit()
        .args(["run", "--workspace"])
        .arg(repo().join("examples/node-1"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--junit")
        .arg(junit)
        .arg(failing_pitfile(dir))
        .env("PIT_EXAMPLE_BIN_DIR", bins)
        .env("GITHUB_STEP_SUMMARY", dir.join("step-summary.md"))
        .env("GITHUB_ACTIONS", "true"))
}

#[test]
fn a_failing_stream_shows_in_the_runs_junit_the_step_summary_and_an_annotation() {
    let dir = scratch("failing");
    let junit = dir.join("out/pit-junit.xml");
    let (code, out, err) = pit_run(&dir, &junit);
    assert_eq!(code, 1, "tests failed: {out}\n{err}");

    let xml = std::fs::read_to_string(&junit).expect("the JUnit file, its folder created");
    junit_schema::validate(&junit).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(xml.contains(r#"<testsuites name="pit run "#), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 1, "{xml}");
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(xml.contains("latency-ms: required {&quot;p95&quot;:1e-6}"), "{xml}");

    let md = std::fs::read_to_string(dir.join("step-summary.md")).expect("a step summary");
    assert!(md.starts_with("## PIT run `"), "{md}");
    assert!(md.contains("| node-1-items | :x: failed |"), "{md}");
    assert!(md.contains("#### Failing streams"), "{md}");
    assert_eq!(md.matches("### :x: PIT").count(), 1, "one section per suite: {md}");

    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error title=PIT ")).collect();
    assert_eq!(annotations.len(), 1, "{err}");
    assert!(annotations[0].contains("latency"), "{}", annotations[0]);
    assert!(!out.contains("::error"), "stdout stays the summary: {out}");

    // A second run appends to the step summary, as every step of a job does.
    let (code, _, err) = pit_run(&dir, &junit);
    assert_eq!(code, 1, "{err}");
    let md = std::fs::read_to_string(dir.join("step-summary.md")).unwrap();
    assert_eq!(md.matches("## PIT run `").count(), 2, "{md}");
}

#[test]
fn a_junit_file_that_cannot_be_written_is_named_and_the_runs_outcome_stands() {
    let dir = scratch("unwritable");
    std::fs::write(dir.join("taken"), "a file, not a folder").unwrap();
    let junit = dir.join("taken/pit-junit.xml");
    let (code, out, err) = pit_run(&dir, &junit);
    assert_eq!(code, 1, "the tests' outcome, not the file's: {out}\n{err}");
    assert!(
        err.contains(&format!("error: cannot write {}", junit.display())),
        "{err}"
    );
    assert!(out.contains("node-1-items: failed"), "the summary is printed: {out}");
}
