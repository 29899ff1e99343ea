//! The Lock Manager's wire format: the existing toolkit's `/locks/*` API (v1) and ours (v2),
//! shared by the service and its client. `docs/schemas/lock-manager.openapi.yaml` describes
//! both.

use pit_core::lock::{HolderInfo, Lease, LockOwner, WaitProgress};
use pit_core::pitfile::LockId;
use serde::{Deserialize, Serialize};

/// Most ids in one request.
pub const MAX_IDS: usize = 64;
/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest owner name (and each owner field), in bytes.
pub const MAX_OWNER_LEN: usize = 512;
/// Shortest lease, in milliseconds.
pub const MIN_TTL_MS: u64 = 100;
/// Longest lease (and longest wait), in milliseconds: a day.
pub const MAX_TTL_MS: u64 = 86_400_000;
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The existing toolkit's API.
pub mod v1 {
    use super::{Deserialize, Serialize};

    /// `POST /locks/acquire`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AcquireRequest {
        /// The id.
        pub lock_id: String,
        /// Who asks.
        pub owner: String,
        /// Lease length in seconds (default 10): any positive number, fractions too, clamped
        /// to [`MIN_EXPIRY_SEC`]..=[`MAX_EXPIRY_SEC`] as the existing clients depend on.
        #[serde(default)]
        pub expiry_in_sec: Option<f64>,
    }

    /// The answer to [`AcquireRequest`].
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AcquireResponse {
        /// The id.
        pub lock_id: String,
        /// Whether the caller holds it now.
        pub acquired: bool,
        /// When the lock expires (RFC 3339, milliseconds, UTC), when acquired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lock_expiry: Option<String>,
    }

    /// `POST /locks/keep-alive`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct KeepAliveRequest {
        /// The ids.
        pub lock_ids: Vec<String>,
        /// Their holder.
        pub owner: String,
        /// New lease length in seconds from now (default 10), clamped as on acquire. The
        /// existing deployer sends its pitfile's lock timeout here (`48h`: 172800).
        #[serde(default)]
        pub expiry_in_sec: Option<f64>,
    }

    /// `POST /locks/release`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleaseRequest {
        /// The ids.
        pub lock_ids: Vec<String>,
        /// Their holder.
        pub owner: String,
    }

    /// The default lease of the existing toolkit, in seconds.
    pub const DEFAULT_EXPIRY_SEC: f64 = 10.0;

    /// The shortest v1 lease: a shorter `expiryInSec` (`0`, `0.2`) is raised to it.
    pub const MIN_EXPIRY_SEC: f64 = 1.0;

    /// The longest v1 lease (a day, as v2's `ttlMs`): a longer `expiryInSec` is lowered to it.
    /// Clients renew long before: the existing deployer every 10 s at most.
    pub const MAX_EXPIRY_SEC: f64 = (super::MAX_TTL_MS / 1000) as f64;
}

/// Our API.
pub mod v2 {
    use super::{Deserialize, HolderInfo, Lease, LockOwner, Serialize, WaitProgress};

    /// `POST /v2/leases`: take every id or none.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AcquireRequest {
        /// The ids.
        pub ids: Vec<String>,
        /// Lease length in milliseconds.
        pub ttl_ms: u64,
        /// How long to wait in the queue, in milliseconds (default 0: do not wait).
        #[serde(default)]
        pub wait_ms: u64,
        /// Who asks: shown to waiters and in lists.
        pub owner: LockOwner,
    }

    /// `POST /v2/leases/{lease}/renew`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RenewRequest {
        /// New lease length from now, in milliseconds.
        pub ttl_ms: u64,
    }

    /// `POST /v2/admin/force-release`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ForceReleaseRequest {
        /// The ids to free, whoever holds them.
        pub ids: Vec<String>,
    }

    /// The answer to a force-release: the leases it ended.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ForceReleaseResponse {
        /// Ended leases.
        pub released: Vec<Lease>,
    }

    /// One line of a streamed acquire (`Accept: application/x-ndjson`).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "event", rename_all = "camelCase")]
    pub enum AcquireEvent {
        /// Waiting: the place in the queue changed.
        Queued(WaitProgress),
        /// The lease: the last line.
        Acquired {
            /// The lease.
            lease: Lease,
        },
        /// The request ended without a lease: the last line.
        Failed(super::ApiError),
    }

    /// Holders in a busy answer.
    pub type Holders = Vec<HolderInfo>;
}

/// Who calls: the principal their bearer token maps to, and whether it is an admin token.
///
/// A lease belongs to the principal that took it: only that principal, or an admin, may renew
/// or release it, and only they see its id in a listing. On an open service (no tokens) every
/// caller is [`Caller::anyone`], as on the existing toolkit's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal: the name configured for the token (`name:token` in a token file), or
    /// `token-` and the first 12 hex digits of the token's SHA-256 digest.
    pub principal: Option<String>,
    /// Whether the token is an admin token (which may act on every lease).
    pub admin: bool,
}

impl Caller {
    /// Anyone at all: an open service, or the store used in-process.
    pub fn anyone() -> Self {
        Self {
            principal: None,
            admin: true,
        }
    }

    /// The principal whose leases alone this caller may touch; `None`: every lease.
    pub fn restricted_to(&self) -> Option<&str> {
        if self.admin {
            None
        } else {
            self.principal.as_deref()
        }
    }

    /// Whether this caller may see and use a lease taken by `principal`.
    pub fn may_use(&self, principal: Option<&str>) -> bool {
        self.restricted_to().is_none_or(|me| principal == Some(me))
    }
}

/// Every error the service answers: a machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// Such as `malformed_json`, `invalid_request`, `busy`, `lease_lost`, `unauthorized`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// The HTTP status it came with.
    #[serde(default)]
    pub status: u16,
    /// For `busy`: who holds the ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<HolderInfo>,
    /// The same message under the key the existing toolkit's clients read (v1 routes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ApiError {
    /// An error with no holders.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            status,
            holders: Vec::new(),
            error: None,
        }
    }

    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.code, self.status)
    }
}

/// Locks held and requests waiting: `GET /v2/locks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockList {
    /// Held ids, sorted.
    pub locks: Vec<LockEntry>,
    /// Waiting requests, first come first.
    pub queue: Vec<QueueEntry>,
}

impl LockList {
    /// The list of `held` ids (their `waiting` filled in here) and the `waiting` requests,
    /// first come first (ids, owner, Unix ms since when).
    pub fn assemble(mut held: Vec<LockEntry>, waiting: Vec<(Vec<LockId>, LockOwner, u64)>) -> Self {
        let position = |i: usize| u32::try_from(i + 1).unwrap_or(u32::MAX);
        let queue: Vec<QueueEntry> = waiting
            .into_iter()
            .enumerate()
            .map(|(i, (ids, owner, since))| QueueEntry {
                position: position(i),
                ids,
                owner,
                waiting_since_ms: since,
            })
            .collect();
        for entry in &mut held {
            entry.waiting = queue
                .iter()
                .filter(|q| q.ids.contains(&entry.id))
                .enumerate()
                .map(|(i, q)| QueuedFor {
                    position: position(i),
                    owner: q.owner.clone(),
                    waiting_since_ms: q.waiting_since_ms,
                })
                .collect();
        }
        held.sort_by(|a, b| a.id.cmp(&b.id));
        Self { locks: held, queue }
    }
}

/// A held id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// The id.
    pub id: LockId,
    /// The lease holding it: shown to the identity that holds it and to admins only, since
    /// whoever knows a lease id may try to renew or release it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The identity (token principal) that took it; absent on an open service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Its holder, with the run id, suite and CI job they gave.
    pub owner: LockOwner,
    /// The holder's fencing token for this id.
    pub fencing_token: u64,
    /// Unix milliseconds when it was taken.
    pub acquired_at_ms: u64,
    /// Unix milliseconds when it ends unless renewed.
    pub expires_at_ms: u64,
    /// Who waits for it, in order.
    pub waiting: Vec<QueuedFor>,
}

/// A waiter of one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedFor {
    /// 1: next.
    pub position: u32,
    /// Who waits.
    pub owner: LockOwner,
    /// Unix milliseconds when it began to wait.
    pub waiting_since_ms: u64,
}

/// A waiting request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntry {
    /// Its place among all waiting requests (1: first).
    pub position: u32,
    /// The ids it wants.
    pub ids: Vec<LockId>,
    /// Who waits.
    pub owner: LockOwner,
    /// Unix milliseconds when it began to wait.
    pub waiting_since_ms: u64,
}

/// Checks and normalises a request's ids: 1 to [`MAX_IDS`] of them, each 1 to [`MAX_ID_LEN`]
/// bytes without control characters or surrounding spaces; duplicates are merged.
///
/// ```
/// let ids = pit_lock::api::check_ids(&["db".into(), "topic".into(), "db".into()]).unwrap();
/// assert_eq!(ids.len(), 2);
/// assert!(pit_lock::api::check_ids(&[" db".into()]).is_err());
/// ```
///
/// # Errors
/// An [`ApiError`] naming the offending id.
pub fn check_ids(ids: &[String]) -> Result<Vec<LockId>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid("no lock ids: give at least one"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid(format!(
            "{} lock ids in one request; at most {MAX_IDS} are allowed",
            ids.len()
        )));
    }
    let mut out: Vec<LockId> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() {
            return Err(ApiError::invalid(format!("lock id {i} is empty")));
        }
        if id.len() > MAX_ID_LEN {
            return Err(ApiError::invalid(format!(
                "lock id {i} is {} bytes long; at most {MAX_ID_LEN} are allowed",
                id.len()
            )));
        }
        if id.trim() != id || id.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "lock id {i} ({id:?}) has surrounding spaces or control characters"
            )));
        }
        out.push(LockId(id.clone()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks a lease length or wait in milliseconds against its bounds.
///
/// # Errors
/// An [`ApiError`] saying the allowed range.
pub fn check_ms(field: &str, value: u64, min: u64) -> Result<std::time::Duration, ApiError> {
    if value < min || value > MAX_TTL_MS {
        return Err(ApiError::invalid(format!(
            "`{field}` is {value}; it must be between {min} and {MAX_TTL_MS} milliseconds"
        )));
    }
    Ok(std::time::Duration::from_millis(value))
}

/// Checks one owner field: at most [`MAX_OWNER_LEN`] bytes and no NUL character (which the
/// database cannot store; other control characters are kept, and escaped wherever PIT prints
/// them).
///
/// ```
/// assert!(pit_lock::api::check_owner_field("owner", "ci-runner-7").is_ok());
/// let err = pit_lock::api::check_owner_field("owner", "a\0b").unwrap_err();
/// assert_eq!((err.status, err.code.as_str()), (400, "invalid_request"));
/// assert!(err.message.contains("`owner`"));
/// ```
///
/// # Errors
/// A 400 [`ApiError`] naming the field.
pub fn check_owner_field(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_OWNER_LEN {
        return Err(ApiError::invalid(format!(
            "`{field}` is longer than {MAX_OWNER_LEN} bytes"
        )));
    }
    if let Some(at) = value.find('\0') {
        return Err(ApiError::invalid(format!(
            "`{field}` has a NUL character at byte {at}: remove it"
        )));
    }
    Ok(())
}

/// Checks an owner's fields (see [`check_owner_field`]) and that it has a name.
///
/// # Errors
/// An [`ApiError`] naming the field.
pub fn check_owner(owner: &LockOwner) -> Result<(), ApiError> {
    let fields = [
        ("owner.name", Some(&owner.name)),
        ("owner.runId", owner.run_id.as_ref()),
        ("owner.suite", owner.suite.as_ref()),
        ("owner.ciJob", owner.ci_job.as_ref()),
    ];
    for (field, value) in fields {
        if let Some(v) = value {
            check_owner_field(field, v)?;
        }
    }
    if owner.name.trim().is_empty() {
        return Err(ApiError::invalid("`owner.name` is empty: say who asks"));
    }
    Ok(())
}

/// Unix milliseconds as RFC 3339 with milliseconds, UTC (`2026-11-25T15:32:37.825Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
