//! # pit-lock
//!
//! The PIT Lock Manager (issue 5). So far: [`PgLockStore`], the PostgreSQL store the service
//! will keep its locks in, usable directly as a [`pit_core::lock::LockStore`]. Its waiters are
//! woken by the database (LISTEN/NOTIFY on every release, and a timer at the holder's expiry),
//! not by a polling loop. Still to come: the HTTP service (axum) compatible with the existing
//! toolkit's `/locks/*` API plus the v2 API with a first-come first-served queue; its HTTP
//! client; `pit lock` and `pit lock-manager serve`.
//!
//! Guarantees of the store: an acquire takes every id or none, in one transaction that
//! serialises writers on the lock table (so concurrent acquires never fail with PostgreSQL's
//! "could not serialize access"); fencing tokens per id only grow; every expiry is computed
//! with the database's clock (`now()`), never the caller's; schema migrations run under an
//! advisory lock, so two instances may start at once.
#![warn(missing_docs)]

mod pg;

pub use pg::PgLockStore;
