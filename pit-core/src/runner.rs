//! Talking to a Test Runner App: start a session, wait for it, fetch its report.

use std::time::Duration;

// tokio's clock: the same as the system's in a run, and paused (instant) in tests.
use tokio::time::Instant;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::pitfile::SuiteId;
use crate::protocol::{ReportResponse, SessionStatus, StartRequest, StartResponse, StatusResponse, TestReport};

/// Why talking to the test app failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The app could not be reached or answered with an error status.
    #[error("test app at `{url}` failed to answer {what}")]
    Http {
        /// The app's base URL.
        url: String,
        /// Which call.
        what: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The session ended with status ERROR.
    #[error("the test session `{session}` failed: {message}")]
    SessionFailed {
        /// The session.
        session: String,
        /// What the app said.
        message: String,
    },
    /// The tests ran past the suite's `timeoutSeconds`.
    #[error("the tests did not finish within {}s (hint: raise the suite's `timeoutSeconds`)", timeout.as_secs())]
    TimedOut {
        /// The limit.
        timeout: Duration,
    },
    /// The run is ending.
    #[error("stopped waiting for the tests because the run is ending")]
    Cancelled,
    /// The app answered COMPLETED without a report.
    #[error("the test app completed session `{session}` without a report")]
    NoReport {
        /// The session.
        session: String,
    },
}

/// A Test Runner App's client.
#[async_trait]
pub trait TestRunnerClient: Send + Sync {
    /// `POST /start`.
    async fn start(&self, suite: &SuiteId) -> Result<StartResponse, RunnerError>;

    /// `GET /status`; with `wait`, asks the app to hold the answer until the session ends or
    /// `wait` passes (apps that do not know the parameter answer at once).
    async fn status(&self, session: &str, wait: Option<Duration>) -> Result<StatusResponse, RunnerError>;

    /// `GET /reports`.
    async fn report(&self, session: &str) -> Result<ReportResponse, RunnerError>;

    /// Waits until the session ends, for at most `timeout`: long polls where the app supports
    /// them, polling every `poll` otherwise. Returns the report.
    async fn wait_for_report(
        &self,
        session: &str,
        timeout: Duration,
        poll: Duration,
        cancel: &CancellationToken,
    ) -> Result<TestReport, RunnerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RunnerError::TimedOut { timeout });
            }
            let asked = Instant::now();
            let status = tokio::select! {
                s = self.status(session, Some(remaining.min(Duration::from_secs(30)))) => s?,
                () = cancel.cancelled() => return Err(RunnerError::Cancelled),
            };
            match status.status {
                SessionStatus::Completed => {
                    let report = self.report(session).await?;
                    return report.data.ok_or_else(|| RunnerError::NoReport {
                        session: session.to_owned(),
                    });
                }
                SessionStatus::Error => {
                    return Err(RunnerError::SessionFailed {
                        session: session.to_owned(),
                        message: status.error.unwrap_or_else(|| "no message".into()),
                    })
                }
                SessionStatus::Pending | SessionStatus::Running => {}
            }
            // An app that answered at once does not long-poll: poll at the given pace.
            if asked.elapsed() < poll {
                tokio::select! {
                    () = tokio::time::sleep(poll.min(deadline.saturating_duration_since(Instant::now()))) => {}
                    () = cancel.cancelled() => return Err(RunnerError::Cancelled),
                }
            }
        }
    }
}

/// The HTTP client of the Test Runner protocol.
#[derive(Debug, Clone)]
pub struct HttpTestRunnerClient {
    base: String,
    http: reqwest::Client,
}

impl HttpTestRunnerClient {
    /// A client for the app at `base_url` (such as `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            // A test app that hangs must not hang PIT: every call has a limit (the long poll
            // sets its own, longer one).
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Sends `req` and reads its JSON answer; `what` names the call in errors.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RunnerError> {
        let err = |source| RunnerError::Http {
            url: self.base.clone(),
            what,
            source,
        };
        req.send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?
            .json()
            .await
            .map_err(err)
    }
}

#[async_trait]
impl TestRunnerClient for HttpTestRunnerClient {
    async fn start(&self, suite: &SuiteId) -> Result<StartResponse, RunnerError> {
        let req = self.http.post(format!("{}/start", self.base)).json(&StartRequest {
            test_suite_id: suite.clone(),
        });
        self.call("POST /start", req).await
    }

    async fn status(&self, session: &str, wait: Option<Duration>) -> Result<StatusResponse, RunnerError> {
        let mut query = vec![("sessionId", session.to_owned())];
        let mut req = self.http.get(format!("{}/status", self.base));
        if let Some(w) = wait {
            query.push(("wait", format!("{:.3}", w.as_secs_f64())));
            req = req.timeout(w + Duration::from_secs(10));
        }
        self.call("GET /status", req.query(&query)).await
    }

    async fn report(&self, session: &str) -> Result<ReportResponse, RunnerError> {
        let req = self
            .http
            .get(format!("{}/reports", self.base))
            .query(&[("sessionId", session)]);
        self.call("GET /reports", req).await
    }
}
