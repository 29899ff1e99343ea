//! The Test Runner protocol: what PIT and a Test Runner App say to each other over HTTP.
//!
//! Compatible with test apps written for the existing PIT toolkit (see `docs/test-runner.md` and
//! `docs/schemas/test-runner.openapi.yaml`):
//!
//! - `POST /start` with [`StartRequest`] answers [`StartResponse`];
//! - `GET /status?sessionId=…` answers [`StatusResponse`]; PIT's extension `&wait=<seconds>`
//!   holds the answer until the session ends or the time passes (a long poll);
//! - `GET /reports?sessionId=…` (or `GET /reports/{sessionId}`) answers [`ReportResponse`].

use serde::{Deserialize, Serialize};

use crate::pitfile::SuiteId;

/// Output key a test app writes to `PIT_OUTPUTS` to publish its base URL.
pub const TEST_APP_URL_KEY: &str = "PIT_TEST_APP_URL";

/// `POST /start` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    /// The suite whose tests to run.
    pub test_suite_id: SuiteId,
}

/// `POST /start` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    /// The new session.
    pub session_id: String,
    /// The suite, echoed.
    pub test_suite_id: SuiteId,
}

/// Where a test session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Running,
    /// Finished; the report is ready.
    Completed,
    /// Failed to run; see `error`.
    Error,
}

impl SessionStatus {
    /// Whether the session has ended (completed or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Error)
    }
}

/// `GET /status` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The session.
    pub session_id: String,
    /// Its suite.
    pub test_suite_id: SuiteId,
    /// Where it is.
    pub status: SessionStatus,
    /// What went wrong, with status ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /reports` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResponse {
    /// The session.
    pub session_id: String,
    /// Its suite.
    pub test_suite_id: SuiteId,
    /// Where it is.
    pub status: SessionStatus,
    /// The report, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TestReport>,
    /// What went wrong, with status ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the tests found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// Every scenario run.
    pub executed_scenarios: Vec<Scenario>,
}

impl TestReport {
    /// Whether every stream of every scenario passed (an empty report passes nothing: false).
    pub fn passed(&self) -> bool {
        !self.executed_scenarios.is_empty()
            && self
                .executed_scenarios
                .iter()
                .all(|s| s.streams.iter().all(|st| st.outcome == Outcome::Pass))
    }
}

/// One scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// When it started (ISO 8601 as sent by the app).
    #[serde(default)]
    pub start_time: serde_json::Value,
    /// When it ended.
    #[serde(default)]
    pub end_time: serde_json::Value,
    /// Its measured streams.
    #[serde(default)]
    pub streams: Vec<Stream>,
    /// Components it exercised.
    #[serde(default)]
    pub component_ids: Vec<String>,
    /// Anything else the app reports.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

/// Requirements against observations for one stream of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// Name.
    pub name: String,
    /// What must hold.
    #[serde(default)]
    pub requirements: Vec<Metric>,
    /// What was measured.
    #[serde(default)]
    pub observations: Vec<Metric>,
    /// The verdict.
    pub outcome: Outcome,
}

/// A stream's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Requirements met.
    Pass,
    /// Requirements not met.
    Fail,
}

/// A measured or required value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name, such as `throughput` or `latency`.
    pub name: String,
    /// SCALAR or DISTRIBUTION.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// A number for SCALAR; for DISTRIBUTION, percentiles by name (`{"p50": 1.2, "p99": 7.5}`).
    pub value: serde_json::Value,
}

/// The kind of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetricType {
    /// One number.
    Scalar,
    /// A distribution.
    Distribution,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_the_existing_toolkit_deserialise() {
        let json = r#"{"sessionId":"s1","testSuiteId":"t1","status":"COMPLETED","data":{"executedScenarios":[
            {"name":"sc","startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-01T00:01:00Z","componentIds":["node-1"],
             "streams":[{"name":"st","requirements":[{"name":"tps","type":"SCALAR","value":100}],
                         "observations":[{"name":"tps","type":"SCALAR","value":120.5}],"outcome":"PASS"}]}]}}"#;
        let r: ReportResponse = serde_json::from_str(json).unwrap();
        let data = r.data.unwrap();
        assert!(data.passed());
        assert_eq!(data.executed_scenarios[0].streams[0].observations[0].value, 120.5);
    }

    #[test]
    fn one_failed_stream_fails_the_report_and_empty_reports_do_not_pass() {
        let mut report = TestReport {
            executed_scenarios: vec![Scenario {
                name: "a".into(),
                start_time: Default::default(),
                end_time: Default::default(),
                streams: vec![Stream {
                    name: "s".into(),
                    requirements: vec![],
                    observations: vec![],
                    outcome: Outcome::Pass,
                }],
                component_ids: vec![],
                metadata: Default::default(),
            }],
        };
        assert!(report.passed());
        report.executed_scenarios[0].streams[0].outcome = Outcome::Fail;
        assert!(!report.passed());
        assert!(!TestReport::default().passed());
    }
}
