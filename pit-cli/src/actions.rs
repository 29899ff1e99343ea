//! `pit actions run`: a thin layer over pit-actions.

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::summary::{Links, Summary, Trigger};
use pit_report::Report;

use crate::cli::ActionsRunArgs;
use crate::commands::{stdout, Ui};
use crate::error::CliError;

pub fn run(ui: &Ui, args: &ActionsRunArgs) -> Result<i32, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    let runner = Runner::new(|name| std::env::var(name).ok()).dry_run(args.dry_run);
    let job = pit_run::JobContext::from_env().job;
    let mut failed = 0;
    runtime.block_on(async {
        for path in &args.reports {
            let report = Report::load(path)?;
            let comparison = crate::report::comparison(&report, &args.baseline).await?;
            let links = Links {
                report: args.report_url.clone(),
                job: job.clone(),
            };
            let summary = Summary::of(&report, comparison.as_ref(), links);
            let chosen = [
                (Trigger::OnPass, &args.on_pass),
                (Trigger::OnFail, &args.on_fail),
                (Trigger::OnRegression, &args.on_regression),
            ];
            let actions: Vec<&Action> = chosen
                .iter()
                .filter(|(trigger, _)| summary.triggers(*trigger))
                .flat_map(|(_, actions)| actions.iter())
                .collect();
            if actions.is_empty() {
                ui.message(&format!("{}: {}, no action to run", path.display(), summary.verdict));
            }
            for action in actions {
                match runner.run(action, &summary).await {
                    Ok(Outcome::Sent(d)) => ui.message(&format!(
                        "{}: {} sent (HTTP {}, {} call(s))",
                        summary.suite,
                        action.name(),
                        d.status,
                        d.attempts
                    )),
                    Ok(Outcome::DryRun { body }) => {
                        ui.message(&format!("{}: {} (dry run), would send:", summary.suite, action.name()));
                        stdout(&format!(
                            "{}\n",
                            serde_json::to_string_pretty(&body).unwrap_or_default()
                        ))?;
                    }
                    Err(e) => {
                        failed += 1;
                        ui.message(&format!(
                            "warning: {}: {} failed: {}",
                            summary.suite,
                            action.name(),
                            pit_core::engine::error_chain(&e)
                        ));
                    }
                }
            }
        }
        Ok::<_, CliError>(())
    })?;
    Ok(if failed > 0 && args.fail_on_action_error {
        pit_core::exit::INFRASTRUCTURE
    } else {
        pit_core::exit::OK
    })
}
