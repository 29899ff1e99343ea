//! Where suite reports go: the [`ReportSink`] trait (pit-report's `DirStore` and `GitStore`
//! are the stores; `pit_core::testing::MemoryReportSink` is the double).

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::protocol::TestReport;

/// The record of one suite of one run: its outcome, its timeline, and the test app's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteReport {
    /// Always `pit.suite-report/v1`.
    pub schema: String,
    /// The run.
    pub run_id: String,
    /// The pitfile's project.
    pub project: String,
    /// The suite id.
    pub suite_id: String,
    /// The suite name.
    pub suite_name: String,
    /// `passed`, `failed`, `error` or `cancelled`.
    pub outcome: String,
    /// What went wrong, for `error` and `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix ms when the suite started.
    pub started_ms: u64,
    /// Unix ms when it ended (teardown included).
    pub finished_ms: u64,
    /// Every step with its times.
    pub timeline: Vec<TimelineEntry>,
    /// A hash of the suite's specification (its planned steps, without run-specific names):
    /// runs with equal hashes ran the same thing and can be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The test app's report, when the tests ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_report: Option<TestReport>,
}

/// One step of a run: lock wait, environment, each deploy and readiness check, tests, teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// `environment`, `lock`, `deploy`, `status-check`, `test`, `undeploy`, `release`.
    pub step: String,
    /// The component, for component steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Unix ms at the start.
    pub start_ms: u64,
    /// Unix ms at the end.
    pub end_ms: u64,
    /// `ok`, `failed` or `cancelled`.
    pub outcome: String,
    /// Detail, such as the number of status-check attempts or an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where a stored report is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredReport {
    /// A path or URL.
    pub location: String,
}

/// Why a report could not be stored or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A remote store (such as a git repository) failed.
    #[error("report store `{store}` failed: {message}")]
    Remote {
        /// The store, without credentials.
        store: String,
        /// What went wrong.
        message: String,
        /// The error underneath, where there is one (git's): reachable by `downcast_ref`.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// File system trouble.
    #[error("report store `{}` failed", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Keeps suite reports.
#[async_trait]
pub trait ReportSink: Send + Sync {
    /// Stores `report` permanently.
    async fn store(&self, report: &SuiteReport) -> Result<StoredReport, SinkError>;

    /// Earlier reports of `project`'s `suite`, oldest first.
    async fn list(&self, project: &str, suite: &str) -> Result<Vec<SuiteReport>, SinkError>;
}

/// A file-name-safe version of `s` (no separators, no leading dot): the folder names of
/// report stores.
///
/// ```
/// assert_eq!(pit_core::sink::path_safe("../shop/checkout"), "_shop_checkout");
/// ```
pub fn path_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_owned()
}
