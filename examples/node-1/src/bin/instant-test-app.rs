//! A Test Runner App for benchmarks and tests: its tests take `--delay-ms` (default 0) and
//! always pass; the report's metadata holds the Unix ms at which they finished, so PIT's delay
//! in noticing the end can be measured.
//!
//! `instant-test-app --url-file FILE [--delay-ms MS]`

use std::time::{Duration, SystemTime};

use pit_core::protocol::{Outcome, Scenario, Stream, TestReport};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let url_file = flag("--url-file").expect("usage: instant-test-app --url-file FILE [--delay-ms MS]");
    let delay = Duration::from_millis(flag("--delay-ms").map_or(0, |d| d.parse().expect("--delay-ms takes a number")));
    let listener = pit_testapp::listen_and_announce(std::path::Path::new(&url_file))
        .await
        .expect("a free loopback port and a writable URL file");
    pit_testapp::serve(listener, move |_| async move {
        tokio::time::sleep(delay).await;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(TestReport {
            executed_scenarios: vec![Scenario {
                name: "instant".into(),
                start_time: serde_json::json!(null),
                end_time: serde_json::json!(now),
                streams: vec![Stream {
                    name: "nothing".into(),
                    requirements: vec![],
                    observations: vec![],
                    outcome: Outcome::Pass,
                }],
                component_ids: vec![],
                metadata: serde_json::json!({ "finishedMs": now }),
            }],
        })
    })
    .await
    .expect("the server runs");
}
