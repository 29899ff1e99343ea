//! Lock Manager throughput and hand-off latency, each beside the ceiling of the same SQL run
//! directly ([`PgLockStore`] in one loop, no HTTP).
//!
//! `DATABASE_URL=… cargo bench -p pit-lock --bench lock` (`scripts/bench` starts PostgreSQL
//! for you). Prints figures and ratios taken in one run; asserts nothing. The load generator
//! is this binary: tokio tasks over keep-alive HTTP connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pit_core::lock::{LockStore, WaitProgress};
use pit_core::testing::lock_request;
use pit_lock::server::{start, AppState, Auth};
use pit_lock::{HttpLockStore, PgLockStore};
use tokio_util::sync::CancellationToken;

#[path = "../tests/common/mod.rs"]
mod common;

struct Figures {
    ops_per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(mut times: Vec<Duration>, wall: Duration) -> Figures {
    times.sort();
    let n = times.len();
    Figures {
        ops_per_s: n as f64 / wall.as_secs_f64(),
        p50: times[n / 2],
        p99: times[(n * 99 / 100).min(n - 1)],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `tasks` tasks, each acquiring and releasing an id of its own `per_task` times.
async fn uncontended(store: Arc<dyn LockStore>, tag: &str, tasks: usize, per_task: usize) -> Figures {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let store = store.clone();
        let id = format!("{tag}-{t}");
        set.spawn(async move {
            let never = CancellationToken::new();
            let mut times = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t0 = Instant::now();
                let lease = store
                    .acquire(&lock_request(&[&id], "bench", 0, 30_000), &never)
                    .await
                    .unwrap();
                store.release(&lease).await.unwrap();
                times.push(t0.elapsed());
            }
            times
        });
    }
    let mut all = Vec::new();
    while let Some(times) = set.join_next().await {
        all.extend(times.unwrap());
    }
    figures(all, start.elapsed())
}

/// A progress callback that signals `queued` the first time the store reports a place in the
/// queue.
fn first_progress(queued: tokio::sync::oneshot::Sender<()>) -> impl Fn(&WaitProgress) + Send + Sync {
    let queued = std::sync::Mutex::new(Some(queued));
    move |_: &WaitProgress| {
        if let Some(tx) = queued.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

/// Release until the next waiter holds the lock, `rounds` times: a waiter queues (the store
/// tells it its place), then the holder releases.
async fn hand_off(store: Arc<dyn LockStore>, tag: &str, rounds: usize) -> Figures {
    let never = CancellationToken::new();
    let mut holder = store
        .acquire(&lock_request(&[tag], "holder", 0, 30_000), &never)
        .await
        .unwrap();
    let mut times = Vec::with_capacity(rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = {
            let (store, tag) = (store.clone(), tag.to_owned());
            tokio::spawn(async move {
                let progress = first_progress(queued_tx);
                let lease = store
                    .acquire_with_progress(
                        &lock_request(&[&tag], "waiter", 30_000, 30_000),
                        &CancellationToken::new(),
                        &progress,
                    )
                    .await
                    .unwrap();
                (lease, Instant::now())
            })
        };
        queued_rx.await.unwrap();
        let t0 = Instant::now();
        store.release(&holder).await.unwrap();
        let (lease, held_at) = waiter.await.unwrap();
        times.push(held_at.saturating_duration_since(t0));
        holder = lease;
    }
    store.release(&holder).await.unwrap();
    figures(times, start.elapsed())
}

/// What a burst of waiters came to.
struct Burst {
    /// The waiters in the order they were served.
    order: Vec<usize>,
    /// Waiters that could not join the queue (they may have been served later, out of
    /// turn), with the first reason.
    refused: Vec<usize>,
    reason: Option<String>,
    /// From the holder's release to the last waiter's release.
    drained: Duration,
}

/// A burst of `n` waiters on one id: each joins the queue (its place known) before the next,
/// then the holder releases and each waiter, once served, releases at once.
async fn burst(store: Arc<dyn LockStore>, tag: &str, n: usize) -> Burst {
    let never = CancellationToken::new();
    let holder = store
        .acquire(&lock_request(&[tag], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    let served = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let mut waiters = Vec::with_capacity(n);
    let (mut refused, mut reason) = (Vec::new(), None);
    for i in 0..n {
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel::<()>();
        let (store, tag, served) = (store.clone(), tag.to_owned(), served.clone());
        let waiter = tokio::spawn(async move {
            let progress = first_progress(queued_tx);
            let lease = store
                .acquire_with_progress(
                    &lock_request(&[&tag], &format!("waiter {i}"), 120_000, 60_000),
                    &CancellationToken::new(),
                    &progress,
                )
                .await?;
            served.lock().unwrap().push(i);
            store.release(&lease).await
        });
        // A waiter that never got a place in the queue failed: say why, go on.
        if queued_rx.await.is_err() {
            refused.push(i);
            if let Err(e) = waiter.await.unwrap() {
                reason.get_or_insert(e.to_string());
            }
        } else {
            waiters.push(waiter);
        }
    }
    let released = Instant::now();
    store.release(&holder).await.unwrap();
    for w in waiters {
        let _ = w.await.unwrap();
    }
    let order = served.lock().unwrap().clone();
    Burst {
        order,
        refused,
        reason,
        drained: released.elapsed(),
    }
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<44} {:>9.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
        f.ops_per_s,
        ms(f.p50),
        ms(f.p99)
    );
}

#[tokio::main]
async fn main() {
    if std::env::var("DATABASE_URL").is_err() {
        eprintln!("DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` (scripts/bench does)");
        std::process::exit(2);
    }
    // `cargo test --benches` runs this binary without `--bench`: keep that run short.
    let full = std::env::args().any(|a| a == "--bench");
    let (per_task, rounds) = if full { (500, 300) } else { (20, 10) };
    let url = common::fresh_database("bench").await;
    let direct = Arc::new(PgLockStore::connect(&url).await.unwrap());
    let service = start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::new(
            std::sync::Arc::new(PgLockStore::connect(&url).await.unwrap()),
            Auth::default(),
        ),
    )
    .await
    .unwrap();
    let http: Arc<dyn LockStore> = Arc::new(HttpLockStore::new(&format!("http://{}", service.addr), None).unwrap());
    println!("acquire + release, uncontended ({per_task} per task), and hand-off ({rounds} rounds)");
    for tasks in [1, 8] {
        let sql = uncontended(direct.clone(), &format!("sql{tasks}"), tasks, per_task).await;
        let api = uncontended(http.clone(), &format!("http{tasks}"), tasks, per_task).await;
        row(&format!("direct SQL (ceiling), {tasks} task(s)"), &sql);
        row(&format!("Lock Manager over HTTP, {tasks} task(s)"), &api);
        println!("  throughput ratio HTTP / SQL: {:.2}", api.ops_per_s / sql.ops_per_s);
    }
    let sql = hand_off(direct.clone(), "handoff-sql", rounds).await;
    let api = hand_off(http.clone(), "handoff-http", rounds).await;
    row("hand-off, direct SQL (LISTEN/NOTIFY)", &sql);
    row("hand-off, Lock Manager over HTTP", &api);
    println!("  hand-off p99 HTTP: {:.3} ms (goal: at most 10 ms)", ms(api.p99));
    let n = if full { 200 } else { 20 };
    let b = burst(http.clone(), "burst-http", n).await;
    // FIFO: those that joined the queue were served in the order they joined it.
    let queued: Vec<usize> = b.order.iter().copied().filter(|i| !b.refused.contains(i)).collect();
    let in_order = queued.windows(2).all(|w| w[0] < w[1]);
    println!(
        "burst of {n} waiters on one id over HTTP: {} joined the queue and were served {}; {} served in all, in {:.2} s ({:.1} ms per hand-off); {} could not queue{}",
        queued.len(),
        if in_order { "in FIFO order" } else { "NOT in FIFO order" },
        b.order.len(),
        b.drained.as_secs_f64(),
        b.drained.as_secs_f64() * 1e3 / b.order.len().max(1) as f64,
        b.refused.len(),
        b.reason.map(|r| format!(" (first: {r})")).unwrap_or_default()
    );
    service.shutdown().await.unwrap();
}
