//! The files a stored report is made of.

#[allow(clippy::wildcard_imports)] // the stores' shared imports
use super::*;

/// The files of one stored report, relative to the suite's folder, given the suite's earlier
/// reports: the run's three files and the suite's index.
///
/// # Errors
/// When the report cannot be serialised (then nothing is written: never an empty
/// `report.json`).
pub fn artifacts(report: &Report, earlier: &[Report]) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
    let run = path_safe(report.run_id.as_deref().unwrap_or("run"));
    let comparison = crate::compare::against_earlier(report, earlier);
    let mut files = vec![
        (format!("{run}/report.json"), serde_json::to_vec_pretty(report)?),
        (format!("{run}/junit.xml"), to_junit(report).into_bytes()),
    ];
    match render_report(report, comparison.as_ref()) {
        Ok(html) => files.push((format!("{run}/report.html"), html.into_bytes())),
        Err(e) => tracing::error!(error = %e, "cannot render the report page"),
    }
    let mut all: Vec<Report> = earlier.iter().filter(|r| r.run_id != report.run_id).cloned().collect();
    all.push(report.clone());
    let runs: Vec<IndexRun> = all
        .iter()
        .map(|r| {
            IndexRun::of(
                r,
                Some(format!(
                    "{}report.html",
                    crate::html::relative_link(&[&path_safe(r.run_id.as_deref().unwrap_or("run"))])
                )),
            )
        })
        .collect();
    let title = format!(
        "{} / {}",
        report.project.as_deref().unwrap_or("pit"),
        report.suite.as_deref().unwrap_or(&report.name)
    );
    match render_index(&title, &runs, &history(&all, 5.0), 40) {
        Ok(html) => files.push(("index.html".into(), html.into_bytes())),
        Err(e) => tracing::error!(error = %e, "cannot render the index page"),
    }
    Ok(files)
}
