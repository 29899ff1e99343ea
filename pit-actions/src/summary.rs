//! What every message says about a run: the facts of a stored report, its regressions against
//! the baseline, and where to look further.

use pit_report::compare::{Change, Comparison};
use pit_report::{Report, Verdict};
use serde::Serialize;

/// When an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// Every stream met its requirements.
    OnPass,
    /// A stream did not, or the run failed around the tests.
    OnFail,
    /// A metric regressed against the baseline (whatever the verdict).
    OnRegression,
}

impl Trigger {
    /// As written in a pitfile: `onPass`, `onFail`, `onRegression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnPass => "onPass",
            Self::OnFail => "onFail",
            Self::OnRegression => "onRegression",
        }
    }
}

/// A requirement of a failing stream, with what was observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The metric (`latency.p95`, `throughput`).
    pub metric: String,
    /// What was required, as the test app wrote it.
    pub required: String,
    /// What was observed, if the app reported it.
    pub observed: Option<String>,
}

/// A stream that did not meet its requirements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingStream {
    /// Its scenario.
    pub scenario: String,
    /// The stream.
    pub stream: String,
    /// Its requirements, each with what was observed.
    pub checks: Vec<Check>,
}

/// A metric that got worse beyond its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// `scenario/stream/metric[.stat]`.
    pub key: String,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// This run's value.
    pub current: Option<f64>,
    /// The change, in percent.
    pub delta_pct: Option<f64>,
}

/// Where to look further; given by the frontend (a report server's URL, the CI job).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Links {
    /// The HTML report.
    pub report: Option<String>,
    /// The CI job.
    pub job: Option<String>,
}

/// The facts every action's message is made of. Templates see it as `summary`.
///
/// ```
/// use pit_actions::summary::{Links, Summary};
/// let report = pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
/// let s = Summary::of(&report, None, Links::default());
/// assert_eq!(s.verdict, "failed");
/// assert_eq!(s.failing[0].stream, "POST /orders");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The project.
    pub project: String,
    /// The suite.
    pub suite: String,
    /// The run.
    pub run_id: String,
    /// `passed`, `failed` or `error`.
    pub verdict: &'static str,
    /// How long the run took, in seconds (0 when the report has no times).
    pub duration_secs: f64,
    /// The run's error, for `error`.
    pub error: Option<String>,
    /// The branch and commit tested.
    pub branch: Option<String>,
    /// The commit tested.
    pub commit: Option<String>,
    /// Streams that did not meet their requirements.
    pub failing: Vec<FailingStream>,
    /// Metrics that regressed against the baseline.
    pub regressions: Vec<Regression>,
    /// How many baseline runs the comparison used (0: none).
    pub baseline_runs: usize,
    /// Links.
    pub links: Links,
}

impl Summary {
    /// The summary of `report`, compared as `comparison` says.
    pub fn of(report: &Report, comparison: Option<&Comparison>, links: Links) -> Self {
        let verdict = match report.verdict() {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Error => "error",
        };
        let ms = |t: &str| pit_report::schema::parse_time(t);
        let duration_secs = match (ms(&report.start_time), ms(&report.end_time)) {
            (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1000.0,
            _ => 0.0,
        };
        let failing = report
            .scenarios
            .iter()
            .flat_map(|sc| {
                sc.streams
                    .iter()
                    .filter(|st| st.outcome == pit_core::protocol::Outcome::Fail)
                    .map(|st| FailingStream {
                        scenario: sc.name.clone(),
                        stream: st.name.clone(),
                        checks: st
                            .requirements
                            .iter()
                            .flat_map(|req| checks_of(req, &st.observations))
                            .collect(),
                    })
            })
            .collect();
        let regressions = comparison
            .map(|c| {
                c.metrics
                    .iter()
                    .filter(|m| m.change == Change::Regression)
                    .map(|m| Regression {
                        key: m.key.clone(),
                        baseline: m.baseline,
                        current: m.current,
                        delta_pct: m.delta_pct,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            project: report.project.clone().unwrap_or_default(),
            suite: report.suite.clone().unwrap_or_else(|| report.name.clone()),
            run_id: report.run_id.clone().unwrap_or_default(),
            verdict,
            duration_secs,
            error: report.error.clone(),
            branch: report.branch.clone(),
            commit: report.git_commit.clone(),
            failing,
            regressions,
            baseline_runs: comparison.map_or(0, |c| c.baseline_runs.len()),
            links,
        }
    }

    /// Whether actions configured for `trigger` run for this summary.
    pub fn triggers(&self, trigger: Trigger) -> bool {
        match trigger {
            Trigger::OnPass => self.verdict == "passed",
            Trigger::OnFail => self.verdict != "passed",
            Trigger::OnRegression => !self.regressions.is_empty(),
        }
    }
}

/// A requirement's checks: one per value (a DISTRIBUTION requires several percentiles).
fn checks_of(req: &pit_core::protocol::Metric, observed: &[pit_core::protocol::Metric]) -> Vec<Check> {
    let seen = observed.iter().find(|o| o.name == req.name);
    match &req.value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(stat, v)| Check {
                metric: format!("{}.{stat}", req.name),
                required: plain(v),
                observed: seen.and_then(|o| o.value.get(stat)).map(plain),
            })
            .collect(),
        v => vec![Check {
            metric: req.name.clone(),
            required: plain(v),
            observed: seen.map(|o| plain(&o.value)),
        }],
    }
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
