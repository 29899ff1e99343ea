//! Engine figures (printed, never asserted):
//!
//! 1. A synthetic graph of 50 components, 5 levels of 10, each depending on two components of
//!    the level before, each deploy taking 200 ms: the deployment's wall time divided by its
//!    critical path (5 × 200 ms = 1.0 s). Goal: at most 1.10.
//! 2. The time from the test app finishing its tests to PIT having the report, with a test app
//!    that supports the long poll. Goal: under 100 ms at p50.
//!
//! `cargo bench -p pit-example-node-1 --bench engine`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pit_core::deploy::LocalDeployer;
use pit_core::engine::{Engine, RunOptions, SuiteOutcome};
use pit_core::lock::FileLockStore;
use pit_core::naming::RunId;
use pit_core::pitfile::load_file;
use pit_core::plan::Plan;
use pit_core::runner::HttpTestRunnerClient;
use tokio_util::sync::CancellationToken;

fn pitfile(dir: &Path, levels: usize, width: usize, test_delay_ms: u64) -> PathBuf {
    // The test app's scripts are copied in: LOCAL paths must stay inside the pitfile's tree.
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("deployment/pit");
    for s in ["deploy.sh", "bin-dir.sh", "undeploy.sh"] {
        std::fs::copy(scripts.join(s), dir.join(s)).unwrap();
    }
    std::fs::write(dir.join("sleep.sh"), "#!/bin/sh\nexec sleep \"$1\"\n").unwrap();
    std::fs::set_permissions(
        dir.join("sleep.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut y = format!(
        "version: '1.0'\nprojectName: bench\ntestSuites:\n- name: Bench\n  id: bench\n  timeoutSeconds: 60\n  deployment:\n    graph:\n      testApp:\n        name: T\n        id: t\n        deploy: {{ command: ./deploy.sh, params: [PIT_TEST_APP_URL, instant-test-app, --delay-ms, '{test_delay_ms}'] }}\n        undeploy: {{ command: ./undeploy.sh }}\n      components:\n",
    );
    for l in 0..levels {
        for w in 0..width {
            let deps = if l == 0 {
                String::new()
            } else {
                format!(", dependsOn: [c{}-{w}, c{}-{}]", l - 1, l - 1, (w + 1) % width)
            };
            y.push_str(&format!(
                "      - {{ name: c{l}-{w}, id: c{l}-{w}{deps}, deploy: {{ command: ./sleep.sh, params: ['0.2'] }}, undeploy: {{ command: ./sleep.sh, params: ['0'] }} }}\n"
            ));
        }
    }
    let file = dir.join("pitfile.yml");
    std::fs::write(&file, y).unwrap();
    file
}

fn engine(state: &Path) -> Engine {
    Engine::new(
        Arc::new(LocalDeployer::new(state.join("runs"))),
        Arc::new(FileLockStore::new(state.join("locks"))),
        Arc::new(|url: &str| Arc::new(HttpTestRunnerClient::new(url)) as _),
    )
}

fn options() -> RunOptions {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_instant-test-app"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    RunOptions {
        env: BTreeMap::from([("PIT_EXAMPLE_BIN_DIR".to_owned(), bin_dir)]),
        ..RunOptions::default()
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { 5 };
    let dir = std::env::temp_dir().join(format!("pit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = pitfile(&dir, 5, 10, 300);
    let loaded = load_file(&file, &Default::default()).unwrap();
    let engine = engine(&dir);
    let (mut ratios, mut notice) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let plan = Plan::build(&loaded, RunId::generate());
        let summary = engine
            .run(&plan, &options(), &CancellationToken::new(), &CancellationToken::new())
            .await;
        let suite = &summary.suites[0];
        assert_eq!(suite.outcome, SuiteOutcome::Passed, "{:?}", suite.report.error);
        let tl = &suite.report.timeline;
        let comps = || {
            tl.iter()
                .filter(|e| e.step == "deploy" && e.component.as_deref().is_some_and(|c| c.starts_with('c')))
        };
        let start = comps().map(|e| e.start_ms).min().unwrap();
        let end = comps().map(|e| e.end_ms).max().unwrap();
        ratios.push((end - start) as f64 / 1000.0);
        let finished = suite.report.test_report.as_ref().unwrap().executed_scenarios[0].metadata["finishedMs"]
            .as_u64()
            .unwrap();
        let noticed = tl.iter().find(|e| e.step == "test").unwrap().end_ms;
        notice.push(noticed.saturating_sub(finished) as f64);
    }
    println!(
        "50 components (5 levels x 10, 200 ms deploys): wall / critical path = {:.3} (median of {runs}; min {:.3}, max {:.3})",
        median(&mut ratios.clone()),
        ratios.iter().copied().fold(f64::MAX, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "test end -> report in PIT: p50 {:.0} ms (median of {runs} runs, long-poll test app)",
        median(&mut notice)
    );
    let _ = std::fs::remove_dir_all(&dir);
    tokio::time::sleep(Duration::from_millis(1)).await;
}
