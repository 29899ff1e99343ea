//! The PostgreSQL lock store against a real server: `scripts/postgres start DIR` prints the
//! `DATABASE_URL` these tests need (`scripts/test` does it for you). Each test gets a database
//! of its own.

use pit_lock::ServiceStore as _;
use std::sync::Arc;
use std::time::Duration;

use pit_core::lock::{LockError, LockOwner, LockRequest, LockStore};
use pit_lock::PgLockStore;
use tokio_util::sync::CancellationToken;

mod common;
use common::fresh_database;

#[tokio::test]
async fn the_postgres_store_keeps_the_lock_contract() {
    let url = fresh_database("contract").await;
    pit_core::testing::lock_contract(Arc::new(PgLockStore::connect(&url).await.unwrap())).await;
}

#[tokio::test]
async fn two_instances_starting_at_once_both_migrate_safely() {
    let url = fresh_database("migrate").await;
    let (a, b) = tokio::join!(PgLockStore::connect(&url), PgLockStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    // And they share one lock table.
    let req = |owner: &str| LockRequest {
        ids: vec!["shared".into()],
        owner: LockOwner {
            name: owner.into(),
            ..Default::default()
        },
        ttl: Duration::from_secs(30),
        wait: Duration::ZERO,
    };
    let lease = a.acquire(&req("a"), &CancellationToken::new()).await.unwrap();
    let err = b.acquire(&req("b"), &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, LockError::Busy { .. }), "{err}");
    a.release(&lease).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    let err = PgLockStore::connect("postgres://pit:s3cret@127.0.0.1:1/pit")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("postgres://127.0.0.1:1/pit"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn a_waiter_is_handed_the_lock_when_it_is_released() {
    let url = fresh_database("handover").await;
    let store = Arc::new(PgLockStore::connect(&url).await.unwrap());
    let req = |owner: &str, wait: u64| LockRequest {
        ids: vec!["db".into()],
        owner: LockOwner {
            name: owner.into(),
            ..Default::default()
        },
        ttl: Duration::from_secs(60),
        wait: Duration::from_secs(wait),
    };
    let held = store
        .acquire(&req("first", 0), &CancellationToken::new())
        .await
        .unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.acquire(&req("second", 60), &CancellationToken::new()).await })
    };
    store.release(&held).await.unwrap();
    // The lease is 60 s and the wait 60 s: only the release can have let the waiter in.
    let lease = waiter.await.unwrap().unwrap();
    assert_eq!(lease.owner.name, "second");
}

#[tokio::test]
async fn a_release_asked_again_gets_the_same_answer() {
    // A client whose release got through but whose answer was lost asks again: it must not
    // hear "it was already gone" (which would mean its lease was lost).
    let url = fresh_database("release_again").await;
    let store = PgLockStore::connect(&url).await.unwrap();
    let lease = store
        .acquire(
            &pit_core::testing::lock_request(&["db"], "a", 0, 60_000),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(
        store
            .release_as(&lease.id, &pit_lock::api::Caller::anyone())
            .await
            .unwrap(),
        "held when released"
    );
    assert!(
        store
            .release_as(&lease.id, &pit_lock::api::Caller::anyone())
            .await
            .unwrap(),
        "the same answer the second time"
    );
    assert!(
        !store
            .release_as("01jq00000000000000000nolease", &pit_lock::api::Caller::anyone())
            .await
            .unwrap(),
        "an unknown lease was not held"
    );
}

#[tokio::test]
async fn a_database_failure_keeps_the_drivers_error_as_its_source_without_repeating_it() {
    let admin = std::env::var("DATABASE_URL").unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    let err = PgLockStore::connect(&format!("{base}/pit_no_such_database"))
        .await
        .unwrap_err();
    let LockError::Backend { message, source, .. } = &err else {
        panic!("not a backend error: {err}");
    };
    assert!(message.contains("does not exist"), "{message}");
    let source = source.as_deref().expect("the driver's error is kept");
    assert!(
        source.downcast_ref::<deadpool_postgres::PoolError>().is_some(),
        "{source:?}"
    );
    // Printed once: the chain does not repeat what the message already says.
    let chain = pit_core::engine::error_chain(&err);
    assert_eq!(chain.matches("does not exist").count(), 1, "{chain}");
}

#[tokio::test]
async fn a_waiter_whose_wait_ran_out_is_out_of_the_queue_when_it_answers() {
    // Found as a rare failure of the contract test: the timed-out waiter's row was deleted in
    // the background, so a request right after it could find it still queued. With one pooled
    // connection, the next request always got the connection first.
    let store = PgLockStore::connect_with_pool_size(&fresh_database("timed_out_waiter").await, 1)
        .await
        .unwrap();
    let never = CancellationToken::new();
    let a = store
        .acquire(&pit_core::testing::lock_request(&["a"], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    for round in 0..20 {
        let err = store
            .acquire(
                &pit_core::testing::lock_request(&["a", "z"], "waiter", 30, 60_000),
                &never,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        let z = store
            .acquire(&pit_core::testing::lock_request(&["z"], "next", 0, 60_000), &never)
            .await
            .unwrap_or_else(|e| panic!("round {round}: z is free, yet {e}"));
        store.release(&z).await.unwrap();
    }
    store.release(&a).await.unwrap();
}

/// Runs `sql` on the database at `url`; the rows' first columns as text.
async fn sql(url: &str, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let rows = client.simple_query(sql).await?;
    Ok(rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_owned()),
            _ => None,
        })
        .collect())
}

#[tokio::test]
async fn locks_held_in_the_former_layout_are_kept_through_the_upgrade() {
    let url = fresh_database("upgrade").await;
    // The layout before the holders moved onto the fencing rows: a lock held for an hour, with
    // token 41.
    sql(
        &url,
        "CREATE TABLE pit_lock_fencing (lock_id text PRIMARY KEY, token bigint NOT NULL);
         CREATE TABLE pit_locks (lock_id text PRIMARY KEY, lease_id text NOT NULL, owner jsonb NOT NULL,
             token bigint NOT NULL, expires_at timestamptz NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now(),
             principal text);
         INSERT INTO pit_lock_fencing VALUES ('db', 41), ('free', 7);
         INSERT INTO pit_locks (lock_id, lease_id, owner, token, expires_at)
             VALUES ('db', 'old-lease', '{\"name\": \"before-upgrade\"}', 41, now() + interval '1 hour');",
    )
    .await
    .unwrap();
    let store = PgLockStore::connect(&url).await.unwrap();
    // Migrating again changes nothing.
    let store2 = PgLockStore::connect(&url).await.unwrap();
    let list = store.list().await.unwrap();
    let held: Vec<(String, String, u64)> = list
        .locks
        .iter()
        .map(|l| (l.id.to_string(), l.owner.name.clone(), l.fencing_token))
        .collect();
    assert_eq!(held, [("db".to_owned(), "before-upgrade".to_owned(), 41)]);
    let never = CancellationToken::new();
    let err = store2
        .acquire(&pit_core::testing::lock_request(&["db"], "after", 0, 60_000), &never)
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Busy { .. }), "{err}");
    let caller = pit_lock::api::Caller::anyone();
    assert!(store.release_as("old-lease", &caller).await.unwrap(), "it was held");
    let lease = store2
        .acquire(
            &pit_core::testing::lock_request(&["db", "free"], "after", 0, 60_000),
            &never,
        )
        .await
        .unwrap();
    let tokens: Vec<u64> = ["db", "free"].iter().map(|id| lease.fencing[&(*id).into()]).collect();
    assert_eq!(tokens, [42, 8], "tokens carry on from the former layout");
    // What is held reads as before; writing through the old name is refused, with what to do.
    assert_eq!(
        sql(&url, "SELECT owner->>'name' FROM pit_locks").await.unwrap().len(),
        2
    );
    let err = sql(&url, "DELETE FROM pit_locks").await.unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert!(db.message().contains("read-only view"), "{db}");
    assert!(
        db.hint()
            .unwrap_or_default()
            .contains("Replace every Lock Manager instance"),
        "{db}"
    );
    store.release(&lease).await.unwrap();
}

#[tokio::test]
async fn a_place_left_by_a_dead_session_never_keeps_an_id_and_the_sweep_recounts_it() {
    let url = fresh_database("dead_place").await;
    let store = PgLockStore::connect(&url).await.unwrap();
    let never = CancellationToken::new();
    let first = store
        .acquire(&pit_core::testing::lock_request(&["x"], "first", 0, 60_000), &never)
        .await
        .unwrap();
    store.release(&first).await.unwrap();
    // A place whose session is gone (its Lock Manager was killed while it waited).
    sql(
        &url,
        "INSERT INTO pit_lock_waiters (ids, owner, pid, backend_start)
             VALUES ('{x}', '{\"name\": \"killed\"}', 0, now() - interval '1 hour');
         UPDATE pit_lock_fencing SET queued = 1 WHERE lock_id = 'x';",
    )
    .await
    .unwrap();
    let lease = store
        .acquire(&pit_core::testing::lock_request(&["x"], "next", 0, 60_000), &never)
        .await
        .expect("the dead place is not in the way");
    store.release(&lease).await.unwrap();
    assert!(store.list().await.unwrap().queue.is_empty());
    sql(&url, "SELECT pit_lock_sweep()").await.unwrap();
    assert_eq!(
        sql(&url, "SELECT queued::text FROM pit_lock_fencing WHERE lock_id = 'x'")
            .await
            .unwrap(),
        ["0"]
    );
    assert!(sql(&url, "SELECT seq FROM pit_lock_waiters").await.unwrap().is_empty());
}

/// Starts a waiter for `x` as `owner` on `store`; returns once it has its place in the queue.
async fn queued_waiter(
    store: &Arc<PgLockStore>,
    owner: &str,
) -> tokio::task::JoinHandle<Result<pit_core::lock::Lease, LockError>> {
    let (queued, joined) = tokio::sync::oneshot::channel::<()>();
    let queued = std::sync::Mutex::new(Some(queued));
    let (store, owner) = (store.clone(), owner.to_owned());
    let waiter = tokio::spawn(async move {
        let progress = move |_: &pit_core::lock::WaitProgress| {
            if let Some(q) = queued.lock().unwrap().take() {
                let _ = q.send(());
            }
        };
        store
            .acquire_with_progress(
                &pit_core::testing::lock_request(&["x"], &owner, 60_000, 60_000),
                &CancellationToken::new(),
                &progress,
            )
            .await
    });
    joined.await.expect("the waiter took a place in the queue");
    waiter
}

#[tokio::test]
async fn waiters_share_one_listener_and_a_lost_listener_ends_their_waits_then_is_replaced() {
    let url = fresh_database("listener").await;
    let store = Arc::new(PgLockStore::connect_with_pool_size(&url, 2).await.unwrap());
    let never = CancellationToken::new();
    let holder = store
        .acquire(&pit_core::testing::lock_request(&["x"], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    // Ten waiters, on a pool of two: they queue on one more connection, not ten.
    let mut waiters = Vec::new();
    for i in 0..10 {
        waiters.push(queued_waiter(&store, &format!("waiter {i}")).await);
    }
    let sessions = sql(&url, "SELECT DISTINCT pid::text FROM pit_lock_waiters")
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "one listening session: {sessions:?}");
    // The listener's session ends (a database restart, an administrator): every wait tied to it
    // ends with an error saying so, and none of them got the lock.
    sql(&url, &format!("SELECT pg_terminate_backend({})", sessions[0]))
        .await
        .unwrap();
    for w in waiters {
        let err = w.await.unwrap().unwrap_err();
        assert!(
            matches!(err, LockError::Backend { .. }) && err.to_string().contains("listening for releases failed"),
            "{err}"
        );
    }
    // The next waiter listens anew, and is handed the lock on release.
    let next = queued_waiter(&store, "next").await;
    store.release(&holder).await.unwrap();
    let lease = next.await.unwrap().expect("served after the listener was replaced");
    assert_eq!(lease.owner.name, "next");
    store.release(&lease).await.unwrap();
}
