//! Rendering speed: a report with 10,000 data points (goal: under 100 ms), and an index over
//! 1,000 stored runs read from a directory store (goal: under 1 s).
//!
//! `cargo bench -p pit-report --bench render` prints medians; asserts nothing.

use std::time::{Duration, Instant};

use pit_report::compare::{baseline_of, compare, history, Thresholds};
use pit_report::html::{render_index, render_report, IndexRun};
use pit_report::store::DirStore;
use pit_report::Report;
use serde_json::json;

fn report(run: usize, samples: usize) -> Report {
    let start = 1_795_564_800u64 + run as u64 * 60;
    let t = |s: u64| humantime::format_rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(s)).to_string();
    // Deterministic, skewed latencies.
    let lat: Vec<f64> = (0..samples)
        .map(|k| 20.0 + ((k * 7919) % 1000) as f64 / 10.0 + (k % 97) as f64 * 0.3)
        .collect();
    serde_json::from_value(json!({
        "schemaVersion": "1.0", "name": "Checkout", "startTime": t(start), "endTime": t(start + 50),
        "runId": format!("01jq{run:022}"), "project": "shop", "suite": "checkout", "outcome": "passed",
        "timeline": (0..12).map(|i| json!({"step": "deploy", "component": format!("c{i}"), "startMs": start * 1000 + i * 500, "endMs": start * 1000 + i * 500 + 400, "outcome": "ok"})).collect::<Vec<_>>(),
        "scenarios": [{"name": "Load", "streams": [
            {"name": "GET /items", "requirements": [{"name": "latency", "type": "DISTRIBUTION", "value": {"p99": 250}}],
             "observations": [{"name": "latency", "type": "DISTRIBUTION", "value": lat},
                              {"name": "throughput", "type": "SCALAR", "value": 140.0 + (run % 7) as f64}],
             "outcome": "PASS"}
        ]}]
    }))
    .unwrap()
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { 21 } else { 3 };
    let stored = if full { 1000 } else { 50 };

    let current = report(1000, 10_000);
    let baselines: Vec<Report> = (0..5).map(|i| report(i, 10_000)).collect();
    let alone = median(runs, || {
        render_report(&current, None).unwrap();
    });
    let compared = median(runs, || {
        let c = compare(&current, &baselines, &Thresholds::default());
        render_report(&current, Some(&c)).unwrap();
    });
    println!("report with 10,000 samples: render {:.1} ms; compare with 5 runs of 10,000 + render {:.1} ms (goal: under 100 ms)", alone.as_secs_f64() * 1e3, compared.as_secs_f64() * 1e3);

    // A directory store with `stored` runs (100 samples each), then the suite's index read
    // from disk: load every report, build the history, render.
    let root = std::env::temp_dir().join(format!("pit-bench-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for i in 0..stored {
        let r = report(i, 100);
        let dir = root.join("shop/checkout").join(r.run_id.clone().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("report.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    }
    let store = DirStore::new(&root);
    let mut size = 0;
    let index = median(runs.min(7), || {
        let reports = store.reports("shop", "checkout").unwrap();
        let runs: Vec<IndexRun> = reports.iter().map(|r| IndexRun::of(r, None)).collect();
        let html = render_index("shop / checkout", &runs, &history(&reports, 5.0), 40).unwrap();
        size = html.len();
        let _ = baseline_of(&reports[reports.len() - 1], &reports, 5);
    });
    println!(
        "index over {stored} stored runs (read, history, render): {:.1} ms, {} KiB (goal: under 1 s)",
        index.as_secs_f64() * 1e3,
        size / 1024
    );
    let _ = std::fs::remove_dir_all(&root);
}
