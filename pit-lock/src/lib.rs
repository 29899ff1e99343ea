//! # pit-lock
//!
//! The PIT Lock Manager: exclusive locks on shared resources (a database, a topic, a whole
//! environment) for CI runs, kept in PostgreSQL.
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
//! - [`serve`]: configuration from flags and environment, for `pit lock-manager serve` and the
//!   `pit-lock-manager` binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pit_lock::server::{start, AppState, Auth};
//! let store = pit_lock::PgLockStore::connect("postgres://pit@127.0.0.1:5432/pit").await?;
//! let service = start("127.0.0.1:0".parse()?, AppState::new(store, Auth::default())).await?;
//! let client = pit_lock::HttpLockStore::new(&format!("http://{}", service.addr), None)?;
//! println!("{} locks held", client.list().await?.locks.len());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod api;
mod client;
mod pg;
pub mod serve;
pub mod server;

pub use client::{HttpLockStore, TOKEN_ENV};
pub use pg::PgLockStore;
