//! What the Lock Manager service keeps its locks in: the [`ServiceStore`] trait, with
//! [`PgLockStore`](crate::PgLockStore) for real deployments and [`MemoryStore`] for tests and
//! a throwaway service (`pit lock-manager serve --store memory`).
//!
//! Every store gives the same answers: the contract tests of the HTTP API run against both.

use std::time::Duration;

use async_trait::async_trait;
use pit_core::lock::{Lease, LockError, LockRequest, Progress};
use pit_core::pitfile::LockId;
use tokio_util::sync::CancellationToken;

use crate::api::{Caller, LockList};

pub use crate::memory::MemoryStore;

/// A v1 acquire as a request: one id, the owner's name, no wait.
pub(crate) fn v1_request(id: &LockId, owner: &str, ttl: Duration) -> LockRequest {
    LockRequest {
        ids: vec![id.clone()],
        owner: pit_core::lock::LockOwner {
            name: owner.to_owned(),
            ..Default::default()
        },
        ttl,
        wait: Duration::ZERO,
    }
}

/// The operations behind the service's routes, for a caller (whose principal owns the leases
/// it takes; an admin or [`Caller::anyone`] may act on every lease).
///
/// A store is also a [`LockStore`](pit_core::lock::LockStore) for in-process use, acting as
/// [`Caller::anyone`].
///
/// ```
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// use pit_lock::api::Caller;
/// use pit_lock::store::{MemoryStore, ServiceStore};
/// let store = MemoryStore::new();
/// assert_eq!(store.v1_acquire(&"db".into(), "ci-1", std::time::Duration::from_secs(30), &Caller::anyone()).await?.is_some(), true);
/// assert_eq!(store.v1_acquire(&"db".into(), "ci-2", std::time::Duration::from_secs(30), &Caller::anyone()).await?, None);
/// assert_eq!(store.held_count().await?, 1);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait ServiceStore: Send + Sync + std::fmt::Debug {
    /// What it is, without credentials (for the log).
    fn name(&self) -> &str;

    /// Whether it answers (`/readyz`).
    ///
    /// # Errors
    /// [`LockError::Backend`] when it does not.
    async fn ping(&self) -> Result<(), LockError>;

    /// Takes every id of `req` or none, for `caller`, waiting in a first-come first-served
    /// queue up to `req.wait`; `progress` hears of each change of place in the queue.
    ///
    /// # Errors
    /// As [`LockStore::acquire`](pit_core::lock::LockStore::acquire).
    async fn acquire_as(
        &self,
        req: &LockRequest,
        caller: &Caller,
        cancel: &CancellationToken,
        progress: &Progress<'_>,
    ) -> Result<Lease, LockError>;

    /// Renews the lease `lease_id` to `ttl` from now, for `caller`.
    ///
    /// # Errors
    /// [`LockError::Lost`] when it expired or was force-released (a lost lease is never
    /// revived); [`LockError::NotHolder`] when it belongs to another principal and `caller` is
    /// no admin (it is left as it is).
    async fn renew_as(&self, lease_id: &str, ttl: Duration, caller: &Caller) -> Result<Lease, LockError>;

    /// Releases the lease `lease_id` for `caller`; whether it was still held. Asking again
    /// gives the same answer (for a day).
    ///
    /// # Errors
    /// [`LockError::NotHolder`] when it belongs to another principal and `caller` is no admin
    /// (it stays held).
    async fn release_as(&self, lease_id: &str, caller: &Caller) -> Result<bool, LockError>;

    /// Frees `ids` whoever holds them, ending the whole lease of each holder (its other ids
    /// too); the leases ended. Their holders learn at their next renewal.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn force_release(&self, ids: &[LockId]) -> Result<Vec<Lease>, LockError>;

    /// Every held id with its holder, and the queue of waiters in order.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn list(&self) -> Result<LockList, LockError>;

    /// How many ids are held now.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn held_count(&self) -> Result<u64, LockError>;

    /// The existing toolkit's acquire: `id` for `owner` without waiting. Re-entrant: when
    /// `owner` already holds `id`, its expiry moves to `ttl` from now. The expiry (Unix ms),
    /// or `None` when someone else holds it or waits for it. By default a
    /// [`v1_renew`](Self::v1_renew), else an [`acquire_as`](Self::acquire_as) that does not
    /// wait; the PostgreSQL store does both in one round trip.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn v1_acquire(
        &self,
        id: &LockId,
        owner: &str,
        ttl: Duration,
        caller: &Caller,
    ) -> Result<Option<u64>, LockError> {
        let kept = self.v1_renew(std::slice::from_ref(id), owner, ttl, caller).await?;
        if let Some((_, expiry)) = kept.first() {
            return Ok(Some(*expiry));
        }
        let req = v1_request(id, owner, ttl);
        match self.acquire_as(&req, caller, &CancellationToken::new(), &|_| {}).await {
            Ok(lease) => Ok(Some(lease.expires_at_ms)),
            Err(LockError::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The existing toolkit's keep-alive: moves the expiry of those of `ids` that `owner`
    /// still holds (taken by `caller`'s principal, unless `caller` is an admin) to `ttl` from
    /// now. Expired locks are never revived. The ids renewed, with their new expiry.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn v1_renew(
        &self,
        ids: &[LockId],
        owner: &str,
        ttl: Duration,
        caller: &Caller,
    ) -> Result<Vec<(LockId, u64)>, LockError>;

    /// The existing toolkit's release: frees those of `ids` that `owner` holds (taken by
    /// `caller`'s principal, unless `caller` is an admin), expired ones too as long as nobody
    /// took them since; the ids freed.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the store fails.
    async fn v1_release(&self, ids: &[LockId], owner: &str, caller: &Caller) -> Result<Vec<LockId>, LockError>;
}

/// Implements [`LockStore`](pit_core::lock::LockStore) for a [`ServiceStore`], acting as
/// [`Caller::anyone`].
macro_rules! lock_store_via_service {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl pit_core::lock::LockStore for $store {
            async fn acquire(
                &self,
                req: &pit_core::lock::LockRequest,
                cancel: &tokio_util::sync::CancellationToken,
            ) -> Result<pit_core::lock::Lease, pit_core::lock::LockError> {
                self.acquire_with_progress(req, cancel, &|_| {}).await
            }

            async fn acquire_with_progress(
                &self,
                req: &pit_core::lock::LockRequest,
                cancel: &tokio_util::sync::CancellationToken,
                progress: &pit_core::lock::Progress<'_>,
            ) -> Result<pit_core::lock::Lease, pit_core::lock::LockError> {
                $crate::store::ServiceStore::acquire_as(self, req, &$crate::api::Caller::anyone(), cancel, progress)
                    .await
            }

            async fn renew(
                &self,
                lease: &pit_core::lock::Lease,
                ttl: std::time::Duration,
            ) -> Result<pit_core::lock::Lease, pit_core::lock::LockError> {
                $crate::store::ServiceStore::renew_as(self, &lease.id, ttl, &$crate::api::Caller::anyone())
                    .await
                    .map_err(|e| match e {
                        pit_core::lock::LockError::Lost { lease: id, .. } => pit_core::lock::LockError::Lost {
                            lease: id,
                            ids: lease.ids.clone(),
                        },
                        e => e,
                    })
            }

            async fn release(&self, lease: &pit_core::lock::Lease) -> Result<(), pit_core::lock::LockError> {
                $crate::store::ServiceStore::release_as(self, &lease.id, &$crate::api::Caller::anyone())
                    .await
                    .map(drop)
            }
        }
    };
}
pub(crate) use lock_store_via_service;
