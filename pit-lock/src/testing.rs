//! A Lock Manager without PostgreSQL, for tests (feature `testing`).
//!
//! [`MockLockManager`] is the real HTTP service (v1 and v2 APIs, tokens, metrics) over a
//! [`MemoryStore`], listening on a free loopback port. Point the code under test at
//! [`url`](MockLockManager::url):
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use pit_core::lock::LockStore;
//! let manager = pit_lock::testing::MockLockManager::start().await?;
//! let client = manager.client();
//! let req = pit_core::testing::lock_request(&["db"], "my-test", 0, 30_000);
//! let lease = client.acquire(&req, &Default::default()).await.unwrap();
//! assert_eq!(client.list().await.unwrap().locks.len(), 1);
//! client.release(&lease).await.unwrap();
//! manager.shutdown().await
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Locks in it are not shared with any other Lock Manager and vanish when it stops: never
//! point a CI at one.

use std::sync::Arc;

use crate::server::{start, AppState, Auth, Running};
use crate::{HttpLockStore, MemoryStore};

/// A Lock Manager over memory on a loopback port; it stops when [`shutdown`] or dropped.
///
/// [`shutdown`]: MockLockManager::shutdown
#[derive(Debug)]
pub struct MockLockManager {
    running: Option<Running>,
    url: String,
    store: MemoryStore,
}

impl MockLockManager {
    /// Starts one open to anyone.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::with_auth(Auth::default()).await
    }

    /// Starts one that checks callers against `auth`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn with_auth(auth: Auth) -> std::io::Result<Self> {
        let store = MemoryStore::new();
        let running = start(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            AppState::new(Arc::new(store.clone()), auth),
        )
        .await?;
        Ok(Self {
            url: format!("http://{}", running.addr),
            running: Some(running),
            store,
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of it, without a token.
    ///
    /// # Panics
    /// Never: its own URL is always usable.
    pub fn client(&self) -> HttpLockStore {
        HttpLockStore::new(&self.url, None).expect("a loopback URL is usable")
    }

    /// Its store, to look at or change the locks directly.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Stops it: waits in progress end with 503, requests in progress finish.
    ///
    /// # Errors
    /// The server's I/O error, if it had one.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        match self.running.take() {
            Some(running) => running.shutdown().await,
            None => Ok(()),
        }
    }
}

impl Drop for MockLockManager {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.stop();
        }
    }
}
