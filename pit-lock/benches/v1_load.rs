//! The Lock Manager under the existing toolkit's v1 load, beside the database's own ceiling,
//! in one run.
//!
//! `DATABASE_URL=… cargo bench -p pit-lock --bench v1_load` (`scripts/bench` starts
//! PostgreSQL for you): 16 clients, each looping a v1 acquire (`POST /locks/acquire`, one id of
//! 8, then of 1,000) and, when it got the lock, a v1 release, for 10 s each (1 s without
//! `--bench`, as `scripts/test` runs it). It prints requests/s, p50 and p99, errors (answers
//! other than 200) and overlaps (an id two clients held at once, seen by the clients
//! themselves), and beside them the ceiling: 16 connections, each running one single-statement
//! write transaction per operation on one row per id, straight to the database. With
//! `PIT_BENCH_COMPARE_URL` (another Lock Manager speaking v1: an earlier build of ours, or the
//! existing toolkit's), the same load runs against it too, in the same run. The same service on
//! the in-memory store shows what HTTP and the load generator alone allow on the machine.
//! `PIT_BENCH_POOL_SIZE` sets the service's pool (default: one connection per client). Asserts
//! nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pit_lock::api::v1;
use pit_lock::server::{start, AppState, Auth};
use pit_lock::PgLockStore;

#[path = "../tests/common/mod.rs"]
mod common;

const CLIENTS: usize = 16;

struct Figures {
    requests_per_s: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    overlaps: u64,
    acquired: u64,
}

impl Figures {
    fn of(mut times: Vec<Duration>, wall: Duration, errors: u64, overlaps: u64, acquired: u64) -> Self {
        times.sort();
        let n = times.len().max(1);
        Self {
            requests_per_s: times.len() as f64 / wall.as_secs_f64(),
            p50: times.get(n / 2).copied().unwrap_or_default(),
            p99: times.get((n * 99 / 100).min(n - 1)).copied().unwrap_or_default(),
            errors,
            overlaps,
            acquired,
        }
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>8.0} requests/s   p50 {:>7.2} ms   p99 {:>7.2} ms   {} acquired, {} errors, {} overlaps",
            self.requests_per_s,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.acquired,
            self.errors,
            self.overlaps
        );
    }
}

/// Who holds each id, as the clients see it: an acquire that finds another holder is an
/// overlap.
#[derive(Default)]
struct Holders(Mutex<HashMap<String, usize>>);

impl Holders {
    fn take(&self, id: &str, client: usize) -> bool {
        let mut map = self.0.lock().unwrap();
        match map.get(id) {
            Some(other) if *other != client => true,
            _ => {
                map.insert(id.to_owned(), client);
                false
            }
        }
    }

    fn give_back(&self, id: &str, client: usize) {
        let mut map = self.0.lock().unwrap();
        if map.get(id) == Some(&client) {
            map.remove(id);
        }
    }
}

async fn v1_load(base: &str, tag: &str, ids: usize, run_for: Duration) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let holders = Arc::new(Holders::default());
    let (errors, overlaps, acquired) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (http, holders, base, tag) = (http.clone(), holders.clone(), base.to_owned(), tag.to_owned());
        let (errors, overlaps, acquired) = (errors.clone(), overlaps.clone(), acquired.clone());
        set.spawn(async move {
            let owner = format!("load-{client}");
            // Seeded: both sides of the comparison ask for the same ids in the same order.
            let mut rng = fastrand::Rng::with_seed(client as u64);
            let mut times = Vec::new();
            while start.elapsed() < run_for {
                let id = format!("{tag}-{}", rng.usize(..ids));
                let t0 = Instant::now();
                let answer = http
                    .post(format!("{base}/locks/acquire"))
                    .json(&v1::AcquireRequest {
                        lock_id: id.clone(),
                        owner: owner.clone(),
                        expiry_in_sec: Some(10.0),
                    })
                    .send()
                    .await;
                let got = match answer {
                    Ok(r) if r.status().is_success() => r.json::<v1::AcquireResponse>().await.ok().map(|a| a.acquired),
                    _ => None,
                };
                times.push(t0.elapsed());
                match got {
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(false) => continue,
                    Some(true) => {}
                }
                acquired.fetch_add(1, Ordering::Relaxed);
                if holders.take(&id, client) {
                    overlaps.fetch_add(1, Ordering::Relaxed);
                }
                holders.give_back(&id, client);
                let t0 = Instant::now();
                let released = http
                    .post(format!("{base}/locks/release"))
                    .json(&v1::ReleaseRequest {
                        lock_ids: vec![id],
                        owner: owner.clone(),
                    })
                    .send()
                    .await;
                times.push(t0.elapsed());
                if !released.is_ok_and(|r| r.status().is_success()) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            times
        });
    }
    let mut all = Vec::new();
    while let Some(times) = set.join_next().await {
        all.extend(times.unwrap());
    }
    Figures::of(
        all,
        start.elapsed(),
        errors.load(Ordering::Relaxed),
        overlaps.load(Ordering::Relaxed),
        acquired.load(Ordering::Relaxed),
    )
}

/// The database's ceiling for the same load: each connection takes an id and releases it with
/// one single-statement write transaction each, on one row per id.
async fn ceiling(url: &str, ids: usize, run_for: Duration) -> Figures {
    let (setup, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    setup
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS bench_ceiling;
             CREATE TABLE bench_ceiling (id bigint PRIMARY KEY, holder text);
             INSERT INTO bench_ceiling SELECT g, NULL FROM generate_series(0, {}) g;",
            ids - 1
        ))
        .await
        .unwrap();
    let acquired = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (url, acquired) = (url.to_owned(), acquired.clone());
        set.spawn(async move {
            let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let take = db
                .prepare("UPDATE bench_ceiling SET holder = $2 WHERE id = $1 AND holder IS NULL")
                .await
                .unwrap();
            let give = db
                .prepare("UPDATE bench_ceiling SET holder = NULL WHERE id = $1 AND holder = $2")
                .await
                .unwrap();
            let owner = format!("load-{client}");
            let mut rng = fastrand::Rng::with_seed(client as u64);
            let mut times = Vec::new();
            while start.elapsed() < run_for {
                let id = i64::try_from(rng.usize(..ids)).unwrap();
                let t0 = Instant::now();
                let got = db.execute(&take, &[&id, &owner]).await.unwrap();
                times.push(t0.elapsed());
                if got == 1 {
                    acquired.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    db.execute(&give, &[&id, &owner]).await.unwrap();
                    times.push(t0.elapsed());
                }
            }
            times
        });
    }
    let mut all = Vec::new();
    while let Some(times) = set.join_next().await {
        all.extend(times.unwrap());
    }
    Figures::of(all, start.elapsed(), 0, 0, acquired.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    if std::env::var("DATABASE_URL").is_err() {
        eprintln!("DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` (scripts/bench does)");
        std::process::exit(2);
    }
    let run_for = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    };
    let url = common::fresh_database("v1load").await;
    // As deployed: the service's pool is as large as the clients are many, unless
    // PIT_BENCH_POOL_SIZE says otherwise (to measure the effect of `--pool-size`).
    let pool = std::env::var("PIT_BENCH_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CLIENTS);
    let store = PgLockStore::connect_with_pool_size(&url, pool).await.unwrap();
    let service = start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::new(Arc::new(store), Auth::default()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", service.addr);
    println!(
        "v1 acquire + release, {CLIENTS} clients, {} s per load, {pool} pooled connections",
        run_for.as_secs()
    );
    let other = std::env::var("PIT_BENCH_COMPARE_URL").ok().filter(|u| !u.is_empty());
    // The same service on the in-memory store: what HTTP and this load generator alone allow on
    // this machine, the other half of what limits the figures.
    let memory = start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::new(Arc::new(pit_lock::store::MemoryStore::new()), Auth::default()),
    )
    .await
    .unwrap();
    let memory_base = format!("http://{}", memory.addr);
    for ids in [8, 1_000] {
        let api = v1_load(&base, &format!("ids{ids}"), ids, run_for).await;
        let sql = ceiling(&url, ids, run_for).await;
        let http = v1_load(&memory_base, &format!("mem-ids{ids}"), ids, run_for).await;
        api.print(&format!("Lock Manager, {ids} ids"));
        sql.print(&format!("database ceiling, {ids} ids"));
        http.print(&format!("memory store (HTTP), {ids} ids"));
        println!(
            "  Lock Manager / ceiling: {:.2} (goal: at least 0.5); / memory store: {:.2}",
            api.requests_per_s / sql.requests_per_s,
            api.requests_per_s / http.requests_per_s
        );
        if let Some(other) = &other {
            let them = v1_load(other, &format!("cmp-ids{ids}"), ids, run_for).await;
            them.print(&format!("compared ({other}), {ids} ids"));
            println!(
                "  Lock Manager / compared: {:.2}",
                api.requests_per_s / them.requests_per_s
            );
        }
    }
    service.shutdown().await.unwrap();
    memory.shutdown().await.unwrap();
}
