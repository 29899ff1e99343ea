//! The PostgreSQL lock store.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Config, Pool, Runtime};
use pit_core::lock::{validate, wait_for, Blocked, Holder, Lease, LockError, LockRequest, Progress};
use pit_core::pitfile::LockId;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::api::{Caller, LockEntry, LockList};
use crate::store::ServiceStore;

/// The channel a release (and a waiter leaving the queue) notifies when ids it frees have queue
/// places; `schema.sql` names it in `pg_notify`, and a test keeps the two the same.
const RELEASED_CHANNEL: &str = "pit_locks_released";

/// An arbitrary, fixed key for the migration advisory lock.
const MIGRATION_LOCK: i64 = 0x5049_545f_4c4f_434b; // "PIT_LOCK"

/// How often a waiter that is behind other waiters only (no holder) looks again, in case one
/// ahead died without leaving the queue. Live waiters announce it when they leave.
const QUEUE_RECHECK: Duration = Duration::from_secs(1);

/// The schema and its functions (`schema.sql`), each statement safe to run again; they run
/// at start in one transaction under an advisory lock.
const MIGRATIONS: &str = include_str!("schema.sql");

/// Work kept off the hot path, at most once per [`SWEEP_EVERY`] per store: expired holders
/// nobody asked for again within a day, releases remembered for a day, the queue places of
/// sessions that are gone, and the ids' counts of queue places (`pit_lock_sweep`).
const SWEEP: &str = "SELECT pit_lock_sweep()";

/// The common case in one statement, before `pit_lock_take`'s locked path ([`MIGRATIONS`]): one
/// id, free, that nobody queues for, taken by a request that takes no place in the queue. The
/// `UPDATE` locks the row and, under `READ COMMITTED`, re-checks its `WHERE` on the row's latest
/// version when a concurrent request changed it first, so two requests never both take it.
/// When it takes nothing, the row as this statement read it answers `blocked` with its holder,
/// unless the holder is the v1 caller itself (`$6`, `$7`: a re-entrant acquire renews). No row
/// at all (an id never seen, an id whose place is queued for, a holder that just left, a
/// re-entrant v1 acquire): the function decides.
///
/// Parameters: id, lease, owner, ttl (ms), principal, v1 owner, v1 principal restriction. The
/// columns are `pit_lock_take`'s.
const TAKE_ONE: &str = "
WITH took AS (
    UPDATE pit_lock_fencing AS f
       SET token = f.token + 1, lease_id = $2, owner = $3, principal = $5,
           acquired_at = now(), expires_at = now() + $4 * interval '1 millisecond'
     WHERE f.lock_id = $1 AND f.queued = 0 AND (f.lease_id IS NULL OR f.expires_at <= now())
    RETURNING f.lock_id, f.owner, f.token, f.expires_at)
SELECT 'acquired'::text, t.lock_id, t.owner, t.token, (extract(epoch FROM t.expires_at) * 1000)::bigint,
       0::bigint, NULL::bigint
  FROM took t
UNION ALL
SELECT 'blocked'::text, f.lock_id, f.owner, NULL::bigint, (extract(epoch FROM f.expires_at) * 1000)::bigint,
       0::bigint, NULL::bigint
  FROM pit_lock_fencing f
 WHERE NOT EXISTS (SELECT 1 FROM took) AND f.lock_id = $1
   AND f.lease_id IS NOT NULL AND f.expires_at > now()
   AND NOT coalesce($6::text IS NOT NULL AND f.owner->>'name' = $6
                    AND ($7::text IS NULL OR f.principal IS NOT DISTINCT FROM $7), false)";

/// How often [`SWEEP`] runs (on the next operation after this long).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// SQL that holds when a row's `principal` is the one in parameter `$p`, or `$p` is NULL (an
/// admin or an open service: every principal).
macro_rules! principal_is {
    ($p:literal) => {
        concat!("(", $p, "::text IS NULL OR principal IS NOT DISTINCT FROM ", $p, ")")
    };
}

/// Unix milliseconds of a timestamptz column, as SQL.
macro_rules! ms {
    ($col:literal) => {
        concat!("(extract(epoch FROM ", $col, ") * 1000)::bigint")
    };
}

/// Locks kept in PostgreSQL, with a first-come first-served queue of waiters.
///
/// Waiters are woken by the database: a release of an id that has waiters sends `NOTIFY`, and
/// the store LISTENs on one connection of its own, shared by all its waiters. A waiter's place
/// in the queue is a row tied to that connection's server session: a waiter that goes away
/// leaves it, and when the Lock Manager is killed its waiters drop out of the queue with the
/// session. Every expiry is computed with the database's clock.
///
/// ```no_run
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// use pit_lock::ServiceStore;
/// let store = pit_lock::PgLockStore::connect("postgres://pit@127.0.0.1:5432/pit").await?;
/// let locks = store.list().await?;
/// println!("{} ids held, {} requests waiting", locks.locks.len(), locks.queue.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgLockStore {
    pool: Pool,
    url: String,
    name: String,
    /// When [`SWEEP`] last ran (Unix ms), shared by the store's clones.
    swept_at: Arc<AtomicU64>,
    /// The one listener of the store and its clones, once a request has waited.
    listener: Arc<tokio::sync::Mutex<Option<Arc<Listener>>>>,
}

impl std::fmt::Debug for PgLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockStore")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

use pit_core::naming::redact_conninfo as redact;

fn to_ms(ttl: Duration) -> f64 {
    ttl.as_millis() as f64
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The store's one `LISTEN` connection, shared by all its waiters: every notification's
/// payload goes to each of them, and their places in the queue are tied to its session (so
/// they are void once the instance dies).
struct Listener {
    /// Its session's pid.
    pid: i32,
    payloads: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Cancelled when the connection ended: the places tied to it are void.
    ended: CancellationToken,
    /// Why it ended.
    reason: Arc<std::sync::OnceLock<String>>,
    /// Kept open while the listener is in use (dropping it closes the connection).
    _client: tokio_postgres::Client,
}

/// A place in the queue, left (with a notification to those behind) when dropped.
struct QueueSlot {
    seq: AtomicI64,
    pool: Pool,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        let seq = self.seq.load(Ordering::SeqCst);
        if seq == 0 {
            return;
        }
        let pool = self.pool.clone();
        // Drop cannot wait; the row also dies with the waiter's session if this never runs.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(client) = pool.get().await {
                    let _ = client.execute("SELECT pit_lock_leave($1)", &[&seq]).await;
                }
            });
        }
    }
}

impl PgLockStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, LockError> {
        Self::connect_with_pool_size(url, 16).await
    }

    /// [`connect`](Self::connect) with at most `size` pooled connections (and one more, shared
    /// by all waiters, once a request waits).
    ///
    /// # Errors
    /// [`LockError::Backend`] when the database cannot be reached or migrated.
    pub async fn connect_with_pool_size(url: &str, size: usize) -> Result<Self, LockError> {
        let name = redact(url);
        let mut cfg = Config {
            url: Some(url.to_owned()),
            ..Config::default()
        };
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(size.max(1)));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| LockError::backend_caused_by(name.clone(), e.to_string(), e))?;
        let store = Self {
            pool,
            url: url.to_owned(),
            name,
            swept_at: Arc::new(AtomicU64::new(0)),
            listener: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn fail(&self, e: impl std::fmt::Display) -> LockError {
        LockError::backend(self.name.clone(), e.to_string())
    }

    /// A database error as a [`LockError`]: what the request carried that the database refused
    /// (SQLSTATE class 22, data exceptions such as a NUL character) is the caller's
    /// [`LockError::Invalid`]; the rest is [`LockError::Backend`] with the database's own text
    /// (tokio-postgres alone says only "db error").
    fn db(&self, e: tokio_postgres::Error) -> LockError {
        match e.as_db_error() {
            Some(db) if db.code().code().starts_with("22") => LockError::Invalid(format!(
                "the database refused a value: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            )),
            Some(db) => {
                // The database's own words (severity, message, detail, hint) and its code; the
                // source is its error.
                let message = format!("{db} (SQLSTATE {})", db.code().code());
                match e.into_source() {
                    Some(source) => LockError::backend_caused_by(self.name.clone(), message, source),
                    None => LockError::backend(self.name.clone(), message),
                }
            }
            None => LockError::backend_caused_by(self.name.clone(), pit_core::engine::error_chain(&e), e),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LockError> {
        self.pool
            .get()
            .await
            .map_err(|e| LockError::backend_caused_by(self.name.clone(), pit_core::engine::error_chain(&e), e))
    }

    async fn migrate(&self) -> Result<(), LockError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.db(e))?;
        // `IF NOT EXISTS` answers every run with NOTICEs ("relation … already exists, skipping"),
        // which tokio-postgres logs at INFO: not worth a line each.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await
            .map_err(|e| self.db(e))?;
        tx.batch_execute(MIGRATIONS).await.map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    /// One attempt: [`TAKE_ONE`] where it applies, else `pit_lock_take` (see the migration);
    /// its rows, never `unknown`:
    /// ids seen for the first time get their fencing rows in a statement of their own (holding
    /// no other lock), then the attempt is made again.
    async fn attempt(
        &self,
        client: &deadpool_postgres::Object,
        ids: &[String],
        lease_id: &str,
        attempt: &Attempt<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, LockError> {
        if let ([id], None, None) = (ids, attempt.seq, attempt.pid) {
            let one = client.prepare_cached(TAKE_ONE).await.map_err(|e| self.db(e))?;
            let rows = client
                .query(
                    &one,
                    &[
                        id,
                        &lease_id,
                        attempt.owner,
                        &attempt.ttl_ms,
                        &attempt.principal,
                        &attempt.v1_owner,
                        &attempt.only,
                    ],
                )
                .await
                .map_err(|e| self.db(e))?;
            if !rows.is_empty() {
                return Ok(rows);
            }
        }
        let statement = client
            .prepare_cached("SELECT * FROM pit_lock_take($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .await
            .map_err(|e| self.db(e))?;
        for _ in 0..2 {
            let rows = client
                .query(
                    &statement,
                    &[
                        &ids,
                        &lease_id,
                        attempt.owner,
                        &attempt.ttl_ms,
                        &attempt.principal,
                        &attempt.seq,
                        &attempt.pid,
                        &attempt.v1_owner,
                        &attempt.only,
                    ],
                )
                .await
                .map_err(|e| self.db(e))?;
            match rows.first() {
                None => return Err(self.fail("pit_lock_take answered nothing")),
                Some(first) if first.get::<_, &str>(0) == "unknown" => {
                    let create = client
                        .prepare_cached(
                            "INSERT INTO pit_lock_fencing (lock_id, token)
                             SELECT DISTINCT i, 0 FROM unnest($1::text[]) AS i ORDER BY i
                             ON CONFLICT (lock_id) DO NOTHING",
                        )
                        .await
                        .map_err(|e| self.db(e))?;
                    client.execute(&create, &[&ids]).await.map_err(|e| self.db(e))?;
                }
                Some(_) => return Ok(rows),
            }
        }
        Err(self.fail("the fencing rows of the ids could not be created"))
    }

    /// One attempt, one round trip (`pit_lock_take`): the lease, or what is in the way.
    /// With `queue` (the waiter's session pid and its slot), a request that is blocked takes a
    /// place in the queue on its first try.
    async fn try_acquire(
        &self,
        req: &LockRequest,
        principal: Option<&str>,
        queue: Option<(i32, &QueueSlot)>,
    ) -> Result<Result<Lease, Blocked>, LockError> {
        let ids = wanted_ids(req);
        let owner = serde_json::to_value(&req.owner).map_err(|e| self.fail(e))?;
        let seq = queue.map(|(_, s)| s.seq.load(Ordering::SeqCst)).filter(|s| *s != 0);
        let client = self.client().await?;
        self.sweep_if_due();
        if let Some(seq) = seq {
            // A queued waiter first looks without locking: when a release wakes many, only
            // those with nothing in their way lock the rows of their ids.
            if let Some(blocked) = self.probe(&client, &ids, seq).await? {
                return Ok(Err(blocked));
            }
        }
        let lease_id = ulid::Ulid::new().to_string().to_lowercase();
        let how = Attempt {
            owner: &owner,
            ttl_ms: to_ms(req.ttl),
            principal,
            seq,
            pid: queue.map(|(pid, _)| pid),
            v1_owner: None,
            only: None,
        };
        let rows = self.attempt(&client, &ids, &lease_id, &how).await?;
        let first = &rows[0];
        if first.get::<_, &str>(0) == "blocked" {
            if let (Some((_, slot)), None, Some(place)) = (queue, seq, first.get::<_, Option<i64>>(6)) {
                slot.seq.store(place, Ordering::SeqCst);
            }
            return Ok(Err(blocked_by(&rows)));
        }
        if let Some((_, slot)) = queue {
            slot.seq.store(0, Ordering::SeqCst);
        }
        let fencing = rows.iter().map(|r| (LockId(r.get(1)), as_u64(r.get(3)))).collect();
        Ok(Ok(Lease {
            id: lease_id,
            ids: req.ids.clone(),
            fencing,
            expires_at_ms: as_u64(first.get(4)),
            owner: req.owner.clone(),
            taken_over: Vec::new(),
        }))
    }

    /// Runs [`SWEEP`] in the background when it is due (at most once per [`SWEEP_EVERY`] per
    /// store; several instances each sweep, which is harmless).
    fn sweep_if_due(&self) {
        let now = pit_core::lock::now_ms();
        let last = self.swept_at.load(Ordering::Relaxed);
        let every = u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every
            || self
                .swept_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pool = self.pool.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(client) = pool.get().await {
                    if let Err(e) = client.batch_execute(SWEEP).await {
                        tracing::warn!(error = %e, "sweeping expired locks and old releases failed; next time, then");
                    }
                }
            });
        }
    }

    /// What is in the way of the queued request `seq`, read without locking: `None` when
    /// nothing seems to be (the locked attempt decides).
    async fn probe(
        &self,
        client: &tokio_postgres::Client,
        ids: &[String],
        seq: i64,
    ) -> Result<Option<Blocked>, LockError> {
        let held = client
            .query(
                concat!(
                    "SELECT lock_id, owner, ",
                    ms!("expires_at"),
                    " FROM pit_locks WHERE lock_id = ANY($1) AND expires_at > now()"
                ),
                &[&ids],
            )
            .await
            .map_err(|e| self.db(e))?;
        let ahead: i64 = client
            .query_one(
                "SELECT count(*) FROM pit_lock_waiters w WHERE ids && $1 AND seq < $2 AND EXISTS (
                     SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid AND a.backend_start = w.backend_start)",
                &[&ids, &seq],
            )
            .await
            .map_err(|e| self.db(e))?
            .get(0);
        if held.is_empty() && ahead == 0 {
            return Ok(None);
        }
        let holders = held
            .iter()
            .map(|r| Holder {
                id: LockId(r.get(0)),
                owner: serde_json::from_value(r.get(1)).unwrap_or_default(),
                expires_at_ms: as_u64(r.get(2)),
            })
            .collect();
        Ok(Some(blocked(holders, ahead)))
    }

    /// The store's listener, connected (and LISTENing) on first use and again after its
    /// connection ended.
    async fn listener(&self) -> Result<Arc<Listener>, LockError> {
        let mut current = self.listener.lock().await;
        if let Some(listener) = current.as_ref().filter(|l| !l.ended.is_cancelled()) {
            return Ok(listener.clone());
        }
        let (client, mut connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| self.db(e))?;
        let (payloads, _) = tokio::sync::broadcast::channel(1024);
        let (ended, reason) = (CancellationToken::new(), Arc::new(std::sync::OnceLock::new()));
        let (tx, end, why) = (payloads.clone(), ended.clone(), reason.clone());
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let gone = loop {
                match futures_util::StreamExt::next(&mut messages).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        // No waiter listening is no error.
                        let _ = tx.send(Arc::from(n.payload()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break e.to_string(),
                    None => break "the connection closed".to_owned(),
                }
            };
            let _ = why.set(gone);
            end.cancel();
        });
        client
            .batch_execute(&format!("LISTEN {RELEASED_CHANNEL}"))
            .await
            .map_err(|e| self.db(e))?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| self.db(e))?
            .get(0);
        let listener = Arc::new(Listener {
            pid,
            payloads,
            ended,
            reason,
            _client: client,
        });
        *current = Some(listener.clone());
        Ok(listener)
    }

    /// Waits in the queue: hears releases through the store's one listener, takes a place in
    /// the queue tied to that listener's session, and tries again on every release of an id it
    /// wants.
    async fn wait_in_queue(
        &self,
        req: &LockRequest,
        principal: Option<&str>,
        cancel: &CancellationToken,
        progress: &Progress<'_>,
    ) -> Result<Lease, LockError> {
        let listener = self.listener().await?;
        // Subscribed before the first try, so that no release in between is missed.
        let mut payloads = listener.payloads.subscribe();
        let (wake, mut released) = tokio::sync::watch::channel(0u64);
        let wanted = wanted_ids(req);
        let slot = QueueSlot {
            seq: AtomicI64::new(0),
            pool: self.pool.clone(),
        };
        let drive = async {
            let heard = async {
                loop {
                    match payloads.recv().await {
                        Ok(p) if wakes(&p, &wanted, slot.seq.load(Ordering::SeqCst)) => {
                            wake.send_modify(|n| *n += 1);
                        }
                        Ok(_) => {}
                        // It missed some: look again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => wake.send_modify(|n| *n += 1),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            };
            tokio::select! {
                () = heard => {}
                () = listener.ended.cancelled() => {}
            }
            listener
                .reason
                .get()
                .cloned()
                .unwrap_or_else(|| "the connection closed".to_owned())
        };
        let pid = listener.pid;
        let wait = wait_for(req, cancel, Some(&mut released), progress, || {
            self.try_acquire(req, principal, Some((pid, &slot)))
        });
        let result = tokio::select! {
            result = wait => result,
            message = drive => Err(self.fail(format!("listening for releases failed: {message}"))),
        };
        // A waiter that gave up (its wait ran out) leaves the queue before it answers, so a
        // request right after it does not find it in the way. (When the request itself goes
        // away, `slot` leaves the queue as it is dropped.)
        let seq = slot.seq.swap(0, Ordering::SeqCst);
        if seq != 0 {
            if let Ok(client) = self.client().await {
                let _ = client.execute("SELECT pit_lock_leave($1)", &[&seq]).await;
            }
        }
        result
    }

    /// Whether `lease_id` is held now by a principal other than `principal`.
    async fn held_by_another(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        lease_id: &str,
        principal: Option<&str>,
    ) -> Result<bool, LockError> {
        Ok(client
            .query_opt(
                "SELECT 1 FROM pit_locks WHERE lease_id = $1 AND expires_at > now()
                   AND principal IS DISTINCT FROM $2 LIMIT 1",
                &[&lease_id, &principal],
            )
            .await
            .map_err(|e| self.db(e))?
            .is_some())
    }

    /// Wakes the first waiter of each of `ids` (`pit_lock_wake`).
    async fn announce(&self, client: &impl deadpool_postgres::GenericClient, ids: &[String]) -> Result<(), LockError> {
        client
            .execute("SELECT pit_lock_wake($1)", &[&ids])
            .await
            .map(drop)
            .map_err(|e| self.db(e))
    }
}

#[async_trait]
impl ServiceStore for PgLockStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ping(&self) -> Result<(), LockError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| self.db(e))
    }

    async fn acquire_as(
        &self,
        req: &LockRequest,
        caller: &Caller,
        cancel: &CancellationToken,
        progress: &Progress<'_>,
    ) -> Result<Lease, LockError> {
        validate(req)?;
        let principal = caller.principal.as_deref();
        // The fast path takes no place in the queue and opens no connection of its own.
        let first = self.try_acquire(req, principal, None).await?;
        match first {
            Ok(lease) => Ok(lease),
            Err(blocked) if req.wait.is_zero() => Err(LockError::Busy {
                wanted: req.ids.clone(),
                holders: blocked.holders,
                waited: Duration::ZERO,
            }),
            Err(_) if cancel.is_cancelled() => Err(LockError::Cancelled {
                wanted: req.ids.clone(),
            }),
            Err(_) => self.wait_in_queue(req, principal, cancel, progress).await,
        }
    }

    async fn renew_as(&self, lease_id: &str, ttl: Duration, caller: &Caller) -> Result<Lease, LockError> {
        let client = self.client().await?;
        let only = caller.restricted_to();
        let rows = client
            .query(
                concat!(
                    "WITH mine AS (SELECT lock_id FROM pit_lock_fencing
                                    WHERE lease_id = $1 AND expires_at > now() AND ",
                    principal_is!("$3"),
                    " ORDER BY lock_id FOR UPDATE)
                     UPDATE pit_lock_fencing f SET expires_at = now() + $2 * interval '1 millisecond'
                       FROM mine WHERE f.lock_id = mine.lock_id
                     RETURNING f.lock_id, f.token, f.owner, ",
                    ms!("f.expires_at")
                ),
                &[&lease_id, &to_ms(ttl), &only],
            )
            .await
            .map_err(|e| self.db(e))?;
        if rows.is_empty() && only.is_some() && self.held_by_another(&client, lease_id, only).await? {
            return Err(LockError::NotHolder {
                lease: lease_id.to_owned(),
            });
        }
        lease_from_rows(lease_id, &rows).ok_or_else(|| LockError::Lost {
            lease: lease_id.to_owned(),
            ids: Vec::new(),
        })
    }

    async fn release_as(&self, lease_id: &str, caller: &Caller) -> Result<bool, LockError> {
        // One round trip (`pit_lock_release`): a client whose first release got through but
        // whose answer was lost (its Lock Manager died, the database restarted) asks again and
        // gets the same answer, not "already gone"; releases are remembered for a day.
        let client = self.client().await?;
        self.sweep_if_due();
        let statement = client
            .prepare_cached("SELECT * FROM pit_lock_release($1, $2)")
            .await
            .map_err(|e| self.db(e))?;
        let row = client
            .query_one(&statement, &[&lease_id, &caller.restricted_to()])
            .await
            .map_err(|e| self.db(e))?;
        if row.get::<_, &str>(0) == "not-holder" {
            return Err(LockError::NotHolder {
                lease: lease_id.to_owned(),
            });
        }
        Ok(row.get(1))
    }

    async fn force_release(&self, ids: &[LockId]) -> Result<Vec<Lease>, LockError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                concat!(
                    // Every id of each lease holding one of `ids` (expired ones too).
                    "WITH doomed AS (SELECT lock_id, lease_id FROM pit_lock_fencing WHERE lease_id IN (
                                         SELECT lease_id FROM pit_lock_fencing WHERE lock_id = ANY($1) AND lease_id IS NOT NULL)
                                      ORDER BY lock_id FOR UPDATE)
                     UPDATE pit_lock_fencing f SET lease_id = NULL FROM doomed
                      WHERE f.lock_id = doomed.lock_id AND f.lease_id = doomed.lease_id
                     RETURNING doomed.lease_id, f.lock_id, f.token, f.owner, ",
                    ms!("f.expires_at")
                ),
                &[&ids],
            )
            .await
            .map_err(|e| self.db(e))?;
        let mut leases: Vec<Lease> = Vec::new();
        for r in &rows {
            let lease: String = r.get(0);
            let id = LockId(r.get(1));
            let token = as_u64(r.get(2));
            match leases.iter_mut().find(|l| l.id == lease) {
                Some(l) => {
                    l.ids.push(id.clone());
                    l.fencing.insert(id, token);
                }
                None => leases.push(Lease {
                    id: lease,
                    ids: vec![id.clone()],
                    fencing: [(id, token)].into(),
                    expires_at_ms: as_u64(r.get(4)),
                    owner: serde_json::from_value(r.get(3)).unwrap_or_default(),
                    taken_over: Vec::new(),
                }),
            }
        }
        if !leases.is_empty() {
            let freed: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
            self.announce(&client, &freed).await?;
        }
        Ok(leases)
    }

    async fn list(&self) -> Result<LockList, LockError> {
        let client = self.client().await?;
        let held = client
            .query(
                concat!(
                    "SELECT lock_id, lease_id, owner, token, ",
                    ms!("acquired_at"),
                    ", ",
                    ms!("expires_at"),
                    ", principal FROM pit_locks WHERE expires_at > now() ORDER BY lock_id"
                ),
                &[],
            )
            .await
            .map_err(|e| self.db(e))?;
        let waiting = client
            .query(
                concat!(
                    "SELECT w.ids, w.owner, ",
                    ms!("w.since"),
                    " FROM pit_lock_waiters w JOIN pg_stat_activity a
                       ON a.pid = w.pid AND a.backend_start = w.backend_start
                     ORDER BY w.seq"
                ),
                &[],
            )
            .await
            .map_err(|e| self.db(e))?;
        let waiting = waiting
            .iter()
            .map(|r| {
                let ids = r.get::<_, Vec<String>>(0).into_iter().map(LockId).collect();
                (
                    ids,
                    serde_json::from_value(r.get(1)).unwrap_or_default(),
                    as_u64(r.get(2)),
                )
            })
            .collect();
        let locks = held
            .iter()
            .map(|r| LockEntry {
                id: LockId(r.get(0)),
                lease: Some(r.get(1)),
                principal: r.get(6),
                owner: serde_json::from_value(r.get(2)).unwrap_or_default(),
                fencing_token: as_u64(r.get(3)),
                acquired_at_ms: as_u64(r.get(4)),
                expires_at_ms: as_u64(r.get(5)),
                waiting: Vec::new(),
            })
            .collect();
        Ok(LockList::assemble(locks, waiting))
    }

    async fn held_count(&self) -> Result<u64, LockError> {
        let n: i64 = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM pit_locks WHERE expires_at > now()", &[])
            .await
            .map_err(|e| self.db(e))?
            .get(0);
        Ok(as_u64(n))
    }

    async fn v1_acquire(
        &self,
        id: &LockId,
        owner: &str,
        ttl: Duration,
        caller: &Caller,
    ) -> Result<Option<u64>, LockError> {
        // The shared behaviour (renew when `owner` holds it, else take it without waiting) in
        // one round trip.
        let req = crate::store::v1_request(id, owner, ttl);
        validate(&req)?;
        let ids = wanted_ids(&req);
        let owner_json = serde_json::to_value(&req.owner).map_err(|e| self.fail(e))?;
        let client = self.client().await?;
        self.sweep_if_due();
        let lease_id = ulid::Ulid::new().to_string().to_lowercase();
        let how = Attempt {
            owner: &owner_json,
            ttl_ms: to_ms(ttl),
            principal: caller.principal.as_deref(),
            seq: None,
            pid: None,
            v1_owner: Some(owner),
            only: caller.restricted_to(),
        };
        let rows = self.attempt(&client, &ids, &lease_id, &how).await?;
        let first = &rows[0];
        Ok((first.get::<_, &str>(0) != "blocked").then(|| as_u64(first.get(4))))
    }

    async fn v1_renew(
        &self,
        ids: &[LockId],
        owner: &str,
        ttl: Duration,
        caller: &Caller,
    ) -> Result<Vec<(LockId, u64)>, LockError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let rows = self
            .client()
            .await?
            .query(
                concat!(
                    "WITH mine AS (SELECT lock_id FROM pit_lock_fencing
                                    WHERE lock_id = ANY($1) AND lease_id IS NOT NULL AND owner->>'name' = $2
                                      AND expires_at > now() AND ",
                    principal_is!("$4"),
                    " ORDER BY lock_id FOR UPDATE)
                     UPDATE pit_lock_fencing f SET expires_at = now() + $3 * interval '1 millisecond'
                       FROM mine WHERE f.lock_id = mine.lock_id
                     RETURNING f.lock_id, ",
                    ms!("f.expires_at")
                ),
                &[&ids, &owner, &to_ms(ttl), &caller.restricted_to()],
            )
            .await
            .map_err(|e| self.db(e))?;
        Ok(rows.iter().map(|r| (LockId(r.get(0)), as_u64(r.get(1)))).collect())
    }

    async fn v1_release(&self, ids: &[LockId], owner: &str, caller: &Caller) -> Result<Vec<LockId>, LockError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(concat!(
                // Expired too, as long as nobody took it: the existing service answers 200,
                // and its deployer dies on a 400 here. Each freed id with waiters wakes its first
                // waiter at commit: one round trip.
                "WITH mine AS (SELECT lock_id FROM pit_lock_fencing
                                WHERE lock_id = ANY($1) AND lease_id IS NOT NULL AND owner->>'name' = $2 AND ",
                principal_is!("$3"),
                " ORDER BY lock_id FOR UPDATE),
                 freed AS (UPDATE pit_lock_fencing f SET lease_id = NULL FROM mine
                            WHERE f.lock_id = mine.lock_id RETURNING f.lock_id, f.queued),
                 woke AS (SELECT pit_lock_wake(array_agg(lock_id) FILTER (WHERE queued > 0)) FROM freed)
                 SELECT freed.lock_id FROM freed, woke"
            ))
            .await
            .map_err(|e| self.db(e))?;
        let rows = client
            .query(&statement, &[&ids, &owner, &caller.restricted_to()])
            .await
            .map_err(|e| self.db(e))?;
        Ok(rows.iter().map(|r| LockId(r.get(0))).collect())
    }
}

/// Whether a notification's `payload` wakes the waiter of `wanted` ids at queue place `seq`
/// (0: not known yet). Each line names an id, and after a tab the place of its first live
/// waiter (`pit_lock_wake`): only that waiter can be served next. A waiter whose place is not
/// known yet (its first try is on its way back) wakes for every line of its ids, so it cannot
/// miss its turn; a line without a place wakes every waiter of the id.
fn wakes(payload: &str, wanted: &[String], seq: i64) -> bool {
    payload.lines().any(|line| {
        let (id, first) = line.split_once('\t').unwrap_or((line, ""));
        wanted.iter().any(|w| w == id) && (seq == 0 || first.is_empty() || first.parse() == Ok(seq))
    })
}

/// The ids of `req` as text, as the tables and notifications hold them.
fn wanted_ids(req: &LockRequest) -> Vec<String> {
    req.ids.iter().map(ToString::to_string).collect()
}

/// The parameters of `pit_lock_take` beyond the ids and the lease id.
struct Attempt<'a> {
    owner: &'a serde_json::Value,
    ttl_ms: f64,
    /// The principal the lease is taken for.
    principal: Option<&'a str>,
    /// The waiter's place in the queue, once it has one.
    seq: Option<i64>,
    /// The waiter's session (its LISTEN connection), to take a place in the queue.
    pid: Option<i32>,
    /// v1: renew instead when this owner holds the ids already.
    v1_owner: Option<&'a str>,
    /// v1: the principal whose leases it may renew (`None`: any).
    only: Option<&'a str>,
}

/// What `blocked` rows of `pit_lock_take` say is in the way.
fn blocked_by(rows: &[tokio_postgres::Row]) -> Blocked {
    let holders = rows
        .iter()
        .filter_map(|r| {
            Some(Holder {
                id: LockId(r.get::<_, Option<String>>(1)?),
                owner: serde_json::from_value(r.get(2)).unwrap_or_default(),
                expires_at_ms: as_u64(r.get(4)),
            })
        })
        .collect();
    blocked(holders, rows.first().map_or(0, |r| r.get(5)))
}

/// What is in the way: `holders`, and `ahead` earlier waiters.
fn blocked(holders: Vec<Holder>, ahead: i64) -> Blocked {
    let recheck = holders.is_empty().then_some(QUEUE_RECHECK);
    Blocked {
        holders,
        position: u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1),
        recheck,
    }
}

fn lease_from_rows(lease_id: &str, rows: &[tokio_postgres::Row]) -> Option<Lease> {
    let first = rows.first()?;
    let mut ids: Vec<LockId> = rows.iter().map(|r| LockId(r.get(0))).collect();
    ids.sort();
    Some(Lease {
        id: lease_id.to_owned(),
        fencing: rows.iter().map(|r| (LockId(r.get(0)), as_u64(r.get(1)))).collect(),
        ids,
        owner: serde_json::from_value(first.get(2)).unwrap_or_default(),
        expires_at_ms: as_u64(first.get(3)),
        taken_over: Vec::new(),
    })
}

crate::store::lock_store_via_service!(PgLockStore);

#[cfg(test)]
mod tests {
    use super::{wakes, MIGRATIONS, RELEASED_CHANNEL};

    #[test]
    fn the_schema_notifies_the_channel_the_store_listens_on() {
        let notifies = MIGRATIONS.matches("pg_notify(").count();
        assert!(notifies > 0, "schema.sql sends no notification");
        assert_eq!(
            MIGRATIONS.matches(&format!("pg_notify('{RELEASED_CHANNEL}'")).count(),
            notifies,
            "every pg_notify in schema.sql names RELEASED_CHANNEL"
        );
    }

    #[test]
    fn a_release_wakes_only_the_first_waiter_of_an_id_it_names() {
        let wanted = ["db".to_owned(), "kafka".to_owned()];
        assert!(wakes("db\t7", &wanted, 7), "the first waiter");
        assert!(!wakes("db\t7", &wanted, 9), "a waiter behind it");
        assert!(wakes("other\t3\nkafka\t9", &wanted, 9), "any line may name it");
        assert!(!wakes("other\t9", &wanted, 9), "another id");
        assert!(!wakes("dbx\t9", &wanted, 9), "ids match whole");
        assert!(wakes("db\t7", &wanted, 0), "a waiter whose place is on its way");
        assert!(wakes("db", &wanted, 9), "a line without a place wakes all");
    }
}
