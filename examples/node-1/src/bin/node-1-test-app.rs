//! The example's Test Runner App: writes items through the api, reads them back, checks the
//! audit count, and reports errors, throughput and latency percentiles against requirements.
//!
//! `node-1-test-app --url-file FILE [--requests N] [--max-p95-ms MS]`; reads `API_URL` and
//! `AUDIT_URL` (the outputs of the components it depends on) from its environment.

use std::time::{Duration, Instant, SystemTime};

use pit_core::protocol::{Metric, MetricType, Outcome, Scenario, Stream, TestReport};
use serde_json::json;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url_file =
        flag(&args, "--url-file").expect("usage: node-1-test-app --url-file FILE [--requests N] [--max-p95-ms MS]");
    let requests: usize = flag(&args, "--requests").map_or(200, |n| n.parse().expect("--requests takes a number"));
    let max_p95: f64 = flag(&args, "--max-p95-ms").map_or(200.0, |n| n.parse().expect("--max-p95-ms takes a number"));
    let api = std::env::var("API_URL").expect("API_URL (the api's output) is set");
    let audit = std::env::var("AUDIT_URL").expect("AUDIT_URL (the audit's output) is set");
    let listener = pit_testapp::listen_and_announce(std::path::Path::new(&url_file))
        .await
        .expect("a free loopback port and a writable URL file");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    eprintln!("node-1-test-app listening on {url}");
    pit_testapp::serve(listener, move |_suite| {
        let (api, audit) = (api.clone(), audit.clone());
        async move { run_tests(&api, &audit, requests, max_p95).await }
    })
    .await
    .expect("the server runs");
}

fn iso(t: SystemTime) -> serde_json::Value {
    json!(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn run_tests(api: &str, audit: &str, requests: usize, max_p95_ms: f64) -> Result<TestReport, String> {
    let http = reqwest::Client::new();
    let count = |http: reqwest::Client| async move {
        http.get(format!("{audit}/events"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?
            .trim()
            .parse::<u64>()
            .map_err(|e| e.to_string())
    };
    let before = count(http.clone()).await?;
    let start_time = SystemTime::now();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(requests * 2);
    let mut errors = 0u64;
    for i in 0..requests {
        let (key, value) = (format!("item-{i}"), format!("value-{i}"));
        let t = Instant::now();
        let put = http.put(format!("{api}/items/{key}")).body(value.clone()).send().await;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        if !put.is_ok_and(|r| r.status().is_success()) {
            errors += 1;
            continue;
        }
        let t = Instant::now();
        let got = http.get(format!("{api}/items/{key}")).send().await;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        let body = match got {
            Ok(r) if r.status().is_success() => r.text().await.ok(),
            _ => None,
        };
        if body.as_deref() != Some(value.as_str()) {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    let audited = count(http).await? - before;
    latencies.sort_by(f64::total_cmp);
    let p95 = percentile(&latencies, 95.0);
    let throughput = latencies.len() as f64 / elapsed.as_secs_f64();
    let missing_audits = (requests as u64).saturating_sub(audited);
    let passed = errors == 0 && missing_audits == 0 && p95 <= max_p95_ms;
    let scalar = |name: &str, v: f64| Metric {
        name: name.into(),
        kind: MetricType::Scalar,
        value: json!(v),
    };
    let stream = Stream {
        name: "write-then-read".into(),
        requirements: vec![
            scalar("errors", 0.0),
            scalar("missing-audit-events", 0.0),
            Metric {
                name: "latency-ms".into(),
                kind: MetricType::Distribution,
                value: json!({"p95": max_p95_ms}),
            },
        ],
        observations: vec![
            scalar("errors", errors as f64),
            scalar("missing-audit-events", missing_audits as f64),
            scalar("throughput-rps", throughput),
            Metric {
                name: "latency-ms".into(),
                kind: MetricType::Distribution,
                value: json!({
                    "p50": percentile(&latencies, 50.0),
                    "p95": p95,
                    "p99": percentile(&latencies, 99.0),
                    "max": latencies.last().copied().unwrap_or(0.0),
                }),
            },
        ],
        outcome: if passed { Outcome::Pass } else { Outcome::Fail },
    };
    Ok(TestReport {
        executed_scenarios: vec![Scenario {
            name: format!("{requests} writes and reads through the api"),
            start_time: iso(start_time),
            end_time: iso(SystemTime::now()),
            streams: vec![stream],
            component_ids: vec!["store".into(), "audit".into(), "api".into()],
            metadata: json!({"requests": requests}),
        }],
    })
}
