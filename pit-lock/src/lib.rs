//! # pit-lock
//!
//! The PIT Lock Manager: exclusive locks on shared resources (a database, a topic, a whole
//! environment) for CI runs, kept in PostgreSQL (or, for tests, in memory).
//!
//! - [`PgLockStore`]: the store. An acquire takes every id or none, in one transaction that
//!   serialises writers on the lock table (so concurrent acquires never fail with PostgreSQL's
//!   "could not serialize access"); waiters queue first come, first served, and are woken by
//!   the database (LISTEN/NOTIFY); fencing tokens per id only grow; every expiry is computed
//!   with the database's clock; schema migrations run under an advisory lock, so two instances
//!   may start at once.
//! - [`server`]: the HTTP service (axum): the existing toolkit's `/locks/*` API, our `/v2`
//!   API, bearer tokens, `/healthz`, `/readyz`, `/metrics` and `/openapi.yaml`.
//! - [`HttpLockStore`]: its client, a [`pit_core::lock::LockStore`] for `pit run
//!   --lock-manager URL`.
//! - [`MemoryStore`]: the same answers without PostgreSQL, not shared, not kept, for tests and
//!   `pit lock-manager serve --store memory`; [`testing::MockLockManager`] (feature `testing`)
//!   runs the service over it on a loopback port for unit tests.
//! - [`serve`]: configuration from flags and environment, for `pit lock-manager serve` and the
//!   `pit-lock-manager` binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pit_lock::server::{start, AppState, Auth};
//! let store = pit_lock::PgLockStore::connect("postgres://pit@127.0.0.1:5432/pit").await?;
//! let service = start("127.0.0.1:0".parse()?, AppState::new(std::sync::Arc::new(store), Auth::default())).await?;
//! let client = pit_lock::HttpLockStore::new(&format!("http://{}", service.addr), None)?;
//! println!("{} locks held", client.list().await?.locks.len());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod api;
mod client;
mod memory;
mod pg;
pub mod serve;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{HttpLockStore, TOKEN_ENV};
pub use memory::MemoryStore;
pub use pg::PgLockStore;
pub use store::ServiceStore;
