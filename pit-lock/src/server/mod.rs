//! The Lock Manager service: an axum application over a [`ServiceStore`] (PostgreSQL, or
//! memory for tests).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use futures_util::Stream;
use pit_core::lock::{HolderInfo, LockError, LockRequest};
use pit_core::pitfile::LockId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::api::{self, v1, v2, ApiError, Caller};
use crate::store::ServiceStore;

/// The OpenAPI document of both APIs, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../docs/schemas/lock-manager.openapi.yaml");

mod auth;
mod errors;
mod metrics;
mod routes_v1;
mod routes_v2;

pub use auth::Auth;
use auth::{require_admin, require_user};
use errors::{lock_failure, v1_failure, ApiJson, Failure, V1Json};
use metrics::Metrics;
use routes_v1::{v1_acquire, v1_keep_alive, v1_release};
use routes_v2::{v2_acquire, v2_force_release, v2_list, v2_release, v2_renew};

/// How long the service waits for slow or idle clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A client must send a request's whole header within this time of connecting, or of the
    /// previous answer on a kept-alive connection: this closes both slow-header and idle
    /// connections.
    pub header: Duration,
    /// A request's body must arrive within this time of its header (else 408 `body_timeout`).
    pub body: Duration,
    /// After SIGTERM, requests in progress get this long to finish; then the remaining
    /// connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    /// 10 seconds each.
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The service's shared state.
pub struct AppState {
    store: Arc<dyn ServiceStore>,
    auth: Auth,
    timeouts: Timeouts,
    metrics: Metrics,
    /// Fired at shutdown: ends every wait with 503, so clients go elsewhere.
    shutdown: CancellationToken,
    in_flight_waits: AtomicU64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store`, checking callers against `auth`.
    pub fn new(store: Arc<dyn ServiceStore>, auth: Auth) -> Arc<Self> {
        Self::with_timeouts(store, auth, Timeouts::default())
    }

    /// State over `store`, checking callers against `auth`, with `timeouts` for slow clients.
    pub fn with_timeouts(store: Arc<dyn ServiceStore>, auth: Auth, timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            store,
            auth,
            timeouts,
            metrics: Metrics::new(),
            shutdown: CancellationToken::new(),
            in_flight_waits: AtomicU64::new(0),
        })
    }

    /// Ends every wait in progress (with 503 `shutting_down`).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// The application: every route, with authentication, limits and JSON errors.
pub fn router(state: Arc<AppState>) -> Router {
    let user = Router::new()
        .route("/locks/acquire", post(v1_acquire))
        .route("/locks/keep-alive", post(v1_keep_alive))
        .route("/locks/release", post(v1_release))
        .route("/v2/leases", post(v2_acquire))
        .route("/v2/leases/{lease}/renew", post(v2_renew))
        .route("/v2/leases/{lease}", delete(v2_release))
        .route("/v2/locks", get(v2_list))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_user));
    let admin = Router::new()
        .route("/v2/admin/force-release", post(v2_force_release))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/", get(v1_health))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
        .merge(user)
        .merge(admin)
        .fallback(|| async { Failure(ApiError::new(404, "not_found", "no such route: see /openapi.yaml")) })
        .method_not_allowed_fallback(|| async {
            Failure(ApiError::new(
                405,
                "method_not_allowed",
                "this route does not take that method: see /openapi.yaml",
            ))
        })
        .layer(DefaultBodyLimit::max(api::MAX_BODY))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn v1_health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"app": "lock-manager", "time": api::rfc3339_ms(pit_core::lock::now_ms())}))
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let auth = app.auth.mode();
    match app.store.ping().await {
        Ok(()) => {
            axum::Json(serde_json::json!({"status": "ready", "database": "reachable", "auth": auth})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "not ready", "database": "unreachable", "auth": auth})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    if let Ok(n) = app.store.held_count().await {
        app.metrics.held.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &app.metrics.registry).is_err() {
        return Failure(ApiError::new(500, "internal", "could not encode the metrics")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A running service (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<AppState>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Shuts down gracefully: waits end with 503, requests in progress finish.
    ///
    /// # Errors
    /// The server's I/O error, if it had one.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.cancel();
        self.task.await.map_err(std::io::Error::other)?
    }

    /// Tells it to stop, without waiting: it shuts down as [`shutdown`](Self::shutdown) does,
    /// in the background.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The state (for tests).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

/// Serves `state` on `listener` until `stop` fires, then shuts down gracefully: waits end with
/// 503, idle connections close, requests in progress get [`Timeouts::shutdown_grace`] to
/// finish, and whatever is left then is closed.
///
/// Each connection must send a request's header within [`Timeouts::header`] of opening or of
/// its previous answer, so slow-header and idle clients never hold the service.
///
/// # Errors
/// The server's I/O error.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let timeouts = state.timeouts;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers go out as soon as they are written: no Nagle delay on small streamed lines.
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    tracing::info!("shutting down: ending waits, finishing requests");
    state.begin_shutdown();
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            grace_s = timeouts.shutdown_grace.as_secs_f64(),
            "requests still in progress after the shutdown grace period: closing their connections"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Binds `addr` and serves `state` in the background.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pit_lock::server::{start, AppState, Auth};
/// let store = pit_lock::PgLockStore::connect("postgres://pit@127.0.0.1:5432/pit").await?;
/// let running = start("127.0.0.1:0".parse()?, AppState::new(std::sync::Arc::new(store), Auth::default())).await?;
/// println!("listening on {}", running.addr);
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn start(addr: SocketAddr, state: Arc<AppState>) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_on(listener, state.clone(), stop.clone()));
    Ok(Running {
        addr,
        state,
        stop,
        task,
    })
}
