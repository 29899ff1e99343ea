//! `pit actions run`: a thin layer over pit-actions.

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::summary::{Links, Summary, Trigger};
use pit_report::Report;

use crate::cli::ActionsRunArgs;
use crate::commands::{stdout, Ui};
use crate::error::CliError;

/// The actions the flags and the pitfile's `postTestActions` give, per trigger.
fn chosen(ui: &Ui, args: &ActionsRunArgs) -> Result<[(Trigger, Vec<Action>); 3], CliError> {
    let mut chosen = [
        (Trigger::OnPass, args.on_pass.clone()),
        (Trigger::OnFail, args.on_fail.clone()),
        (Trigger::OnRegression, args.on_regression.clone()),
    ];
    if let Some(file) = &args.pitfile {
        let pitfile = crate::cli::PitfileArgs {
            file: file.clone(),
            strict: false,
            workspace: None,
            output: crate::cli::Output::Human,
        };
        let loaded = crate::commands::load(ui, &pitfile, pit_core::diagnostic::Severity::Warning)?;
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        if let Some(section) = &loaded.pitfile.post_test_actions {
            for (i, specs) in [&section.on_pass, &section.on_fail, &section.on_regression]
                .into_iter()
                .enumerate()
            {
                for spec in specs {
                    let action = Action::try_from(spec).map_err(CliError::Usage)?;
                    chosen[i].1.push(action.relative_to(dir));
                }
            }
        }
    }
    Ok(chosen)
}

pub fn run(ui: &Ui, args: &ActionsRunArgs) -> Result<i32, CliError> {
    let chosen = chosen(ui, args)?;
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
