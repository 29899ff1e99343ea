//! Reports for the tests.
#![allow(dead_code)] // each test file uses its own part

use std::cell::Cell;
use std::path::PathBuf;

use pit_core::sink::{SuiteReport, TimelineEntry};
use pit_report::Report;
use serde_json::json;

thread_local! {
    static CLOCK: Cell<u64> = const { Cell::new(0) };
}

/// Minutes since 2026-11-25: each report made on a thread is a minute after the one before.
fn next_minute() -> u64 {
    CLOCK.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

/// A passing report of run `run`: scenario `Load`, stream `GET /items`, 200 latency samples
/// spread ±20 % around `latency_ms`, and a `throughput` scalar.
pub fn report(run: &str, latency_ms: f64, throughput: f64) -> Report {
    let start = 1_795_564_800_000u64 + next_minute() * 60_000;
    let samples: Vec<f64> = (0..200)
        .map(|k| latency_ms * (0.8 + 0.4 * f64::from(k) / 199.0))
        .collect();
    let t = |ms: u64| {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
    };
    serde_json::from_value(json!({
        "schemaVersion": "1.0",
        "name": "Checkout",
        "startTime": t(start),
        "endTime": t(start + 42_000),
        "runId": run,
        "project": "shop",
        "suite": "checkout",
        "specHash": "5ec0000000000001",
        "outcome": "passed",
        "scenarios": [{
            "name": "Load",
            "startTime": t(start + 2_000),
            "endTime": t(start + 40_000),
            "components": [{"name": "api", "commitVersion": "0123456789abcdef"}],
            "streams": [{
                "name": "GET /items",
                "requirements": [
                    {"name": "throughput", "type": "SCALAR", "value": 100},
                    {"name": "latency", "type": "DISTRIBUTION", "value": {"p99": 250}}
                ],
                "observations": [
                    {"name": "throughput", "type": "SCALAR", "value": throughput},
                    {"name": "latency", "type": "DISTRIBUTION", "value": samples}
                ],
                "outcome": if throughput >= 100.0 { "PASS" } else { "FAIL" }
            }]
        }]
    }))
    .expect("a valid report")
}

/// A suite record as the engine makes it, with a timeline; `error` outcomes carry an error
/// with characters that need escaping.
pub fn suite_report(outcome: &str) -> SuiteReport {
    let step = |step: &str, component: Option<&str>, start: u64, end: u64| TimelineEntry {
        step: step.into(),
        component: component.map(str::to_owned),
        start_ms: 1_795_564_800_000 + start,
        end_ms: 1_795_564_800_000 + end,
        outcome: "ok".into(),
        detail: None,
    };
    SuiteReport {
        schema: "pit.suite-report/v1".into(),
        run_id: "01jq00000000000000000000e1".into(),
        project: "shop".into(),
        suite_id: "checkout".into(),
        suite_name: "Checkout".into(),
        outcome: outcome.into(),
        error: (outcome == "error").then(|| "status check of `db` did not pass <&>".into()),
        started_ms: 1_795_564_800_000,
        finished_ms: 1_795_564_800_000 + 9_000,
        timeline: vec![
            step("lock", None, 0, 100),
            step("environment", None, 100, 300),
            step("deploy", Some("db"), 300, 2_300),
            step("status-check", Some("db"), 2_300, 3_000),
            step("deploy", Some("api"), 3_000, 4_000),
            step("test", None, 4_000, 8_000),
            step("undeploy", Some("api"), 8_000, 8_500),
            step("release", None, 8_900, 9_000),
        ],
        test_report: None,
        spec_hash: Some("5ec0000000000001".into()),
    }
}

/// A fresh directory, removed with the returned guard (also when the test fails).
pub fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let guard = tempfile::Builder::new()
        .prefix(&format!("pit-report-{name}-"))
        .tempdir()
        .unwrap();
    let path = guard.path().to_path_buf();
    (guard, path)
}
