//! The postgresql module against a real PostgreSQL server (`DATABASE_URL`, which
//! `scripts/test` sets): many databases, one with an open connection.

mod common;

use std::time::Duration;

use pit_brownie::postgres::{quote_ident, Postgres};
use pit_brownie::rules::Rules;
use pit_brownie::{Action, Live};

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` and export what it prints")
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(conn);
    client
}

async fn databases(client: &tokio_postgres::Client, prefix: &str) -> Vec<String> {
    client
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn stale_databases_are_dropped_and_everything_else_is_kept_with_its_reason() {
    let prefix = format!("bt{}x_", std::process::id());
    let (old, young) = (common::stamp(10), common::stamp(1));
    let names = [
        format!("{prefix}orders_pit_a_ts{old}"),
        format!("{prefix}orders_pit_b_ts{young}"),
        format!("{prefix}pit_bad_ts20241301000000"),
        format!("{prefix}We\"ird pit name_ts{old}"),
        format!("{prefix}spitfire_ts{old}"),
        format!("{prefix}pit_shop-live-1_ts{old}"),
        format!("{prefix}pit_busy_ts{old}"),
        format!("{prefix}pit_lm_ts{old}"),
    ];
    let client = admin().await;
    for n in &names {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(n)))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(n)))
            .await
            .unwrap();
    }
    // An open connection to the busy one.
    let base = admin_url().rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    let (busy, conn) = tokio_postgres::connect(&format!("{base}/{}", names[6]), tokio_postgres::NoTls)
        .await
        .unwrap();
    let busy_conn = tokio::spawn(conn);
    busy.simple_query("SELECT 1").await.unwrap();

    let pg = Postgres::connect(&admin_url(), false)
        .await
        .unwrap()
        .protecting([names[7].clone()]);
    let live = Live {
        environments: vec!["shop_live-1".into()],
    };
    let rules = common::rules_for(&prefix);

    // A dry run lists the candidates with their age and rule, and drops nothing.
    let dry = common::run(&pg, &rules, &live, true).await;
    let would: Vec<&str> = dry.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(would, [names[3].as_str(), names[0].as_str(), names[6].as_str()]);
    assert!(dry
        .candidates
        .iter()
        .all(|c| c.action == Action::WouldDelete && c.age_secs >= 10 * 86_400 - 60));
    assert!(
        dry.candidates[0].rule.contains("older than 3 day(s)"),
        "{:?}",
        dry.candidates[0]
    );
    assert_eq!(databases(&client, &prefix).await.len(), names.len());

    // For real: the busy one fails, with a hint, and is kept.
    let report = common::run(&pg, &rules, &live, false).await;
    assert_eq!(report.found, 7, "all but spitfire: {report:?}");
    assert_eq!(report.kept_young, 1);
    assert_eq!(report.kept_unreadable.len(), 1);
    assert!(
        report.kept_unreadable[0].reason.contains("not a date"),
        "{:?}",
        report.kept_unreadable
    );
    let protected: Vec<(&str, &str)> = report
        .kept_protected
        .iter()
        .map(|k| (k.name.as_str(), k.reason.as_str()))
        .collect();
    assert!(
        protected.contains(&(names[5].as_str(), "in use by the live run of environment `shop_live-1`")),
        "{protected:?}"
    );
    assert!(
        protected.contains(&(names[7].as_str(), "protected (the Lock Manager's database)")),
        "{protected:?}"
    );
    assert_eq!((report.deleted(), report.failed()), (2, 1));
    let failed = report.candidates.iter().find(|c| c.action == Action::Failed).unwrap();
    assert_eq!(failed.name, names[6]);
    assert!(failed.error.as_deref().unwrap().contains("--force"), "{failed:?}");
    let left = databases(&client, &prefix).await;
    for (i, n) in names.iter().enumerate() {
        assert_eq!(left.contains(n), ![0, 3].contains(&i), "{n}: {left:?}");
    }

    // --force drops it with its connection.
    let forced = Postgres::connect(&admin_url(), true)
        .await
        .unwrap()
        .protecting([names[7].clone()]);
    let report = common::run(&forced, &rules, &live, false).await;
    assert_eq!((report.deleted(), report.failed()), (1, 0));
    assert!(!databases(&client, &prefix).await.contains(&names[6]));
    let _ = busy_conn.await;

    for n in &names {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(n)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn template_and_maintenance_databases_are_never_candidates() {
    // Even with a pattern that takes every name, and no retention.
    let rules = Rules::new("^(.*)$", Duration::ZERO).unwrap();
    let pg = Postgres::connect(&admin_url(), false).await.unwrap();
    let report = common::run(&pg, &rules, &Live::default(), true).await;
    let kept: Vec<(&str, &str)> = report
        .kept_protected
        .iter()
        .map(|k| (k.name.as_str(), k.reason.as_str()))
        .collect();
    for (db, why) in [
        ("template0", "a template database"),
        ("template1", "a template database"),
        ("postgres", "the maintenance database"),
    ] {
        assert!(kept.contains(&(db, why)), "{kept:?}");
    }
    assert!(report
        .candidates
        .iter()
        .all(|c| !["template0", "template1", "postgres"].contains(&c.name.as_str())));
}
