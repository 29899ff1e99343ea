//! `pit run`: wires the local backend into the engine, shows progress, handles signals.

use std::path::PathBuf;

use pit_cli::driver::{prepare, DriverError, PreparedRun, RunSettings};
use pit_core::diagnostic::Severity;
use pit_core::engine::{Event, EventKind, RunSummary, SuiteOutcome};
use tokio_util::sync::CancellationToken;

use crate::cli::{Output, RunArgs};
use crate::commands::{load, stdout, Ui};
use crate::error::CliError;

pub use pit_cli::driver::default_state_dir;

pub fn run(ui: &Ui, args: &RunArgs) -> Result<i32, CliError> {
    // Unset `${{ env.NAME }}` variables are errors here, before anything is deployed.
    let loaded = load(ui, &args.pitfile, Severity::Error)?;
    let settings = RunSettings {
        strict: args.pitfile.strict,
        run_id: args.run_id,
        max_parallel: usize::from(args.max_parallel),
        parallel_suites: args.parallel_suites,
        keep: args.keep,
        state_dir: args.state_dir.clone(),
        report_store: match (&args.report_store, &args.report_dir) {
            (Some(spec), _) => Some(spec.clone()),
            (None, Some(dir)) => Some(pit_report::store::StoreSpec::Dir(dir.clone())),
            (None, None) => None,
        },
        backend: args.backend,
        kubeconfig: args.kubeconfig.clone(),
        parent_namespace: args.parent_namespace.clone(),
        lock_manager: args.lock_manager.clone(),
        workspace: args.pitfile.workspace.clone(),
        ..RunSettings::new(&args.pitfile.file)
    };
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let prepared = match runtime.block_on(prepare(&settings, &loaded, tx, &|m: &str| ui.message(m))) {
        Ok(p) => p,
        Err(DriverError::Resolve(e)) => {
            if let Some(report) = e.report() {
                ui.diagnostics(report);
            }
            ui.error_redacted(&e, &loaded.redactions);
            return Ok(DriverError::Resolve(e).exit_code());
        }
        Err(e) => {
            // A fetch error may quote a URL with a token from a placeholder in it.
            ui.error_redacted(&e, &loaded.redactions);
            return Ok(e.exit_code());
        }
    };
    let PreparedRun {
        plan,
        engine,
        options: opts,
        run_dir,
    } = prepared;
    let summary = runtime.block_on(async {
        let (cancel, force) = (CancellationToken::new(), CancellationToken::new());
        let signals = watch_signals(ui, cancel.clone(), force.clone());
        let done = CancellationToken::new();
        let progress = async {
            while let Some(event) = rx.recv().await {
                ui.message(&loaded.redactions.apply(&describe(&event)));
            }
            done.cancel();
        };
        let follow = async {
            if args.follow {
                follow_logs(ui, &run_dir, &done).await;
            }
        };
        let work = async {
            let summary = engine.run(&plan, &opts, &cancel, &force).await;
            drop(engine); // closes the event channel, ending `progress`
            summary
        };
        let (summary, ()) = tokio::select! {
            r = async {
                let (summary, (), ()) = tokio::join!(work, progress, follow);
                (summary, ())
            } => r,
            () = signals => unreachable!("signal watching only ends with the process"),
        };
        summary
    });
    match args.pitfile.output {
        Output::Json => stdout(&crate::commands::redacted_json(&summary, &loaded.redactions))?,
        Output::Human => stdout(&loaded.redactions.apply(&human_summary(&summary)))?,
    }
    Ok(summary.exit_code())
}

/// Prints what every command writes to its log, prefixed with `suite-env/component.step`, as it
/// is written, until `done` (then once more, so nothing is lost). Logs are files (see
/// `pit_core::process`), so this reads them every 100 ms.
async fn follow_logs(ui: &Ui, run_dir: &std::path::Path, done: &CancellationToken) {
    let mut offsets: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        let finished = tokio::select! {
            _ = tick.tick() => false,
            () = done.cancelled() => true,
        };
        for log in logs_under(run_dir) {
            let seen = offsets.entry(log.clone()).or_insert(0);
            let Ok(bytes) = std::fs::read(&log) else { continue };
            if (bytes.len() as u64) <= *seen {
                continue;
            }
            let new = &bytes[*seen as usize..];
            // Print whole lines only, unless the run is over.
            let end = if finished {
                new.len()
            } else {
                new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
            };
            let name = log
                .strip_prefix(run_dir)
                .unwrap_or(&log)
                .display()
                .to_string()
                .replace("/logs/", "/");
            for line in String::from_utf8_lossy(&new[..end]).lines() {
                ui.message(&format!("  {name}| {line}"));
            }
            *seen += end as u64;
        }
        if finished {
            return;
        }
    }
}

fn logs_under(run_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(envs) = std::fs::read_dir(run_dir) else {
        return out;
    };
    for env in envs.flatten() {
        if let Ok(logs) = std::fs::read_dir(env.path().join("logs")) {
            out.extend(
                logs.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log")),
            );
        }
    }
    out.sort();
    out
}

/// First Ctrl-C or SIGTERM: stop gracefully (teardown runs). Second: cut teardown short.
async fn watch_signals(ui: &Ui, cancel: CancellationToken, force: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    let mut count = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        count += 1;
        if count == 1 {
            ui.message("interrupted: tearing down (interrupt again to stop at once)");
            cancel.cancel();
        } else {
            ui.message("interrupted again: stopping teardown");
            force.cancel();
        }
    }
}

fn describe(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::SuiteStarted { environment } => format!("starting in environment {environment}"),
        EventKind::WaitingForLocks { ids } => format!("waiting for locks {}", ids.join(", ")),
        EventKind::LockQueue { position, holders } => {
            format!(
                "waiting for locks: place {position} in the queue; {}",
                holders.join(", ")
            )
        }
        EventKind::StaleLocksTakenOver { holders } => {
            format!("took over locks whose holder's process is gone: {}", holders.join(", "))
        }
        EventKind::LocksTaken => "locks taken".into(),
        EventKind::Forensics { summary } => format!("forensics: {summary}"),
        EventKind::StepStarted { component, step } => format!("{component}: {}", step.as_str()),
        EventKind::Ready { component, elapsed_ms } => {
            format!("{component}: ready ({:.1}s)", *elapsed_ms as f64 / 1000.0)
        }
        EventKind::StepFailed { component, step, error } => format!("{component}: {} failed: {error}", step.as_str()),
        EventKind::Log { component, line } => format!("{component}| {line}"),
        EventKind::TestsStarted { session } => format!("tests started (session {session})"),
        EventKind::TestsFinished { passed } => format!("tests finished: {}", if *passed { "passed" } else { "FAILED" }),
        EventKind::TearingDown => "tearing down".into(),
        EventKind::Undeployed { component } => format!("{component}: undeployed"),
        EventKind::SuiteFinished { outcome } => format!("finished: {outcome}"),
        _ => format!("{:?}", e.kind),
    };
    format!("[{}] {what}", e.suite)
}

fn human_summary(summary: &RunSummary) -> String {
    let mut out = String::new();
    for s in &summary.suites {
        let secs = (s.report.finished_ms.saturating_sub(s.report.started_ms)) as f64 / 1000.0;
        out.push_str(&format!("{}: {} in {secs:.1}s", s.id, s.outcome.as_str()));
        if let Some(stored) = &s.stored {
            out.push_str(&format!(", report {}", stored.location));
        }
        out.push('\n');
        if let SuiteOutcome::Error { message } | SuiteOutcome::Cancelled { message } = &s.outcome {
            out.push_str(&format!("  {}\n", message.replace('\n', "\n  ")));
        }
        for e in &s.teardown_errors {
            out.push_str(&format!("  teardown: {e}\n"));
        }
        if !s.kept.is_empty() {
            out.push_str("  kept up (--keep); to remove it run:\n");
            for cmd in &s.kept {
                out.push_str(&format!("    {cmd}\n"));
            }
        }
    }
    out
}
