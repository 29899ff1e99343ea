//! `pit report …`: thin layers over pit-report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pit_report::compare::{baseline_of, compare, history, Change, Comparison, Thresholds};
use pit_report::html::render_report;
use pit_report::store::{AnyStore, StoreSpec};
use pit_report::{to_junit, Report};

use crate::cli::{BaselineArgs, Output, ReportArgs, ReportCommand};
use crate::commands::{json, stdout, Ui};
use crate::error::CliError;

/// Where git stores keep their local repositories.
fn work_dir() -> PathBuf {
    crate::run::default_state_dir().join("report-repos")
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), CliError> {
    match out {
        Some(path) => std::fs::write(path, text).map_err(CliError::Output),
        None => stdout(text),
    }
}

fn thresholds(args: &BaselineArgs) -> Result<Thresholds, CliError> {
    let mut t = Thresholds {
        default_pct: args.default_threshold,
        ..Thresholds::default()
    };
    for spec in &args.thresholds {
        t.set(spec).map_err(CliError::Usage)?;
    }
    Ok(t)
}

/// The baseline reports `args` name: files, or the last runs in a store.
async fn baselines(report: &Report, args: &BaselineArgs) -> Result<Vec<Report>, CliError> {
    if let Some(spec) = &args.store {
        let store = AnyStore::open(spec, &work_dir()).with_credentials(pit_git::Credentials::from_env());
        let (Some(project), Some(suite)) = (report.project.as_deref(), report.suite.as_deref()) else {
            return Err(CliError::Usage(
                "the report names no project or suite, so its runs cannot be found in a store: give --baseline files"
                    .into(),
            ));
        };
        let all = store.reports(project, suite).await?;
        return Ok(baseline_of(report, &all, args.last).into_iter().cloned().collect());
    }
    args.baselines
        .iter()
        .map(|p| Report::load(p).map_err(CliError::from))
        .collect()
}

pub(crate) async fn comparison(report: &Report, args: &BaselineArgs) -> Result<Option<Comparison>, CliError> {
    let base = baselines(report, args).await?;
    if base.is_empty() {
        return Ok(None);
    }
    Ok(Some(compare(report, &base, &thresholds(args)?)))
}

pub fn run(ui: &Ui, args: ReportArgs) -> Result<i32, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        match args.command {
            ReportCommand::Render { report, baseline, out } => {
                let r = Report::load(&report)?;
                let c = comparison(&r, &baseline).await?;
                let html = render_report(&r, c.as_ref())?;
                write_out(out.as_deref(), &html)?;
                Ok(pit_core::exit::OK)
            }
            ReportCommand::Junit { report, out } => {
                write_out(out.as_deref(), &to_junit(&Report::load(&report)?))?;
                Ok(pit_core::exit::OK)
            }
            ReportCommand::Compare {
                report,
                baseline,
                fail_on_regression,
                output,
            } => {
                let r = Report::load(&report)?;
                let Some(c) = comparison(&r, &baseline).await? else {
                    return Err(CliError::Usage(
                        "nothing to compare with: give --baseline REPORT, or --store with earlier runs of this suite"
                            .into(),
                    ));
                };
                match output {
                    Output::Json => stdout(&json(&c))?,
                    Output::Human => stdout(&human_comparison(&c))?,
                }
                let regressions = c.regressions();
                if regressions > 0 {
                    ui.message(&format!("{regressions} metric(s) regressed"));
                }
                Ok(if fail_on_regression && regressions > 0 {
                    pit_core::exit::TESTS_FAILED
                } else {
                    pit_core::exit::OK
                })
            }
            ReportCommand::History {
                store,
                project,
                suite,
                min_change,
                output,
            } => {
                let reports = AnyStore::open(&store, &work_dir())
                    .with_credentials(pit_git::Credentials::from_env())
                    .reports(&project, &suite)
                    .await?;
                let h = history(&reports, min_change);
                match output {
                    Output::Json => stdout(&json(&h))?,
                    Output::Human => stdout(&human_history(&h))?,
                }
                Ok(pit_core::exit::OK)
            }
            ReportCommand::Serve { store, listen } => serve(ui, &store, listen).await,
        }
    })
}

fn fmt(x: Option<f64>) -> String {
    x.map_or_else(
        || "—".into(),
        |v| format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_owned(),
    )
}

fn human_comparison(c: &Comparison) -> String {
    let mut out = format!(
        "{} against {} ({} run{})\n",
        c.run_id.as_deref().unwrap_or("this report"),
        c.baseline_runs.join(", "),
        c.baseline_runs.len(),
        if c.baseline_runs.len() == 1 { "" } else { "s" }
    );
    let width = c.metrics.iter().map(|m| m.key.len()).max().unwrap_or(10);
    for m in &c.metrics {
        let verdict = match m.change {
            Change::Regression => "REGRESSION",
            Change::Improvement => "improvement",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
            Change::New => "new",
            Change::Missing => "missing",
        };
        let delta = m.delta_pct.map_or_else(|| "—".into(), |d| format!("{d:+.1}%"));
        let test = match (m.test, m.p_value) {
            (Some(t), Some(p)) => format!("  {t} p={p:.3}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>10} → {:<10} {:>8} (±{}%)  {verdict}{test}",
            m.key,
            fmt(m.baseline),
            fmt(m.current),
            delta,
            m.threshold_pct
        );
    }
    out
}

fn human_history(h: &pit_report::compare::History) -> String {
    let mut out = String::new();
    for r in &h.runs {
        let _ = writeln!(
            out,
            "{}  {}  {:?}  {}",
            r.run_id,
            r.start_time,
            r.verdict,
            r.git_commit
                .as_deref()
                .map(|c| c.chars().take(12).collect::<String>())
                .unwrap_or_default()
        );
    }
    if h.change_points.is_empty() {
        out.push_str("no change points\n");
    }
    for (key, cps) in &h.change_points {
        for c in cps {
            let run = h.runs.get(c.index).map_or("?", |r| r.run_id.as_str());
            let pct = if c.before == 0.0 {
                0.0
            } else {
                (c.after - c.before) / c.before.abs() * 100.0
            };
            let _ = writeln!(
                out,
                "change point: {key} from {} to {} ({pct:+.1}%) at run {run}",
                fmt(Some(c.before)),
                fmt(Some(c.after))
            );
        }
    }
    out
}

async fn serve(ui: &Ui, spec: &StoreSpec, listen: std::net::SocketAddr) -> Result<i32, CliError> {
    let StoreSpec::Dir(root) = spec else {
        return Err(CliError::Usage(
            "pit report serve reads a directory store; for a git store, clone its branch into a folder named after the project (git clone -b PROJECT URL reports/PROJECT) and serve dir:reports".into(),
        ));
    };
    let app = pit_report::serve::router(root);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(CliError::Output)?;
    let addr = listener.local_addr().map_err(CliError::Output)?;
    ui.message(&format!("serving {} on http://{addr}/ (Ctrl-C stops)", root.display()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(CliError::Output)?;
    Ok(pit_core::exit::OK)
}
