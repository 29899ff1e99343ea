//! `pit brownie` (the janitor, once or in a loop) and `pit k8s rollout-status`.

use std::fmt::Write as _;

use pit_k8s::janitor::{sweep, Action, Sweep, SweepReport};

use crate::cli::{BrownieArgs, Output};
use crate::commands::{json, stdout, Ui};
use crate::error::CliError;

fn human(r: &SweepReport, dry_run: bool) -> String {
    let mut out = String::new();
    for s in &r.swept {
        let what = match s.action {
            Action::Deleted => "deleted",
            Action::WouldDelete => "would delete",
            Action::Stuck => "STUCK",
            Action::Failed => "FAILED",
            Action::Skipped => "skipped",
        };
        let _ = writeln!(out, "{what:<12} {}  ({})", s.name, s.reason);
    }
    let _ = writeln!(
        out,
        "{} PIT namespaces: {} {}, {} kept (pit.dev/keep=true), {} fresh; {:.1}s",
        r.seen,
        r.swept.len(),
        if dry_run {
            "stale (dry run: nothing deleted)"
        } else {
            "swept"
        },
        r.kept,
        r.fresh,
        r.seconds
    );
    out
}

pub fn run(ui: &Ui, args: &BrownieArgs) -> Result<i32, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let client = pit_k8s::client(args.kubeconfig.as_deref()).await?;
        let how = Sweep {
            older_than: args.older_than,
            dry_run: args.dry_run,
            parallel: args.parallel,
            wait: args.wait,
            selector: args.selector.clone(),
        };
        loop {
            let report = sweep(&client, &how).await?;
            match args.output {
                Output::Json => stdout(&json(&report))?,
                Output::Human => stdout(&human(&report, args.dry_run))?,
            }
            let Some(every) = args.every else {
                return Ok(if report.problems() > 0 {
                    pit_core::exit::INFRASTRUCTURE
                } else {
                    pit_core::exit::OK
                });
            };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = tokio::signal::ctrl_c() => {
                    ui.message("interrupted");
                    return Ok(pit_core::exit::INTERRUPTED);
                }
            }
        }
    })
}

pub fn rollout_status(
    ui: &Ui,
    namespace: &str,
    timeout: std::time::Duration,
    kubeconfig: Option<&std::path::Path>,
) -> Result<i32, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let client = pit_k8s::client(kubeconfig).await?;
        match pit_k8s::rollout::wait(&client, namespace, timeout).await {
            Ok(()) => {
                ui.message(&format!("namespace {namespace}: everything has rolled out"));
                Ok(pit_core::exit::OK)
            }
            Err(pending) => {
                ui.message(&format!(
                    "namespace {namespace}: not rolled out after {}: {pending}",
                    humantime::format_duration(timeout)
                ));
                Ok(pit_core::exit::INFRASTRUCTURE)
            }
        }
    })
}
