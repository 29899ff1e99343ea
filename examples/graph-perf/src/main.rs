//! The graph-perf load-test app: for `--duration-ms` (bounded also by `--max-requests`), a
//! number of concurrent workers write and read items through the node-1 api (`API_URL`), then
//! it reports, per stream (writes, reads), throughput as a SCALAR and latency percentiles as a
//! DISTRIBUTION, each against its requirement, with a PASS/FAIL outcome.
//!
//! `graph-perf-test-app --url-file FILE [--concurrency 8] [--duration-ms 2000]
//!  [--max-requests 20000] [--min-rps 100] [--max-p99-ms 50]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pit_core::protocol::{Metric, MetricType, Outcome, Scenario, Stream, TestReport};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
struct Load {
    concurrency: usize,
    duration: Duration,
    max_requests: usize,
    min_rps: f64,
    max_p99_ms: f64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: f64| {
        flag(name).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{name} takes a number"))
        })
    };
    let url_file = flag("--url-file").expect("usage: graph-perf-test-app --url-file FILE [options]");
    let load = Load {
        concurrency: num("--concurrency", 8.0) as usize,
        duration: Duration::from_millis(num("--duration-ms", 2000.0) as u64),
        max_requests: num("--max-requests", 20_000.0) as usize,
        min_rps: num("--min-rps", 100.0),
        max_p99_ms: num("--max-p99-ms", 50.0),
    };
    let api = std::env::var("API_URL").expect("API_URL (the api's output) is set");
    let listener = pit_testapp::listen_and_announce(std::path::Path::new(&url_file))
        .await
        .expect("a free loopback port and a writable URL file");
    pit_testapp::serve(listener, move |_| {
        let api = api.clone();
        async move { Ok(run_load(&api, load).await) }
    })
    .await
    .expect("the server runs");
}

#[derive(Default)]
struct Samples {
    writes: Vec<f64>,
    reads: Vec<f64>,
    errors: u64,
}

async fn run_load(api: &str, load: Load) -> TestReport {
    let http = reqwest::Client::new();
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start_time = SystemTime::now();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..load.concurrency.max(1) {
        let (http, api, samples, sent) = (http.clone(), api.to_owned(), samples.clone(), sent.clone());
        workers.spawn(async move {
            let mut i = 0usize;
            while started.elapsed() < load.duration
                && sent.fetch_add(2, std::sync::atomic::Ordering::Relaxed) < load.max_requests
            {
                let key = format!("w{w}-{i}");
                i += 1;
                let t = Instant::now();
                let ok = http
                    .put(format!("{api}/items/{key}"))
                    .body(key.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let write_ms = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let read = http.get(format!("{api}/items/{key}")).send().await;
                let read_ok = match read {
                    Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|b| b == key),
                    _ => false,
                };
                let read_ms = t.elapsed().as_secs_f64() * 1e3;
                let mut s = samples.lock().expect("no panics while held");
                s.writes.push(write_ms);
                s.reads.push(read_ms);
                s.errors += u64::from(!ok) + u64::from(!read_ok);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64().max(1e-6);
    let mut s = std::mem::take(&mut *samples.lock().expect("no panics while held"));
    let errors = s.errors;
    let streams = vec![
        stream("writes", &mut s.writes, elapsed, errors, load),
        stream("reads", &mut s.reads, elapsed, errors, load),
    ];
    TestReport {
        executed_scenarios: vec![Scenario {
            name: format!("{} workers for {:.1}s", load.concurrency, load.duration.as_secs_f64()),
            start_time: json!(start_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())),
            end_time: json!(SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())),
            streams,
            component_ids: vec!["api".into(), "store".into(), "audit".into()],
            metadata: json!({ "concurrency": load.concurrency, "durationMs": load.duration.as_millis(), "errors": errors }),
        }],
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn stream(name: &str, latencies: &mut [f64], elapsed: f64, errors: u64, load: Load) -> Stream {
    latencies.sort_by(f64::total_cmp);
    let rps = latencies.len() as f64 / elapsed;
    let p99 = percentile(latencies, 99.0);
    let passed = errors == 0 && !latencies.is_empty() && rps >= load.min_rps && p99 <= load.max_p99_ms;
    let scalar = |n: &str, v: f64| Metric {
        name: n.into(),
        kind: MetricType::Scalar,
        value: json!(v),
    };
    Stream {
        name: name.into(),
        requirements: vec![
            scalar("throughput-rps", load.min_rps),
            scalar("errors", 0.0),
            Metric {
                name: "latency-ms".into(),
                kind: MetricType::Distribution,
                value: json!({ "p99": load.max_p99_ms }),
            },
        ],
        observations: vec![
            scalar("throughput-rps", rps),
            scalar("errors", errors as f64),
            scalar("requests", latencies.len() as f64),
            Metric {
                name: "latency-ms".into(),
                kind: MetricType::Distribution,
                value: json!({
                    "p50": percentile(latencies, 50.0),
                    "p90": percentile(latencies, 90.0),
                    "p95": percentile(latencies, 95.0),
                    "p99": p99,
                    "max": latencies.last().copied().unwrap_or(f64::NAN),
                }),
            },
        ],
        outcome: if passed { Outcome::Pass } else { Outcome::Fail },
    }
}
