//! `pit brownie` against the real servers `scripts/test` starts: PostgreSQL (`DATABASE_URL`),
//! Kafka (`KAFKA_BROKERS`), OpenSearch (`OPENSEARCH_URL`) and the control plane
//! (`PIT_TEST_KUBECONFIG`): the existing toolkit's configuration (variables, per-server
//! settings) and PIT's flags give the same result; a dry run changes nothing; the exit code says
//! whether anything failed.

use crate::{pit, run};

// Waiting for the broker's listing, as pit-brownie's tests do.
#[path = "../../../pit-brownie/tests/common/kafka.rs"]
mod kafka_wait;

fn server() -> (String, u16) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL is not set: scripts/test starts PostgreSQL");
    let rest = url.split_once("@").map(|(_, r)| r).unwrap();
    let (host, port) = rest.split_once('/').unwrap().0.split_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

fn psql(sql: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = std::env::var("DATABASE_URL").unwrap();
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}

fn candidates(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    v["postgresql"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["action"].as_str().unwrap(), c["name"].as_str().unwrap()))
        .collect()
}

#[test]
fn the_toolkits_configuration_and_pits_flags_clean_the_same_databases() {
    let prefix = format!("cb{}x_", std::process::id());
    let old = format!("{prefix}orders_pit_ci_ts20240101000000");
    let young = format!("{prefix}orders_pit_ci_ts20991231000000");
    let odd = format!("{prefix}pit_ci_ts20241399000000");
    for db in [&old, &young, &odd] {
        psql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
        psql(&format!("CREATE DATABASE \"{db}\""));
    }
    // Only this test's databases: the server has others.
    let pattern = format!("^{prefix}.*pit.*(ts[0-9]{{14,14}}).*");
    let (host, port) = server();

    // The existing toolkit's CronJob: variables, `DRY_RUN=true`.
    let (code, out, err) = run(pit()
        .args(["brownie", "-o", "json"])
        .env("ENABLED_MODULES", "postgresql")
        .env("PGHOST", &host)
        .env("PGPORT", port.to_string())
        .env("PGDATABASE", "postgres")
        .env("PGUSER", "postgres")
        .env("RETENTION_PERIOD", "3days")
        .env("TIMESTAMP_PATTERN", &pattern)
        .env("DRY_RUN", "true"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(candidates(&out), [format!("would-delete {old}")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["postgresql"]["kept_young"], 1);
    assert!(
        v["postgresql"]["kept_unreadable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a date"),
        "{out}"
    );

    // PIT's flags, with the toolkit's `--dry-run false`: the same database, dropped.
    let (code, out, err) = run(pit()
        .args(["brownie", "--enabled-modules", "postgresql", "--pghost", &host])
        .args([
            "--pgport",
            &port.to_string(),
            "--retention-period",
            "72h",
            "--dry-run",
            "false",
        ])
        .args(["--timestamp-pattern", &pattern, "-o", "json"])
        .env_remove("PGPASSWORD"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(candidates(&out), [format!("deleted {old}")]);

    // Nothing left to do; the others stay.
    let (code, out, _) = run(pit()
        .args(["brownie", "--enabled-modules", "postgresql", "--pghost", &host])
        .args(["--pgport", &port.to_string(), "--timestamp-pattern", &pattern]));
    assert_eq!(code, 0);
    assert!(
        out.contains("postgresql: 2 found, 1 kept (young), 1 kept (unreadable name)"),
        "{out}"
    );
    assert!(out.contains("0 deleted, 0 failed"), "{out}");
    for db in [&young, &odd] {
        psql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
    }
}

#[test]
fn bad_settings_say_what_to_do_and_a_password_never_shows() {
    let (code, _, err) = run(pit()
        .args(["brownie", "--enabled-modules", "postgresql"])
        .env_remove("PGHOST"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give --pghost or PGHOST"), "{err}");
    let (code, _, err) = run(pit()
        .args(["brownie", "--enabled-modules", "postgresql", "--pghost", "127.0.0.1"])
        .args(["--timestamp-pattern", "^pit_.*"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no group"), "{err}");
    // A server that is not there: exit 3, and the password is nowhere.
    let (code, out, err) = run(pit()
        .args([
            "brownie",
            "--enabled-modules",
            "postgresql",
            "--pghost",
            "127.0.0.1",
            "--pgport",
            "9",
        ])
        .env("PGPASSWORD", "s3cret-pw"));
    assert_eq!(code, 3, "{err}");
    assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"), "{err}");
}

#[test]
fn the_kafka_module_logs_in_as_the_toolkits_variables_say() {
    let brokers =
        std::env::var("KAFKA_SASL_BROKERS").expect("KAFKA_SASL_BROKERS is not set: scripts/test starts Kafka");
    let password_file = std::env::var("KAFKA_SASL_PASSWORD_FILE").unwrap();
    let password = std::fs::read_to_string(&password_file).unwrap().trim().to_owned();
    // Only this test's topics (there are none): a dry run that logs in with SCRAM and lists.
    let pattern = format!("^kc{}x_.*pit.*(ts[0-9]{{14,14}}).*", std::process::id());
    let (code, out, err) = run(pit()
        .args(["brownie", "-o", "json"])
        .env("ENABLED_MODULES", "kafka")
        .env("KAFKA_BROKERS", &brokers)
        .env("KAFKA_USERNAME", "pit-brownie")
        .env("KAFKA_PASSWORD", &password)
        .env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
        .env("TIMESTAMP_PATTERN", &pattern)
        .env("DRY_RUN", "true"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kafka"]["found"], 0, "{out}");
    assert!(!out.contains(&password) && !err.contains(&password));
    // A user without a password, and a mechanism brownie does not speak: usage errors.
    let (code, _, err) = run(pit()
        .args([
            "brownie",
            "--enabled-modules",
            "kafka",
            "--kafka-brokers",
            &brokers,
            "--kafka-username",
            "u",
        ])
        .env_remove("KAFKA_PASSWORD"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs a password"), "{err}");
    let (code, _, err) = run(pit()
        .args(["brownie", "--enabled-modules", "kafka", "--kafka-brokers", &brokers])
        .args(["--kafka-username", "u", "--kafka-sasl-mechanism", "gssapi"])
        .env("KAFKA_PASSWORD", "x"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("scram-sha-256"), "{err}");
}

#[test]
fn the_databases_of_runs_with_locks_are_kept_and_an_unreachable_lock_manager_stops_the_deletes() {
    use pit_core::lock::{LockOwner, LockRequest, LockStore};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lm = rt.block_on(pit_lock::testing::MockLockManager::start()).unwrap();
    // An old run (its id's time is years ago), still holding a lock.
    let run_id: pit_core::naming::RunId = "01hm0000000000000000000000".parse().unwrap();
    let request = LockRequest {
        ids: vec!["db".into()],
        owner: LockOwner {
            name: "pit run".into(),
            run_id: Some(run_id.to_string()),
            suite: Some("checkout".into()),
            ci_job: None,
        },
        ttl: std::time::Duration::from_secs(600),
        wait: std::time::Duration::ZERO,
    };
    rt.block_on(
        lm.client()
            .acquire(&request, &tokio_util::sync::CancellationToken::new()),
    )
    .unwrap();
    let prefix = format!("cl{}x_", std::process::id());
    let db = format!("{prefix}{}", pit_core::naming::resource_suffix(&run_id));
    assert!(db.len() <= 63, "{db}");
    psql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
    psql(&format!("CREATE DATABASE \"{db}\""));
    let (host, port) = server();
    let pattern = format!("^{prefix}.*pit.*(ts[0-9]{{14,14}}).*");
    let brownie = |lock_manager: Option<&str>, dry_run: &str| {
        let mut cmd = pit();
        cmd.args([
            "brownie",
            "--enabled-modules",
            "postgresql",
            "--pghost",
            &host,
            "-o",
            "json",
        ])
        .args([
            "--pgport",
            &port.to_string(),
            "--timestamp-pattern",
            &pattern,
            "--dry-run",
            dry_run,
        ])
        .env_remove("PIT_LOCK_MANAGER");
        if let Some(url) = lock_manager {
            cmd.args(["--lock-manager", url]);
        }
        run(&mut cmd)
    };
    // With the Lock Manager: the run is alive, its database kept.
    let (code, out, err) = brownie(Some(lm.url()), "true");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["postgresql"]["candidates"].as_array().unwrap().len(), 0, "{out}");
    let reason = v["postgresql"]["kept_protected"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("in use by the live run of environment `pit-checkout-01hm"),
        "{reason}"
    );
    // Without it, only the time counts.
    let (_, out, _) = brownie(None, "true");
    assert_eq!(candidates(&out), [format!("would-delete {db}")]);
    // A Lock Manager that cannot be asked: nothing is deleted, exit 3.
    let (code, _, err) = brownie(Some("http://127.0.0.1:9"), "false");
    assert_eq!(code, 3, "{err}");
    let (_, out, _) = brownie(None, "true");
    assert_eq!(candidates(&out), [format!("would-delete {db}")], "still there");
    psql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
}

/// What a `-o json` run did, per module kind: `(module, action, name)`, sorted.
fn actions(json: &str) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    let mut out = Vec::new();
    for (label, report) in v.as_object().unwrap() {
        if label == "namespaces" {
            continue;
        }
        let kind = label.split('/').next().unwrap().to_owned();
        assert!(report.get("error").is_none(), "{label}: {report}");
        for c in report["candidates"].as_array().unwrap() {
            out.push((
                kind.clone(),
                c["action"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn every_module_in_the_toolkits_per_server_form_cleans_what_pits_flags_clean() {
    let (kubeconfig, _) = crate::k8s::cluster();
    let brokers = std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is not set: scripts/test starts Kafka");
    let opensearch =
        std::env::var("OPENSEARCH_URL").expect("OPENSEARCH_URL is not set: scripts/test starts OpenSearch");
    let (host, port) = server();
    let tag = format!("ca{}x", std::process::id());
    // A run still alive: its namespace is young, so its resources are kept whatever their age.
    let live_ns = format!("{tag}-live");
    let kube = crate::k8s::kubectl;
    kube(&["create", "namespace", &live_ns]);
    kube(&[
        "label",
        "namespace",
        &live_ns,
        "app.kubernetes.io/managed-by=pit",
        &format!("pit.dev/run-id={tag}"),
    ]);
    kube(&["annotate", "namespace", &live_ns, "pit.dev/ttl=1h"]);
    let stale = format!("{tag}_orders_pit_a_ts20240101000000");
    let live = format!("{tag}_pit_{tag}_live_ts20240101000000");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for db in [&stale, &live] {
        psql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
        psql(&format!("CREATE DATABASE \"{db}\""));
    }
    rt.block_on(async {
        let kafka = rskafka::client::ClientBuilder::new(vec![brokers.clone()])
            .build()
            .await
            .unwrap();
        let controller = kafka.controller_client().unwrap();
        let http = reqwest::Client::new();
        for name in [&stale, &live] {
            controller.create_topic(name.as_str(), 1, 1, 5_000).await.unwrap();
            let r = http
                .put(format!("{opensearch}/{name}?wait_for_active_shards=0"))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
        // New topics reach the broker's metadata asynchronously: wait (bounded) until both are listed.
        let listing = pit_brownie::kafka::Kafka::connect(vec![brokers.clone()], "pit-cli-test", None)
            .await
            .unwrap();
        let want = [stale.clone(), live.clone()];
        kafka_wait::until_listed(&listing, &format!("{tag}_"), &want, std::time::Duration::from_secs(30)).await;
    });
    let pattern = format!("^{tag}_.*pit.*(ts[0-9]{{14,14}}).*");
    let selector = format!("pit.dev/run-id={tag}");

    // The existing toolkit's form: one named server per module, set by prefixed variables.
    let (code, out, err) = run(pit()
        .args(["brownie", "-o", "json", "-l", &selector, "--kubeconfig", &kubeconfig])
        .env(
            "ENABLED_MODULES",
            "namespaces,postgresql=pg1,kafka=k1,elasticsearch=es1",
        )
        .env("PG1_PGHOST", &host)
        .env("PG1_PGPORT", port.to_string())
        .env("PG1_PGDATABASE", "postgres")
        .env("PG1_PGUSER", "postgres")
        .env("K1_KAFKA_BROKERS", &brokers)
        .env("K1_KAFKA_CLIENT_ID", "brownie")
        .env("ES1_ELASTICSEARCH_URL", &opensearch)
        .env("TIMESTAMP_PATTERN", &pattern)
        .env("DRY_RUN", "true"));
    assert_eq!(code, 0, "{err}");
    let expected = |action: &str| -> Vec<(String, String, String)> {
        ["elasticsearch", "kafka", "postgresql"]
            .iter()
            .map(|m| ((*m).to_owned(), action.to_owned(), stale.clone()))
            .collect()
    };
    assert_eq!(actions(&out), expected("would-delete"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for label in ["postgresql/pg1", "kafka/k1", "elasticsearch/es1"] {
        let reason = v[label]["kept_protected"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(&format!("`{live_ns}`")), "{label}: {out}");
    }
    assert!(
        v["namespaces"]["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == live_ns.as_str()),
        "{out}"
    );

    // PIT's flags, for real: the same resources deleted.
    let (code, out, err) = run(pit()
        .args(["brownie", "-o", "json", "-l", &selector, "--kubeconfig", &kubeconfig])
        .args(["--enabled-modules", "namespaces,postgresql,kafka,elasticsearch"])
        .args(["--pghost", &host, "--pgport", &port.to_string()])
        .args(["--kafka-brokers", &brokers, "--elasticsearch-url", &opensearch])
        .args(["--timestamp-pattern", &pattern, "--dry-run=false"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(actions(&out), expected("deleted"), "{out}");

    // Gone (Kafka deletes in the background: wait, bounded), and the live run's kept.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, out, err) = run(pit()
            .args([
                "brownie",
                "-o",
                "json",
                "--enabled-modules",
                "postgresql,kafka,elasticsearch",
            ])
            .args(["--pghost", &host, "--pgport", &port.to_string()])
            .args(["--kafka-brokers", &brokers, "--elasticsearch-url", &opensearch])
            .args(["--timestamp-pattern", &pattern, "--dry-run"]));
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let left: Vec<u64> = ["postgresql", "kafka", "elasticsearch"]
            .iter()
            .map(|m| v[m]["found"].as_u64().unwrap())
            .collect();
        if left == [1, 1, 1] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    psql(&format!("DROP DATABASE IF EXISTS \"{live}\""));
    rt.block_on(async {
        let kafka = rskafka::client::ClientBuilder::new(vec![brokers.clone()])
            .build()
            .await
            .unwrap();
        let _ = kafka
            .controller_client()
            .unwrap()
            .delete_topic(live.as_str(), 5_000)
            .await;
        let _ = reqwest::Client::new()
            .delete(format!("{opensearch}/{live}"))
            .send()
            .await;
    });
    kube(&["delete", "namespace", &live_ns, "--wait=false"]);
}

#[test]
fn per_server_settings_are_checked_and_named_as_the_user_gave_them() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--enabled-modules", "postgresql=pg1"],
            "give --pg1-pghost or PG1_PGHOST",
        ),
        (&["--enabled-modules", "postgresql=pg1;pg1"], "named twice"),
        (&["--enabled-modules", "namespaces=a"], "namespaces takes none"),
        (&["--enabled-modules", "redis"], "not a module"),
        (
            &[
                "--enabled-modules",
                "postgresql=pg1",
                "--pg1-pghost",
                "h",
                "--pg2-pghost",
                "h",
            ],
            "--pg2-pghost: no enabled module has a server `pg2`",
        ),
        (
            &[
                "--enabled-modules",
                "postgresql=pg1",
                "--pg1-pghost",
                "h",
                "--pg1-pgport",
                "x",
            ],
            "'--pg1-pgport ",
        ),
    ];
    for (args, says) in cases {
        let (code, _, err) = run(pit().arg("brownie").args(args).env_remove("PG1_PGHOST"));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A server's password given as a flag: a warning; its value is nowhere in the output.
    let (code, out, err) = run(pit()
        .args([
            "brownie",
            "--enabled-modules",
            "postgresql=pg1",
            "--pg1-pghost",
            "127.0.0.1",
        ])
        .args(["--pg1-pgport", "9", "--pg1-pgpassword", "s3cret-pw"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--pg1-pgpassword shows in process lists"), "{err}");
    assert!(out.contains("postgresql/pg1: FAILED"), "{out}");
    assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"), "{err}");
}
