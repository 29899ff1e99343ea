//! Waiting for the broker's listing: a created or deleted topic reaches the broker's metadata
//! asynchronously. Shared by pit-brownie's tests and bench and pit-cli's brownie test (through
//! `#[path]`), so all of them wait the same way.

use std::time::Duration;

use pit_brownie::kafka::Kafka;
use pit_brownie::Module;

/// The topics `kafka` lists whose names start with `prefix` (a leading `_` of internal topics
/// ignored), sorted.
pub async fn topics(kafka: &Kafka, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = Module::list(kafka)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .filter(|n| n.trim_start_matches('_').starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Waits, at most `within`, until the broker lists exactly `want` under `prefix`; panics with
/// what it listed last.
pub async fn until_listed(kafka: &Kafka, prefix: &str, want: &[String], within: Duration) {
    let mut want = want.to_vec();
    want.sort();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = topics(kafka, prefix).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker listed {} topics under {prefix} ({:?}…), want {}",
            now.len(),
            now.iter().take(3).collect::<Vec<_>>(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
