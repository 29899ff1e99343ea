//! PIT's API: `/v2/leases` (acquire, streamed or not), renew, release, the list, and
//! force-release.

#[allow(clippy::wildcard_imports)] // the service's shared imports
use super::*;

pub(super) fn v2_request(body: v2::AcquireRequest) -> Result<LockRequest, ApiError> {
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

pub(super) fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"))
}

/// `POST /v2/leases`. With `Accept: application/x-ndjson` the answer streams one JSON line
/// per change of queue position and ends with the lease or the failure; otherwise it is the
/// lease (200) or an error. A client that goes away while waiting leaves the queue; one that
/// goes away before the lease reached it has the lease released.
pub(super) async fn v2_acquire(
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

pub(super) fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub(super) type EventStream = Pin<Box<dyn Stream<Item = v2::AcquireEvent> + Send>>;

/// The body of an acquire answer. If it is dropped before it was sent to the end (the client
/// went away), a lease it carried is released: nobody will ever use it.
pub(super) struct Delivery {
    app: Arc<AppState>,
    events: EventStream,
    lines: bool,
    lease: Option<String>,
    /// The last event (a lease or a failure) is out: the body ends at the next poll, so a
    /// client that reads to the end never closes the connection while the lease is still
    /// counted as undelivered.
    last_sent: bool,
    done: bool,
}

impl Delivery {
    pub(super) fn new(app: Arc<AppState>, events: EventStream, lines: bool) -> Self {
        Self {
            app,
            events,
            lines,
            lease: None,
            last_sent: false,
            done: false,
        }
    }
}

impl Stream for Delivery {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.last_sent {
            self.done = true;
            return Poll::Ready(None);
        }
        match self.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => {
                match &event {
                    v2::AcquireEvent::Acquired { lease } => {
                        self.lease = Some(lease.id.clone());
                        self.last_sent = true;
                    }
                    v2::AcquireEvent::Failed(_) => self.last_sent = true,
                    v2::AcquireEvent::Queued(_) => {}
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

pub(super) fn check_lease_id(lease: &str) -> Result<(), ApiError> {
    if lease.is_empty() || lease.len() > 64 || !lease.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::new(
            404,
            "no_such_lease",
            "no such lease: lease ids are 26 letters and digits",
        ));
    }
    Ok(())
}

pub(super) async fn v2_renew(
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

pub(super) async fn v2_release(
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
pub(super) async fn v2_list(
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

pub(super) async fn v2_force_release(
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
