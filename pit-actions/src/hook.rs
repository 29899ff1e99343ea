//! Post-test actions inside a run: [`PostTestActions`] is the engine's
//! [`AfterReport`] hook. Once a suite's report is stored it compares the report with the
//! suite's earlier runs, picks the actions its verdict and regressions call for, and runs each;
//! what each did becomes a `post-test-action` step of the suite's timeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pit_core::engine::AfterReport;
use pit_core::lock::now_ms;
use pit_core::sink::{ReportSink, StoredReport, SuiteReport, TimelineEntry};
use pit_report::store::RunContext;
use pit_report::Report;

use crate::action::{Action, ActionError, Outcome, Runner};
use crate::summary::{Links, Summary, Trigger};

/// Makes the [`Summary`] of each suite's report: compared with the suite's earlier runs in a
/// report store, with the CI job's context and links. The post-test actions' messages and
/// `pit run`'s CI summary are made of it.
///
/// A summarizer and its clones make each report's summary once: the post-test actions and the
/// CI summary show the same comparison, and the store is listed once per suite.
#[derive(Clone, Default)]
pub struct Summarizer {
    reports: Option<Arc<dyn ReportSink>>,
    context: RunContext,
    report_url: Option<String>,
    job: Option<String>,
    made: Arc<Mutex<Made>>,
}

/// The summaries a summarizer made, by project, suite and run id.
type Made = HashMap<(String, String, String), Summary>;

impl std::fmt::Debug for Summarizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summarizer")
            .field("compares", &self.reports.is_some())
            .field("report_url", &self.report_url)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl Summarizer {
    /// Compares each report with the suite's earlier runs in `reports` (for `onRegression`
    /// and the regressions shown).
    #[must_use]
    pub fn with_reports(mut self, reports: Arc<dyn ReportSink>) -> Self {
        self.made = Arc::default();
        self.reports = Some(reports);
        self
    }

    /// The branch and commit tested, where a report does not say.
    #[must_use]
    pub fn with_context(mut self, context: RunContext) -> Self {
        self.made = Arc::default();
        self.context = context;
        self
    }

    /// Links to the report at `url`, where `{project}`, `{suite}` and `{run}` stand for the
    /// report's, and to the CI job at `job`.
    #[must_use]
    pub fn with_links(mut self, url: Option<String>, job: Option<String>) -> Self {
        self.made = Arc::default();
        self.report_url = url;
        self.job = job;
        self
    }

    /// The summary of the suite's report, compared with its earlier runs in the store (a
    /// store that cannot be listed only loses the comparison, with a warning in the log).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let suite: pit_core::sink::SuiteReport = serde_json::from_str(r#"{"schema":"pit.suite-report/v1","runId":"01jq","project":"shop","suiteId":"checkout","suiteName":"Checkout","outcome":"error","error":"db did not become ready","startedMs":0,"finishedMs":1000,"timeline":[]}"#).unwrap();
    /// let summarizer = pit_actions::hook::Summarizer::default()
    ///     .with_links(Some("https://reports.example.com/{project}/{suite}/{run}".into()), None);
    /// let summary = summarizer.summary(&suite).await;
    /// assert_eq!(summary.verdict, "error");
    /// assert_eq!(summary.links.report.as_deref(), Some("https://reports.example.com/shop/checkout/01jq"));
    /// # });
    /// ```
    pub async fn summary(&self, suite: &SuiteReport) -> Summary {
        let key = (suite.project.clone(), suite.suite_id.clone(), suite.run_id.clone());
        if let Some(made) = self.made.lock().expect("summaries").get(&key) {
            return made.clone();
        }
        let summary = self.make(suite).await;
        self.made.lock().expect("summaries").insert(key, summary.clone());
        summary
    }

    async fn make(&self, suite: &SuiteReport) -> Summary {
        let mut report = Report::from_suite(suite);
        self.context.apply(&mut report);
        let comparison = match &self.reports {
            Some(sink) => match sink.list(&suite.project, &suite.suite_id).await {
                Ok(earlier) => {
                    let earlier: Vec<Report> = earlier.iter().map(Report::from_suite).collect();
                    pit_report::compare::against_earlier(&report, &earlier)
                }
                Err(e) => {
                    tracing::warn!(error = %pit_core::engine::error_chain(&e), "no baseline to compare the report with");
                    None
                }
            },
            None => None,
        };
        let links = Links {
            report: self.report_url.as_ref().map(|u| {
                u.replace("{project}", &suite.project)
                    .replace("{suite}", &suite.suite_id)
                    .replace("{run}", &suite.run_id)
            }),
            job: self.job.clone(),
        };
        Summary::of(&report, comparison.as_ref(), links)
    }
}

/// The actions of a run, per trigger, and how they run.
pub struct PostTestActions {
    runner: Runner,
    actions: Vec<(Trigger, Action)>,
    summarizer: Summarizer,
    printed: Option<Arc<Printer>>,
}

/// Gets each action's label (`teams (onFail)`) and outcome as it ends: a frontend prints a dry
/// run's body with it.
pub type Printer = dyn Fn(&str, &Outcome) + Send + Sync;

impl std::fmt::Debug for PostTestActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostTestActions")
            .field("runner", &self.runner)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl PostTestActions {
    /// Runs `actions` (each under its trigger) with `runner`.
    pub fn new(runner: Runner, actions: Vec<(Trigger, Action)>) -> Self {
        Self {
            runner,
            actions,
            summarizer: Summarizer::default(),
            printed: None,
        }
    }

    /// Summarizes each report with `summarizer` (its store, context and links).
    #[must_use]
    pub fn with_summarizer(mut self, summarizer: Summarizer) -> Self {
        self.summarizer = summarizer;
        self
    }

    /// Compares each report with the suite's earlier runs in `reports` (for `onRegression`
    /// and the messages' regressions).
    #[must_use]
    pub fn with_reports(mut self, reports: Arc<dyn ReportSink>) -> Self {
        self.summarizer = self.summarizer.with_reports(reports);
        self
    }

    /// The branch and commit tested, where a report does not say.
    #[must_use]
    pub fn with_context(mut self, context: RunContext) -> Self {
        self.summarizer = self.summarizer.with_context(context);
        self
    }

    /// Links every message to the report at `url`, where `{project}`, `{suite}` and `{run}`
    /// stand for the report's (such as `https://reports.example.com/{project}/{suite}/{run}/report.html`),
    /// and to the CI job at `job`.
    #[must_use]
    pub fn with_links(mut self, url: Option<String>, job: Option<String>) -> Self {
        self.summarizer = self.summarizer.with_links(url, job);
        self
    }

    /// Calls `print` with each outcome (a dry run's body, GitHub's annotations are for stdout).
    #[must_use]
    pub fn with_printer(mut self, print: Arc<Printer>) -> Self {
        self.printed = Some(print);
        self
    }

    /// Whether any action is configured.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Runs the actions `summary` calls for, one after another; how each went.
    pub async fn run_each(&self, summary: &Summary) -> Vec<Ran> {
        let mut ran = Vec::new();
        for (trigger, action) in self.actions.iter().filter(|(t, _)| summary.triggers(*t)) {
            let start_ms = now_ms();
            let label = format!("{} ({})", action.name(), trigger.as_str());
            let result = self.runner.run(action, summary).await;
            if let (Ok(out), Some(print)) = (&result, &self.printed) {
                print(&label, out);
            }
            ran.push(Ran {
                trigger: *trigger,
                action: action.name(),
                label,
                result,
                start_ms,
                end_ms: now_ms(),
            });
        }
        ran
    }

    /// Runs the actions `summary` calls for; one timeline entry each.
    pub async fn run(&self, summary: &Summary) -> Vec<TimelineEntry> {
        self.run_each(summary).await.iter().map(Ran::entry).collect()
    }
}

/// How one action went.
#[derive(Debug)]
pub struct Ran {
    /// Its trigger.
    pub trigger: Trigger,
    /// Its name (`teams`).
    pub action: &'static str,
    /// `teams (onFail)`.
    pub label: String,
    /// Its outcome, or why it failed.
    pub result: Result<Outcome, ActionError>,
    /// Unix ms at the start.
    pub start_ms: u64,
    /// Unix ms at the end.
    pub end_ms: u64,
}

impl Ran {
    /// `ok`, `dry-run` or `failed`.
    pub fn outcome(&self) -> &'static str {
        match &self.result {
            Ok(Outcome::DryRun { .. }) => "dry-run",
            Ok(_) => "ok",
            Err(_) => "failed",
        }
    }

    /// `label: what happened` (never a secret).
    pub fn detail(&self) -> String {
        match &self.result {
            Ok(out) => format!("{}: {}", self.label, out.describe()),
            Err(e) => format!("{}: {}", self.label, pit_core::engine::error_chain(e)),
        }
    }

    /// Its step in a suite's timeline.
    pub fn entry(&self) -> TimelineEntry {
        TimelineEntry {
            step: "post-test-action".into(),
            component: None,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            outcome: self.outcome().into(),
            detail: Some(self.detail()),
        }
    }
}

/// The actions of a pitfile's `postTestActions` section, each under its trigger; template
/// files are found relative to `dir` (the pitfile's folder).
///
/// # Errors
/// An action the pitfile's validation let through but pit-actions cannot run (a bug).
pub fn actions_of(
    section: &pit_core::pitfile::PostTestActions,
    dir: &std::path::Path,
) -> Result<Vec<(Trigger, Action)>, String> {
    let mut out = Vec::new();
    for (trigger, specs) in [
        (Trigger::OnPass, &section.on_pass),
        (Trigger::OnFail, &section.on_fail),
        (Trigger::OnRegression, &section.on_regression),
    ] {
        for spec in specs {
            out.push((trigger, Action::try_from(spec)?.relative_to(dir)));
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl AfterReport for PostTestActions {
    async fn after_report(&self, report: &SuiteReport, _stored: Option<&StoredReport>) -> Vec<TimelineEntry> {
        if self.is_empty() {
            return Vec::new();
        }
        let summary = self.summarizer.summary(report).await;
        self.run(&summary).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pit_core::sink::SinkError;

    use super::*;

    /// A store with no earlier runs that counts how often it is listed.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl ReportSink for Counting {
        async fn store(&self, _: &SuiteReport) -> Result<StoredReport, SinkError> {
            unreachable!("a summarizer only lists")
        }

        async fn list(&self, _: &str, _: &str) -> Result<Vec<SuiteReport>, SinkError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }

    fn suite(run: &str) -> SuiteReport {
        serde_json::from_value(serde_json::json!({
            "schema": "pit.suite-report/v1", "runId": run, "project": "shop", "suiteId": "checkout",
            "suiteName": "Checkout", "outcome": "error", "error": "db did not become ready",
            "startedMs": 0, "finishedMs": 1000, "timeline": []
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_summarizer_and_its_clones_make_each_reports_summary_once() {
        let store = Arc::new(Counting::default());
        let summarizer = Summarizer::default().with_reports(store.clone());
        let first = summarizer.summary(&suite("01a")).await;
        let again = summarizer.clone().summary(&suite("01a")).await;
        assert_eq!(first, again);
        assert_eq!(
            store.0.load(Ordering::SeqCst),
            1,
            "the store is listed once for one report"
        );

        summarizer.summary(&suite("01b")).await;
        assert_eq!(store.0.load(Ordering::SeqCst), 2, "another run is summarized anew");

        // Other settings make other summaries: a builder starts afresh.
        let linked = summarizer.clone().with_links(Some("https://r/{run}".into()), None);
        let with_link = linked.summary(&suite("01a")).await;
        assert_eq!(with_link.links.report.as_deref(), Some("https://r/01a"));
        assert_eq!(store.0.load(Ordering::SeqCst), 3);
    }
}
