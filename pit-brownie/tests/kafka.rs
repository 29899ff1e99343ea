//! The kafka module against a real single-node KRaft broker (`scripts/kafka start DIR`, which
//! `scripts/test` runs: `KAFKA_BROKERS`, `KAFKA_SASL_BROKERS`, `KAFKA_SASL_PASSWORD_FILE`).

mod common;

use std::time::Duration;

use common::kafka::{topics, until_listed};
use pit_brownie::kafka::{Kafka, Sasl};
use pit_brownie::{Action, Live, Module};

const WAIT: Duration = Duration::from_secs(30);

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: start a broker with `scripts/kafka start DIR`"))
}

#[tokio::test]
async fn stale_topics_are_deleted_and_internal_young_and_unreadable_ones_are_kept() {
    let brokers = vec![var("KAFKA_BROKERS")];
    let prefix = format!("kt{}x_", std::process::id());
    let (old, young) = (common::stamp(10), common::stamp(1));
    let names = [
        format!("{prefix}orders_pit_a_ts{old}"),
        format!("{prefix}orders.pit.b_ts{old}"),
        format!("{prefix}orders_pit_c_ts{young}"),
        format!("{prefix}pit_bad_ts20241399000000"),
        format!("_{prefix}pit_internal_ts{old}"),
    ];
    let admin = rskafka::client::ClientBuilder::new(brokers.clone())
        .build()
        .await
        .unwrap();
    let controller = admin.controller_client().unwrap();
    for n in &names {
        controller.create_topic(n, 1, 1, 5_000).await.unwrap();
    }
    let kafka = Kafka::connect(brokers, "pit-brownie-test", None).await.unwrap();
    let rules = common::rules_for(&format!("_?{prefix}"));
    // A created topic reaches the broker's metadata asynchronously: wait (bounded) until the
    // listing shows all five, so the dry run's check below compares like with like.
    until_listed(&kafka, &prefix, &names, WAIT).await;

    let dry = common::run(&kafka, &rules, &Live::default(), true).await;
    let would: Vec<&str> = dry.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(would, [names[1].as_str(), names[0].as_str()]);
    assert_eq!(
        topics(&kafka, &prefix).await.len(),
        names.len(),
        "a dry run deletes nothing"
    );

    let report = common::run(&kafka, &rules, &Live::default(), false).await;
    assert_eq!(report.found, 5);
    assert_eq!((report.kept_young, report.kept_unreadable.len()), (1, 1));
    assert_eq!(report.kept_protected.len(), 1);
    assert!(report.kept_protected[0].reason.contains("internal topic"), "{report:?}");
    assert!(
        report.candidates.iter().all(|c| c.action == Action::Deleted),
        "{report:?}"
    );
    let left = [names[2].clone(), names[3].clone(), names[4].clone()];
    // Deleting is asynchronous on the broker: wait (bounded) until the listing agrees.
    until_listed(&kafka, &prefix, &left, WAIT).await;
    for n in &left {
        let _ = controller.delete_topic(n, 5_000).await;
    }
}

#[tokio::test]
async fn sasl_scram_logs_in_and_a_wrong_password_fails_without_showing_it() {
    let brokers = vec![var("KAFKA_SASL_BROKERS")];
    let password = std::fs::read_to_string(var("KAFKA_SASL_PASSWORD_FILE"))
        .unwrap()
        .trim()
        .to_owned();
    let sasl = Sasl::new("SCRAM-SHA-256", "pit-brownie".into(), password).unwrap();
    let kafka = Kafka::connect(brokers.clone(), "pit-brownie-test", Some(sasl))
        .await
        .unwrap();
    kafka.list().await.unwrap();
    let wrong = Sasl::new("scram-sha-256", "pit-brownie".into(), "not-the-pa55word".into()).unwrap();
    assert!(!format!("{wrong:?}").contains("not-the-pa55word"));
    let e = match Kafka::connect(brokers, "pit-brownie-test", Some(wrong)).await {
        Ok(k) => k.list().await.unwrap_err(),
        Err(e) => e,
    };
    assert!(!e.to_string().contains("not-the-pa55word"), "{e}");
    assert!(Sasl::new("gssapi", "u".into(), "p".into()).is_err());
}
