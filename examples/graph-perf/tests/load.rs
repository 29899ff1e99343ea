//! The graph-perf example end to end: the node-1 services and the load-test app as real
//! processes, run by PIT's engine.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use pit_core::deploy::LocalDeployer;
use pit_core::engine::{Engine, RunOptions, RunSummary, SuiteOutcome};
use pit_core::lock::FileLockStore;
use pit_core::naming::RunId;
use pit_core::pitfile::{load_file, LoadOptions};
use pit_core::plan::Plan;
use pit_core::protocol::{MetricType, Outcome};
use pit_core::runner::HttpTestRunnerClient;
use tokio_util::sync::CancellationToken;

async fn run(min_rps: &str) -> RunSummary {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("pit-graph-perf-{min_rps}-"))
        .tempdir()
        .unwrap();
    let state = scratch.path().to_path_buf();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load.yml");
    let env = HashMap::from([("MIN_RPS".to_owned(), min_rps.to_owned())]);
    let loaded = load_file(
        &file,
        &LoadOptions {
            env: Some(env),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    // node-1 is another package: its binaries sit beside ours in the same target directory.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_graph-perf-test-app")).parent().unwrap();
    assert!(
        bin_dir.join("node-1").exists(),
        "build node-1 first: cargo build -p pit-example-node-1"
    );
    let engine = Engine::new(
        Arc::new(LocalDeployer::new(state.join("runs"))),
        Arc::new(FileLockStore::new(state.join("locks"))),
        Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    );
    let opts = RunOptions {
        env: BTreeMap::from([("PIT_EXAMPLE_BIN_DIR".to_owned(), bin_dir.display().to_string())]),
        ..RunOptions::default()
    };
    engine
        .run(
            &Plan::build(&loaded, RunId::generate()),
            &opts,
            &CancellationToken::new(),
            &CancellationToken::new(),
        )
        .await
}

#[tokio::test]
async fn the_load_test_reports_throughput_and_latency_against_requirements() {
    let summary = run("1").await;
    let suite = &summary.suites[0];
    assert_eq!(suite.outcome, SuiteOutcome::Passed, "{:?}", suite.report.error);
    let report = suite.report.test_report.as_ref().unwrap();
    let streams = &report.executed_scenarios[0].streams;
    assert_eq!(
        streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["writes", "reads"]
    );
    for s in streams {
        let kind = |name: &str| s.observations.iter().find(|m| m.name == name).map(|m| m.kind);
        assert_eq!(kind("throughput-rps"), Some(MetricType::Scalar));
        assert_eq!(kind("latency-ms"), Some(MetricType::Distribution));
        let latency = &s.observations.iter().find(|m| m.name == "latency-ms").unwrap().value;
        assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
        assert!(s.requirements.iter().any(|m| m.name == "throughput-rps"));
        assert_eq!(s.outcome, Outcome::Pass);
    }
}

#[tokio::test]
async fn an_unreachable_throughput_requirement_fails_the_suite() {
    let summary = run("1000000000").await;
    assert_eq!(summary.suites[0].outcome, SuiteOutcome::Failed);
    assert_eq!(summary.exit_code(), 1);
}
