//! `pit run`: wires the local backend into the engine, shows progress, handles signals.

use std::path::PathBuf;

use pit_core::diagnostic::Severity;
use pit_core::engine::RunSummary;
use pit_run::{prepare, DriverError, PreparedRun, RunSettings};
use tokio_util::sync::CancellationToken;

use crate::cli::{Output, PitfileArgs, ProgressMode, RunArgs, TestAppAccess, DEFAULT_PITFILE};
use crate::commands::{load, stdout, Ui};
use crate::error::CliError;

pub use pit_run::default_state_dir;

/// The pitfile argument, with the existing toolkit's `--pitfile` in place of FILE.
fn pitfile_args(args: &RunArgs) -> Result<PitfileArgs, CliError> {
    let mut pitfile = args.pitfile.clone();
    if let Some(file) = &args.toolkit.pitfile {
        if pitfile.file != std::path::Path::new(DEFAULT_PITFILE) && &pitfile.file != file {
            return Err(CliError::Usage(format!(
                "the pitfile is given twice: `{}` and `--pitfile {}` (give one)",
                pitfile.file.display(),
                file.display()
            )));
        }
        pitfile.file.clone_from(file);
    }
    Ok(pitfile)
}

/// How a test app is reached on Kubernetes: PIT's flags, or the existing toolkit's
/// `--use-kube-proxy`, `--cluster-url` and `--test-runner-app-port` (its default: the proxy).
/// The CI job's context from the environment, with what the existing toolkit's flags say.
fn job_context(t: &crate::cli::ToolkitArgs) -> pit_run::JobContext {
    let mut context = pit_run::JobContext::from_env();
    if t.commit_sha.is_some() {
        context.commit.clone_from(&t.commit_sha);
    }
    if t.report_user_name.is_some() {
        context.author.0.clone_from(&t.report_user_name);
    }
    if t.report_user_email.is_some() {
        context.author.1.clone_from(&t.report_user_email);
    }
    context
}

fn access(args: &RunArgs) -> Result<pit_k8s::ServiceAccess, CliError> {
    let t = &args.toolkit;
    let mode = match t.use_kube_proxy {
        Some(true) => TestAppAccess::ApiProxy,
        Some(false) => TestAppAccess::Ingress,
        None => args.test_app_access,
    };
    Ok(match mode {
        TestAppAccess::None => pit_k8s::ServiceAccess::Published,
        TestAppAccess::ApiProxy => pit_k8s::ServiceAccess::ApiProxy {
            port: t.test_runner_app_port.unwrap_or(args.test_app_port),
        },
        TestAppAccess::Ingress => pit_k8s::ServiceAccess::Ingress {
            cluster_url: args.cluster_url.clone().ok_or_else(|| {
                CliError::Usage(
                    "reaching test apps through the ingress needs its URL: pass --cluster-url (such as http://localhost)"
                        .into(),
                )
            })?,
        },
    })
}

/// Warnings for the existing toolkit's flags that PIT accepts but has no use for (`access`:
/// how test apps are reached, from [`access`]).
fn unused_toolkit_flags(args: &RunArgs, access: &pit_k8s::ServiceAccess) -> Vec<String> {
    let t = &args.toolkit;
    let mut out = Vec::new();
    if let Some(p) = &t.subns_prefix {
        out.push(format!(
            "--subns-prefix {p} is accepted but not used: PIT names each suite's namespace `pit-<suite id>-<run id>` (and labels it with the project, suite and run)"
        ));
    }
    if let Some(g) = &t.subns_name_generator_type {
        out.push(format!(
            "--subns-name-generator-type {g} is accepted but not used: namespace names carry the run id, which is unique and time-ordered"
        ));
    }
    if let Some(n) = t.lock_manager_api_retries {
        out.push(format!(
            "--lock-manager-api-retries {n} is accepted but not used: PIT's Lock Manager client retries on its own (connection errors and 503, with backoff, for as long as the lock wait lasts)"
        ));
    }
    if t.report_branch_name.is_some() && t.report_repository.is_none() {
        out.push("--report-branch-name is not used without --report-repository".into());
    }
    if t.test_runner_app_port.is_some() && matches!(access, pit_k8s::ServiceAccess::Ingress { .. }) {
        out.push("--test-runner-app-port is not used with the ingress (--use-kube-proxy false)".into());
    }
    out
}

pub fn run(ui: &Ui, args: &RunArgs) -> Result<i32, CliError> {
    let pitfile = pitfile_args(args)?;
    let access = access(args)?;
    let t = &args.toolkit;
    let report_store = match (&args.report_store, &args.report_dir, &t.report_repository) {
        (_, Some(_), Some(_)) | (Some(_), _, Some(_)) => {
            return Err(CliError::Usage(
                "give the report store once: --report-store, --report-dir or --report-repository".into(),
            ))
        }
        (Some(spec), _, None) => Some(spec.clone()),
        (None, Some(dir), None) => Some(pit_report::store::StoreSpec::Dir(dir.clone())),
        (None, None, Some(url)) => Some(pit_report::store::StoreSpec::Git {
            url: url.clone(),
            branch: t.report_branch_name.clone(),
        }),
        (None, None, None) => None,
    };
    for warning in unused_toolkit_flags(args, &access) {
        ui.message(&format!("warning: {warning}"));
    }
    // Called with the existing deployer's own flags: its scripts read `$1` as the namespace.
    let toolkit_args = args.toolkit_args || t.commit_sha.is_some() || t.parent_ns.is_some();
    if toolkit_args && !args.toolkit_args {
        ui.message(
            "called with the existing toolkit's deployer flags: every command gets the namespace as its first argument, as there (--toolkit-args)",
        );
    }
    // Unset `${{ env.NAME }}` variables are errors here, before anything is deployed.
    let loaded = load(ui, &pitfile, Severity::Error)?;
    let mut env = std::collections::BTreeMap::new();
    if let Some(target) = &t.target_environment {
        env.insert("PIT_TARGET_ENVIRONMENT".to_owned(), target.clone());
    }
    let settings = RunSettings {
        strict: pitfile.strict,
        run_id: args.run_id,
        max_parallel: usize::from(args.max_parallel),
        parallel_suites: args.parallel_suites,
        // The existing toolkit's `--enable-cleanups false` leaves the environments up.
        keep: args.keep || t.enable_cleanups == Some(false),
        state_dir: args.state_dir.clone(),
        report_store,
        backend: args.backend.into(),
        kubeconfig: args.kubeconfig.clone(),
        parent_namespace: args.parent_namespace.clone().or_else(|| t.parent_ns.clone()),
        lock_manager: args.lock_manager.clone(),
        // `--lock-manager-mock true`: an in-memory Lock Manager for this run, whatever else is
        // configured.
        lock_manager_mock: t.lock_manager_mock == Some(true),
        toolkit_args,
        workspace: pitfile.workspace.clone(),
        access,
        namespace_timeout: t.namespace_timeout.map(std::time::Duration::from_secs),
        context: job_context(t),
        env,
        actions: pit_run::ActionSettings {
            extra: args.actions.actions(),
            dry_run: args.actions_dry_run,
            report_url: args.actions.report_url.clone(),
            // `pit run` writes the step summary and annotations of the whole run itself
            // (crate::ci): a `github` action in it only sets the commit status.
            env: Some(pit_run::Custom(std::sync::Arc::new(|name: &str| match name {
                "GITHUB_STEP_SUMMARY" | "GITHUB_ACTIONS" => None,
                _ => std::env::var(name).ok(),
            }))),
            // A dry run's body goes to stderr: stdout is the run's summary.
            printer: Some(pit_run::Custom(std::sync::Arc::new(
                |label: &str, out: &pit_actions::action::Outcome| {
                    if let pit_actions::action::Outcome::DryRun { body } = out {
                        eprintln!(
                            "{label}, would send:\n{}",
                            serde_json::to_string_pretty(body).unwrap_or_default()
                        );
                    }
                },
            ))),
        },
        ..RunSettings::new(&pitfile.file)
    };
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let prepared = match runtime.block_on(prepare(&settings, &loaded, tx, &|m: &str| {
        if !args.quiet {
            ui.message(m);
        }
    })) {
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
        lock_manager_mock: _mock, // stops when the run has ended
        summarizer,
    } = prepared;
    let mode = args.progress_mode();
    let mut live = (mode == ProgressMode::Live).then(|| crate::live::Live::new(&plan));
    // Lines printed during the run go above the live view when there is one.
    let above = live.as_ref().map(crate::live::Live::printer);
    let say = |line: &str| match &above {
        Some(print) => print(line),
        None => ui.message(line),
    };
    let summary = runtime.block_on(async {
        let (cancel, force) = (CancellationToken::new(), CancellationToken::new());
        let signals = watch_signals(&say, cancel.clone(), force.clone());
        let done = CancellationToken::new();
        let progress = async {
            let redact = |s: &str| loaded.redactions.apply(s).into_owned();
            while let Some(event) = rx.recv().await {
                match (&mut live, mode) {
                    (Some(view), _) => view.show(&event, &redact),
                    (None, ProgressMode::Plain) => ui.message(&redact(&crate::live::plain_line(&event))),
                    (None, _) => {}
                }
            }
            if let Some(view) = &mut live {
                view.finish();
            }
            done.cancel();
        };
        let follow = async {
            if args.follow {
                follow_logs(&say, &run_dir, &done).await;
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
    let code = if args.actions.fail_on_action_error {
        summary.exit_code_failing_on_actions()
    } else {
        summary.exit_code()
    };
    // For the CI system: what could not be written is an error of its own, the run's outcome
    // stands (a run that passed then exits 3).
    let mut ci_failed = false;
    if let Some(path) = &args.junit {
        if let Err(e) = crate::ci::write_junit(path, &summary) {
            ui.error(&e);
            ci_failed = true;
        }
    }
    match runtime.block_on(crate::ci::github(&summary, &summarizer, &|n| std::env::var(n).ok())) {
        Ok(annotations) => {
            for line in &annotations {
                ui.message(&loaded.redactions.apply(line));
            }
        }
        Err(e) => {
            ui.error(&e);
            ci_failed = true;
        }
    }
    Ok(if ci_failed && code == pit_core::exit::OK {
        pit_core::exit::INFRASTRUCTURE
    } else {
        code
    })
}

/// Prints what every command writes to its log, prefixed with `suite-env/component.step`, as it
/// is written, until `done` (then once more, so nothing is lost). Logs are files (see
/// `pit_core::process`), so this reads them every 100 ms.
async fn follow_logs(say: &dyn Fn(&str), run_dir: &std::path::Path, done: &CancellationToken) {
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
                say(&format!("  {name}| {line}"));
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
async fn watch_signals(say: &dyn Fn(&str), cancel: CancellationToken, force: CancellationToken) {
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
            say("interrupted: tearing down (interrupt again to stop at once)");
            cancel.cancel();
        } else {
            say("interrupted again: stopping teardown");
            force.cancel();
        }
    }
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
        if let Some(message) = s.outcome.message() {
            out.push_str(&format!("  {}\n", message.replace('\n', "\n  ")));
        }
        for e in &s.teardown_errors {
            out.push_str(&format!("  teardown: {e}\n"));
        }
        for a in s.report.timeline.iter().filter(|e| e.step == "post-test-action") {
            let detail = a.detail.as_deref().unwrap_or_default();
            match a.outcome.as_str() {
                "failed" => out.push_str(&format!("  action failed: {detail}\n")),
                _ => out.push_str(&format!("  action: {detail}\n")),
            }
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
