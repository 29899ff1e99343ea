//! Error answers: every failure a JSON body with a code, and bodies that cannot be read.

#[allow(clippy::wildcard_imports)] // the service's shared imports
use super::*;

/// An error answer.
pub(super) struct Failure(pub(super) ApiError);

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
pub(super) fn v1_failure(mut e: ApiError) -> Failure {
    e.error = Some(e.message.clone());
    Failure(e)
}

pub(super) fn lock_failure(e: &LockError) -> ApiError {
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
pub(super) struct ApiJson<T>(pub(super) T);

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
pub(super) struct V1Json<T>(pub(super) T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for V1Json<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(v)| V1Json(v))
            .map_err(|Failure(e)| v1_failure(e))
    }
}
