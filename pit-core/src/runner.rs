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
    /// The app answered with more than PIT reads ([`MAX_ANSWER_BYTES`], [`MAX_REPORT_BYTES`]):
    /// reading stopped at the limit.
    #[error("test app at `{url}` answered {what} with more than {} MiB, which PIT does not read (hint: {})", limit >> 20, too_large_hint(what))]
    TooLarge {
        /// The app's base URL.
        url: String,
        /// Which call.
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The app's answer is not what the Test Runner protocol says.
    #[error("test app at `{url}` answered {what} with something that is not the protocol's JSON")]
    Invalid {
        /// The app's base URL.
        url: String,
        /// Which call.
        what: &'static str,
        /// Where and why it could not be read.
        #[source]
        source: serde_json::Error,
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

impl RunnerError {
    /// Whether the app could not be reached or its answer did not arrive (refused, reset, timed
    /// out), rather than an answer saying something failed: a status poll that fails so is
    /// tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { source, .. } => {
                !source.is_status()
                    && !source.is_decode()
                    && (source.is_connect() || source.is_timeout() || source.is_request() || source.is_body())
            }
            _ => false,
        }
    }
}

/// What to do about an answer too large to read.
fn too_large_hint(what: &str) -> &'static str {
    if what == "GET /reports" {
        "a report this large usually holds raw samples: keep them in the test app's own files and report figures"
    } else {
        "the protocol's answers to /start and /status are small JSON objects: is this URL the test app's?"
    }
}

/// The most PIT reads of a test app's answer to `POST /start` or `GET /status`: 1 MiB.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The most PIT reads of a test app's report (`GET /reports`): 256 MiB. An app that sends more
/// (or sends without end) fails the suite with [`RunnerError::TooLarge`] instead of filling
/// PIT's memory.
pub const MAX_REPORT_BYTES: usize = 256 << 20;

/// How many status polls in a row may fail to reach the app before the wait gives up: 12, as
/// the existing toolkit's deployer allows (its `MAX_TECH_FAILURES`). An answer resets the count.
pub const MAX_POLL_FAILURES: u32 = 12;

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
    ///
    /// A poll that does not reach the app ([`RunnerError::is_transient`]) is tried again after
    /// `poll`, with a warning in the log, until [`MAX_POLL_FAILURES`] fail in a row; an answer
    /// with an error status ends the wait at once.
    async fn wait_for_report(
        &self,
        session: &str,
        timeout: Duration,
        poll: Duration,
        cancel: &CancellationToken,
    ) -> Result<TestReport, RunnerError> {
        let deadline = Instant::now() + timeout;
        let mut failures = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RunnerError::TimedOut { timeout });
            }
            let asked = Instant::now();
            let status = tokio::select! {
                s = self.status(session, Some(remaining.min(Duration::from_secs(30)))) => s,
                () = cancel.cancelled() => return Err(RunnerError::Cancelled),
            };
            let status = match status {
                Ok(status) => {
                    failures = 0;
                    status
                }
                Err(e) if e.is_transient() && failures + 1 < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(
                        error = %crate::engine::error_chain(&e),
                        "status poll {failures} of at most {MAX_POLL_FAILURES} in a row did not reach the test app; trying again"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(poll.min(deadline.saturating_duration_since(Instant::now()))) => {}
                        () = cancel.cancelled() => return Err(RunnerError::Cancelled),
                    }
                    continue;
                }
                Err(e) => return Err(e),
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

    /// Sends `req` and reads its JSON answer, at most `limit` bytes of it; `what` names the
    /// call in errors.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<T, RunnerError> {
        let err = |source| RunnerError::Http {
            url: self.base.clone(),
            what,
            source,
        };
        let too_large = || RunnerError::TooLarge {
            url: self.base.clone(),
            what,
            limit,
        };
        let resp = req
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let (body, cut) = crate::http::read_at_most(resp, limit).await.map_err(err)?;
        if cut {
            return Err(too_large());
        }
        serde_json::from_slice(&body).map_err(|source| RunnerError::Invalid {
            url: self.base.clone(),
            what,
            source,
        })
    }
}

#[async_trait]
impl TestRunnerClient for HttpTestRunnerClient {
    async fn start(&self, suite: &SuiteId) -> Result<StartResponse, RunnerError> {
        let req = self.http.post(format!("{}/start", self.base)).json(&StartRequest {
            test_suite_id: suite.clone(),
        });
        self.call("POST /start", req, MAX_ANSWER_BYTES).await
    }

    async fn status(&self, session: &str, wait: Option<Duration>) -> Result<StatusResponse, RunnerError> {
        let mut query = vec![("sessionId", session.to_owned())];
        let mut req = self.http.get(format!("{}/status", self.base));
        if let Some(w) = wait {
            query.push(("wait", format!("{:.3}", w.as_secs_f64())));
            req = req.timeout(w + Duration::from_secs(10));
        }
        self.call("GET /status", req.query(&query), MAX_ANSWER_BYTES).await
    }

    async fn report(&self, session: &str) -> Result<ReportResponse, RunnerError> {
        let req = self
            .http
            .get(format!("{}/reports", self.base))
            .query(&[("sessionId", session)]);
        self.call("GET /reports", req, MAX_REPORT_BYTES).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// What the next status poll gets.
    enum Poll {
        Unreachable(reqwest::Error),
        Answer(SessionStatus),
        ErrorStatus(reqwest::Error),
    }

    /// A test app whose status polls answer as scripted; counts them.
    struct Scripted {
        polls: Mutex<VecDeque<Poll>>,
        asked: Mutex<u32>,
    }

    fn http_error(source: reqwest::Error) -> RunnerError {
        RunnerError::Http {
            url: "http://app".into(),
            what: "GET /status",
            source,
        }
    }

    #[async_trait]
    impl TestRunnerClient for Scripted {
        async fn start(&self, _: &SuiteId) -> Result<StartResponse, RunnerError> {
            unreachable!("the wait only polls")
        }

        async fn status(&self, _: &str, _: Option<Duration>) -> Result<StatusResponse, RunnerError> {
            *self.asked.lock().unwrap() += 1;
            let answer = |status| StatusResponse {
                session_id: 1u64.into(),
                test_suite_id: SuiteId::default(),
                status,
                error: None,
            };
            match self.polls.lock().unwrap().pop_front().expect("a scripted poll") {
                Poll::Unreachable(e) | Poll::ErrorStatus(e) => Err(http_error(e)),
                Poll::Answer(status) => Ok(answer(status)),
            }
        }

        async fn report(&self, _: &str) -> Result<ReportResponse, RunnerError> {
            Ok(ReportResponse {
                session_id: 1u64.into(),
                test_suite_id: SuiteId::default(),
                status: SessionStatus::Completed,
                data: Some(crate::testing::ScriptedRunner::passing_report()),
                error: None,
            })
        }
    }

    /// A real failure to connect: nothing listens on port 1 of loopback.
    async fn refused() -> reqwest::Error {
        reqwest::get("http://127.0.0.1:1/status").await.unwrap_err()
    }

    /// A real answer with status 500.
    fn server_error() -> reqwest::Error {
        let answer = http::Response::builder().status(500).body("boom").unwrap();
        reqwest::Response::from(answer).error_for_status().unwrap_err()
    }

    async fn wait(polls: Vec<Poll>) -> (Result<TestReport, RunnerError>, u32) {
        let app = Scripted {
            polls: Mutex::new(polls.into()),
            asked: Mutex::new(0),
        };
        let result = app
            .wait_for_report(
                "1",
                Duration::from_secs(60),
                Duration::from_millis(1),
                &CancellationToken::new(),
            )
            .await;
        let asked = *app.asked.lock().unwrap();
        (result, asked)
    }

    #[tokio::test]
    async fn polls_that_do_not_reach_the_app_are_tried_again_and_an_answer_resets_the_count() {
        let mut polls = Vec::new();
        for _ in 0..MAX_POLL_FAILURES - 1 {
            polls.push(Poll::Unreachable(refused().await));
        }
        polls.push(Poll::Answer(SessionStatus::Running));
        for _ in 0..MAX_POLL_FAILURES - 1 {
            polls.push(Poll::Unreachable(refused().await));
        }
        polls.push(Poll::Answer(SessionStatus::Completed));
        let (result, asked) = wait(polls).await;
        assert!(result.unwrap().passed());
        assert_eq!(asked, 2 * MAX_POLL_FAILURES);
    }

    #[tokio::test]
    async fn the_wait_gives_up_after_as_many_failed_polls_in_a_row_as_the_toolkit() {
        let mut polls = Vec::new();
        for _ in 0..MAX_POLL_FAILURES + 3 {
            polls.push(Poll::Unreachable(refused().await));
        }
        let (result, asked) = wait(polls).await;
        let err = result.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("failed to answer GET /status"), "{err}");
        assert_eq!(asked, MAX_POLL_FAILURES);
    }

    #[tokio::test]
    async fn an_error_status_ends_the_wait_at_once() {
        let (result, asked) = wait(vec![
            Poll::ErrorStatus(server_error()),
            Poll::Answer(SessionStatus::Completed),
        ])
        .await;
        let err = result.unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert_eq!(asked, 1);
    }
}
