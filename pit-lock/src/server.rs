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
pub const OPENAPI: &str = include_str!("../../docs/schemas/lock-manager.openapi.yaml");

/// Who may call the service.
///
/// Each entry is a bearer token, or `principal:token` to name the identity its leases belong
/// to. A token without a name is its own principal, `token-` and the first 12 hex digits of
/// its SHA-256 digest (never the token itself). Several tokens may share a principal: they
/// may then renew and release each other's leases.
#[derive(Clone, Default)]
pub struct Auth {
    /// Tokens for the v1 and v2 lock routes.
    pub tokens: Vec<String>,
    /// Tokens for those and the admin routes.
    pub admin_tokens: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("admin_tokens", &self.admin_tokens.len())
            .finish()
    }
}

impl Auth {
    /// With no token at all, the service is open, as the existing toolkit's is.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.admin_tokens.is_empty()
    }

    /// Who a request with bearer token `given` is: `None` when no configured token matches.
    /// Every configured token is compared, each in constant time.
    ///
    /// ```
    /// use pit_lock::server::Auth;
    /// let auth = Auth { tokens: vec!["ci:s3cret".into(), "plain".into()], admin_tokens: vec!["root".into()] };
    /// let ci = auth.identify(b"s3cret").unwrap();
    /// assert_eq!((ci.principal.as_deref(), ci.admin), (Some("ci"), false));
    /// assert!(auth.identify(b"plain").unwrap().principal.unwrap().starts_with("token-"));
    /// assert!(auth.identify(b"root").unwrap().admin);
    /// assert!(auth.identify(b"ci:s3cret").is_none());
    /// ```
    pub fn identify(&self, given: &[u8]) -> Option<Caller> {
        let mut found: Option<Caller> = None;
        for (entries, admin) in [(&self.admin_tokens, true), (&self.tokens, false)] {
            for entry in entries {
                let (principal, secret) = split_token(entry);
                if bool::from(secret.as_bytes().ct_eq(given)) && found.is_none() {
                    found = Some(Caller {
                        principal: Some(principal.map_or_else(|| token_principal(secret), str::to_owned)),
                        admin,
                    });
                }
            }
        }
        found
    }

    fn mode(&self) -> &'static str {
        if self.is_open() {
            "open"
        } else {
            "bearer-token"
        }
    }
}

/// A token entry's principal (before the first `:`, when there is one) and secret.
fn split_token(entry: &str) -> (Option<&str>, &str) {
    match entry.split_once(':') {
        Some((principal, secret)) if !principal.is_empty() && !secret.is_empty() => (Some(principal), secret),
        _ => (None, entry),
    }
}

/// The principal of a token configured without a name: a short digest, never the token.
fn token_principal(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("token-{hex}")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcquireLabels {
    api: &'static str,
    outcome: &'static str,
}

struct Metrics {
    registry: Registry,
    acquisitions: Family<AcquireLabels, Counter>,
    waits: Counter,
    wait_seconds: Histogram,
    held: Gauge,
    renewals_lost: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("pit_lock");
        let acquisitions = Family::<AcquireLabels, Counter>::default();
        let waits = Counter::default();
        let wait_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]);
        let held = Gauge::default();
        let renewals_lost = Counter::default();
        registry.register(
            "acquisitions",
            "Acquire requests by API and outcome",
            acquisitions.clone(),
        );
        registry.register("waits", "Acquire requests that had to wait", waits.clone());
        registry.register(
            "wait_seconds",
            "Time from request to lease for requests that waited",
            wait_seconds.clone(),
        );
        registry.register("held", "Lock ids held now", held.clone());
        registry.register(
            "renewals_lost",
            "Renewals refused because the lease was lost",
            renewals_lost.clone(),
        );
        Self {
            registry,
            acquisitions,
            waits,
            wait_seconds,
            held,
            renewals_lost,
        }
    }

    fn acquired(&self, api: &'static str, outcome: &'static str) {
        self.acquisitions.get_or_create(&AcquireLabels { api, outcome }).inc();
    }
}

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

/// An error answer.
struct Failure(ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

/// A v1 error: the same, with the message also under `error` as the existing clients read it.
fn v1_failure(mut e: ApiError) -> Failure {
    e.error = Some(e.message.clone());
    Failure(e)
}

fn lock_failure(e: &LockError) -> ApiError {
    match e {
        LockError::Busy { holders, .. } => {
            let mut err = ApiError::new(423, "busy", e.to_string());
            err.holders = holders.iter().map(HolderInfo::from).collect();
            err
        }
        LockError::Lost { .. } => ApiError::new(
            409,
            "lease_lost",
            format!("{e}: renew no more, and stop using what it protected"),
        ),
        LockError::Cancelled { .. } => ApiError::new(
            503,
            "shutting_down",
            "this Lock Manager is shutting down: ask again (another instance will answer)",
        ),
        LockError::Invalid(m) => ApiError::invalid(m.clone()),
        LockError::NotHolder { .. } => ApiError::new(403, "not_lease_holder", e.to_string()),
        LockError::Backend { .. } => {
            tracing::warn!(error = %e, "database failed");
            ApiError::new(
                503,
                "database_unavailable",
                "the lock database is unavailable: try again",
            )
        }
        other => {
            tracing::error!(error = %other, "lock store failed");
            ApiError::new(500, "internal", "the lock store failed; see the service's log")
        }
    }
}

/// A JSON body, with every way it can be wrong answered as a JSON 4xx.
struct ApiJson<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let limit = state.timeouts.body;
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::new(
                    408,
                    "body_timeout",
                    format!("the request body did not arrive within {}s", limit.as_secs_f64()),
                )
            })?;
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    413,
                    "body_too_large",
                    format!("the request body is larger than {} bytes", api::MAX_BODY),
                )
            } else {
                ApiError::new(400, "bad_body", e.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::new(400, "malformed_json", "the request body is empty: send a JSON object").into());
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let code = if e.is_data() {
                "invalid_request"
            } else {
                "malformed_json"
            };
            ApiError::new(400, code, format!("the request body is not valid: {e}")).into()
        })
    }
}

/// v1 routes answer their errors with `error` too.
struct V1Json<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for V1Json<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(v)| V1Json(v))
            .map_err(|Failure(e)| v1_failure(e))
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

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched without
/// regard to case (RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| token.trim_ascii())
}

fn unauthorized(message: &str) -> Response {
    let mut r = Failure(ApiError::new(401, "unauthorized", message)).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// Who the request comes from, or the 401 answer.
#[allow(clippy::result_large_err)] // called once per request, the answer is sent at once
fn caller_of(app: &AppState, req: &Request, missing: &str) -> Result<Caller, Response> {
    if app.auth.is_open() {
        return Ok(Caller::anyone());
    }
    match bearer(req.headers()) {
        None => Err(unauthorized(missing)),
        Some(t) => app
            .auth
            .identify(t)
            .ok_or_else(|| unauthorized("the bearer token is not one this Lock Manager accepts")),
    }
}

async fn require_user(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    match caller_of(
        &app,
        &req,
        "this Lock Manager needs `Authorization: Bearer <token>` (PIT_LOCK_TOKEN for pit)",
    ) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(r) => r,
    }
}

async fn require_admin(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match caller_of(&app, &req, "admin routes need `Authorization: Bearer <admin token>`") {
        Ok(caller) if caller.admin => next.run(req).await,
        Ok(_) => Failure(ApiError::new(
            403,
            "forbidden",
            "this route needs an admin token; yours is a user token",
        ))
        .into_response(),
        Err(r) => r,
    }
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

fn v1_owner(owner: &str) -> Result<(), ApiError> {
    if owner.trim().is_empty() {
        return Err(ApiError::invalid("`owner` should be a non-empty string"));
    }
    api::check_owner_field("owner", owner)
}

/// A v1 lease length: as the existing service, any non-negative number of seconds, fractions
/// too, but clamped to [`v1::MIN_EXPIRY_SEC`]..=[`v1::MAX_EXPIRY_SEC`] rather than refused
/// (its deployer sends the pitfile's lock timeout, `48h` and more). Negative is refused, as
/// there.
fn v1_expiry(sec: Option<f64>) -> Result<Duration, ApiError> {
    let sec = sec.unwrap_or(v1::DEFAULT_EXPIRY_SEC);
    if !sec.is_finite() || sec < 0.0 {
        return Err(ApiError::invalid(format!(
            "`expiryInSec` is {sec}; it must be a number of seconds, 0 or more"
        )));
    }
    Ok(Duration::from_secs_f64(
        sec.clamp(v1::MIN_EXPIRY_SEC, v1::MAX_EXPIRY_SEC),
    ))
}

async fn v1_acquire(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    V1Json(body): V1Json<v1::AcquireRequest>,
) -> Result<axum::Json<v1::AcquireResponse>, Failure> {
    let ids = api::check_ids(std::slice::from_ref(&body.lock_id)).map_err(v1_failure)?;
    v1_owner(&body.owner).map_err(v1_failure)?;
    let ttl = v1_expiry(body.expiry_in_sec).map_err(v1_failure)?;
    let expiry = app
        .store
        .v1_acquire(&ids[0], &body.owner, ttl, &caller)
        .await
        .map_err(|e| v1_failure(lock_failure(&e)))?;
    app.metrics
        .acquired("v1", if expiry.is_some() { "acquired" } else { "busy" });
    Ok(axum::Json(v1::AcquireResponse {
        lock_id: body.lock_id,
        acquired: expiry.is_some(),
        lock_expiry: expiry.map(api::rfc3339_ms),
    }))
}

async fn v1_keep_alive(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    V1Json(body): V1Json<v1::KeepAliveRequest>,
) -> Result<axum::Json<Vec<String>>, Failure> {
    let ids = api::check_ids(&body.lock_ids).map_err(v1_failure)?;
    v1_owner(&body.owner).map_err(v1_failure)?;
    let ttl = v1_expiry(body.expiry_in_sec).map_err(v1_failure)?;
    let kept = app
        .store
        .v1_renew(&ids, &body.owner, ttl, &caller)
        .await
        .map_err(|e| v1_failure(lock_failure(&e)))?;
    if kept.is_empty() {
        return Err(v1_failure(ApiError::new(
            400,
            "not_held",
            "No valid lock and owner combination found (the locks are not held by this owner, or expired)",
        )));
    }
    Ok(axum::Json(kept.into_iter().map(|(id, _)| id.0).collect()))
}

async fn v1_release(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    V1Json(body): V1Json<v1::ReleaseRequest>,
) -> Result<axum::Json<Vec<String>>, Failure> {
    let ids = api::check_ids(&body.lock_ids).map_err(v1_failure)?;
    v1_owner(&body.owner).map_err(v1_failure)?;
    let freed = app
        .store
        .v1_release(&ids, &body.owner, &caller)
        .await
        .map_err(|e| v1_failure(lock_failure(&e)))?;
    if freed.is_empty() {
        return Err(v1_failure(ApiError::new(
            400,
            "not_held",
            "No valid lock and owner combination found in database to delete",
        )));
    }
    Ok(axum::Json(freed.into_iter().map(|id| id.0).collect()))
}

fn v2_request(body: v2::AcquireRequest) -> Result<LockRequest, ApiError> {
    let ids = api::check_ids(&body.ids)?;
    api::check_owner(&body.owner)?;
    let ttl = api::check_ms("ttlMs", body.ttl_ms, api::MIN_TTL_MS)?;
    let wait = api::check_ms("waitMs", body.wait_ms, 0)?;
    Ok(LockRequest {
        ids,
        owner: body.owner,
        ttl,
        wait,
    })
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"))
}

/// `POST /v2/leases`. With `Accept: application/x-ndjson` the answer streams one JSON line
/// per change of queue position and ends with the lease or the failure; otherwise it is the
/// lease (200) or an error. A client that goes away while waiting leaves the queue; one that
/// goes away before the lease reached it has the lease released.
async fn v2_acquire(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<v2::AcquireRequest>,
) -> Result<Response, Failure> {
    let req = v2_request(body)?;
    let stream = wants_stream(&headers);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<v2::AcquireEvent>();
    let final_tx = tx.clone();
    let started = Instant::now();
    let waited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acquire = {
        let (app, waited) = (app.clone(), waited.clone());
        async move {
            app.in_flight_waits.fetch_add(1, Ordering::Relaxed);
            let progress = |p: &pit_core::lock::WaitProgress| {
                waited.store(true, Ordering::Relaxed);
                let _ = tx.send(v2::AcquireEvent::Queued(p.clone()));
            };
            let result = app.store.acquire_as(&req, &caller, &app.shutdown, &progress).await;
            app.in_flight_waits.fetch_sub(1, Ordering::Relaxed);
            let did_wait = waited.load(Ordering::Relaxed);
            if did_wait {
                app.metrics.waits.inc();
            }
            match result {
                Ok(lease) => {
                    app.metrics.acquired("v2", "acquired");
                    if did_wait {
                        app.metrics.wait_seconds.observe(started.elapsed().as_secs_f64());
                    }
                    v2::AcquireEvent::Acquired { lease }
                }
                Err(e) => {
                    app.metrics.acquired(
                        "v2",
                        match e {
                            LockError::Busy { .. } => "busy",
                            LockError::Cancelled { .. } => "cancelled",
                            _ => "error",
                        },
                    );
                    v2::AcquireEvent::Failed(lock_failure(&e))
                }
            }
        }
    };
    if stream {
        // The last event goes through the same channel, after every `queued` one.
        let last = final_tx;
        let drive = futures_util::StreamExt::filter_map(
            futures_util::stream::once(async move {
                let _ = last.send(acquire.await);
            }),
            |()| std::future::ready(None),
        );
        let events = futures_util::stream::select(tokio_stream_from(rx), drive);
        let body = Delivery::new(app.clone(), Box::pin(events), true);
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(body),
        )
            .into_response());
    }
    drop((rx, final_tx));
    match acquire.await {
        v2::AcquireEvent::Failed(e) => Err(Failure(e)),
        event => {
            let body = Delivery::new(
                app.clone(),
                Box::pin(futures_util::stream::once(async { event })),
                false,
            );
            Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

type EventStream = Pin<Box<dyn Stream<Item = v2::AcquireEvent> + Send>>;

/// The body of an acquire answer. If it is dropped before it was sent to the end (the client
/// went away), a lease it carried is released: nobody will ever use it.
struct Delivery {
    app: Arc<AppState>,
    events: EventStream,
    lines: bool,
    lease: Option<String>,
    done: bool,
}

impl Delivery {
    fn new(app: Arc<AppState>, events: EventStream, lines: bool) -> Self {
        Self {
            app,
            events,
            lines,
            lease: None,
            done: false,
        }
    }
}

impl Stream for Delivery {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => {
                if let v2::AcquireEvent::Acquired { lease } = &event {
                    self.lease = Some(lease.id.clone());
                }
                let mut bytes = match (&event, self.lines) {
                    (v2::AcquireEvent::Acquired { lease }, false) => serde_json::to_vec(lease),
                    _ => serde_json::to_vec(&event),
                }
                .unwrap_or_default();
                bytes.push(b'\n');
                Poll::Ready(Some(Ok(Bytes::from(bytes))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(lease) = self.lease.take() {
            let app = self.app.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    tracing::info!(lease, "the client went away before its lease reached it; releasing it");
                    let _ = app.store.release_as(&lease, &Caller::anyone()).await;
                });
            }
        }
    }
}

fn check_lease_id(lease: &str) -> Result<(), ApiError> {
    if lease.is_empty() || lease.len() > 64 || !lease.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::new(
            404,
            "no_such_lease",
            "no such lease: lease ids are 26 letters and digits",
        ));
    }
    Ok(())
}

async fn v2_renew(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(lease): Path<String>,
    ApiJson(body): ApiJson<v2::RenewRequest>,
) -> Result<axum::Json<pit_core::lock::Lease>, Failure> {
    check_lease_id(&lease).map_err(|_| {
        lock_failure(&LockError::Lost {
            lease: lease.clone(),
            ids: Vec::new(),
        })
    })?;
    let ttl = api::check_ms("ttlMs", body.ttl_ms, api::MIN_TTL_MS)?;
    match app.store.renew_as(&lease, ttl, &caller).await {
        Ok(l) => Ok(axum::Json(l)),
        Err(e) => {
            if matches!(e, LockError::Lost { .. }) {
                app.metrics.renewals_lost.inc();
            }
            Err(Failure(lock_failure(&e)))
        }
    }
}

async fn v2_release(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(lease): Path<String>,
) -> Result<Response, Failure> {
    check_lease_id(&lease)?;
    let held = app
        .store
        .release_as(&lease, &caller)
        .await
        .map_err(|e| lock_failure(&e))?;
    Ok(axum::Json(serde_json::json!({"lease": lease, "released": held})).into_response())
}

/// `GET /v2/locks`: lease ids only where the caller may use them (its own, or all for admins).
async fn v2_list(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<api::LockList>, Failure> {
    let mut list = app.store.list().await.map_err(|e| lock_failure(&e))?;
    for entry in &mut list.locks {
        if !caller.may_use(entry.principal.as_deref()) {
            entry.lease = None;
        }
    }
    Ok(axum::Json(list))
}

async fn v2_force_release(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<v2::ForceReleaseRequest>,
) -> Result<axum::Json<v2::ForceReleaseResponse>, Failure> {
    let ids: Vec<LockId> = api::check_ids(&body.ids)?;
    let released = app.store.force_release(&ids).await.map_err(|e| lock_failure(&e))?;
    for l in &released {
        tracing::warn!(lease = %l.id, holder = %l.owner.name, ids = ?l.ids, "force-released by an admin");
    }
    Ok(axum::Json(v2::ForceReleaseResponse { released }))
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
