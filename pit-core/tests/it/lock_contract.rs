//! One contract, every `LockStore`: the embedded file store and the in-memory doubles behave
//! alike (the Lock Manager's HTTP client joins them in pit-lock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pit_core::lock::{FileLockStore, LockError, LockOwner, LockRequest, LockStore};
use pit_core::testing::{LockCall, MemoryLockStore, MockLockStore};
use tokio_util::sync::CancellationToken;

fn req(ids: &[&str], owner: &str, wait_ms: u64, ttl_ms: u64) -> LockRequest {
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

async fn contract(store: Arc<dyn LockStore>) {
    let never = CancellationToken::new();
    // Exclusive, all or none.
    let a = store.acquire(&req(&["x", "y"], "a", 0, 30_000), &never).await.unwrap();
    let err = store
        .acquire(&req(&["y", "z"], "b", 50, 30_000), &never)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Busy { holders, .. } if holders.len() == 1 && holders[0].owner.name == "a"),
        "{err}"
    );
    let z = store
        .acquire(&req(&["z"], "c", 0, 30_000), &never)
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
    let b = store.acquire(&req(&["x"], "b", 0, 30_000), &never).await.unwrap();
    assert!(b.fencing[&"x".into()] > a.fencing[&"x".into()], "fencing tokens grow");
    store.release(&b).await.unwrap();
    store.release(&z).await.unwrap();
    // Expiry frees a lease within its TTL.
    let short = store.acquire(&req(&["e"], "short", 0, 100), &never).await.unwrap();
    let taken = store
        .acquire(&req(&["e"], "next", 3_000, 30_000), &never)
        .await
        .unwrap();
    assert!(matches!(
        store.renew(&short, Duration::from_secs(1)).await,
        Err(LockError::Lost { .. })
    ));
    store.release(&taken).await.unwrap();
    // Cancellation ends a wait.
    let held = store.acquire(&req(&["c"], "holder", 0, 30_000), &never).await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(matches!(
        store.acquire(&req(&["c"], "w", 60_000, 30_000), &cancel).await,
        Err(LockError::Cancelled { .. })
    ));
    store.release(&held).await.unwrap();
    // Bad requests.
    assert!(matches!(
        store.acquire(&req(&[], "a", 0, 1000), &never).await,
        Err(LockError::Invalid(_))
    ));
    assert!(matches!(
        store.acquire(&req(&["a"], "a", 0, 0), &never).await,
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
                        &req(&["hot"], &format!("w{w}"), 10_000, 30_000),
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

#[tokio::test]
async fn the_file_store_keeps_the_contract() {
    let dir = std::env::temp_dir().join(format!("pit-contract-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    contract(Arc::new(FileLockStore::new(dir))).await;
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(Arc::new(MemoryLockStore::new())).await;
}

#[tokio::test]
async fn the_mock_store_keeps_the_contract_and_records_calls() {
    let mock = Arc::new(MockLockStore::new());
    contract(mock.clone()).await;
    let calls = mock.calls();
    assert_eq!(calls[0], LockCall::Acquire(vec!["x".into(), "y".into()]));
    assert!(calls.iter().any(|c| matches!(c, LockCall::Renew(_))));
}

#[tokio::test]
async fn the_mock_store_can_be_told_to_fail() {
    let mock = MockLockStore::new();
    mock.fail_with(Some("connection reset"));
    let err = mock
        .acquire(&req(&["x"], "a", 0, 1000), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Store { .. }));
    mock.fail_with(None);
    mock.acquire(&req(&["x"], "a", 0, 1000), &CancellationToken::new())
        .await
        .unwrap();
}
