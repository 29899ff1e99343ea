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

/// A test session's id, as the test app wrote it: a string (`"s-1"`) or a number (`1`).
///
/// The existing toolkit's test apps answer `/start` with a string and `/status` and `/reports`
/// with a number; PIT accepts either wherever the protocol carries an id, and writes an id back
/// the way the app sent it.
///
/// ```
/// use pit_core::protocol::SessionId;
/// let n: SessionId = serde_json::from_str("1").unwrap();
/// let s: SessionId = serde_json::from_str(r#""1""#).unwrap();
/// assert_eq!(n.to_string(), "1");
/// assert_eq!(n, s, "the same session, however it was written");
/// assert_eq!(serde_json::to_string(&n).unwrap(), "1");
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#""1""#);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SessionId {
    /// Written as a JSON string.
    Text(String),
    /// Written as a JSON number.
    Number(serde_json::Number),
}

impl SessionId {
    /// The id as it goes into a URL (`?sessionId=1`).
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Text(s) => std::borrow::Cow::Borrowed(s),
            Self::Number(n) => std::borrow::Cow::Owned(n.to_string()),
        }
    }
}

/// Ids are equal when their text is: `1` and `"1"` name the same session.
impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.as_text() == other.as_text()
    }
}

impl Eq for SessionId {}

impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_text().hash(state);
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_text())
    }
}

impl From<String> for SessionId {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<u64> for SessionId {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

/// `POST /start` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    /// The new session.
    pub session_id: SessionId,
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
    pub session_id: SessionId,
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
    pub session_id: SessionId,
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
    /// Every scenario run (`scenarios` in the existing toolkit's report envelope).
    #[serde(alias = "scenarios")]
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
    /// Name (`id` in some of the existing toolkit's test apps).
    #[serde(alias = "id")]
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
///
/// Read from `value` or `values` (the existing toolkit's report UI writes `values` for
/// distributions); written as `value`. A value of the wrong type is refused, saying so.
///
/// ```
/// use pit_core::protocol::Metric;
/// let m: Metric = serde_json::from_str(r#"{"name":"latency","type":"DISTRIBUTION","values":{"95":2.1}}"#).unwrap();
/// assert_eq!(m.value["95"], 2.1);
/// let e = serde_json::from_str::<Metric>(r#"{"name":"tps","type":"SCALAR","value":"fast"}"#).unwrap_err();
/// assert!(e.to_string().contains("is a string"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMetric")]
pub struct Metric {
    /// Name, such as `throughput` or `latency`.
    pub name: String,
    /// SCALAR or DISTRIBUTION.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// A number for SCALAR (or null, which JavaScript writes for NaN and infinities); for
    /// DISTRIBUTION, percentiles by name (`{"p50": 1.2, "p99": 7.5}`) or raw samples
    /// (`[1.2, 3.4]`).
    pub value: serde_json::Value,
}

/// A [`Metric`] as written, before its value's type is checked.
#[derive(Deserialize)]
struct RawMetric {
    name: String,
    #[serde(rename = "type")]
    kind: MetricType,
    #[serde(alias = "values")]
    value: serde_json::Value,
}

impl TryFrom<RawMetric> for Metric {
    type Error = String;

    fn try_from(raw: RawMetric) -> Result<Self, String> {
        use serde_json::Value;
        let number_or_null = |v: &Value| v.is_number() || v.is_null();
        let fits = match (&raw.kind, &raw.value) {
            (MetricType::Scalar, v) => number_or_null(v),
            (MetricType::Distribution, Value::Object(m)) => m.values().all(number_or_null),
            (MetricType::Distribution, Value::Array(a)) => a.iter().all(number_or_null),
            (MetricType::Distribution, v) => number_or_null(v),
        };
        if !fits {
            let (kind, expected) = match raw.kind {
                MetricType::Scalar => ("SCALAR", "a number"),
                MetricType::Distribution => (
                    "DISTRIBUTION",
                    "numbers by percentile ({\"p99\": 7.5}) or an array of samples ([1.2, 3.4])",
                ),
            };
            return Err(format!(
                "metric `{}`: the value of a {kind} is {}; expected {expected}",
                raw.name,
                json_type(&raw.value),
            ));
        }
        Ok(Self {
            name: raw.name,
            kind: raw.kind,
            value: raw.value,
        })
    }
}

/// What a JSON value is, for messages: `a string`, `an object of strings`…
fn json_type(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let one = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let inner = match v {
        Value::Object(m) => m.values().find(|x| !x.is_number() && !x.is_null()),
        Value::Array(a) => a.iter().find(|x| !x.is_number() && !x.is_null()),
        _ => None,
    };
    match inner {
        Some(x) => format!("{} holding {}", one(v), one(x)),
        None => one(v).to_owned(),
    }
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
