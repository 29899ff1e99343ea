//! Brownie removing stale resources, per module: wall time against what the existing toolkit
//! takes (it sleeps 2 s after every deletion: 2 s × N). The servers are the tests':
//! `DATABASE_URL` (PostgreSQL), `KAFKA_BROKERS` (Kafka) and `OPENSEARCH_URL` (OpenSearch); a module whose server is not set is
//! skipped, saying so.
//!
//! `cargo bench -p pit-brownie --bench modules`: 1,000 resources per module with `--bench`,
//! 10 otherwise (as `scripts/test` runs it).

use std::time::{Duration, Instant};

use pit_brownie::{clean, Action, Live, Module, Options};

// The tests' names, rules and waits for the broker.
#[path = "../tests/common/mod.rs"]
mod common;

const PARALLEL: usize = 32;

async fn measure(module: &dyn Module, prefix: &str, n: usize) {
    let started = Instant::now();
    let report = clean(
        module,
        &common::rules_for(&format!("{prefix}_")),
        &Live::default(),
        &Options {
            dry_run: false,
            parallel: PARALLEL,
        },
    )
    .await
    .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let deleted = report.candidates.iter().filter(|c| c.action == Action::Deleted).count();
    assert_eq!(deleted, n, "{:?}", report.candidates.iter().find(|c| c.error.is_some()));
    let toolkit = 2.0 * n as f64;
    println!(
        "{:<11} {n} stale, deleted in {wall:.1} s with {PARALLEL} at once ({:.1} ms each); the existing toolkit's 2 s pause alone: {toolkit:.0} s ({:.0} times longer)",
        module.name(),
        1000.0 * wall / n as f64,
        toolkit / wall
    );
}

async fn postgres(n: usize) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("postgresql: skipped (DATABASE_URL is not set: scripts/postgres start DIR)");
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let prefix = format!("bb{}", std::process::id());
    let ts = common::stamp(10);
    // Made one after another: concurrent CREATE DATABASE would fight over template1.
    for i in 0..n {
        client
            .batch_execute(&format!("CREATE DATABASE \"{prefix}_pit_{i}_ts{ts}\""))
            .await
            .unwrap();
    }
    let pg = pit_brownie::postgres::Postgres::connect(&url, false).await.unwrap();
    measure(&pg, &prefix, n).await;
}

async fn kafka(n: usize) {
    let Ok(brokers) = std::env::var("KAFKA_BROKERS") else {
        println!("kafka: skipped (KAFKA_BROKERS is not set: scripts/kafka start DIR)");
        return;
    };
    let brokers: Vec<String> = brokers.split(',').map(str::to_owned).collect();
    let admin = rskafka::client::ClientBuilder::new(brokers.clone())
        .build()
        .await
        .unwrap();
    let controller = admin.controller_client().unwrap();
    let prefix = format!("kb{}", std::process::id());
    let ts = common::stamp(10);
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}_pit_{i}_ts{ts}")).collect();
    for name in &names {
        controller.create_topic(name, 1, 1, 10_000).await.unwrap();
    }
    let kafka = pit_brownie::kafka::Kafka::connect(brokers, "pit-brownie-bench", None)
        .await
        .unwrap();
    // New topics reach the broker's metadata asynchronously: wait (bounded) until all are listed.
    common::kafka::until_listed(&kafka, &format!("{prefix}_"), &names, Duration::from_secs(60)).await;
    measure(&kafka, &prefix, n).await;
}

async fn elasticsearch(n: usize) {
    let Ok(url) = std::env::var("OPENSEARCH_URL") else {
        println!("elasticsearch: skipped (OPENSEARCH_URL is not set: scripts/opensearch start DIR)");
        return;
    };
    let http = reqwest::Client::new();
    let prefix = format!("eb{}", std::process::id());
    let ts = common::stamp(10);
    // Made one after another: each is a cluster state update on the one node.
    for i in 0..n {
        let r = http
            .put(format!("{url}/{prefix}_pit_{i}_ts{ts}?wait_for_active_shards=0"))
            .json(&serde_json::json!({"settings": {"number_of_replicas": 0}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let es = pit_brownie::elasticsearch::Elasticsearch::connect(&url, None, None)
        .await
        .unwrap();
    measure(&es, &prefix, n).await;
}

#[tokio::main]
async fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        1_000
    } else {
        10
    };
    postgres(n).await;
    kafka(n).await;
    elasticsearch(n).await;
}
