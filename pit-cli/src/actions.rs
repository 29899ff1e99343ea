//! `pit actions run`: a thin layer over pit-actions, which also takes the existing toolkit's
//! post-test-actions flags.

use std::path::PathBuf;

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::hook::PostTestActions;
use pit_actions::secret::SecretRef;
use pit_actions::summary::{Links, Summary, Trigger};
use pit_report::Report;

use crate::cli::{ActionsRunArgs, ToolkitAction, ToolkitActionArgs};
use crate::commands::{stdout, Ui};
use crate::error::CliError;

/// The actions the existing toolkit's flags name, as PIT's.
fn toolkit_actions(ui: &Ui, t: &ToolkitActionArgs) -> Vec<(Trigger, Action)> {
    let on = |id: ToolkitAction| (t.test_pass_actions.contains(&id), t.test_fail_actions.contains(&id));
    let mut out = Vec::new();
    match (on(ToolkitAction::PostToTeams), &t.teams_webhook) {
        ((false, false), _) => {}
        (_, None) => ui.message(
            "warning: post-to-teams is not run: give --teams-webhook or set TEAMS_WEBHOOK (as the existing toolkit, the rest goes on)",
        ),
        ((pass, fail), Some(_)) => {
            let teams = Action::Teams {
                webhook: SecretRef::Env("TEAMS_WEBHOOK".into()),
                template: None,
            };
            out.extend(pass.then(|| (Trigger::OnPass, teams.clone())));
            out.extend(fail.then_some((Trigger::OnFail, teams)));
        }
    }
    let (pass, fail) = on(ToolkitAction::TagGitRepository);
    if pass || fail {
        // As the toolkit: the tag of an outcome not asked for is not set, but an old tag of
        // the other outcome is still removed.
        let tag = Action::GitTag {
            repository: t.git_repository_url.clone(),
            git_ref: t.git_ref.clone(),
            pass_tag: (!pass).then(String::new),
            fail_tag: (!fail).then(String::new),
            token: None,
        };
        out.push((Trigger::OnPass, tag.clone()));
        out.push((Trigger::OnFail, tag));
    }
    out
}

/// The actions of the flags, the pitfile's `postTestActions` and the toolkit's flags.
fn chosen(ui: &Ui, args: &ActionsRunArgs) -> Result<Vec<(Trigger, Action)>, CliError> {
    let mut chosen = args.actions.actions();
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
            chosen.extend(pit_actions::hook::actions_of(section, dir).map_err(CliError::Usage)?);
        }
    }
    chosen.extend(toolkit_actions(ui, &args.toolkit));
    Ok(chosen)
}

/// The reports: the arguments, then those under `--workspace-dir`.
fn reports(args: &ActionsRunArgs) -> Result<Vec<PathBuf>, CliError> {
    let mut paths = args.reports.clone();
    if let Some(dir) = &args.toolkit.workspace_dir {
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "--workspace-dir {}: no such folder",
                dir.display()
            )));
        }
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type().is_file() && matches!(e.file_name().to_str(), Some("pit-report.json" | "report.json"))
            })
            .map(walkdir::DirEntry::into_path)
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(CliError::Usage(format!(
                "no report (pit-report.json, report.json) under {}",
                dir.display()
            )));
        }
        paths.extend(found);
    }
    Ok(paths)
}

pub fn run(ui: &Ui, args: &ActionsRunArgs) -> Result<i32, CliError> {
    let t = &args.toolkit;
    if t.app_root_dir.is_some() {
        ui.message("warning: --app-root-dir is accepted but not used: PIT needs no scripts of its own");
    }
    let toolkit_form = !t.test_pass_actions.is_empty() || !t.test_fail_actions.is_empty();
    let dry_run = args.dry_run.unwrap_or(toolkit_form);
    if toolkit_form && args.dry_run.is_none() {
        ui.message(
            "the existing toolkit's flags without --dry-run false: a dry run, as there (pass --dry-run false to send)",
        );
    }
    let chosen = chosen(ui, args)?;
    let paths = reports(args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    // The toolkit's `--teams-webhook` is what its Teams action reads as TEAMS_WEBHOOK.
    let teams_webhook = t.teams_webhook.clone();
    let runner = Runner::new(move |name| match (name, &teams_webhook) {
        ("TEAMS_WEBHOOK", Some(hook)) => Some(hook.clone()),
        _ => std::env::var(name).ok(),
    })
    .dry_run(dry_run);
    let context = pit_run::JobContext::from_env();
    let job = context.job.clone();
    let hook = PostTestActions::new(runner, chosen).with_printer(std::sync::Arc::new(print));
    let (mut action_errors, mut tests_failed) = (0, false);
    runtime.block_on(async {
        let mut loaded = Vec::new();
        for path in &paths {
            let mut report = Report::load(path)?;
            // The commit and branch of the CI job, where the report does not name them.
            context.report_context().apply(&mut report);
            let comparison = crate::report::comparison(&report, &args.baseline).await?;
            let links = Links {
                report: args.actions.report_url.clone(),
                job: job.clone(),
            };
            loaded.push((path, Summary::of(&report, comparison.as_ref(), links)));
        }
        // As the existing toolkit: failed reports last, so their tags and messages win.
        loaded.sort_by_key(|(_, s)| s.verdict != "passed");
        for (path, summary) in &loaded {
            tests_failed |= summary.verdict != "passed";
            let entries = hook.run(summary).await;
            if entries.is_empty() {
                ui.message(&format!("{}: {}, no action to run", path.display(), summary.verdict));
            }
            for e in entries {
                let detail = e.detail.unwrap_or_default();
                if e.outcome == "failed" {
                    action_errors += 1;
                    ui.message(&format!("warning: {}: {detail}", summary.suite));
                } else {
                    ui.message(&format!("{}: {detail}", summary.suite));
                }
            }
        }
        Ok::<_, CliError>(())
    })?;
    Ok(if action_errors > 0 && args.actions.fail_on_action_error {
        pit_core::exit::INFRASTRUCTURE
    } else if tests_failed && t.exit_code_on_test_failure.is_some() {
        t.exit_code_on_test_failure.unwrap_or_default()
    } else {
        pit_core::exit::OK
    })
}

/// A dry run's body on stdout, JSON alone (what it is for goes to stderr).
pub(crate) fn print(_label: &str, out: &Outcome) {
    if let Outcome::DryRun { body } = out {
        let _ = stdout(&format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default()));
    }
}
