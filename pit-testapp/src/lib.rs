//! # pit-testapp
//!
//! Write a Test Runner App in Rust: give [`router`] (or [`serve`]) an async function that runs
//! a suite's tests and returns a [`TestReport`]; this crate serves PIT's Test Runner protocol
//! around it (`POST /start`, `GET /status` with long-poll `wait=`, `GET /reports?sessionId=`
//! and `GET /reports/{id}`, `GET /healthz`), compatible with the existing PIT toolkit.
//!
//! ```no_run
//! use pit_core::protocol::TestReport;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! pit_testapp::serve(listener, |suite| async move {
//!     // run the tests of `suite` here
//!     Ok::<_, String>(TestReport::default())
//! })
//! .await
//! # }
//! ```

#![warn(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pit_core::pitfile::SuiteId;
use pit_core::protocol::{ReportResponse, SessionStatus, StartRequest, StartResponse, StatusResponse, TestReport};
use serde::Deserialize;
use tokio::sync::watch;

/// Longest long poll the app grants, whatever `wait=` asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Session {
    suite: SuiteId,
    status: SessionStatus,
    report: Option<TestReport>,
    error: Option<String>,
}

type Tests =
    Arc<dyn Fn(SuiteId) -> std::pin::Pin<Box<dyn Future<Output = Result<TestReport, String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    sessions: Arc<Mutex<HashMap<String, watch::Sender<Session>>>>,
    tests: Tests,
}

/// The protocol's routes around `tests`, which runs one suite and returns its report (or an
/// error message, reported as status ERROR).
pub fn router<F, Fut>(tests: F) -> Router
where
    F: Fn(SuiteId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TestReport, String>> + Send + 'static,
{
    let tests: Tests = Arc::new(move |suite| Box::pin(tests(suite)));
    let state = AppState {
        sessions: Arc::default(),
        tests,
    };
    Router::new()
        .route("/start", post(start))
        .route("/status", get(status))
        .route("/reports", get(report_by_query))
        .route("/reports/{id}", get(report_by_path))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// Serves [`router`] on `listener` until the process ends.
///
/// # Errors
/// When the listener fails.
pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, tests: F) -> std::io::Result<()>
where
    F: Fn(SuiteId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TestReport, String>> + Send + 'static,
{
    serve_until(listener, tests, std::future::pending()).await
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
///
/// # Errors
/// When the listener fails.
pub async fn serve_until<F, Fut>(
    listener: tokio::net::TcpListener,
    tests: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    F: Fn(SuiteId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TestReport, String>> + Send + 'static,
{
    axum::serve(listener, router(tests))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds a free loopback port and announces the app's URL by writing `http://127.0.0.1:PORT`
/// to `url_file` (a file or FIFO the deploy script reads, to publish `PIT_TEST_APP_URL`).
///
/// # Errors
/// When no port can be bound or the file cannot be written.
pub async fn listen_and_announce(url_file: &std::path::Path) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    tokio::fs::write(url_file, format!("http://{}\n", listener.local_addr()?)).await?;
    Ok(listener)
}

async fn start(State(state): State<AppState>, Json(req): Json<StartRequest>) -> Json<StartResponse> {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let (tx, _) = watch::channel(Session {
        suite: req.test_suite_id.clone(),
        status: SessionStatus::Running,
        report: None,
        error: None,
    });
    state
        .sessions
        .lock()
        .expect("no panics while held")
        .insert(id.clone(), tx.clone());
    let fut = (state.tests)(req.test_suite_id.clone());
    // The session outlives this request by design: its end is published through `tx`.
    tokio::spawn(async move {
        let result = fut.await;
        tx.send_modify(|s| match result {
            Ok(report) => {
                s.status = SessionStatus::Completed;
                s.report = Some(report);
            }
            Err(e) => {
                s.status = SessionStatus::Error;
                s.error = Some(e);
            }
        });
    });
    Json(StartResponse {
        session_id: id.into(),
        test_suite_id: req.test_suite_id,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionQuery {
    session_id: String,
    /// Seconds to hold the answer until the session ends (PIT's extension).
    wait: Option<f64>,
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": format!("no session `{id}`")})),
    )
        .into_response()
}

async fn status(State(state): State<AppState>, Query(q): Query<SessionQuery>) -> Response {
    let Some(tx) = state
        .sessions
        .lock()
        .expect("no panics while held")
        .get(&q.session_id)
        .cloned()
    else {
        return not_found(&q.session_id);
    };
    let mut rx = tx.subscribe();
    if let Some(wait) = q.wait.filter(|w| w.is_finite() && *w > 0.0) {
        let wait = Duration::from_secs_f64(wait).min(MAX_WAIT);
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.status.is_finished())).await;
    }
    let s = rx.borrow().clone();
    Json(StatusResponse {
        session_id: q.session_id.into(),
        test_suite_id: s.suite,
        status: s.status,
        error: s.error,
    })
    .into_response()
}

fn report(state: &AppState, id: String) -> Response {
    let Some(tx) = state.sessions.lock().expect("no panics while held").get(&id).cloned() else {
        return not_found(&id);
    };
    let s = tx.borrow().clone();
    Json(ReportResponse {
        session_id: id.into(),
        test_suite_id: s.suite,
        status: s.status,
        data: s.report,
        error: s.error,
    })
    .into_response()
}

async fn report_by_query(State(state): State<AppState>, Query(q): Query<SessionQuery>) -> Response {
    report(&state, q.session_id)
}

async fn report_by_path(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    report(&state, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pit_core::runner::{HttpTestRunnerClient, TestRunnerClient};
    use tokio_util::sync::CancellationToken;

    async fn start_app(delay: Duration, fail: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, move |_suite| async move {
            tokio::time::sleep(delay).await;
            if fail {
                Err("the database was not reachable".to_owned())
            } else {
                Ok(TestReport::default())
            }
        }));
        url
    }

    #[tokio::test]
    async fn the_client_sees_the_end_of_a_long_poll_without_polling() {
        let url = start_app(Duration::from_millis(300), false).await;
        let client = HttpTestRunnerClient::new(&url);
        let session = client.start(&"s".into()).await.unwrap();
        let started = std::time::Instant::now();
        // A 10 s poll interval: only the long poll can make this fast.
        let report = client
            .wait_for_report(
                &session.session_id.to_string(),
                Duration::from_secs(20),
                Duration::from_secs(10),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(report, TestReport::default());
        let by_path: ReportResponse = reqwest::get(format!("{url}/reports/{}", session.session_id))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_path.status, SessionStatus::Completed);
    }

    #[tokio::test]
    async fn a_failing_test_function_is_reported_as_error() {
        let url = start_app(Duration::from_millis(10), true).await;
        let client = HttpTestRunnerClient::new(&url);
        let session = client.start(&"s".into()).await.unwrap();
        let err = client
            .wait_for_report(
                &session.session_id.to_string(),
                Duration::from_secs(20),
                Duration::from_millis(50),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the database was not reachable"), "{err}");
    }

    #[tokio::test]
    async fn unknown_sessions_are_404() {
        let url = start_app(Duration::ZERO, false).await;
        let resp = reqwest::get(format!("{url}/status?sessionId=nope")).await.unwrap();
        assert_eq!(resp.status(), 404);
    }
}
