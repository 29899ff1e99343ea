//! `pit brownie --enabled-modules postgresql` against the real PostgreSQL server
//! (`DATABASE_URL`): the existing toolkit's configuration (variables) and PIT's flags give the
//! same result; a dry run changes nothing; the exit code says whether anything failed.

use crate::{pit, run};

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
    assert!(err.contains("give --pghost or set PGHOST"), "{err}");
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
