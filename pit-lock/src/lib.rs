//! # pit-lock
//!
//! The PIT Lock Manager (issue 5): an HTTP service (axum) that keeps exclusive, fenced leases
//! on shared resources in PostgreSQL (deadpool-postgres), compatible with the existing PIT
//! toolkit's `/locks/*` API and extended with an atomic, queued v2 API; its HTTP `LockStore`
//! client for `pit run`; and the code behind `pit lock` and `pit lock-manager serve`.
//!
//! It holds no code yet; the lock ids it serves come from [`pit_core::pitfile::Lock`].
#![warn(missing_docs)]
