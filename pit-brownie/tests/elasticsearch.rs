//! The elasticsearch module against a real OpenSearch node (`scripts/opensearch start DIR`,
//! which `scripts/test` runs: `OPENSEARCH_URL`).

mod common;

use pit_brownie::elasticsearch::{BasicAuth, Elasticsearch};
use pit_brownie::{Action, Live, Module};

fn url() -> String {
    std::env::var("OPENSEARCH_URL")
        .unwrap_or_else(|_| panic!("OPENSEARCH_URL is not set: start a node with `scripts/opensearch start DIR`"))
}

/// Creates (or closes) indices the way a test's deploy script would, over plain HTTP.
async fn admin(method: reqwest::Method, path: &str) {
    let response = reqwest::Client::new()
        .request(method, format!("{}/{path}", url()))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.text().await.unwrap()
    );
}

async fn indices(es: &Elasticsearch, prefix: &str) -> Vec<String> {
    es.list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .filter(|n| n.trim_start_matches('.').starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn stale_indices_are_deleted_open_or_closed_and_system_young_unreadable_and_live_ones_kept() {
    let prefix = format!("et{}x_", std::process::id());
    let (old, young) = (common::stamp(10), common::stamp(1));
    let live_run = "01jd7k3m5n6p7q8r9s0t1v2w3x";
    let names = [
        format!("{prefix}orders_pit_a_ts{old}"),
        format!("{prefix}orders.pit.b_ts{old}"),
        format!("{prefix}orders_pit_c_ts{young}"),
        format!("{prefix}pit_bad_ts20241399000000"),
        format!(".{prefix}pit_system_ts{old}"),
        format!("{prefix}pit_{live_run}_ts{old}"),
        format!("{prefix}closed_pit_d_ts{old}"),
    ];
    for n in &names {
        admin(reqwest::Method::PUT, &format!("{n}?wait_for_active_shards=0")).await;
    }
    admin(
        reqwest::Method::POST,
        &format!("{}/_close?wait_for_active_shards=0", names[6]),
    )
    .await;
    // A first node that refuses connections: the module moves on to the next.
    let es = Elasticsearch::connect(&format!("http://127.0.0.1:9,{}", url()), None, None)
        .await
        .unwrap();
    let rules = common::rules_for(&format!(r"\.?{prefix}"));
    let live = Live {
        environments: vec![format!("pit-shop-{live_run}")],
    };

    let dry = common::run(&es, &rules, &live, true).await;
    let would: Vec<&str> = dry.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(would, [names[6].as_str(), names[1].as_str(), names[0].as_str()]);
    assert_eq!(
        indices(&es, &prefix).await.len(),
        names.len(),
        "a dry run deletes nothing"
    );

    let report = common::run(&es, &rules, &live, false).await;
    assert_eq!(report.found, names.len());
    assert_eq!((report.kept_young, report.kept_unreadable.len()), (1, 1));
    let kept: Vec<&str> = report.kept_protected.iter().map(|k| k.reason.as_str()).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|r| r.contains("system or hidden index")), "{kept:?}");
    assert!(kept.iter().any(|r| r.contains(live_run)), "{kept:?}");
    assert!(
        report.candidates.iter().all(|c| c.action == Action::Deleted),
        "{report:?}"
    );
    let mut left = indices(&es, &prefix).await;
    left.sort();
    let mut expected = vec![names[2].clone(), names[3].clone(), names[4].clone(), names[5].clone()];
    expected.sort();
    assert_eq!(left, expected);

    // A second brownie finding an index already gone reports the failure, named.
    let gone = es.delete(&names[0]).await.unwrap_err();
    assert!(gone.contains("404") && gone.contains("index_not_found"), "{gone}");
    // Never an expression that reaches more than one index.
    for expr in [
        "_all",
        "*",
        &format!("{prefix}*"),
        &format!("{},{}", names[2], names[3]),
    ] {
        let e = es.delete(expr).await.unwrap_err();
        assert!(e.contains("not a plain index name"), "{e}");
    }
    assert_eq!(indices(&es, &prefix).await.len(), 4);
    for n in &left {
        admin(reqwest::Method::DELETE, n).await;
    }
}

#[tokio::test]
async fn credentials_in_a_url_go_in_a_header_and_never_in_messages() {
    let node = url();
    let with_user = node.replacen("http://", "http://brownie:s3cret-pa55@", 1);
    let es = Elasticsearch::connect(&with_user, None, None).await.unwrap();
    let shown = format!("{es:?}");
    assert!(!shown.contains("s3cret-pa55") && shown.contains("brownie"), "{shown}");
    es.list().await.unwrap();

    let auth = BasicAuth {
        username: "brownie".into(),
        password: "s3cret-pa55".into(),
    };
    let e = Elasticsearch::connect("http://brownie:s3cret-pa55@127.0.0.1:9", Some(auth), None)
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret-pa55"), "{e}");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");

    for (urls, says) in [
        ("", "no node URL"),
        ("ftp://127.0.0.1:21", "not an http or https URL"),
        ("http://[::1", "cannot be read"),
    ] {
        let e = Elasticsearch::connect(urls, None, None).await.unwrap_err();
        assert!(e.to_string().contains(says), "{urls}: {e}");
    }
    let e = Elasticsearch::connect(&node, None, Some(b"not a certificate"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CA certificate"), "{e}");
}
