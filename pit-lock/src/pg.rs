//! The PostgreSQL lock store.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Config, Pool, Runtime};
use pit_core::lock::{validate, wait_for, Holder, Lease, LockError, LockRequest, LockStore};
use pit_core::pitfile::LockId;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// The channel every release notifies, waking all waiters.
const RELEASED_CHANNEL: &str = "pit_locks_released";

/// An arbitrary, fixed key for the migration advisory lock.
const MIGRATION_LOCK: i64 = 0x5049_545f_4c4f_434b; // "PIT_LOCK"

const MIGRATIONS: &str = "
CREATE TABLE IF NOT EXISTS pit_lock_fencing (
    lock_id text PRIMARY KEY,
    token bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS pit_locks (
    lock_id text PRIMARY KEY,
    lease_id text NOT NULL,
    owner jsonb NOT NULL,
    token bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pit_locks_lease ON pit_locks (lease_id);
";

/// Locks kept in PostgreSQL.
///
/// ```no_run
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// let store = pit_lock::PgLockStore::connect("postgres://pit@127.0.0.1:5432/pit").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgLockStore {
    pool: Pool,
    url: String,
    name: String,
}

impl std::fmt::Debug for PgLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockStore")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

/// `url` without its password, for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl PgLockStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, LockError> {
        let name = redact(url);
        let cfg = Config {
            url: Some(url.to_owned()),
            ..Config::default()
        };
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| LockError::Backend {
                store: name.clone(),
                message: e.to_string(),
            })?;
        let store = Self {
            pool,
            url: url.to_owned(),
            name,
        };
        store.migrate().await?;
        Ok(store)
    }

    fn fail(&self, e: impl std::fmt::Display) -> LockError {
        LockError::Backend {
            store: self.name.clone(),
            message: e.to_string(),
        }
    }

    async fn migrate(&self) -> Result<(), LockError> {
        let mut client = self.pool.get().await.map_err(|e| self.fail(e))?;
        let tx = client.transaction().await.map_err(|e| self.fail(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.fail(e))?;
        tx.batch_execute(MIGRATIONS).await.map_err(|e| self.fail(e))?;
        tx.commit().await.map_err(|e| self.fail(e))
    }

    /// One attempt: the lease, or who holds what was asked.
    async fn try_acquire(&self, req: &LockRequest) -> Result<Result<Lease, Vec<Holder>>, LockError> {
        let ids: Vec<String> = req.ids.iter().map(ToString::to_string).collect();
        let ttl_ms = i64::try_from(req.ttl.as_millis()).unwrap_or(i64::MAX);
        let owner = serde_json::to_value(&req.owner).map_err(|e| self.fail(e))?;
        let mut client = self.pool.get().await.map_err(|e| self.fail(e))?;
        let tx = client.transaction().await.map_err(|e| self.fail(e))?;
        // Writers of the lock table take turns: no serialisation failures, ever.
        tx.batch_execute(
            "LOCK TABLE pit_locks IN SHARE ROW EXCLUSIVE MODE; DELETE FROM pit_locks WHERE expires_at <= now();",
        )
        .await
        .map_err(|e| self.fail(e))?;
        let held = tx
            .query(
                "SELECT lock_id, owner, (extract(epoch FROM expires_at) * 1000)::bigint FROM pit_locks WHERE lock_id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(|e| self.fail(e))?;
        if !held.is_empty() {
            let holders = held
                .iter()
                .map(|r| Holder {
                    id: LockId(r.get(0)),
                    owner: serde_json::from_value(r.get(1)).unwrap_or_default(),
                    expires_at_ms: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                })
                .collect();
            tx.rollback().await.map_err(|e| self.fail(e))?;
            return Ok(Err(holders));
        }
        let lease_id = ulid::Ulid::new().to_string().to_lowercase();
        let rows = tx
            .query(
                "WITH tokens AS (
                     INSERT INTO pit_lock_fencing (lock_id, token) SELECT unnest($1::text[]), 1
                     ON CONFLICT (lock_id) DO UPDATE SET token = pit_lock_fencing.token + 1
                     RETURNING lock_id, token)
                 INSERT INTO pit_locks (lock_id, lease_id, owner, token, expires_at)
                 SELECT lock_id, $2, $3, token, now() + $4 * interval '1 millisecond' FROM tokens
                 RETURNING lock_id, token, (extract(epoch FROM expires_at) * 1000)::bigint",
                &[&ids, &lease_id, &owner, &(ttl_ms as f64)],
            )
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        let fencing = rows
            .iter()
            .map(|r| (LockId(r.get(0)), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            .collect();
        let expires_at_ms = rows
            .first()
            .map_or(0, |r| u64::try_from(r.get::<_, i64>(2)).unwrap_or(0));
        Ok(Ok(Lease {
            id: lease_id,
            ids: req.ids.clone(),
            fencing,
            expires_at_ms,
            owner: req.owner.clone(),
        }))
    }
}

#[async_trait]
impl LockStore for PgLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        validate(req)?;
        // Waiters are woken by the database: every release sends NOTIFY on RELEASED_CHANNEL.
        // Pooled connections do not hand out notifications, so a wait has a connection of its
        // own, LISTENing before its first try so that no release in between is missed.
        let (listener, mut connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| self.fail(e))?;
        let (wake, mut released) = tokio::sync::watch::channel(0u64);
        let drive = async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        wake.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(e) => return e.to_string(),
                }
            }
            "the connection closed".to_owned()
        };
        let wait = async {
            listener
                .batch_execute(&format!("LISTEN {RELEASED_CHANNEL}"))
                .await
                .map_err(|e| self.fail(e))?;
            wait_for(req, cancel, Some(&mut released), || self.try_acquire(req)).await
        };
        tokio::select! {
            result = wait => result,
            message = drive => Err(self.fail(format!("listening for releases failed: {message}"))),
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX) as f64;
        let mut client = self.pool.get().await.map_err(|e| self.fail(e))?;
        let tx = client.transaction().await.map_err(|e| self.fail(e))?;
        let rows = tx
            .query(
                "UPDATE pit_locks SET expires_at = now() + $2 * interval '1 millisecond'
                 WHERE lease_id = $1 AND expires_at > now()
                 RETURNING (extract(epoch FROM expires_at) * 1000)::bigint",
                &[&lease.id, &ttl_ms],
            )
            .await
            .map_err(|e| self.fail(e))?;
        if rows.len() != lease.ids.len() {
            // Part of it expired (or was force-released): never revive a lost lease.
            tx.rollback().await.map_err(|e| self.fail(e))?;
            return Err(LockError::Lost {
                lease: lease.id.clone(),
                ids: lease.ids.clone(),
            });
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        let expires_at_ms = rows
            .first()
            .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0));
        Ok(Lease {
            expires_at_ms,
            ..lease.clone()
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let client = self.pool.get().await.map_err(|e| self.fail(e))?;
        let freed = client
            .execute("DELETE FROM pit_locks WHERE lease_id = $1", &[&lease.id])
            .await
            .map_err(|e| self.fail(e))?;
        if freed > 0 {
            // Wakes every waiter (see `acquire`).
            client
                .execute("SELECT pg_notify($1, $2)", &[&RELEASED_CHANNEL, &lease.id])
                .await
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://pit:s3cret@db:5432/pit"), "postgres://db:5432/pit");
        assert_eq!(redact("postgres://db/pit"), "postgres://db/pit");
    }
}
