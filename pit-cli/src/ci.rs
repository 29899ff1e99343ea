//! What `pit run` gives CI systems: the whole run's JUnit XML (`--junit FILE`, for GitLab's
//! `artifacts:reports:junit` and Jenkins' `junit` step) and, under GitHub Actions, a Markdown
//! summary appended to `$GITHUB_STEP_SUMMARY` with `::error` annotations for the failures.

use std::io::Write;
use std::path::{Path, PathBuf};

use pit_actions::hook::Summarizer;
use pit_actions::summary::Summary;
use pit_core::engine::RunSummary;

use crate::error::CliError;

/// Writes the run's JUnit XML to `path`: one `<testsuite>` per suite.
pub fn write_junit(path: &Path, summary: &RunSummary) -> Result<(), CliError> {
    let xml = pit_run::junit(summary);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::WriteFile(path.to_owned(), e))?;
    }
    std::fs::write(path, xml).map_err(|e| CliError::WriteFile(path.to_owned(), e))
}

/// Under GitHub Actions (`env` says `GITHUB_STEP_SUMMARY`, `GITHUB_ACTIONS`): appends the run's
/// Markdown summary to the step summary, and returns the `::error` workflow commands of every
/// failing suite, one line each (the caller prints them to stderr, which the runner reads as it
/// reads stdout: stdout stays the run's summary, JSON with `-o json`). Outside, nothing.
pub async fn github(
    summary: &RunSummary,
    summarizer: &Summarizer,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, CliError> {
    let step_summary = env("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()).map(PathBuf::from);
    let annotate = env("GITHUB_ACTIONS").as_deref() == Some("true");
    if step_summary.is_none() && !annotate {
        return Ok(Vec::new());
    }
    let mut suites = Vec::with_capacity(summary.suites.len());
    for s in &summary.suites {
        suites.push(summarizer.summary(&s.report).await);
    }
    let annotations = if annotate {
        suites.iter().flat_map(pit_actions::github::annotations).collect()
    } else {
        Vec::new()
    };
    if let Some(path) = &step_summary {
        let markdown = markdown(summary, &suites)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(markdown.as_bytes()))
            .map_err(|e| CliError::WriteFile(path.clone(), e))?;
    }
    Ok(annotations)
}

/// The run's Markdown: a table of the suites (outcome, time, where the report is), then each
/// suite's section as the `github` post-test action writes it (failing streams, regressions).
fn markdown(run: &RunSummary, suites: &[Summary]) -> Result<String, CliError> {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = format!("## PIT run `{}`\n\n", run.run_id);
    out.push_str("| Suite | Outcome | Time | Report |\n|---|---|---|---|\n");
    for s in &run.suites {
        let outcome = s.outcome.as_str();
        let icon = match outcome {
            "passed" => ":white_check_mark:",
            "failed" => ":x:",
            _ => ":warning:",
        };
        let secs = s.report.finished_ms.saturating_sub(s.report.started_ms) as f64 / 1000.0;
        let report = s
            .stored
            .as_ref()
            .map_or_else(String::new, |r| format!("`{}`", cell(&r.location)));
        out.push_str(&format!(
            "| {} | {icon} {outcome} | {secs:.1} s | {report} |\n",
            cell(&s.id)
        ));
    }
    for summary in suites {
        let section = pit_actions::github::step_summary(summary)?;
        out.push('\n');
        out.push_str(section.trim_end());
        out.push('\n');
    }
    out.push('\n');
    Ok(out)
}
