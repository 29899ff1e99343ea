//! In-memory doubles for users' unit tests (feature `testing`).
//!
//! - [`MemoryLockStore`]: a real lock store in memory: it refuses a second holder, hands out
//!   growing fencing tokens, expires leases, and wakes waiters when a lease is released.
//! - [`MockLockStore`]: a [`MemoryLockStore`] that records every call and can be told to fail
//!   or to report the ids busy, for testing how code reacts.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use pit_core::lock::{LockOwner, LockRequest, LockStore};
//! use pit_core::testing::{LockCall, MockLockStore};
//!
//! let store = MockLockStore::new();
//! store.set_busy(Some("the nightly run"));
//! let req = LockRequest { ids: vec!["db".into()], owner: LockOwner::default(), ttl: Duration::from_secs(5), wait: Duration::ZERO };
//! let err = store.acquire(&req, &Default::default()).await.unwrap_err();
//! assert!(err.to_string().contains("the nightly run"));
//! assert_eq!(store.calls(), vec![LockCall::Acquire(vec!["db".into()])]);
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lock::{now_ms, wait_for, Blocked, Holder, Lease, LockError, LockOwner, LockRequest, LockStore, LockTable};
use crate::pitfile::LockId;

/// A lock store in memory, with the same behaviour as the real ones.
#[derive(Debug)]
pub struct MemoryLockStore {
    table: Mutex<LockTable>,
    /// Bumped on every release, to wake waiters.
    released: watch::Sender<u64>,
}

impl Default for MemoryLockStore {
    fn default() -> Self {
        Self {
            table: Mutex::default(),
            released: watch::Sender::new(0),
        }
    }
}

impl MemoryLockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockStore for MemoryLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        // Subscribed before the first attempt, so a release in between is not missed.
        let mut released = self.released.subscribe();
        wait_for(req, cancel, Some(&mut released), &|_| {}, || async {
            Ok(self
                .table
                .lock()
                .expect("no panics while held")
                .try_acquire(req, now_ms())
                .map_err(Blocked::from))
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.table
            .lock()
            .expect("no panics while held")
            .renew(lease, ttl, now_ms())
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.table.lock().expect("no panics while held").release(lease);
        self.released.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// A call made to a [`MockLockStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockCall {
    /// `acquire` with these ids.
    Acquire(Vec<LockId>),
    /// `renew` of this lease id.
    Renew(String),
    /// `release` of this lease id.
    Release(String),
}

/// A [`MemoryLockStore`] that records calls and can be told to misbehave.
#[derive(Debug, Default)]
pub struct MockLockStore {
    inner: MemoryLockStore,
    calls: Mutex<Vec<LockCall>>,
    fail: Mutex<Option<String>>,
    busy: Mutex<Option<String>>,
}

impl MockLockStore {
    /// A store that behaves until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<LockCall> {
        self.calls.lock().expect("no panics while held").clone()
    }

    /// Makes every later call fail as a broken store would (`None`: behave again).
    pub fn fail_with(&self, message: Option<&str>) {
        *self.fail.lock().expect("no panics while held") = message.map(str::to_owned);
    }

    /// Makes every later acquire find its ids held by `holder` (`None`: behave again).
    pub fn set_busy(&self, holder: Option<&str>) {
        *self.busy.lock().expect("no panics while held") = holder.map(str::to_owned);
    }

    fn record(&self, call: LockCall) -> Result<(), LockError> {
        self.calls.lock().expect("no panics while held").push(call);
        match self.fail.lock().expect("no panics while held").clone() {
            Some(message) => Err(LockError::Store {
                path: "mock".into(),
                source: std::io::Error::other(message),
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl LockStore for MockLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        self.record(LockCall::Acquire(req.ids.clone()))?;
        let busy = self.busy.lock().expect("no panics while held").clone();
        if let Some(holder) = busy {
            let holders = req
                .ids
                .iter()
                .map(|id| Holder {
                    id: id.clone(),
                    owner: LockOwner {
                        name: holder.clone(),
                        ..LockOwner::default()
                    },
                    expires_at_ms: now_ms() + 60_000,
                })
                .collect();
            return Err(LockError::Busy {
                wanted: req.ids.clone(),
                holders,
                waited: req.wait,
            });
        }
        self.inner.acquire(req, cancel).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.record(LockCall::Renew(lease.id.clone()))?;
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.record(LockCall::Release(lease.id.clone()))?;
        self.inner.release(lease).await
    }
}

/// A lock request for tests: `ids` for `owner`, waiting up to `wait_ms`, leased for `ttl_ms`.
pub fn lock_request(ids: &[&str], owner: &str, wait_ms: u64, ttl_ms: u64) -> LockRequest {
    LockRequest {
        ids: ids.iter().map(|i| (*i).into()).collect(),
        owner: LockOwner {
            name: owner.into(),
            ..Default::default()
        },
        ttl: Duration::from_millis(ttl_ms),
        wait: Duration::from_millis(wait_ms),
    }
}

/// The behaviour every [`LockStore`] must have, as one async test: exclusivity, all-or-none,
/// renew, release, growing fencing tokens, expiry, cancellation, refusing bad requests, and
/// never two holders under contention (4 tasks × 10 rounds). Run it against your store:
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// pit_core::testing::lock_contract(std::sync::Arc::new(pit_core::testing::MemoryLockStore::new())).await;
/// # });
/// ```
///
/// # Panics
/// Where the store breaks the contract, naming what broke.
pub async fn lock_contract(store: Arc<dyn LockStore>) {
    let never = CancellationToken::new();
    // Exclusive, all or none.
    let a = store
        .acquire(&lock_request(&["x", "y"], "a", 0, 30_000), &never)
        .await
        .unwrap();
    let err = store
        .acquire(&lock_request(&["y", "z"], "b", 50, 30_000), &never)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Busy { holders, .. } if holders.len() == 1 && holders[0].owner.name == "a"),
        "{err}"
    );
    let z = store
        .acquire(&lock_request(&["z"], "c", 0, 30_000), &never)
        .await
        .expect("z was not taken by the failed request");
    // Renew, release, fencing.
    let a2 = store.renew(&a, Duration::from_secs(60)).await.unwrap();
    assert!(a2.expires_at_ms >= a.expires_at_ms);
    store.release(&a2).await.unwrap();
    store.release(&a2).await.expect("releasing twice is harmless");
    assert!(matches!(
        store.renew(&a2, Duration::from_secs(1)).await,
        Err(LockError::Lost { .. })
    ));
    let b = store
        .acquire(&lock_request(&["x"], "b", 0, 30_000), &never)
        .await
        .unwrap();
    assert!(b.fencing[&"x".into()] > a.fencing[&"x".into()], "fencing tokens grow");
    store.release(&b).await.unwrap();
    store.release(&z).await.unwrap();
    // Expiry frees a lease within its TTL.
    let short = store
        .acquire(&lock_request(&["e"], "short", 0, 100), &never)
        .await
        .unwrap();
    let taken = store
        .acquire(&lock_request(&["e"], "next", 3_000, 30_000), &never)
        .await
        .unwrap();
    assert!(matches!(
        store.renew(&short, Duration::from_secs(1)).await,
        Err(LockError::Lost { .. })
    ));
    store.release(&taken).await.unwrap();
    // Cancellation ends a wait.
    let held = store
        .acquire(&lock_request(&["c"], "holder", 0, 30_000), &never)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(matches!(
        store.acquire(&lock_request(&["c"], "w", 60_000, 30_000), &cancel).await,
        Err(LockError::Cancelled { .. })
    ));
    store.release(&held).await.unwrap();
    // Bad requests.
    assert!(matches!(
        store.acquire(&lock_request(&[], "a", 0, 1000), &never).await,
        Err(LockError::Invalid(_))
    ));
    assert!(matches!(
        store.acquire(&lock_request(&["a"], "a", 0, 0), &never).await,
        Err(LockError::Invalid(_))
    ));
    // Never two holders at once, under contention (bounded: 4 workers x 10 rounds).
    let inside = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (store, inside) = (store.clone(), inside.clone());
        workers.spawn(async move {
            for _ in 0..10 {
                let lease = store
                    .acquire(
                        &lock_request(&["hot"], &format!("w{w}"), 10_000, 30_000),
                        &CancellationToken::new(),
                    )
                    .await
                    .unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                store.release(&lease).await.unwrap();
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}
