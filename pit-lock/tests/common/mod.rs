//! Shared by the tests that need PostgreSQL: `scripts/postgres start DIR` prints the
//! `DATABASE_URL` they need (`scripts/test` does it for you).
#![allow(dead_code)] // each test file uses its own part

/// Each named test (an `async fn(Kind)` of the test file), once per store.
#[allow(unused_macros)] // not every test file has such tests
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::common::Kind::Postgres).await;
            })*
        }
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::common::Kind::Memory).await;
            })*
        }
    };
}

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::Arc;

use pit_lock::server::{start, AppState, Auth, Running};
use pit_lock::{HttpLockStore, PgLockStore};

/// A new, empty database on the test server; its URL.
pub async fn fresh_database(name: &str) -> String {
    let admin = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` and export what it prints",
    );
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    let conn = tokio::spawn(conn);
    let db = format!("pit_{name}_{}", std::process::id());
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    drop(client);
    let _ = conn.await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    format!("{base}/{db}")
}

/// Which store a service keeps its locks in.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A fresh database on the test server.
    Postgres,
    /// Memory.
    Memory,
}

/// A `kind` store (`name` names its database).
pub async fn store_on(kind: Kind, name: &str) -> Arc<dyn pit_lock::ServiceStore> {
    match kind {
        Kind::Postgres => Arc::new(PgLockStore::connect(&fresh_database(name).await).await.unwrap()),
        Kind::Memory => Arc::new(pit_lock::MemoryStore::new()),
    }
}

/// A Lock Manager over a `kind` store (`name` names its database), listening on loopback,
/// and a client of it.
pub async fn service_on(kind: Kind, name: &str, auth: Auth) -> (Running, HttpLockStore) {
    let running = start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::new(store_on(kind, name).await, auth),
    )
    .await
    .unwrap();
    let client = client_with(&running, None);
    (running, client)
}

/// A client with `token`.
pub fn client_with(running: &Running, token: Option<&str>) -> HttpLockStore {
    HttpLockStore::new(&format!("http://{}", running.addr), token.map(str::to_owned)).unwrap()
}

/// Shared so that tests hold the store across tasks.
pub type Store = Arc<dyn pit_core::lock::LockStore>;

/// A `pit-lock-manager` process that has started listening.
pub struct Started {
    /// The process.
    pub child: Child,
    /// Its log from here on (JSON lines).
    pub stderr: BufReader<ChildStderr>,
    /// Where it listens.
    pub addr: String,
    /// Its log up to the line that said where it listens.
    pub log: String,
}

/// Starts `pit-lock-manager` with `args` and `env`, and reads its log until it says where it
/// listens.
pub fn start_binary(args: &[&str], env: &[(&str, &str)]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pit-lock-manager"))
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("pit-lock-manager starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut log = String::new();
    let addr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the service ended: {log}");
        log.push_str(&line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["addr"].as_str() {
            break addr.to_owned();
        }
    };
    Started {
        child,
        stderr,
        addr,
        log,
    }
}
