//! The in-memory store: the service's semantics without PostgreSQL.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pit_core::lock::{now_ms, validate, wait_for, Blocked, Holder, Lease, LockError, LockOwner, LockRequest, Progress};
use pit_core::pitfile::LockId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{Caller, LockEntry, LockList};
use crate::store::ServiceStore;

/// How long an expired lock nobody took, and the answer to a release, are kept: as in the
/// PostgreSQL store.
const KEPT_MS: u64 = 86_400_000;

/// A waiter with only other waiters in its way looks again this often (they announce leaving,
/// so this is a safety net only).
const QUEUE_RECHECK: Duration = Duration::from_secs(1);

/// Locks kept in this process's memory, with the same answers as [`PgLockStore`]
/// (first-come first-served queue, principals, fencing tokens, the v1 leniency), but neither
/// shared between service instances nor kept across restarts. For tests, and for a throwaway
/// Lock Manager (`pit lock-manager serve --store memory`, `pit run --lock-manager-mock true`).
///
/// [`PgLockStore`]: crate::PgLockStore
///
/// ```
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// use pit_core::lock::LockStore;
/// let store = pit_lock::MemoryStore::new();
/// let req = pit_core::lock::LockRequest {
///     ids: vec!["db".into()],
///     owner: Default::default(),
///     ttl: std::time::Duration::from_secs(30),
///     wait: std::time::Duration::ZERO,
/// };
/// let lease = store.acquire(&req, &Default::default()).await?;
/// assert!(store.acquire(&req, &Default::default()).await.is_err(), "held");
/// store.release(&lease).await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Bumped on every release and every waiter leaving, to wake waiters.
    released: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    locks: BTreeMap<LockId, Row>,
    fencing: HashMap<LockId, u64>,
    waiters: BTreeMap<u64, Waiter>,
    last_seq: u64,
    released: HashMap<String, Released>,
}

#[derive(Debug, Clone)]
struct Row {
    lease: String,
    owner: LockOwner,
    token: u64,
    acquired_at_ms: u64,
    expires_at_ms: u64,
    principal: Option<String>,
}

#[derive(Debug)]
struct Waiter {
    ids: Vec<LockId>,
    owner: LockOwner,
    since_ms: u64,
}

#[derive(Debug)]
struct Released {
    held: bool,
    principal: Option<String>,
    at_ms: u64,
}

/// Whether a row taken by `principal` is one `only` may touch (`None`: every row).
fn principal_is(only: Option<&str>, principal: Option<&String>) -> bool {
    only.is_none_or(|p| principal.map(String::as_str) == Some(p))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A place in the queue, left (waking those behind) when dropped.
struct QueueSlot {
    seq: AtomicU64,
    store: MemoryStore,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        let seq = self.seq.load(Ordering::SeqCst);
        if seq != 0 {
            self.store.state().waiters.remove(&seq);
            self.store.announce();
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            released: watch::Sender::new(0),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn announce(&self) {
        self.released.send_modify(|n| *n += 1);
    }

    /// One attempt; with `queue`, a blocked request takes a place in the queue on its first.
    fn try_acquire(
        &self,
        req: &LockRequest,
        principal: Option<&str>,
        queue: Option<&QueueSlot>,
    ) -> Result<Lease, Blocked> {
        let now = now_ms();
        let mut st = self.state();
        // An expired lock stays until someone takes its id (or for a day), as in PostgreSQL.
        st.locks
            .retain(|id, r| r.expires_at_ms > now || !(req.ids.contains(id) || r.expires_at_ms + KEPT_MS < now));
        let holders: Vec<Holder> = req
            .ids
            .iter()
            .filter_map(|id| {
                st.locks.get(id).map(|r| Holder {
                    id: id.clone(),
                    owner: r.owner.clone(),
                    expires_at_ms: r.expires_at_ms,
                })
            })
            .collect();
        let seq = queue.map_or(0, |q| q.seq.load(Ordering::SeqCst));
        let ahead = st
            .waiters
            .iter()
            .filter(|(s, w)| (seq == 0 || **s < seq) && w.ids.iter().any(|id| req.ids.contains(id)))
            .count();
        if !holders.is_empty() || ahead > 0 {
            if let (Some(slot), 0) = (queue, seq) {
                st.last_seq += 1;
                let seq = st.last_seq;
                st.waiters.insert(
                    seq,
                    Waiter {
                        ids: req.ids.clone(),
                        owner: req.owner.clone(),
                        since_ms: now,
                    },
                );
                slot.seq.store(seq, Ordering::SeqCst);
            }
            let recheck = holders.is_empty().then_some(QUEUE_RECHECK);
            return Err(Blocked {
                holders,
                position: u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1),
                recheck,
            });
        }
        let lease = ulid::Ulid::new().to_string().to_lowercase();
        let expires_at_ms = now + ms(req.ttl);
        let mut fencing = BTreeMap::new();
        for id in &req.ids {
            let token = st.fencing.get(id).copied().unwrap_or(0) + 1;
            st.fencing.insert(id.clone(), token);
            fencing.insert(id.clone(), token);
            st.locks.insert(
                id.clone(),
                Row {
                    lease: lease.clone(),
                    owner: req.owner.clone(),
                    token,
                    acquired_at_ms: now,
                    expires_at_ms,
                    principal: principal.map(str::to_owned),
                },
            );
        }
        if seq != 0 {
            st.waiters.remove(&seq);
            if let Some(slot) = queue {
                slot.seq.store(0, Ordering::SeqCst);
            }
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

    /// Whether `lease_id` is held now by a principal other than `only`.
    fn held_by_another(st: &State, lease_id: &str, only: Option<&str>, now: u64) -> bool {
        only.is_some()
            && st
                .locks
                .values()
                .any(|r| r.lease == lease_id && r.expires_at_ms > now && r.principal.as_deref() != only)
    }
}

/// The lease made of `rows` (id, row), ids sorted.
fn lease_of(lease_id: &str, rows: &[(LockId, Row)]) -> Option<Lease> {
    let (_, first) = rows.first()?;
    let mut ids: Vec<LockId> = rows.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    Some(Lease {
        id: lease_id.to_owned(),
        ids,
        fencing: rows.iter().map(|(id, r)| (id.clone(), r.token)).collect(),
        expires_at_ms: first.expires_at_ms,
        owner: first.owner.clone(),
        taken_over: Vec::new(),
    })
}

#[async_trait]
impl ServiceStore for MemoryStore {
    fn name(&self) -> &str {
        "memory (this process only)"
    }

    async fn ping(&self) -> Result<(), LockError> {
        Ok(())
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
        // Subscribed before the first attempt, so that no release in between is missed.
        let mut released = self.released.subscribe();
        match self.try_acquire(req, principal, None) {
            Ok(lease) => return Ok(lease),
            Err(blocked) if req.wait.is_zero() => {
                return Err(LockError::Busy {
                    wanted: req.ids.clone(),
                    holders: blocked.holders,
                    waited: Duration::ZERO,
                })
            }
            Err(_) if cancel.is_cancelled() => {
                return Err(LockError::Cancelled {
                    wanted: req.ids.clone(),
                })
            }
            Err(_) => {}
        }
        let slot = QueueSlot {
            seq: AtomicU64::new(0),
            store: self.clone(),
        };
        wait_for(req, cancel, Some(&mut released), progress, || async {
            Ok(self.try_acquire(req, principal, Some(&slot)))
        })
        .await
        // `slot` leaves the queue here if the request did not get the lease.
    }

    async fn renew_as(&self, lease_id: &str, ttl: Duration, caller: &Caller) -> Result<Lease, LockError> {
        let only = caller.restricted_to();
        let now = now_ms();
        let mut st = self.state();
        let mut renewed = Vec::new();
        for (id, r) in &mut st.locks {
            if r.lease == lease_id && r.expires_at_ms > now && principal_is(only, r.principal.as_ref()) {
                r.expires_at_ms = now + ms(ttl);
                renewed.push((id.clone(), r.clone()));
            }
        }
        if renewed.is_empty() && Self::held_by_another(&st, lease_id, only, now) {
            return Err(LockError::NotHolder {
                lease: lease_id.to_owned(),
            });
        }
        lease_of(lease_id, &renewed).ok_or_else(|| LockError::Lost {
            lease: lease_id.to_owned(),
            ids: Vec::new(),
        })
    }

    async fn release_as(&self, lease_id: &str, caller: &Caller) -> Result<bool, LockError> {
        let only = caller.restricted_to();
        let now = now_ms();
        let mut st = self.state();
        let mut freed = Vec::new();
        st.locks.retain(|_, r| {
            let mine = r.lease == lease_id && principal_is(only, r.principal.as_ref());
            if mine {
                freed.push(r.clone());
            }
            !mine
        });
        if freed.is_empty() {
            if Self::held_by_another(&st, lease_id, only, now) {
                return Err(LockError::NotHolder {
                    lease: lease_id.to_owned(),
                });
            }
            // Released before: the same answer again (a client whose answer was lost asks twice).
            return Ok(st
                .released
                .get(lease_id)
                .is_some_and(|r| r.held && principal_is(only, r.principal.as_ref())));
        }
        let held = freed.iter().any(|r| r.expires_at_ms > now);
        st.released.entry(lease_id.to_owned()).or_insert(Released {
            held,
            principal: freed[0].principal.clone(),
            at_ms: now,
        });
        st.released.retain(|_, r| r.at_ms + KEPT_MS > now);
        drop(st);
        self.announce();
        Ok(held)
    }

    async fn force_release(&self, ids: &[LockId]) -> Result<Vec<Lease>, LockError> {
        let mut st = self.state();
        let ended: Vec<String> = ids
            .iter()
            .filter_map(|id| st.locks.get(id).map(|r| r.lease.clone()))
            .collect();
        let mut rows: Vec<(LockId, Row)> = Vec::new();
        st.locks.retain(|id, r| {
            let end = ended.contains(&r.lease);
            if end {
                rows.push((id.clone(), r.clone()));
            }
            !end
        });
        drop(st);
        let mut leases: Vec<Lease> = Vec::new();
        for lease in ended {
            if leases.iter().any(|l| l.id == lease) {
                continue;
            }
            let of: Vec<(LockId, Row)> = rows.iter().filter(|(_, r)| r.lease == lease).cloned().collect();
            leases.extend(lease_of(&lease, &of));
        }
        if !leases.is_empty() {
            self.announce();
        }
        Ok(leases)
    }

    async fn list(&self) -> Result<LockList, LockError> {
        let now = now_ms();
        let st = self.state();
        let held = st
            .locks
            .iter()
            .filter(|(_, r)| r.expires_at_ms > now)
            .map(|(id, r)| LockEntry {
                id: id.clone(),
                lease: Some(r.lease.clone()),
                principal: r.principal.clone(),
                owner: r.owner.clone(),
                fencing_token: r.token,
                acquired_at_ms: r.acquired_at_ms,
                expires_at_ms: r.expires_at_ms,
                waiting: Vec::new(),
            })
            .collect();
        let waiting = st
            .waiters
            .values()
            .map(|w| (w.ids.clone(), w.owner.clone(), w.since_ms))
            .collect();
        Ok(LockList::assemble(held, waiting))
    }

    async fn held_count(&self) -> Result<u64, LockError> {
        let now = now_ms();
        Ok(self.state().locks.values().filter(|r| r.expires_at_ms > now).count() as u64)
    }

    async fn v1_renew(
        &self,
        ids: &[LockId],
        owner: &str,
        ttl: Duration,
        caller: &Caller,
    ) -> Result<Vec<(LockId, u64)>, LockError> {
        let only = caller.restricted_to();
        let now = now_ms();
        let mut st = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let r = st.locks.get_mut(id)?;
                (r.owner.name == owner && r.expires_at_ms > now && principal_is(only, r.principal.as_ref())).then(
                    || {
                        r.expires_at_ms = now + ms(ttl);
                        (id.clone(), r.expires_at_ms)
                    },
                )
            })
            .collect())
    }

    async fn v1_release(&self, ids: &[LockId], owner: &str, caller: &Caller) -> Result<Vec<LockId>, LockError> {
        let only = caller.restricted_to();
        let mut st = self.state();
        // Expired too, as long as nobody took it: the existing service answers 200.
        let freed: Vec<LockId> = ids
            .iter()
            .filter(|id| {
                st.locks
                    .get(*id)
                    .is_some_and(|r| r.owner.name == owner && principal_is(only, r.principal.as_ref()))
            })
            .cloned()
            .collect();
        for id in &freed {
            st.locks.remove(id);
        }
        drop(st);
        if !freed.is_empty() {
            self.announce();
        }
        Ok(freed)
    }
}

crate::store::lock_store_via_service!(MemoryStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_lock_contract() {
        pit_core::testing::lock_contract(Arc::new(MemoryStore::new())).await;
    }
}
