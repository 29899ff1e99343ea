//! Locks from Python: `pit.LockClient` (a Lock Manager over HTTP), `pit.MemoryLockStore` (for
//! users' unit tests), and `with store.lock([...]) as lease:`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pit_core::lock::{
    Lease as CoreLease, LockError as CoreLockError, LockOwner, LockRequest, LockStore as CoreLockStore,
};
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LockStore>()?;
    m.add_class::<LockClient>()?;
    m.add_class::<MemoryLockStore>()?;
    m.add_class::<MockLockManager>()?;
    m.add_class::<Lease>()?;
    m.add_class::<Lock>()?;
    Ok(())
}

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("{what} must be a number of seconds >= 0, not {s}"))
    })
}

fn default_owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("python (pid {}) on {host}", std::process::id())
}

/// Where locks live. Use `LockClient` (a Lock Manager) or `MemoryLockStore`.
#[pyclass(module = "pit", subclass, frozen)]
pub struct LockStore {
    inner: Arc<dyn CoreLockStore>,
}

impl LockStore {
    fn acquire_lease(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        ttl: f64,
        wait: f64,
        owner: Option<String>,
    ) -> PyResult<CoreLease> {
        let req = LockRequest {
            ids: ids.iter().map(|id| id.as_str().into()).collect(),
            owner: LockOwner {
                name: owner.unwrap_or_else(default_owner),
                ..LockOwner::default()
            },
            ttl: seconds("ttl", ttl)?,
            wait: seconds("wait", wait)?,
        };
        let (cancel, force) = (CancellationToken::new(), CancellationToken::new());
        let (store, c) = (self.inner.clone(), cancel.clone());
        let got = crate::block_on(
            py,
            async move { store.acquire(&req, &c).await },
            &cancel,
            &force,
            None::<tokio::sync::mpsc::UnboundedReceiver<()>>,
            |_, ()| Ok(()),
        )?;
        got.map_err(|e| errors::lock_error(py, &e))
    }

    fn release_core(&self, py: Python<'_>, lease: &CoreLease) -> PyResult<()> {
        let (store, lease) = (self.inner.clone(), lease.clone());
        py.detach(|| crate::runtime().block_on(async move { store.release(&lease).await }))
            .map_err(|e| errors::lock_error(py, &e))
    }
}

#[pymethods]
impl LockStore {
    /// A context manager holding `ids` (all or none) while its block runs:
    /// `with store.lock(["db"], ttl=60, wait=30) as lease:`. It waits up to `wait` seconds
    /// (raising `LockBusy` after), renews the lease every third of `ttl` while the block runs,
    /// and releases it at the end, also when the block raises. If the lease is lost meanwhile,
    /// leaving the block raises `LeaseLost`.
    #[pyo3(signature = (ids, *, ttl=60.0, wait=0.0, owner=None))]
    fn lock(slf: Bound<'_, Self>, ids: Vec<String>, ttl: f64, wait: f64, owner: Option<String>) -> PyResult<Lock> {
        seconds("ttl", ttl)?;
        seconds("wait", wait)?;
        Ok(Lock {
            store: slf.unbind().into_any(),
            ids,
            ttl,
            wait,
            owner,
            held: Mutex::new(None),
        })
    }

    /// Takes `ids` (all or none), waiting up to `wait` seconds; returns the `Lease`. Raises
    /// `LockBusy` when they are still held after the wait. Ctrl-C stops the wait.
    #[pyo3(signature = (ids, *, ttl=60.0, wait=0.0, owner=None))]
    fn acquire(&self, py: Python<'_>, ids: Vec<String>, ttl: f64, wait: f64, owner: Option<String>) -> PyResult<Lease> {
        self.acquire_lease(py, ids, ttl, wait, owner).map(Lease::from)
    }

    /// Extends `lease` to `ttl` seconds from now; raises `LeaseLost` if it was lost.
    #[pyo3(signature = (lease, *, ttl=60.0))]
    fn renew(&self, py: Python<'_>, lease: &Lease, ttl: f64) -> PyResult<Lease> {
        let (store, inner, ttl) = (self.inner.clone(), lease.inner.clone(), seconds("ttl", ttl)?);
        py.detach(|| crate::runtime().block_on(async move { store.renew(&inner, ttl).await }))
            .map(Lease::from)
            .map_err(|e| errors::lock_error(py, &e))
    }

    /// Releases `lease` (a lease already released or lost raises `LeaseLost`).
    fn release(&self, py: Python<'_>, lease: &Lease) -> PyResult<()> {
        self.release_core(py, &lease.inner)
    }
}

/// A Lock Manager over HTTP (`pit lock-manager serve`): `LockClient(url, token=None)`. The
/// token defaults to the `PIT_LOCK_TOKEN` environment variable. Transient failures are retried
/// as `pit run` retries them.
#[pyclass(module = "pit", extends = LockStore, frozen)]
pub struct LockClient {
    url: String,
}

#[pymethods]
impl LockClient {
    #[new]
    #[pyo3(signature = (url, token=None))]
    fn new(py: Python<'_>, url: String, token: Option<String>) -> PyResult<PyClassInitializer<Self>> {
        let token = token.or_else(|| std::env::var(pit_lock::TOKEN_ENV).ok());
        let client = pit_lock::HttpLockStore::new(&url, token).map_err(|e| errors::lock_error(py, &e))?;
        Ok(PyClassInitializer::from(LockStore {
            inner: Arc::new(client),
        })
        .add_subclass(Self { url }))
    }

    /// The Lock Manager's URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    fn __repr__(&self) -> String {
        format!("<LockClient {}>", self.url)
    }
}

/// Locks in this process's memory, with the same behaviour as the Lock Manager (all or none,
/// waits, expiry, fencing tokens): for unit tests of code that takes locks.
#[pyclass(module = "pit", extends = LockStore, frozen)]
pub struct MemoryLockStore;

#[pymethods]
impl MemoryLockStore {
    #[new]
    fn new() -> PyClassInitializer<Self> {
        PyClassInitializer::from(LockStore {
            inner: Arc::new(pit_core::testing::MemoryLockStore::new()),
        })
        .add_subclass(Self)
    }

    fn __repr__(&self) -> &'static str {
        "<MemoryLockStore>"
    }
}

/// A Lock Manager over memory on a loopback port, for tests: the real HTTP service (the
/// existing toolkit's `/locks/*` API and `/v2`), whose locks live in this process only and
/// vanish when it stops. `pit.testing.lock_manager()` is the usual way in.
#[pyclass(module = "pit", frozen)]
pub struct MockLockManager {
    inner: Mutex<Option<pit_lock::testing::MockLockManager>>,
    url: String,
}

#[pymethods]
impl MockLockManager {
    #[new]
    #[pyo3(signature = (tokens=None, admin_tokens=None))]
    fn new(py: Python<'_>, tokens: Option<Vec<String>>, admin_tokens: Option<Vec<String>>) -> PyResult<Self> {
        let auth = pit_lock::server::Auth {
            tokens: tokens.unwrap_or_default(),
            admin_tokens: admin_tokens.unwrap_or_default(),
        };
        let started = py.detach(|| crate::runtime().block_on(pit_lock::testing::MockLockManager::with_auth(auth)));
        let manager = started.map_err(|e| {
            errors::with_attrs(
                py,
                errors::LockError::new_err(format!("cannot start the mock Lock Manager: {e}")),
                pit_core::exit::INFRASTRUCTURE,
                &[],
            )
        })?;
        Ok(Self {
            url: manager.url().to_owned(),
            inner: Mutex::new(Some(manager)),
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Whether it still serves.
    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().is_ok_and(|m| m.is_some())
    }

    /// Stops it (waits in progress end with 503); stopping again does nothing.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let manager = self.inner.lock().ok().and_then(|mut m| m.take());
        if let Some(manager) = manager {
            py.detach(|| crate::runtime().block_on(manager.shutdown()))
                .map_err(|e| errors::LockError::new_err(format!("the mock Lock Manager failed: {e}")))?;
        }
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc_value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<MockLockManager {}>", self.url)
    }
}

/// Held locks.
#[pyclass(module = "pit", frozen)]
#[derive(Clone)]
pub struct Lease {
    inner: CoreLease,
}

impl From<CoreLease> for Lease {
    fn from(inner: CoreLease) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Lease {
    /// The lease id.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// The ids held.
    #[getter]
    fn ids(&self) -> Vec<String> {
        self.inner.ids.iter().map(ToString::to_string).collect()
    }

    /// The fencing token of each id: larger than any earlier holder's. Pass it to the
    /// resource the lock protects so that it can refuse a late writer.
    #[getter]
    fn fencing(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.fencing.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// The largest fencing token (the one to pass on when the lease holds one id).
    #[getter]
    fn token(&self) -> u64 {
        self.inner.fencing.values().copied().max().unwrap_or(0)
    }

    /// When the lease ends unless renewed, in seconds since the Unix epoch.
    #[getter]
    fn expires_at(&self) -> f64 {
        self.inner.expires_at_ms as f64 / 1000.0
    }

    /// Who holds it.
    #[getter]
    fn owner(&self) -> &str {
        &self.inner.owner.name
    }

    fn __repr__(&self) -> String {
        format!("<Lease {} {:?} token {}>", self.inner.id, self.ids(), self.token())
    }
}

/// What a held [`Lock`] keeps: the lease (renewed in the background) and the renewal task.
struct Held {
    lease: Arc<Mutex<CoreLease>>,
    lost: Arc<Mutex<Option<CoreLockError>>>,
    stop: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

/// `store.lock(ids, ttl=…, wait=…)`: a context manager that holds the locks while its block
/// runs. Not re-entrant.
#[pyclass(module = "pit")]
pub struct Lock {
    store: Py<PyAny>,
    ids: Vec<String>,
    ttl: f64,
    wait: f64,
    owner: Option<String>,
    held: Mutex<Option<Held>>,
}

#[pymethods]
impl Lock {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Lease> {
        if self.held.lock().expect("no panics while held").is_some() {
            return Err(errors::LockError::new_err(
                "this lock is already held; use a new `store.lock(…)`",
            ));
        }
        let store = self.store.bind(py).cast::<LockStore>()?.get();
        let lease = store.acquire_lease(py, self.ids.clone(), self.ttl, self.wait, self.owner.clone())?;
        let ttl = seconds("ttl", self.ttl)?;
        let shared = Arc::new(Mutex::new(lease.clone()));
        let lost = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let renewer = {
            let (inner, shared, lost, stop) = (store.inner.clone(), shared.clone(), lost.clone(), stop.clone());
            crate::runtime().spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(ttl / 3) => {}
                    }
                    let current = shared.lock().expect("no panics while held").clone();
                    match inner.renew(&current, ttl).await {
                        Ok(renewed) => *shared.lock().expect("no panics while held") = renewed,
                        Err(e) => {
                            *lost.lock().expect("no panics while held") = Some(e);
                            return;
                        }
                    }
                }
            })
        };
        *self.held.lock().expect("no panics while held") = Some(Held {
            lease: shared,
            lost,
            stop,
            renewer,
        });
        Ok(Lease::from(lease))
    }

    /// Stops renewing and releases the lease. Raises `LeaseLost` when it was lost while held
    /// (unless the block is already raising).
    #[pyo3(signature = (exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Py<PyAny>>,
        _exc_value: Option<Py<PyAny>>,
        _traceback: Option<Py<PyAny>>,
    ) -> PyResult<bool> {
        let Some(held) = self.held.lock().expect("no panics while held").take() else {
            return Ok(false);
        };
        held.stop.cancel();
        let _ = py.detach(|| crate::runtime().block_on(held.renewer));
        let lost = held.lost.lock().expect("no panics while held").take();
        let lease = held.lease.lock().expect("no panics while held").clone();
        let store = self.store.bind(py).cast::<LockStore>()?.get();
        let released = store.release_core(py, &lease);
        match (lost, exc_type) {
            (_, Some(_)) => Ok(false),
            (Some(e), None) => Err(errors::lock_error(py, &e)),
            (None, None) => released.map(|()| false),
        }
    }

    /// The lease, while the block runs.
    #[getter]
    fn lease(&self) -> Option<Lease> {
        self.held
            .lock()
            .expect("no panics while held")
            .as_ref()
            .map(|h| Lease::from(h.lease.lock().expect("no panics while held").clone()))
    }
}
