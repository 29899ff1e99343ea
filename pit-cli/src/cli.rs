//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// PIT deploys performance and integration tests with their components, runs them and keeps
/// their reports.
#[derive(Debug, Parser)]
#[command(name = "pit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// When to use colour on the terminal (`auto` honours NO_COLOR and non-terminal output).
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true, env = "PIT_COLOR")]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pitfile and report every problem (exit 0 valid, 2 invalid).
    Validate(ValidateArgs),
    /// Show what `pit run` would do for each suite, without doing anything.
    Plan(PlanArgs),
    /// Deploy each suite's components, run its tests, store the report, tear everything down.
    Run(RunArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub struct PitfileArgs {
    /// The pitfile.
    #[arg(default_value = "pitfile.yml", env = "PIT_FILE")]
    pub file: PathBuf,
    /// Make every unknown key an error, not only likely typos.
    #[arg(long, env = "PIT_STRICT")]
    pub strict: bool,
    /// Output format: messages for people, or data for programs on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub pitfile: PitfileArgs,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub pitfile: PitfileArgs,
    /// Plan for this run id instead of a new one (names of environments depend on it).
    #[arg(long, env = "PIT_RUN_ID")]
    pub run_id: Option<pit_core::naming::RunId>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pitfile: PitfileArgs,
    /// Use this run id instead of a new one.
    #[arg(long, env = "PIT_RUN_ID")]
    pub run_id: Option<pit_core::naming::RunId>,
    /// Most commands running at once within a suite.
    #[arg(long, default_value_t = 16, env = "PIT_MAX_PARALLEL", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// Stream every command's output to stderr as it runs (it is always kept in the run's logs).
    #[arg(long)]
    pub follow: bool,
    /// Run suites concurrently where their lock sets do not overlap.
    #[arg(long, env = "PIT_PARALLEL_SUITES")]
    pub parallel_suites: bool,
    /// Leave the environments up after the tests, for debugging; prints how to remove them.
    #[arg(long)]
    pub keep: bool,
    /// Where runs, logs, embedded locks and (by default) reports are kept.
    #[arg(long, env = "PIT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Store suite reports in this directory (default: `<state dir>/reports`).
    #[arg(long, env = "PIT_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people.
    Human,
    /// JSON on stdout.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}
