//! Correctness under faults: 32 clients take random sets of 8 ids through two Lock Manager
//! processes on one PostgreSQL; midway one process is killed with SIGKILL (and started again),
//! and PostgreSQL is restarted once. Every lease is kept as an interval, from the moment its
//! grant reached the client to the moment the client sent its release (or its expiry, by the
//! database's clock, if sooner). The checker shows that no two intervals of one id overlap,
//! that fencing tokens grow in the order holds began, that no lease was lost before its
//! expiry, and that every lock is free at the end. The clients' random choices come from one
//! seed, printed; `PIT_FAULT_SEED=N` replays them.
//!
//! Needs `DATABASE_URL` and `PIT_TEST_PG_DIR` (the directory of `scripts/postgres start`), as
//! `scripts/test` sets them. Bounded: about 10 seconds.

use std::io::{BufRead, Write as _};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pit_core::lock::{now_ms, Lease, LockError, LockOwner, LockRequest, LockStore};
use pit_core::pitfile::LockId;
use pit_lock::HttpLockStore;
use tokio_util::sync::CancellationToken;

mod common;
use common::fresh_database;

const CLIENTS: usize = 32;
const IDS: usize = 8;
const TTL: Duration = Duration::from_secs(3);
/// Holds the clients complete in each phase: before the kill, between the kill and the
/// database restart, and after it.
const HOLDS_PER_PHASE: u64 = 30;
/// The longest a phase may take to see its holds (a bound, not a pace: the test waits for the
/// holds themselves).
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// A `pit-lock-manager` process.
struct Instance {
    child: Child,
    addr: String,
}

impl Instance {
    fn start(db: &str, listen: &str) -> Self {
        let started = common::start_binary(
            &["--listen", listen, "--database-url", db],
            &[("PIT_LOG", "warn,pit_lock=info")],
        );
        let stderr = started.stderr;
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        Self {
            child: started.child,
            addr: started.addr,
        }
    }

    fn kill9(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One lease as its client saw it: from the moment the grant reached it to the moment it
/// sent the release, or the lease's expiry (by the database's clock, the same machine's)
/// if that came first.
#[derive(Debug, Clone, serde::Serialize)]
struct Interval {
    id: String,
    lease: String,
    token: u64,
    start_ms: u64,
    end_ms: u64,
}

/// Fed by every client; counts what broke.
#[derive(Default)]
struct Checker {
    intervals: Mutex<Vec<Interval>>,
    lost_early: AtomicU64,
    holds: AtomicU64,
    renewals: AtomicU64,
    releases: AtomicU64,
    unavailable: AtomicU64,
    busy: AtomicU64,
    /// Woken at every hold.
    progress: tokio::sync::Notify,
}

/// Rounding of milliseconds between the database and this process.
const TOLERANCE_MS: u64 = 2;

impl Checker {
    /// Waits until `n` holds in all have completed (at most [`PHASE_LIMIT`]).
    async fn until_holds(&self, n: u64, phase: &str) {
        let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.holds.load(Ordering::Relaxed);
            if now >= n {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "{phase}: {now} holds after {}s, waiting for {n}",
                PHASE_LIMIT.as_secs()
            );
        }
    }

    /// Every lease is kept, however little time it had left.
    fn held(&self, lease: &Lease, start_ms: u64, end_ms: u64) {
        let end_ms = end_ms.min(lease.expires_at_ms);
        let mut all = self.intervals.lock().unwrap();
        for (id, token) in &lease.fencing {
            all.push(Interval {
                id: id.to_string(),
                lease: lease.id.clone(),
                token: *token,
                start_ms,
                end_ms,
            });
        }
        self.holds.fetch_add(1, Ordering::Relaxed);
        self.progress.notify_waiters();
    }

    /// A renewal or release said the lease was gone: wrong if it had not expired yet.
    fn gone(&self, lease: &Lease, asked_at: u64) {
        if asked_at + 200 < lease.expires_at_ms {
            eprintln!(
                "lease {} lost {} ms before its expiry",
                lease.id,
                lease.expires_at_ms - asked_at
            );
            self.lost_early.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Overlapping holds of one id, and fencing tokens that do not grow in the order the
    /// holds began: each as a line naming both leases.
    fn violations(&self) -> Vec<String> {
        let mut all = self.intervals.lock().unwrap().clone();
        all.sort_by(|a, b| (a.id.as_str(), a.start_ms, a.token).cmp(&(b.id.as_str(), b.start_ms, b.token)));
        let mut out = Vec::new();
        // Per id, the hold that ends last so far, compared with each next one.
        let mut latest: Option<&Interval> = None;
        let mut last_token: Option<&Interval> = None;
        for b in &all {
            if latest.is_some_and(|a| a.id != b.id) {
                (latest, last_token) = (None, None);
            }
            if let Some(a) = last_token {
                if b.token <= a.token {
                    out.push(format!(
                        "{}: token {} of lease {} after token {} of lease {}",
                        b.id, b.token, b.lease, a.token, a.lease
                    ));
                }
            }
            last_token = Some(b);
            // A lease that reached its client after it expired was never held.
            if b.start_ms >= b.end_ms {
                continue;
            }
            if let Some(a) = latest {
                if a.end_ms > b.start_ms + TOLERANCE_MS {
                    out.push(format!(
                        "{}: lease {} ({}..{}) and lease {} ({}..{}) overlap",
                        b.id, a.lease, a.start_ms, a.end_ms, b.lease, b.start_ms, b.end_ms
                    ));
                }
            }
            if latest.is_none_or(|a| b.end_ms > a.end_ms) {
                latest = Some(b);
            }
        }
        out
    }
}

async fn client(
    n: usize,
    mut rng: fastrand::Rng,
    locks: HttpLockStore,
    checker: Arc<Checker>,
    stop: CancellationToken,
) {
    let mut round = 0u64;
    while !stop.is_cancelled() {
        round += 1;
        let k = 1 + rng.usize(..3);
        let mut ids: Vec<LockId> = (0..k).map(|_| LockId(format!("id-{}", rng.usize(..IDS)))).collect();
        ids.sort();
        ids.dedup();
        let req = LockRequest {
            ids,
            owner: LockOwner {
                name: format!("client-{n}"),
                run_id: Some(format!("round-{round}")),
                ..LockOwner::default()
            },
            ttl: TTL,
            wait: Duration::from_secs(30),
        };
        let lease = match locks.acquire(&req, &CancellationToken::new()).await {
            Ok(lease) => lease,
            Err(LockError::Busy { .. }) => {
                checker.busy.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                eprintln!("client-{n}: {e}");
                checker.unavailable.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let start_ms = now_ms();
        // Work while holding it.
        tokio::time::sleep(Duration::from_millis(rng.u64(..5))).await;
        let asked = now_ms();
        let lease = match locks.renew(&lease, TTL).await {
            Ok(renewed) => {
                checker.renewals.fetch_add(1, Ordering::Relaxed);
                renewed
            }
            Err(LockError::Lost { .. }) => {
                checker.gone(&lease, asked);
                checker.held(&lease, start_ms, asked);
                continue;
            }
            Err(_) => {
                checker.unavailable.fetch_add(1, Ordering::Relaxed);
                lease
            }
        };
        tokio::time::sleep(Duration::from_millis(rng.u64(..5))).await;
        let asked = now_ms();
        // Held until the release is sent (or until it expired, if that came first).
        checker.held(&lease, start_ms, asked);
        match locks.release_id(&lease.id).await {
            Ok(true) => {
                checker.releases.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => checker.gone(&lease, asked),
            Err(_) => {
                checker.unavailable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_id_is_ever_held_twice_through_a_killed_instance_and_a_database_restart() {
    let pg_dir = std::env::var("PIT_TEST_PG_DIR")
        .expect("PIT_TEST_PG_DIR is not set: run through scripts/test, which starts PostgreSQL with scripts/postgres");
    let db = fresh_database("faults").await;
    let mut a = Instance::start(&db, "127.0.0.1:0");
    let b = Instance::start(&db, "127.0.0.1:0");
    // The clients' choices come from one seed, printed, so that a failing run can be replayed
    // with PIT_FAULT_SEED (the faults themselves come at fixed points of the run).
    let seed: u64 = std::env::var("PIT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let _ = writeln!(
        std::io::stderr(),
        "faults: seed {seed} (replay with PIT_FAULT_SEED={seed})"
    );
    let checker = Arc::new(Checker::default());
    let start = Instant::now();
    // Each fault comes once the clients have made progress since the last, and they stop once
    // they have made progress after the last: awaited, never slept for.
    let stop = CancellationToken::new();
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..CLIENTS {
        let addr = if n % 2 == 0 { &a.addr } else { &b.addr };
        let locks = HttpLockStore::new(&format!("http://{addr}"), None).unwrap();
        clients.spawn(client(
            n,
            fastrand::Rng::with_seed(seed.wrapping_add(n as u64)),
            locks,
            checker.clone(),
            stop.clone(),
        ));
    }
    let holds_before = |c: &Checker| c.holds.load(Ordering::Relaxed);
    checker.until_holds(HOLDS_PER_PHASE, "before the kill").await;
    let before_kill = holds_before(&checker);
    a.kill9();
    let a_addr = a.addr.clone();
    drop(a);
    // Started again where it was, as an orchestrator would.
    let a2 = Instance::start(&db, &a_addr);
    checker
        .until_holds(before_kill + HOLDS_PER_PHASE, "after the kill")
        .await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let restart = tokio::process::Command::new(root.join("scripts/postgres"))
        .args(["restart", &pg_dir])
        .status()
        .await
        .unwrap();
    assert!(restart.success(), "PostgreSQL restarted");
    let after_restart = holds_before(&checker);
    checker
        .until_holds(after_restart + HOLDS_PER_PHASE, "after the database restart")
        .await;
    stop.cancel();
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    let after_all = holds_before(&checker);
    // Every lock is free at the end (a lease granted by the killed instance that never reached
    // its client runs out within its TTL).
    let list_client = HttpLockStore::new(&format!("http://{}", b.addr), None).unwrap();
    let deadline = Instant::now() + TTL + Duration::from_secs(2);
    let list = loop {
        let list = list_client.list().await.unwrap();
        if (list.locks.is_empty() && list.queue.is_empty()) || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let c = &checker;
    let violations = c.violations();
    if !violations.is_empty() {
        // The whole history, for a look at what happened.
        let file = std::env::temp_dir().join(format!("pit-faults-{seed}.json"));
        let all = c.intervals.lock().unwrap().clone();
        let _ = std::fs::write(&file, serde_json::to_vec_pretty(&all).unwrap());
        for v in violations.iter().take(20) {
            let _ = writeln!(std::io::stderr(), "faults: {v}");
        }
        let _ = writeln!(std::io::stderr(), "faults: every hold is in {}", file.display());
    }
    let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
    // Straight to stderr, past the test harness's capture: CI logs show the counts.
    let _ = writeln!(
        std::io::stderr(),
        "faults: {} holds ({} before the kill, {} more before the database restart, {} after), {} renewals, {} releases, \
         {} busy, {} calls that failed while a part was down; \
         violations: {} overlapping holds or fencing tokens going back, {} leases lost before expiry; {:.1} s (seed {seed})",
        load(&c.holds),
        before_kill,
        after_restart - before_kill,
        after_all - after_restart,
        load(&c.renewals),
        load(&c.releases),
        load(&c.busy),
        load(&c.unavailable),
        violations.len(),
        load(&c.lost_early),
        start.elapsed().as_secs_f64(),
    );
    assert!(
        violations.is_empty(),
        "ids held by two leases at once, or fencing tokens going back (seed {seed}): {violations:#?}"
    );
    assert_eq!(load(&c.lost_early), 0, "a lease was lost before its expiry");
    assert!(
        list.locks.is_empty() && list.queue.is_empty(),
        "locks left at the end: {list:?}"
    );
    assert!(
        before_kill > 0 && after_all > after_restart,
        "clients made progress before and after the faults"
    );
    drop(a2);
}

#[test]
fn the_checker_catches_overlapping_holds_and_tokens_going_back() {
    let c = Checker::default();
    let iv = |lease: &str, token: u64, start_ms: u64, end_ms: u64| Interval {
        id: "id-0".into(),
        lease: lease.into(),
        token,
        start_ms,
        end_ms,
    };
    // A long hold, a short one inside it starting later, and one after both.
    c.intervals
        .lock()
        .unwrap()
        .extend([iv("a", 1, 0, 100), iv("b", 2, 10, 20), iv("c", 3, 30, 40)]);
    let v = c.violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    let c = Checker::default();
    c.intervals
        .lock()
        .unwrap()
        .extend([iv("a", 2, 0, 10), iv("b", 1, 20, 30)]);
    assert_eq!(c.violations().len(), 1);
    let c = Checker::default();
    // Back to back, and one that arrived after its expiry, are fine.
    c.intervals
        .lock()
        .unwrap()
        .extend([iv("a", 1, 0, 10), iv("b", 2, 10, 20), iv("late", 3, 25, 25)]);
    assert!(c.violations().is_empty());
}
