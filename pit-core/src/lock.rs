//! Exclusive locks on shared resources, held by leases.
//!
//! A suite's `lock.ids` are taken all at once through a [`LockStore`] before anything is
//! deployed, renewed while the suite runs, and released at its end. Each lease carries a
//! fencing token per id that only ever grows, so a resource can refuse a stale holder.
//!
//! [`FileLockStore`] is the embedded store `pit run` uses without a Lock Manager: a JSON state
//! file guarded by an OS file lock, safe between several `pit` processes on one machine. The
//! Lock Manager's HTTP client (pit-lock) implements the same trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::naming::Escaped;
use crate::pitfile::LockId;

/// Who asks for a lock, shown to whoever waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockOwner {
    /// A readable name, such as `pit run 01jq…/checkout on ci-runner-3`.
    pub name: String,
    /// The run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// The CI job, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
}

/// A request for several locks at once.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// The ids, all or none.
    pub ids: Vec<LockId>,
    /// Who asks.
    pub owner: LockOwner,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
    /// How long to wait for the ids to be free.
    pub wait: Duration,
}

/// Held locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Lease id.
    pub id: String,
    /// The ids held.
    pub ids: Vec<LockId>,
    /// Fencing token per id: larger than any earlier holder's.
    pub fencing: BTreeMap<LockId, u64>,
    /// Unix milliseconds after which the lease is lost unless renewed.
    pub expires_at_ms: u64,
    /// Who holds it.
    pub owner: LockOwner,
    /// Holders this lease replaced because their process was gone (the embedded store, after
    /// a `pit` was killed): say so to whoever took it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<HolderInfo>,
}

impl LockError {
    /// [`LockError::Backend`] without an error underneath.
    pub fn backend(store: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Backend {
            store: store.into(),
            message: message.into(),
            source: None,
        }
    }

    /// [`LockError::Backend`] caused by `source`; `message` says what went wrong in words
    /// (the source's own text, when it adds nothing, is not repeated by
    /// [`error_chain`](crate::engine::error_chain)).
    pub fn backend_caused_by(
        store: impl Into<String>,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            store: store.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// Someone holding an id another wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The id.
    pub id: LockId,
    /// Who holds it.
    pub owner: LockOwner,
    /// Unix milliseconds when their lease ends unless renewed.
    pub expires_at_ms: u64,
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The ids stayed held for the whole wait.
    #[error("locks {} still held after waiting {}s: {} (hint: wait for that run to end, or raise `lock.timeout`)", list_ids(.wanted), .waited.as_secs(), list_holders(.holders))]
    Busy {
        /// What was asked for.
        wanted: Vec<LockId>,
        /// Who holds them.
        holders: Vec<Holder>,
        /// How long PIT waited.
        waited: Duration,
    },
    /// The lease expired or was taken away; whatever it protected is no longer exclusive.
    #[error("lease `{lease}` on {} was lost (it expired or was force-released)", list_ids(.ids))]
    Lost {
        /// The lease.
        lease: String,
        /// Its ids.
        ids: Vec<LockId>,
    },
    /// The lease was taken by another identity (another Lock Manager token): only that one,
    /// or an admin, may renew or release it. The lease stays as it was.
    #[error("lease `{lease}` was taken with another token: only that token or an admin token may renew or release it")]
    NotHolder {
        /// The lease.
        lease: String,
    },
    /// The wait was cancelled.
    #[error("stopped waiting for locks {} because the run is ending", list_ids(.wanted))]
    Cancelled {
        /// What was asked for.
        wanted: Vec<LockId>,
    },
    /// The request makes no sense.
    #[error("invalid lock request: {0}")]
    Invalid(String),
    /// A store behind a network (a database, the Lock Manager) failed.
    #[error("lock store `{store}` failed: {message}")]
    Backend {
        /// The store, without credentials (such as `postgres://127.0.0.1:5432/pit`).
        store: String,
        /// What went wrong.
        message: String,
        /// The error underneath, where there is one (the database driver's, the HTTP
        /// client's): reachable by `downcast_ref`.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store itself failed.
    #[error("lock store `{}` failed", path.display())]
    Store {
        /// The store.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn list_ids(ids: &[LockId]) -> String {
    ids.iter()
        .map(|i| format!("`{}`", Escaped(&i.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_holders(hs: &[Holder]) -> String {
    hs.iter()
        .map(|h| format!("`{}` held by {}", Escaped(&h.id.0), Escaped(&h.owner.name)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Takes, renews and releases leases.
///
/// ```
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// use std::time::Duration;
/// use pit_core::lock::{FileLockStore, LockOwner, LockRequest, LockStore};
/// # let state = tempfile::tempdir().unwrap();
/// let store = FileLockStore::new(state.path().join("locks"));
/// let req = LockRequest {
///     ids: vec!["shared-db".into()],
///     owner: LockOwner { name: "doc example".into(), ..Default::default() },
///     ttl: Duration::from_secs(30),
///     wait: Duration::from_secs(1),
/// };
/// let lease = store.acquire(&req, &Default::default()).await?;
/// let lease = store.renew(&lease, Duration::from_secs(30)).await?;
/// store.release(&lease).await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes every id of `req` at once, waiting up to `req.wait` for them to be free.
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError>;

    /// Extends a lease by `ttl` from now. [`LockError::Lost`] if it is no longer held.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError>;

    /// Gives the ids back. Releasing a lease that is already gone is not an error.
    async fn release(&self, lease: &Lease) -> Result<(), LockError>;

    /// [`acquire`](Self::acquire), telling `progress` where the request stands while it waits
    /// (its place in the queue, who holds the ids). Stores without a queue never call it.
    async fn acquire_with_progress(
        &self,
        req: &LockRequest,
        cancel: &CancellationToken,
        progress: &Progress<'_>,
    ) -> Result<Lease, LockError> {
        let _ = progress;
        self.acquire(req, cancel).await
    }
}

/// A callback told where a waiting request stands (see
/// [`LockStore::acquire_with_progress`]).
pub type Progress<'a> = dyn for<'w> Fn(&'w WaitProgress) + Send + Sync + 'a;

/// Where a waiting request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitProgress {
    /// 1 when only holders are in the way; n when n - 1 earlier requests for an overlapping
    /// set of ids wait ahead of it (first come, first served).
    pub position: u32,
    /// Who holds the ids now.
    pub holders: Vec<HolderInfo>,
}

/// A holder as shown to waiters and in lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderInfo {
    /// The id.
    pub id: LockId,
    /// Who holds it.
    pub owner: LockOwner,
    /// Unix milliseconds when the lease ends unless renewed.
    pub expires_at_ms: u64,
}

impl From<&Holder> for HolderInfo {
    fn from(h: &Holder) -> Self {
        Self {
            id: h.id.clone(),
            owner: h.owner.clone(),
            expires_at_ms: h.expires_at_ms,
        }
    }
}

/// `id held by owner`, with control characters escaped (both come from outside).
///
/// ```
/// use pit_core::lock::{HolderInfo, LockOwner};
/// let h = HolderInfo { id: "db".into(), owner: LockOwner { name: "ci\n".into(), ..Default::default() }, expires_at_ms: 0 };
/// assert_eq!(h.to_string(), "db held by ci\\n");
/// ```
impl std::fmt::Display for HolderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} held by {}", Escaped(&self.id.0), Escaped(&self.owner.name))
    }
}

/// Why one attempt to acquire did not succeed: who holds the ids, and for stores with a queue,
/// the request's place in it.
#[derive(Debug, Clone, Default)]
pub struct Blocked {
    /// Holders of the wanted ids.
    pub holders: Vec<Holder>,
    /// The place in the queue (1: next).
    pub position: u32,
    /// Try again after this long even if nothing is announced: set when only other waiters
    /// are in the way, one of which may have died without saying so.
    pub recheck: Option<Duration>,
}

impl From<Vec<Holder>> for Blocked {
    fn from(holders: Vec<Holder>) -> Self {
        Self {
            holders,
            position: 1,
            recheck: None,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks a request before any store sees it.
///
/// # Errors
/// [`LockError::Invalid`] for no ids, empty ids, or a zero TTL.
pub fn validate(req: &LockRequest) -> Result<(), LockError> {
    if req.ids.is_empty() {
        return Err(LockError::Invalid("no lock ids".into()));
    }
    if req.ids.iter().any(|i| i.as_str().trim().is_empty()) {
        return Err(LockError::Invalid("empty lock id".into()));
    }
    if req.ttl.is_zero() {
        return Err(LockError::Invalid("the lease TTL must be longer than zero".into()));
    }
    Ok(())
}

/// The shared state of a lock table: who holds what, and the last fencing token per id.
/// Both [`FileLockStore`] and the in-memory test store keep one.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockTable {
    /// Last fencing token handed out per id.
    #[serde(default)]
    pub fencing: BTreeMap<LockId, u64>,
    /// Current holders.
    #[serde(default)]
    pub held: BTreeMap<LockId, Held>,
}

/// One held id in a [`LockTable`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// Lease id.
    pub lease: String,
    /// Holder.
    pub owner: LockOwner,
    /// Its fencing token.
    pub token: u64,
    /// Expiry, Unix ms.
    pub expires_at_ms: u64,
    /// The process that holds it, where the store knows it (the embedded store): a holder on
    /// this host whose process is gone is taken over at once instead of blocking until expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<HolderProcess>,
}

/// The process holding an embedded lock: host, boot, pid and the pid's start time, so that a
/// reused pid or a reboot is not taken for the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderProcess {
    /// The host name.
    pub host: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The pid.
    pub pid: u32,
    /// When the pid started, in clock ticks since boot (`/proc/PID/stat`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

impl Held {
    /// This holder of `id`, as shown to others.
    pub fn info(&self, id: &LockId) -> HolderInfo {
        HolderInfo {
            id: id.clone(),
            owner: self.owner.clone(),
            expires_at_ms: self.expires_at_ms,
        }
    }
}

impl HolderProcess {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: host_name(),
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|b| b.trim().to_owned()),
            pid,
            start: process_start(pid),
        }
    }

    /// Whether this process is known to be gone, as seen from `here` (this host): only a
    /// process of the same host can be judged; one elsewhere is never taken for gone.
    pub fn is_gone(&self, here: &HolderProcess) -> bool {
        if self.host != here.host {
            return false;
        }
        if let (Some(then), Some(now)) = (&self.boot, &here.boot) {
            if then != now {
                return true; // the host rebooted since
            }
        }
        if self.pid == here.pid {
            return self.start.is_some() && here.start.is_some() && self.start != here.start;
        }
        match (self.start, process_start(self.pid)) {
            (Some(then), Some(now)) => then != now,
            _ => !process_exists(self.pid),
        }
    }
}

/// This host's name.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// When `pid` started, where `/proc` tells.
fn process_start(pid: u32) -> Option<u64> {
    crate::process::ProcStat::of(i32::try_from(pid).ok()?).map(|s| s.start)
}

/// Whether a process with `pid` exists (signal 0; EPERM means it does).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl LockTable {
    /// Tries to take every id at `now`: the lease, or who is in the way.
    ///
    /// # Errors
    /// The holders of the ids that are taken.
    pub fn try_acquire(&mut self, req: &LockRequest, now: u64) -> Result<Lease, Vec<Holder>> {
        self.held.retain(|_, h| h.expires_at_ms > now);
        let busy: Vec<Holder> = req
            .ids
            .iter()
            .filter_map(|id| {
                self.held.get(id).map(|h| Holder {
                    id: id.clone(),
                    owner: h.owner.clone(),
                    expires_at_ms: h.expires_at_ms,
                })
            })
            .collect();
        if !busy.is_empty() {
            return Err(busy);
        }
        let lease = ulid::Ulid::new().to_string().to_lowercase();
        let expires_at_ms = now + u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX / 2);
        let mut fencing = BTreeMap::new();
        for id in &req.ids {
            let token = self.fencing.get(id).copied().unwrap_or(0) + 1;
            self.fencing.insert(id.clone(), token);
            fencing.insert(id.clone(), token);
            self.held.insert(
                id.clone(),
                Held {
                    lease: lease.clone(),
                    owner: req.owner.clone(),
                    token,
                    expires_at_ms,
                    process: None,
                },
            );
        }
        Ok(Lease {
            id: lease,
            ids: req.ids.clone(),
            fencing,
            expires_at_ms,
            owner: req.owner.clone(),
            taken_over: Vec::new(),
        })
    }

    /// Extends `lease` to `now + ttl` if every id is still held by it.
    ///
    /// # Errors
    /// [`LockError::Lost`] otherwise.
    pub fn renew(&mut self, lease: &Lease, ttl: Duration, now: u64) -> Result<Lease, LockError> {
        let holds_all = lease.ids.iter().all(|id| {
            self.held
                .get(id)
                .is_some_and(|h| h.lease == lease.id && h.expires_at_ms > now)
        });
        if !holds_all {
            return Err(LockError::Lost {
                lease: lease.id.clone(),
                ids: lease.ids.clone(),
            });
        }
        let expires_at_ms = now + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
        for id in &lease.ids {
            if let Some(h) = self.held.get_mut(id) {
                h.expires_at_ms = expires_at_ms;
            }
        }
        Ok(Lease {
            expires_at_ms,
            ..lease.clone()
        })
    }

    /// Frees the ids `lease` holds.
    pub fn release(&mut self, lease: &Lease) {
        self.held.retain(|_, h| h.lease != lease.id);
    }

    /// Frees every id whose holder's process is gone, as seen from `here`; what was freed.
    pub fn free_gone_holders(&mut self, here: &HolderProcess) -> Vec<HolderInfo> {
        let mut freed = Vec::new();
        self.held.retain(|id, h| {
            let gone = h.process.as_ref().is_some_and(|p| p.is_gone(here));
            if gone {
                freed.push(h.info(id));
            }
            !gone
        });
        freed
    }

    /// Frees `ids` whoever holds them; the holders freed.
    pub fn force_release(&mut self, ids: &[LockId]) -> Vec<HolderInfo> {
        ids.iter()
            .filter_map(|id| self.held.remove(id).map(|h| h.info(id)))
            .collect()
    }
}

/// Waits for `attempt` to succeed until `req.wait` passes or `cancel` fires. Every store's
/// acquire is built on it.
///
/// A store that learns of releases (in memory, PostgreSQL's NOTIFY) passes `released`, a
/// receiver subscribed *before* the first attempt and bumped on every release, so no release is
/// missed; it is retried on each release and when the first holder's lease runs out. Without
/// it (the file store, which has no way to be told) it retries with backoff, 25 ms doubling to
/// 250 ms.
///
/// # Errors
/// [`LockError::Busy`] naming the holders, [`LockError::Cancelled`], or the attempt's error.
pub async fn wait_for<F, Fut>(
    req: &LockRequest,
    cancel: &CancellationToken,
    mut released: Option<&mut tokio::sync::watch::Receiver<u64>>,
    progress: &Progress<'_>,
    mut attempt: F,
) -> Result<Lease, LockError>
where
    F: FnMut() -> Fut + Send,
    Fut: std::future::Future<Output = Result<Result<Lease, Blocked>, LockError>> + Send,
{
    validate(req)?;
    // tokio's clock, so that waits cost nothing under a paused clock in tests.
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(25);
    let mut last: Option<WaitProgress> = None;
    loop {
        let blocked = match attempt().await? {
            Ok(lease) => return Ok(lease),
            Err(blocked) => blocked,
        };
        let waited = start.elapsed();
        if waited >= req.wait {
            return Err(LockError::Busy {
                wanted: req.ids.clone(),
                holders: blocked.holders,
                waited,
            });
        }
        let now = WaitProgress {
            position: blocked.position,
            holders: blocked.holders.iter().map(HolderInfo::from).collect(),
        };
        if last.as_ref() != Some(&now) {
            progress(&now);
            last = Some(now);
        }
        let retry_in = if released.is_some() {
            // The first holder's expiry, by our clock, so at least 10 ms on: a skewed clock
            // costs a retry, never a spin.
            let expiry = blocked
                .holders
                .iter()
                .map(|h| h.expires_at_ms.saturating_sub(now_ms()))
                .min();
            match (expiry, blocked.recheck) {
                (Some(e), Some(r)) => Duration::from_millis(e.max(10)).min(r),
                (Some(e), None) => Duration::from_millis(e.max(10)),
                (None, Some(r)) => r,
                (None, None) => Duration::from_millis(10),
            }
        } else {
            let d = delay;
            delay = (delay * 2).min(Duration::from_millis(250));
            d
        };
        let release = async {
            let announced = match released.as_deref_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => false,
            };
            if !announced {
                // No store to hear from (or it went away): only the timer wakes.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = release => {}
            () = tokio::time::sleep(retry_in.min(req.wait - waited)) => {}
            () = cancel.cancelled() => return Err(LockError::Cancelled { wanted: req.ids.clone() }),
        }
    }
}

/// The embedded lock store: a directory holding `locks.json`, changed only under an exclusive
/// OS lock on `locks.lock`, so several `pit` processes on one machine exclude each other.
#[derive(Debug, Clone)]
pub struct FileLockStore {
    dir: PathBuf,
}

impl FileLockStore {
    /// A store in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the table under the lock, lets `change` edit it, and writes it back atomically.
    async fn with_table<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut LockTable) -> T + Send + 'static,
    ) -> Result<T, LockError> {
        let dir = self.dir.clone();
        let store_err = {
            let dir = dir.clone();
            move |source| LockError::Store {
                path: dir.clone(),
                source,
            }
        };
        tokio::task::spawn_blocking(move || -> Result<T, std::io::Error> {
            use fs4::fs_std::FileExt;
            std::fs::create_dir_all(&dir)?;
            let guard = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("locks.lock"))?;
            guard.lock_exclusive()?;
            let path = dir.join("locks.json");
            let mut table: LockTable = match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockTable::default(),
                Err(e) => return Err(e),
            };
            let out = change(&mut table);
            let tmp = dir.join(format!("locks.json.{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&table).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &path)?;
            FileExt::unlock(&guard)?;
            Ok(out)
        })
        .await
        .map_err(|e| store_err(std::io::Error::other(e)))?
        .map_err(store_err)
    }
}

impl FileLockStore {
    /// The table as it is now, without expired holders (for `pit lock list --embedded`).
    ///
    /// # Errors
    /// [`LockError::Store`] when the directory cannot be read or written.
    pub async fn table(&self) -> Result<LockTable, LockError> {
        self.with_table(|t| {
            let now = now_ms();
            t.held.retain(|_, h| h.expires_at_ms > now);
            t.clone()
        })
        .await
    }

    /// Frees `ids` whoever holds them (for `pit lock force-release --embedded`); the holders
    /// freed. A `pit run` that held them learns at its next renewal that its lease was lost.
    ///
    /// # Errors
    /// [`LockError::Store`] when the directory cannot be read or written.
    pub async fn force_release(&self, ids: &[LockId]) -> Result<Vec<HolderInfo>, LockError> {
        let ids = ids.to_vec();
        self.with_table(move |t| t.force_release(&ids)).await
    }
}

#[async_trait]
impl LockStore for FileLockStore {
    /// Takes the ids, waiting with backoff. A holder on this host whose process is gone (a
    /// `pit` killed with SIGKILL) is taken over at once: the lease lists it in
    /// [`Lease::taken_over`].
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        let here = HolderProcess::current();
        wait_for(req, cancel, None, &|_| {}, || {
            let (req, here) = (req.clone(), here.clone());
            self.with_table(move |t| {
                let freed = t.free_gone_holders(&here);
                let mut lease = t.try_acquire(&req, now_ms()).map_err(Blocked::from)?;
                for id in &lease.ids {
                    if let Some(h) = t.held.get_mut(id) {
                        h.process = Some(here.clone());
                    }
                }
                lease.taken_over = freed.into_iter().filter(|f| lease.ids.contains(&f.id)).collect();
                Ok(lease)
            })
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        let lease = lease.clone();
        self.with_table(move |t| t.renew(&lease, ttl, now_ms())).await?
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let lease = lease.clone();
        self.with_table(move |t| t.release(&lease)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str], owner: &str, wait_ms: u64) -> LockRequest {
        LockRequest {
            ids: ids.iter().map(|i| LockId::from(*i)).collect(),
            owner: LockOwner {
                name: owner.into(),
                ..Default::default()
            },
            ttl: Duration::from_secs(30),
            wait: Duration::from_millis(wait_ms),
        }
    }

    /// A store in a fresh directory, removed with the returned guard.
    fn store(name: &str) -> (tempfile::TempDir, FileLockStore) {
        let guard = tempfile::Builder::new()
            .prefix(&format!("pit-locks-{name}-"))
            .tempdir()
            .unwrap();
        let store = FileLockStore::new(guard.path().join("locks"));
        (guard, store)
    }

    #[tokio::test]
    async fn a_second_holder_waits_then_fails_naming_the_first() {
        let (_dir, s) = store("busy");
        let _a = s
            .acquire(&req(&["db"], "run-a", 0), &CancellationToken::new())
            .await
            .unwrap();
        let err = s
            .acquire(&req(&["db", "topic"], "run-b", 100), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("`db` held by run-a"), "{err}");
        // All or none: `topic` was not taken by the failed request.
        s.acquire(&req(&["topic"], "run-c", 0), &CancellationToken::new())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn release_frees_the_ids_and_fencing_tokens_grow() {
        let (_dir, s) = store("fencing");
        let a = s
            .acquire(&req(&["db"], "a", 0), &CancellationToken::new())
            .await
            .unwrap();
        s.release(&a).await.unwrap();
        let b = s
            .acquire(&req(&["db"], "b", 0), &CancellationToken::new())
            .await
            .unwrap();
        assert!(b.fencing[&LockId::from("db")] > a.fencing[&LockId::from("db")]);
        // Releasing twice is harmless; renewing a released lease says it is lost.
        s.release(&a).await.unwrap();
        assert!(matches!(
            s.renew(&a, Duration::from_secs(1)).await,
            Err(LockError::Lost { .. })
        ));
        assert!(s.renew(&b, Duration::from_secs(60)).await.unwrap().expires_at_ms > b.expires_at_ms);
    }

    #[tokio::test]
    async fn expired_leases_are_taken_over() {
        let (_dir, s) = store("expiry");
        let mut short = req(&["db"], "a", 0);
        short.ttl = Duration::from_millis(50);
        let a = s.acquire(&short, &CancellationToken::new()).await.unwrap();
        // Waiting longer than the TTL lets the second request in.
        let b = s
            .acquire(&req(&["db"], "b", 2000), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(b.owner.name, "b");
        assert!(matches!(
            s.renew(&a, Duration::from_secs(1)).await,
            Err(LockError::Lost { .. })
        ));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_it_is_released() {
        let (_dir, s) = store("handover");
        let a = s
            .acquire(&req(&["db"], "a", 0), &CancellationToken::new())
            .await
            .unwrap();
        let s2 = s.clone();
        let waiter =
            tokio::spawn(async move { s2.acquire(&req(&["db"], "b", 10_000), &CancellationToken::new()).await });
        s.release(&a).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap().owner.name, "b");
    }

    #[tokio::test]
    async fn cancelling_a_wait_ends_it() {
        let (_dir, s) = store("cancel");
        let _a = s
            .acquire(&req(&["db"], "a", 0), &CancellationToken::new())
            .await
            .unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = s.acquire(&req(&["db"], "b", 60_000), &cancel).await.unwrap_err();
        assert!(matches!(err, LockError::Cancelled { .. }), "{err}");
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let (_dir, s) = store("invalid");
        assert!(matches!(
            s.acquire(&req(&[], "a", 0), &CancellationToken::new()).await,
            Err(LockError::Invalid(_))
        ));
        assert!(matches!(
            s.acquire(&req(&[" "], "a", 0), &CancellationToken::new()).await,
            Err(LockError::Invalid(_))
        ));
    }
}
