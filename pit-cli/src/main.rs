//! `pit`: parses the command line, sets up logging, runs the command and maps its error to an
//! exit code (see `docs/cli.md`).

mod actions;
mod brownie;
mod ci;
mod cli;
mod commands;
mod error;
mod live;
mod lock;
mod report;
mod run;

use clap::Parser;

fn main() {
    // An empty `PIT_…=` (a CI template that sets every variable, some to nothing) means unset,
    // as in most tools; clap would read it as an empty value and refuse it.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_str().is_some_and(|n| n.starts_with("PIT_")) {
            // SAFETY: nothing else runs yet: no thread reads the environment concurrently.
            unsafe { std::env::remove_var(&name) };
        }
    }
    let (argv, server_flags) = cli::server_flags(cli::joined_dry_run(std::env::args_os().collect()));
    let mut cli = cli::Cli::parse_from(argv);
    if let cli::Command::Brownie(args) = &mut cli.command {
        args.server_flags = server_flags;
    }
    // The Lock Manager sets up its own (JSON) logging.
    if !matches!(cli.command, cli::Command::LockManager { .. }) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("PIT_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let ui = commands::Ui::new(cli.color);
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => error::exit::OK,
        Err(error::CliError::InvalidPitfile) => error::exit::INVALID,
        Err(e) => {
            ui.error(&e);
            e.exit_code()
        }
    };
    std::process::exit(code);
}
