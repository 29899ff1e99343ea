//! The subcommands: each parses nothing, calls the libraries and writes the result.

use std::io::{self, IsTerminal, Write};

use pit_core::diagnostic::{Diagnostics, Severity};
use pit_core::naming::RunId;
use pit_core::pitfile::{self, LoadError, LoadOptions, Loaded};
use pit_core::plan::Plan;

use crate::cli::{Cli, Color, Command, Output, PitfileArgs};
use crate::error::CliError;

/// Runs the command line.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let ui = Ui::new(cli.color);
    match cli.command {
        Command::Validate(args) => validate(&ui, &args.pitfile).map(|()| pit_core::exit::OK),
        Command::Run(args) => crate::run::run(&ui, &args),
        Command::Plan(args) => {
            let loaded = load(&ui, &args.pitfile, Severity::Warning)?;
            let plan = Plan::build(&loaded, args.run_id.unwrap_or_else(RunId::generate));
            // Placeholders as written, never their values (they may be secrets).
            match args.pitfile.output {
                Output::Human => stdout(&loaded.redactions.apply(&plan.to_string()))?,
                Output::Json => stdout(&redacted_json(&plan, &loaded.redactions))?,
            }
            Ok(pit_core::exit::OK)
        }
        Command::Report(args) => crate::report::run(&ui, args),
        Command::Brownie(args) => crate::brownie::run(&ui, &args),
        Command::K8s {
            command:
                crate::cli::K8sCommand::RolloutStatus {
                    namespace,
                    timeout,
                    kubeconfig,
                },
        } => crate::brownie::rollout_status(&ui, &namespace, timeout, kubeconfig.as_deref()),
        Command::Lock(args) => crate::lock::run(&ui, &args),
        Command::Actions {
            command: crate::cli::ActionsCommand::Run(args),
        } => crate::actions::run(&ui, &args),
        Command::LockManager {
            command: crate::cli::LockManagerCommand::Serve { args, log_text },
        } => crate::lock::serve(args, log_text),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "pit", &mut out);
            io::stdout().write_all(&out).map_err(CliError::Output)?;
            Ok(pit_core::exit::OK)
        }
    }
}

fn validate(ui: &Ui, args: &PitfileArgs) -> Result<(), CliError> {
    let result = load_report(args, Severity::Warning)?;
    let report = match &result {
        Ok(loaded) => &loaded.warnings,
        Err(report) => report,
    };
    match args.output {
        Output::Json => stdout(&json(&report.to_json()))?,
        Output::Human => {
            ui.diagnostics(report);
            if !report.has_errors() {
                let warnings = match report.warning_count() {
                    0 => String::new(),
                    1 => " (1 warning)".to_owned(),
                    n => format!(" ({n} warnings)"),
                };
                ui.message(&format!("{} is valid{warnings}", report.file()));
            }
        }
    }
    result.map(drop).map_err(|_| CliError::InvalidPitfile)
}

/// Loads the pitfile, printing its diagnostics on stderr; errors end the command.
pub fn load(ui: &Ui, args: &PitfileArgs, unset_env: Severity) -> Result<Loaded, CliError> {
    match load_report(args, unset_env)? {
        Ok(loaded) => {
            ui.diagnostics(&loaded.warnings);
            Ok(loaded)
        }
        Err(report) => {
            match args.output {
                Output::Json => stdout(&json(&report.to_json()))?,
                Output::Human => ui.diagnostics(&report),
            }
            Err(CliError::InvalidPitfile)
        }
    }
}

fn load_report(args: &PitfileArgs, unset_env: Severity) -> Result<Result<Loaded, Diagnostics>, CliError> {
    let opts = LoadOptions {
        strict: args.strict,
        unset_env,
        workspace: args.workspace.clone(),
        ..LoadOptions::default()
    };
    match pitfile::load_file(&args.file, &opts) {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(LoadError::Invalid(report)) => Ok(Err(report)),
        Err(e) => Err(CliError::Load(e)),
    }
}

/// [`json`], with the pitfile's placeholders in place of their values.
pub fn redacted_json(value: &impl serde::Serialize, redactions: &pit_core::pitfile::Redactions) -> String {
    let mut value = serde_json::to_value(value).expect("plans and summaries always serialise");
    redactions.apply_json(&mut value);
    json(&value)
}

pub fn json(value: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("plans and reports always serialise");
    s.push('\n');
    s
}

pub fn stdout(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Messages for people, on stderr.
pub struct Ui {
    color: bool,
}

impl Ui {
    pub fn new(color: Color) -> Self {
        let color = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal(),
        };
        Self { color }
    }

    fn width() -> usize {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100)
    }

    pub fn diagnostics(&self, report: &Diagnostics) {
        if report.diagnostics().is_empty() {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = err.write_all(report.render(self.color, Self::width()).as_bytes());
        let summary = match (report.error_count(), report.warning_count()) {
            (0, w) => format!("{w} warning(s) in {}", report.file()),
            (e, 0) => format!("{e} error(s) in {}", report.file()),
            (e, w) => format!("{e} error(s) and {w} warning(s) in {}", report.file()),
        };
        let _ = writeln!(err, "{summary}");
    }

    pub fn message(&self, text: &str) {
        let _ = writeln!(io::stderr(), "{text}");
    }

    /// Prints an error with its `caused by:` chain.
    pub fn error(&self, e: &dyn std::error::Error) {
        self.error_redacted(e, &pit_core::pitfile::Redactions::default());
    }

    /// [`Ui::error`], showing the pitfile's placeholders in place of their values.
    pub fn error_redacted(&self, e: &dyn std::error::Error, redactions: &pit_core::pitfile::Redactions) {
        let mut err = io::stderr().lock();
        let prefix = if self.color { "\x1b[31merror\x1b[0m" } else { "error" };
        let _ = writeln!(err, "{prefix}: {}", redactions.apply(&e.to_string()));
        let mut source = e.source();
        while let Some(cause) = source {
            let _ = writeln!(err, "  caused by: {}", redactions.apply(&cause.to_string()));
            source = cause.source();
        }
    }
}
