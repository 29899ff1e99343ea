//! `pit lock-manager serve`, `pit lock …` and `pit run --lock-manager` against a real
//! PostgreSQL (`DATABASE_URL`, as `scripts/test` sets it).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Stdio};

use crate::{pit, read_until, repo, run};

const TOKEN: &str = "cli-test-token-5e1b";

/// A fresh database on the test server; its URL.
pub(crate) fn fresh_database(name: &str) -> String {
    let admin = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` and export what it prints",
    );
    let db = format!("pit_cli_{name}_{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        drop(client);
        let _ = conn.await;
    });
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    format!("{base}/{db}")
}

/// A Lock Manager process; killed when dropped.
struct Service {
    child: Child,
    url: String,
    stderr: BufReader<ChildStderr>,
    log: String,
}

impl Service {
    /// On a fresh database named after `name`.
    fn start(name: &str) -> Self {
        Self::with_store(&["--database-url", &fresh_database(name)])
    }

    /// Over memory.
    fn in_memory() -> Self {
        Self::with_store(&["--store", "memory"])
    }

    fn with_store(store: &[&str]) -> Self {
        let mut child = pit()
            .args(["lock-manager", "serve", "--listen", "127.0.0.1:0"])
            .args(store)
            .env_remove("DATABASE_URL")
            .env("PIT_LOCK_TOKENS", TOKEN)
            .env("PIT_LOCK_ADMIN_TOKENS", format!("{TOKEN}-admin"))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("pit lock-manager starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut log = String::new();
        let mut line = String::new();
        // It logs its address once it listens.
        let addr = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "the service ended: {log}");
            log.push_str(&line);
            let v: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
            if let Some(addr) = v["addr"].as_str() {
                break addr.to_owned();
            }
        };
        Self {
            child,
            url: format!("http://{addr}"),
            stderr,
            log,
        }
    }

    /// Stops it with SIGTERM; its exit code and whole log.
    fn stop(mut self) -> (i32, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        self.log.push_str(&rest);
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, std::mem::take(&mut self.log))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock(service: &Service, token: Option<&str>) -> std::process::Command {
    let mut cmd = pit();
    cmd.args(["lock", "--lock-manager", &service.url]);
    match token {
        Some(t) => cmd.env("PIT_LOCK_TOKEN", t),
        None => cmd.env_remove("PIT_LOCK_TOKEN"),
    };
    cmd
}

#[test]
fn people_and_scripts_take_list_and_release_locks_and_see_the_queue() {
    let log = take_list_and_release(Service::start("lock"));
    assert!(!log.contains("in memory"), "{log}");
}

#[test]
fn a_lock_manager_over_memory_answers_the_same_and_warns_loudly() {
    let log = take_list_and_release(Service::in_memory());
    assert!(
        log.contains("NOT shared with other Lock Manager instances and vanish when this process exits"),
        "{log}"
    );
    // PostgreSQL is the default: without a database it says what to do.
    let (code, _, err) = run(pit().args(["lock-manager", "serve"]).env_remove("DATABASE_URL"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DATABASE_URL") && err.contains("--store memory"), "{err}");
}

/// What people and scripts do with `pit lock` against `service`; its log.
fn take_list_and_release(service: Service) -> String {
    let (code, _, err) = run(lock(&service, None).args(["acquire", "db"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("PIT_LOCK_TOKEN"), "says how to give a token: {err}");

    let (code, lease, err) =
        run(lock(&service, Some(TOKEN)).args(["acquire", "db", "--owner", "alice", "--ttl", "5m"]));
    assert_eq!(code, 0, "{err}");
    let lease = lease.trim().to_owned();
    assert_eq!(lease.len(), 26, "prints the lease id: {lease}");
    assert!(err.contains("fencing db#1"), "{err}");

    // A second acquire waits, showing its place, until the first is released.
    let mut waiter = lock(&service, Some(TOKEN))
        .args(["acquire", "db", "--owner", "bob", "--wait", "60s", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut waiter_err = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    waiter_err.read_line(&mut line).unwrap();
    assert!(line.contains("waiting: next in line; db held by alice"), "{line}");

    let (code, out, _) = run(lock(&service, Some(TOKEN)).arg("list"));
    assert_eq!(code, 0);
    assert!(out.contains("db  held by alice"), "{out}");
    assert!(out.contains("1. bob"), "the waiter is listed: {out}");

    let (code, _, err) = run(lock(&service, Some(TOKEN)).args(["release", &lease]));
    assert_eq!(code, 0, "{err}");
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    let bob: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bob["fencing"]["db"], 2, "{bob}");

    // Only an admin may force-release.
    let (code, _, err) = run(lock(&service, Some(TOKEN)).args(["force-release", "db"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("admin token"), "{err}");
    let (code, _, err) = run(lock(&service, Some(&format!("{TOKEN}-admin"))).args(["force-release", "db"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ended lease") && err.contains("bob"), "{err}");
    let (_, out, _) = run(lock(&service, Some(TOKEN)).args(["list", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["locks"], serde_json::json!([]));

    let (code, log) = service.stop();
    assert_eq!(code, 0, "SIGTERM stops it cleanly: {log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(TOKEN), "a token reached the log: {log}");
    log
}

#[test]
fn pit_run_takes_its_locks_from_the_lock_manager_and_waits_in_its_queue() {
    let service = Service::start("run");
    let (code, lease, err) = run(lock(&service, Some(TOKEN)).args(["acquire", "cli-test-lock", "--owner", "nightly"]));
    assert_eq!(code, 0, "{err}");
    let state = crate::scratch("lock-run");
    let mut child = pit()
        .args(["run", "--lock-manager", &service.url, "--state-dir"])
        .arg(&state)
        .arg(repo().join("pit-cli/tests/fixtures/run/slow-deploy.yml"))
        .env("SLOW_SECONDS", "0")
        .env("PIT_LOCK_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = read_until(&mut stderr, "place 1 in the queue");
    assert!(seen.contains("cli-test-lock held by nightly"), "{seen}");
    run(lock(&service, Some(TOKEN)).args(["release", lease.trim()]));
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    child.wait().unwrap();
    assert!(seen.contains("locks taken"), "{seen}");
    // Released at the end, whatever the suite's outcome.
    let (_, out, _) = run(lock(&service, Some(TOKEN)).args(["list", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["locks"], serde_json::json!([]), "{seen}");
}

#[test]
fn pit_lock_without_a_lock_manager_says_how_to_give_one() {
    let (code, _, err) = run(pit().args(["lock", "list"]).env_remove("PIT_LOCK_MANAGER"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--lock-manager URL") && err.contains("PIT_LOCK_MANAGER"),
        "{err}"
    );
    let (code, _, err) = run(pit().args(["lock", "list", "--lock-manager", "ftp://x"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("http://"), "{err}");
}

#[test]
fn owner_names_from_outside_cannot_forge_lines_or_clear_the_screen() {
    // Issue 13: an owner with a newline and ESC [2J was printed raw.
    let service = Service::start("escape");
    let hostile = "mallory\n[pit] db released\u{1b}[2J";
    let (code, _, err) = run(lock(&service, Some(TOKEN)).args(["acquire", "db", "--owner", hostile]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let (code, out, _) = run(lock(&service, Some(TOKEN)).arg("list"));
    assert_eq!(code, 0);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert_eq!(out.lines().count(), 1, "one line for one lock: {out:?}");
    assert!(out.contains(r"mallory\n[pit] db released\u{1b}[2J"), "{out:?}");
    let (code, _, err) = run(lock(&service, Some(TOKEN)).args(["acquire", "db", "--owner", "bob", "--wait", "0s"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains("\n[pit] db released"),
        "{err:?}"
    );
    assert!(err.contains(r"mallory\n"), "{err:?}");
}
