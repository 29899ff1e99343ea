//! One contract, every `LockStore`: the embedded file store and the in-memory doubles behave
//! alike (the Lock Manager's HTTP client joins them in pit-lock).

use std::sync::Arc;

use pit_core::lock::{FileLockStore, LockError, LockStore};
use pit_core::testing::{lock_contract, lock_request, LockCall, MemoryLockStore, MockLockStore};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_file_store_keeps_the_contract() {
    let dir = tempfile::Builder::new().prefix("pit-contract-file-").tempdir().unwrap();
    lock_contract(Arc::new(FileLockStore::new(dir.path().join("locks")))).await;
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    lock_contract(Arc::new(MemoryLockStore::new())).await;
}

#[tokio::test]
async fn the_mock_store_keeps_the_contract_and_records_calls() {
    let mock = Arc::new(MockLockStore::new());
    lock_contract(mock.clone()).await;
    let calls = mock.calls();
    assert_eq!(calls[0], LockCall::Acquire(vec!["x".into(), "y".into()]));
    assert!(calls.iter().any(|c| matches!(c, LockCall::Renew(_))));
}

#[tokio::test]
async fn the_mock_store_can_be_told_to_fail() {
    let mock = MockLockStore::new();
    mock.fail_with(Some("connection reset"));
    let err = mock
        .acquire(&lock_request(&["x"], "a", 0, 1000), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Store { .. }));
    mock.fail_with(None);
    mock.acquire(&lock_request(&["x"], "a", 0, 1000), &CancellationToken::new())
        .await
        .unwrap();
}
