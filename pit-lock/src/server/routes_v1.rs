//! The existing toolkit's API: `/locks/acquire`, `/locks/keep-alive`, `/locks/release`.

#[allow(clippy::wildcard_imports)] // the service's shared imports
use super::*;

pub(super) fn v1_owner(owner: &str) -> Result<(), ApiError> {
    if owner.trim().is_empty() {
        return Err(ApiError::invalid("`owner` should be a non-empty string"));
    }
    api::check_owner_field("owner", owner)
}

/// A v1 lease length: as the existing service, any non-negative number of seconds, fractions
/// too, but clamped to [`v1::MIN_EXPIRY_SEC`]..=[`v1::MAX_EXPIRY_SEC`] rather than refused
/// (its deployer sends the pitfile's lock timeout, `48h` and more). Negative is refused, as
/// there.
pub(super) fn v1_expiry(sec: Option<f64>) -> Result<Duration, ApiError> {
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

pub(super) async fn v1_acquire(
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

pub(super) async fn v1_keep_alive(
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

pub(super) async fn v1_release(
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
