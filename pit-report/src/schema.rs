//! The report format: schema version 1.0 of the existing PIT toolkit, with optional additions
//! that old readers ignore. `docs/schemas/report.schema.json` describes it.

use std::collections::BTreeMap;
use std::path::Path;

use pit_core::protocol::{Metric, MetricType, Outcome, Stream};
use pit_core::sink::{SuiteReport, TimelineEntry};
use serde::{Deserialize, Serialize};

/// The schema version this crate writes.
pub const SCHEMA_VERSION: &str = "1.0";

/// One suite's report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `1.0` when written. Read from a string (`"1.0"`), a number (`1.0`, as the existing
    /// toolkit's report UI ships it) or its absence (read as `1.0`).
    #[serde(default = "default_schema_version", deserialize_with = "schema_version")]
    pub schema_version: String,
    /// The suite's name.
    #[serde(default)]
    pub name: String,
    /// When the suite started (RFC 3339).
    #[serde(default)]
    pub start_time: String,
    /// When it ended, teardown included (RFC 3339).
    #[serde(default)]
    pub end_time: String,
    /// Free-form data.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// What was tested.
    #[serde(default)]
    pub scenarios: Vec<ReportScenario>,
    /// The run (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The pitfile's project (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The suite id (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// The branch the run tested (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit the run tested (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// A hash of the suite's specification: runs with equal hashes are comparable (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// `passed`, `failed`, `error` or `cancelled` (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// What went wrong, for `error` and `cancelled` (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every step of the run with its times (addition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

/// A scenario: streams of work with requirements and observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportScenario {
    /// Name (`id` in some of the existing toolkit's test apps).
    #[serde(alias = "id")]
    pub name: String,
    /// Start (as the test app sent it).
    #[serde(default)]
    pub start_time: serde_json::Value,
    /// End.
    #[serde(default)]
    pub end_time: serde_json::Value,
    /// Requirements against observations.
    #[serde(default)]
    pub streams: Vec<Stream>,
    /// The components it exercised.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Free-form data.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

/// A component a scenario exercised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Name (or id).
    pub name: String,
    /// The version (commit) deployed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_version: Option<String>,
}

/// A report's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every stream met its requirements.
    Passed,
    /// A stream did not.
    Failed,
    /// The run failed before or around the tests.
    Error,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The file could not be read.
    #[error("cannot read the report {}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a report.
    #[error("{}:{line}:{column}: not a PIT report: {message} (hint: reports are JSON with `schemaVersion: \"1.0\"`, as `pit run` stores them)", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Line of the problem.
        line: usize,
        /// Column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A schema version this crate does not know.
    #[error("{}: report schema version `{version}` is not supported (this PIT reads 1.x)", path.display())]
    Version {
        /// The file.
        path: std::path::PathBuf,
        /// The version found.
        version: String,
    },
}

fn default_schema_version() -> String {
    SCHEMA_VERSION.to_owned()
}

/// A schema version written as a string or a number: the number's text as written
/// (`1.0` stays `1.0`, `1` stays `1`).
fn schema_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a version as a string (\"1.0\") or a number (1.0)")]
    enum Version {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Version::deserialize(d)? {
        Version::Text(s) => s,
        Version::Number(n) => n.to_string(),
    })
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Unix milliseconds of an RFC 3339 time, when it is one.
pub fn parse_time(value: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(value.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Report {
    /// The report of a suite as the engine recorded it.
    ///
    /// ```
    /// # let suite: pit_core::sink::SuiteReport = serde_json::from_str(r#"{"schema":"pit.suite-report/v1","runId":"01jq","project":"shop","suiteId":"checkout","suiteName":"Checkout","outcome":"passed","startedMs":1764000000000,"finishedMs":1764000060000,"timeline":[]}"#).unwrap();
    /// let report = pit_report::Report::from_suite(&suite);
    /// assert_eq!(report.schema_version, "1.0");
    /// assert_eq!(report.suite.as_deref(), Some("checkout"));
    /// ```
    pub fn from_suite(suite: &SuiteReport) -> Self {
        let scenarios = suite
            .test_report
            .as_ref()
            .map(|t| {
                t.executed_scenarios
                    .iter()
                    .map(|s| ReportScenario {
                        name: s.name.clone(),
                        start_time: s.start_time.clone(),
                        end_time: s.end_time.clone(),
                        streams: s.streams.clone(),
                        components: s
                            .component_ids
                            .iter()
                            .map(|c| Component {
                                name: c.clone(),
                                commit_version: None,
                            })
                            .collect(),
                        metadata: s.metadata.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            schema_version: SCHEMA_VERSION.into(),
            name: suite.suite_name.clone(),
            start_time: rfc3339(suite.started_ms),
            end_time: rfc3339(suite.finished_ms),
            metadata: serde_json::Map::new(),
            scenarios,
            run_id: Some(suite.run_id.clone()),
            project: Some(suite.project.clone()),
            suite: Some(suite.suite_id.clone()),
            branch: None,
            git_commit: None,
            spec_hash: suite.spec_hash.clone(),
            outcome: Some(suite.outcome.clone()),
            error: suite.error.clone(),
            timeline: suite.timeline.clone(),
        }
    }

    /// The suite record this report was made from (as far as the report keeps it), for
    /// [`pit_core::sink::ReportSink::list`].
    pub fn to_suite(&self) -> SuiteReport {
        let scenarios = self
            .scenarios
            .iter()
            .map(|s| pit_core::protocol::Scenario {
                name: s.name.clone(),
                start_time: s.start_time.clone(),
                end_time: s.end_time.clone(),
                streams: s.streams.clone(),
                component_ids: s.components.iter().map(|c| c.name.clone()).collect(),
                metadata: s.metadata.clone(),
            })
            .collect::<Vec<_>>();
        SuiteReport {
            schema: "pit.suite-report/v1".into(),
            run_id: self.run_id.clone().unwrap_or_default(),
            project: self.project.clone().unwrap_or_default(),
            suite_id: self.suite.clone().unwrap_or_else(|| self.name.clone()),
            suite_name: self.name.clone(),
            outcome: self.outcome.clone().unwrap_or_else(|| match self.verdict() {
                Verdict::Passed => "passed".into(),
                Verdict::Failed => "failed".into(),
                Verdict::Error => "error".into(),
            }),
            error: self.error.clone(),
            started_ms: self.start_ms().unwrap_or(0),
            finished_ms: parse_time(&self.end_time).unwrap_or(0),
            timeline: self.timeline.clone(),
            test_report: (!scenarios.is_empty()).then_some(pit_core::protocol::TestReport {
                executed_scenarios: scenarios,
            }),
            spec_hash: self.spec_hash.clone(),
        }
    }

    /// Reads a report: schema 1.0 (with or without additions), or a suite record
    /// (`pit_core::sink::SuiteReport` as JSON, what `pit run -o json` shows per suite).
    ///
    /// # Errors
    /// [`ReportError`] saying where the file is wrong.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(path, &text)
    }

    /// [`load`](Self::load) from text; `path` is for messages.
    ///
    /// # Errors
    /// [`ReportError`] saying where the text is wrong.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, ReportError> {
        let invalid = |e: serde_json::Error| ReportError::Invalid {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
        if value.get("schema").and_then(|s| s.as_str()) == Some("pit.suite-report/v1") {
            let suite: SuiteReport = serde_json::from_value(value).map_err(invalid)?;
            return Ok(Self::from_suite(&suite));
        }
        // Absent is 1.0 (the existing toolkit's early reports carry no version); one of the
        // wrong type is reported by the deserialisation below, with its position.
        if let Some(Ok(version)) = value.get("schemaVersion").map(schema_version) {
            if version != "1" && !version.starts_with("1.") {
                return Err(ReportError::Version {
                    path: path.to_owned(),
                    version,
                });
            }
        }
        // Deserialised from the text again so that errors point at a line and column.
        serde_json::from_str(text).map_err(invalid)
    }

    /// The verdict: error when the run failed around the tests, else from the streams.
    pub fn verdict(&self) -> Verdict {
        match self.outcome.as_deref() {
            Some("error" | "cancelled") => return Verdict::Error,
            Some("failed") => return Verdict::Failed,
            _ => {}
        }
        let streams: Vec<&Stream> = self.scenarios.iter().flat_map(|s| &s.streams).collect();
        if streams.is_empty() {
            return if self.outcome.as_deref() == Some("passed") {
                Verdict::Passed
            } else {
                Verdict::Error
            };
        }
        if streams.iter().all(|s| s.outcome == Outcome::Pass) {
            Verdict::Passed
        } else {
            Verdict::Failed
        }
    }

    /// Start in Unix milliseconds, when `start_time` parses.
    pub fn start_ms(&self) -> Option<u64> {
        parse_time(&self.start_time)
    }

    /// Every observed figure, flattened: one per SCALAR, one per percentile (and the mean,
    /// for samples) of a DISTRIBUTION.
    pub fn figures(&self) -> Vec<Figure> {
        let mut out = Vec::new();
        for sc in &self.scenarios {
            for st in &sc.streams {
                for m in &st.observations {
                    for (stat, value) in stats(m) {
                        out.push(Figure {
                            key: figure_key(&sc.name, &st.name, &m.name, stat.as_deref()),
                            scenario: sc.name.clone(),
                            stream: st.name.clone(),
                            metric: m.name.clone(),
                            stat,
                            value,
                            samples: samples(m),
                        });
                    }
                }
            }
        }
        out
    }
}

/// `scenario/stream/metric` or `scenario/stream/metric.p99`.
pub fn figure_key(scenario: &str, stream: &str, metric: &str, stat: Option<&str>) -> String {
    match stat {
        Some(s) => format!("{scenario}/{stream}/{metric}.{s}"),
        None => format!("{scenario}/{stream}/{metric}"),
    }
}

/// One number of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figure {
    /// `scenario/stream/metric[.stat]`: the same across runs.
    pub key: String,
    /// Scenario.
    pub scenario: String,
    /// Stream.
    pub stream: String,
    /// Metric.
    pub metric: String,
    /// For distributions: `p50`, `p99`, `mean`…
    pub stat: Option<String>,
    /// The value.
    pub value: f64,
    /// The raw samples of a distribution, when the report has them.
    #[serde(skip)]
    pub samples: Option<Vec<f64>>,
}

/// The raw samples of a DISTRIBUTION given as an array of numbers.
pub fn samples(m: &Metric) -> Option<Vec<f64>> {
    match (&m.kind, &m.value) {
        (MetricType::Distribution, serde_json::Value::Array(a)) => {
            Some(a.iter().filter_map(serde_json::Value::as_f64).collect())
        }
        _ => None,
    }
}

/// The `q`-quantile (0 to 1) of sorted `xs`, linearly interpolated.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A metric's numbers by statistic: `None` for a SCALAR; for a DISTRIBUTION the percentiles
/// it gives (`{"p50": …}`), or, for raw samples, p50, p90, p99 and the mean.
pub fn stats(m: &Metric) -> Vec<(Option<String>, f64)> {
    match (&m.kind, &m.value) {
        (MetricType::Scalar, v) => v.as_f64().map(|x| vec![(None, x)]).unwrap_or_default(),
        (MetricType::Distribution, serde_json::Value::Object(map)) => {
            let by: BTreeMap<&String, f64> = map.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect();
            by.into_iter().map(|(k, x)| (Some(k.clone()), x)).collect()
        }
        (MetricType::Distribution, serde_json::Value::Array(_)) => {
            let mut xs = samples(m).unwrap_or_default();
            if xs.is_empty() {
                return Vec::new();
            }
            xs.sort_by(f64::total_cmp);
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            vec![
                (Some("p50".into()), quantile(&xs, 0.50)),
                (Some("p90".into()), quantile(&xs, 0.90)),
                (Some("p99".into()), quantile(&xs, 0.99)),
                (Some("mean".into()), mean),
            ]
        }
        (MetricType::Distribution, v) => v.as_f64().map(|x| vec![(None, x)]).unwrap_or_default(),
    }
}
