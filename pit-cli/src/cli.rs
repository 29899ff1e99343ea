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
    Run(Box<RunArgs>),
    /// Render, convert, compare and serve reports.
    Report(ReportArgs),
    /// Take, renew, release and list locks on a Lock Manager.
    Lock(LockArgs),
    /// Tell people and systems what stored reports found (Teams, Slack, a webhook).
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Kubernetes tools for pitfile commands.
    K8s {
        #[command(subcommand)]
        command: K8sCommand,
    },
    /// Delete the namespaces crashed runs left behind (PIT's labels, past their TTL).
    Brownie(Box<BrownieArgs>),
    /// Run the Lock Manager service.
    LockManager {
        #[command(subcommand)]
        command: LockManagerCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The pitfile `validate`, `plan` and `run` read when none is given.
pub const DEFAULT_PITFILE: &str = "pitfile.yml";

#[derive(Debug, Clone, clap::Args)]
pub struct PitfileArgs {
    /// The pitfile.
    #[arg(default_value = DEFAULT_PITFILE, env = "PIT_FILE")]
    pub file: PathBuf,
    /// Make every unknown key an error, not only likely typos.
    #[arg(long, env = "PIT_STRICT")]
    pub strict: bool,
    /// Resolve LOCAL `location.path`s against this folder, as the existing toolkit's
    /// `--workspace` does (a component without a path then runs in `<DIR>/<id>`). Default:
    /// the pitfile's folder.
    // No environment variable: `PIT_WORKSPACE` is the folder a suite's commands share.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
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
    /// How progress shows on stderr: `live`, a view per suite redrawn in place; `plain`, one
    /// line per event; `auto`: live on a terminal (unless TERM=dumb), else plain.
    #[arg(long, value_enum, default_value_t = Progress::Auto, env = "PIT_PROGRESS")]
    pub progress: Progress,
    /// Show no progress and no notes, only warnings, errors and the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Run suites concurrently where their lock sets do not overlap.
    #[arg(long, env = "PIT_PARALLEL_SUITES")]
    pub parallel_suites: bool,
    /// Leave the environments up after the tests, for debugging; prints how to remove them.
    #[arg(long)]
    pub keep: bool,
    /// Where runs, logs, embedded locks and (by default) reports are kept.
    #[arg(long, env = "PIT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Store suite reports in this directory (default: `<state dir>/reports`); the same as
    /// `--report-store dir:PATH`.
    #[arg(long, env = "PIT_REPORT_DIR", conflicts_with = "report_store")]
    pub report_dir: Option<PathBuf>,
    /// Where to store every suite's report (JSON, HTML and JUnit): `dir:PATH` or
    /// `git:URL#BRANCH` (default branch: one per project; credentials from PIT_GIT_TOKEN).
    #[arg(long, env = "PIT_REPORT_STORE")]
    pub report_store: Option<pit_report::store::StoreSpec>,
    /// Where suites run: `local` (sandboxes on this machine), `k8s` (a namespace per suite),
    /// or `auto`: k8s when a kubeconfig is given (--kubeconfig or KUBECONFIG), else local.
    #[arg(long, value_enum, default_value_t = Backend::Auto, env = "PIT_BACKEND")]
    pub backend: Backend,
    /// The cluster's kubeconfig for the k8s backend (default: KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// k8s backend: make each suite's namespace a sub-namespace of this one (needs the
    /// Hierarchical Namespace Controller).
    #[arg(long, env = "PIT_PARENT_NAMESPACE")]
    pub parent_namespace: Option<String>,
    /// Take suites' locks from this Lock Manager (token from PIT_LOCK_TOKEN) instead of the
    /// embedded file lock store.
    #[arg(long, env = "PIT_LOCK_MANAGER")]
    pub lock_manager: Option<String>,
    /// k8s backend: how PIT reaches a test app that publishes no PIT_TEST_APP_URL (and a
    /// deployed Lock Manager without PIT_LOCK_MANAGER_URL): `api-proxy`, the API server's
    /// service proxy with the kubeconfig's credentials; `ingress`, `<cluster-url>/<namespace>.
    /// <suite id>`; `none`, only what deploy commands publish.
    #[arg(long, value_enum, default_value_t = TestAppAccess::ApiProxy, env = "PIT_TEST_APP_ACCESS")]
    pub test_app_access: TestAppAccess,
    /// k8s backend: the base URL of the cluster's ingress, for `--test-app-access ingress`.
    #[arg(long, env = "PIT_CLUSTER_URL")]
    pub cluster_url: Option<String>,
    /// k8s backend: the port of the test app's (and Lock Manager's) Service, for
    /// `--test-app-access api-proxy`.
    #[arg(long, default_value_t = 80)]
    pub test_app_port: u16,
    /// Call every command as the existing toolkit's deployer does: the namespace as the first
    /// argument, then `params`, and the suite id last for a test app's deploy. On by itself when
    /// the deployer's `--commit-sha` or `--parent-ns` is given.
    #[arg(long)]
    pub toolkit_args: bool,
    #[command(flatten)]
    pub actions: ActionFlags,
    /// Render each post-test action's message instead of sending it (nothing is tagged).
    #[arg(long)]
    pub actions_dry_run: bool,
    /// Also write the whole run's JUnit XML to FILE (one test suite per suite), for GitLab's
    /// `artifacts:reports:junit` or Jenkins' `junit` step.
    #[arg(long, value_name = "FILE", env = "PIT_JUNIT")]
    pub junit: Option<PathBuf>,
    /// The existing toolkit's deployer flags, accepted as it takes them.
    #[command(flatten)]
    pub toolkit: ToolkitArgs,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Live on a terminal, else plain.
    Auto,
    /// A view per suite, redrawn in place.
    Live,
    /// One line per event.
    Plain,
}

/// How `pit run` shows progress, all flags and the terminal considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// The live view.
    Live,
    /// One line per event.
    Plain,
    /// Nothing (`-q`).
    Quiet,
}

impl RunArgs {
    /// `-q` wins; `auto` is live when stderr is a terminal other than TERM=dumb.
    pub fn progress_mode(&self) -> ProgressMode {
        use std::io::IsTerminal;
        match (self.quiet, self.progress) {
            (true, _) => ProgressMode::Quiet,
            (false, Progress::Live) => ProgressMode::Live,
            (false, Progress::Plain) => ProgressMode::Plain,
            (false, Progress::Auto) => {
                let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
                if std::io::stderr().is_terminal() && !dumb {
                    ProgressMode::Live
                } else {
                    ProgressMode::Plain
                }
            }
        }
    }
}

/// Post-test actions beside the pitfile's `postTestActions` (see docs/actions.md).
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Post-test actions (see docs/actions.md)")]
pub struct ActionFlags {
    /// An action when every stream passed (repeatable): `teams:env:VAR`, `slack:env:VAR`,
    /// `webhook:env:URL_VAR[:env:SECRET_VAR]`, `github[:env:TOKEN_VAR]`,
    /// `git-tag[:env:TOKEN_VAR]`; `file:PATH` in place of `env:VAR`.
    #[arg(long = "on-pass", value_name = "ACTION", value_parser = ActionParser)]
    pub on_pass: Vec<pit_actions::action::Action>,
    /// An action when a stream failed or the run failed (repeatable).
    #[arg(long = "on-fail", value_name = "ACTION", value_parser = ActionParser)]
    pub on_fail: Vec<pit_actions::action::Action>,
    /// An action when a metric regressed against the baseline (repeatable).
    #[arg(long = "on-regression", value_name = "ACTION", value_parser = ActionParser)]
    pub on_regression: Vec<pit_actions::action::Action>,
    /// Exit 3 when an action fails (by default a failed action is a warning).
    #[arg(long)]
    pub fail_on_action_error: bool,
    /// The HTML report's URL, linked from each message; `{project}`, `{suite}` and `{run}`
    /// stand for the report's.
    #[arg(long, value_name = "URL")]
    pub report_url: Option<String>,
}

impl ActionFlags {
    /// The actions, each under its trigger.
    pub fn actions(&self) -> Vec<(pit_actions::summary::Trigger, pit_actions::action::Action)> {
        use pit_actions::summary::Trigger;
        [
            (Trigger::OnPass, &self.on_pass),
            (Trigger::OnFail, &self.on_fail),
            (Trigger::OnRegression, &self.on_regression),
        ]
        .into_iter()
        .flat_map(|(t, list)| list.iter().map(move |a| (t, a.clone())))
        .collect()
    }
}

/// How PIT reaches a test app on Kubernetes when its deploy publishes no URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestAppAccess {
    /// Through the API server's service proxy, with the kubeconfig's credentials.
    ApiProxy,
    /// Through the cluster's ingress: `<cluster-url>/<namespace>.<suite id>`.
    Ingress,
    /// Only the URL the deploy command publishes.
    None,
}

/// The flags of the existing PIT toolkit's deployer (`k8s-deployer`), each `--flag value`, so
/// that a CI job switches by changing the program's name. Hidden from `-h`; `--help` lists
/// them; docs/migrating.md maps each to PIT's own option.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Flags of the existing PIT toolkit (see docs/migrating.md)")]
pub struct ToolkitArgs {
    /// The commit tested: recorded in reports (as PIT_COMMIT).
    #[arg(long = "commit-sha", value_name = "SHA", hide_short_help = true)]
    pub commit_sha: Option<String>,
    /// The pitfile (as the FILE argument).
    #[arg(long = "pitfile", value_name = "FILE", hide_short_help = true)]
    pub pitfile: Option<PathBuf>,
    /// As --parent-namespace.
    #[arg(long = "parent-ns", value_name = "NS", hide_short_help = true)]
    pub parent_ns: Option<String>,
    /// Accepted, not used: PIT names namespaces `pit-<suite id>-<run id>`.
    #[arg(long = "subns-prefix", value_name = "PREFIX", hide_short_help = true)]
    pub subns_prefix: Option<String>,
    /// Accepted, not used: PIT names namespaces after the run id (time-ordered, unique).
    #[arg(long = "subns-name-generator-type", value_name = "TYPE", value_parser = ["COMMITSHA", "DATE"], hide_short_help = true)]
    pub subns_name_generator_type: Option<String>,
    /// With --report-branch-name: as --report-store git:URL#BRANCH.
    #[arg(long = "report-repository", value_name = "URL", hide_short_help = true)]
    pub report_repository: Option<String>,
    /// The branch of --report-repository.
    #[arg(long = "report-branch-name", value_name = "BRANCH", hide_short_help = true)]
    pub report_branch_name: Option<String>,
    /// The author of report commits (as PIT_GIT_AUTHOR_NAME).
    #[arg(long = "report-user-name", value_name = "NAME", hide_short_help = true)]
    pub report_user_name: Option<String>,
    /// The author's email (as PIT_GIT_AUTHOR_EMAIL).
    #[arg(long = "report-user-email", value_name = "EMAIL", hide_short_help = true)]
    pub report_user_email: Option<String>,
    /// Given to every command as PIT_TARGET_ENVIRONMENT.
    #[arg(long = "target-environment", value_name = "NAME", hide_short_help = true)]
    pub target_environment: Option<String>,
    /// Seconds to wait for a namespace to be created or deleted.
    #[arg(long = "namespace-timeout", value_name = "SECONDS", hide_short_help = true)]
    pub namespace_timeout: Option<u64>,
    /// `true`: take locks in the embedded store, never a Lock Manager.
    #[arg(long = "lock-manager-mock", value_name = "BOOL", value_parser = toolkit_bool, hide_short_help = true)]
    pub lock_manager_mock: Option<bool>,
    /// `true` (its default): --test-app-access api-proxy; `false`: ingress at --cluster-url.
    #[arg(long = "use-kube-proxy", value_name = "BOOL", value_parser = toolkit_bool, hide_short_help = true)]
    pub use_kube_proxy: Option<bool>,
    /// Accepted, not used: PIT's Lock Manager client retries on its own.
    #[arg(long = "lock-manager-api-retries", value_name = "N", hide_short_help = true)]
    pub lock_manager_api_retries: Option<u32>,
    /// `false`: as --keep (leave the environments up).
    #[arg(long = "enable-cleanups", value_name = "BOOL", value_parser = toolkit_bool, hide_short_help = true)]
    pub enable_cleanups: Option<bool>,
    /// As --test-app-port.
    #[arg(long = "test-runner-app-port", value_name = "PORT", hide_short_help = true)]
    pub test_runner_app_port: Option<u16>,
}

/// `true` or `false`, as the existing toolkit writes its flags' values.
fn toolkit_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{other}` is neither `true` nor `false`")),
    }
}

#[derive(Debug, Subcommand)]
pub enum LockManagerCommand {
    /// Serve the Lock Manager over HTTP, storing locks in PostgreSQL (or, for tests, memory);
    /// logs JSON lines on stderr.
    Serve {
        #[command(flatten)]
        args: pit_lock::serve::ServeArgs,
        /// Log as text instead of JSON lines.
        #[arg(long, env = "PIT_LOG_TEXT")]
        log_text: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The Lock Manager.
    #[arg(long, env = "PIT_LOCK_MANAGER", global = true)]
    pub lock_manager: Option<String>,
    /// Act on the embedded lock store of `pit run` without a Lock Manager (in the state
    /// directory) instead: `list` shows its holders and whether their process is alive,
    /// `force-release` frees ids.
    #[arg(long, global = true, conflicts_with = "lock_manager")]
    pub embedded: bool,
    /// The state directory of the embedded store (default: as `pit run`'s).
    #[arg(long, env = "PIT_STATE_DIR", global = true)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Human, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take every id or none, waiting in the queue; prints the lease id (JSON: the lease).
    Acquire {
        /// The ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// How long the lease lasts unless renewed.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// How long to wait for the ids.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Who asks (default: `user@host`).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Extend a lease to TTL from now.
    Renew {
        /// The lease id.
        lease: String,
        /// The new length.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
    /// Release a lease.
    Release {
        /// The lease id.
        lease: String,
    },
    /// Show held locks, their holders and who waits.
    List,
    /// Free ids whoever holds them (needs an admin token in PIT_LOCK_TOKEN).
    ForceRelease {
        /// The ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
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

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

/// Parses `--on-pass` and the like without quoting the value in its error: a mistaken value
/// may be a webhook URL, a secret.
#[derive(Debug, Clone, Copy)]
pub struct ActionParser;

impl clap::builder::TypedValueParser for ActionParser {
    type Value = pit_actions::action::Action;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let name = arg.map_or_else(|| "ACTION".to_owned(), ToString::to_string);
        let fail = |why: String| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{name}: {why}\n")).with_cmd(cmd)
        };
        value
            .to_str()
            .ok_or_else(|| fail("not UTF-8".into()))?
            .parse()
            .map_err(fail)
    }
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// Run actions on stored reports: each report's verdict picks the actions to run.
    Run(Box<ActionsRunArgs>),
}

#[derive(Debug, clap::Args)]
pub struct ActionsRunArgs {
    /// The reports (`report.json`); or --workspace-dir.
    #[arg(required_unless_present = "workspace_dir")]
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    pub actions: ActionFlags,
    /// Print each message instead of sending it (no secret is read, nothing is tagged). The
    /// existing toolkit's `--dry-run false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = toolkit_bool)]
    pub dry_run: Option<bool>,
    /// Also run the actions of this pitfile's `postTestActions` section.
    #[arg(long, value_name = "FILE")]
    pub pitfile: Option<PathBuf>,
    #[command(flatten)]
    pub baseline: BaselineArgs,
    /// The existing toolkit's post-test-actions flags, accepted as it takes them.
    #[command(flatten)]
    pub toolkit: ToolkitActionArgs,
}

/// The flags of the existing PIT toolkit's post-test-actions app, each `--flag value`. Hidden
/// from `-h`; docs/actions.md maps each to PIT's own.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Flags of the existing PIT toolkit (see docs/actions.md)")]
pub struct ToolkitActionArgs {
    /// Actions when every stream passed, comma separated: `post-to-teams`,
    /// `tag-git-repository`.
    #[arg(
        long = "test-pass-actions",
        value_name = "IDS",
        value_delimiter = ',',
        hide_short_help = true
    )]
    pub test_pass_actions: Vec<ToolkitAction>,
    /// Actions when a stream failed, comma separated.
    #[arg(
        long = "test-fail-actions",
        value_name = "IDS",
        value_delimiter = ',',
        hide_short_help = true
    )]
    pub test_fail_actions: Vec<ToolkitAction>,
    /// The Teams webhook URL of `post-to-teams` (default: TEAMS_WEBHOOK). Prefer the
    /// variable: a flag's value shows in process lists.
    #[arg(
        long = "teams-webhook",
        value_name = "URL",
        env = "TEAMS_WEBHOOK",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub teams_webhook: Option<String>,
    /// The repository `tag-git-repository` tags (default: GIT_REPOSITORY_URL).
    #[arg(
        long = "git-repository-url",
        value_name = "URL",
        env = "GIT_REPOSITORY_URL",
        hide_short_help = true
    )]
    pub git_repository_url: Option<String>,
    /// The commit, branch or tag it tags (default: GIT_REF).
    #[arg(long = "git-ref", value_name = "REF", env = "GIT_REF", hide_short_help = true)]
    pub git_ref: Option<String>,
    /// Where to look for reports (`pit-report.json`, `report.json`) in place of REPORT
    /// arguments.
    #[arg(
        long = "workspace-dir",
        alias = "workspace",
        value_name = "DIR",
        hide_short_help = true
    )]
    pub workspace_dir: Option<PathBuf>,
    /// Accepted, not used: PIT needs no scripts of its own.
    #[arg(long = "app-root-dir", value_name = "DIR", hide_short_help = true)]
    pub app_root_dir: Option<PathBuf>,
    /// Exit with this code when a report's tests failed (after the actions ran).
    #[arg(long = "exit-code-on-test-failure", value_name = "CODE", hide_short_help = true)]
    pub exit_code_on_test_failure: Option<i32>,
}

/// `pit actions run … --dry-run false` and `pit brownie --dry-run false` (the existing
/// toolkit's form) as `--dry-run=false`, so that a bare `--dry-run` before a REPORT still
/// means yes.
pub fn joined_dry_run(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if !matches!(argv.get(1).and_then(|a| a.to_str()), Some("actions" | "brownie")) {
        return argv;
    }
    let mut i = 0;
    while i + 1 < argv.len() {
        let value = argv[i + 1].to_str().unwrap_or_default();
        if argv[i] == "--dry-run" && matches!(value, "true" | "false") {
            let joined = format!("--dry-run={value}");
            argv.splice(i..i + 2, [joined.into()]);
        }
        i += 1;
    }
    argv
}

/// The existing toolkit's action ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToolkitAction {
    /// The `teams` action.
    PostToTeams,
    /// The `git-tag` action.
    TagGitRepository,
}

#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// Earlier reports to compare with (repeatable).
    #[arg(long = "baseline", value_name = "REPORT")]
    pub baselines: Vec<PathBuf>,
    /// Or compare with the last runs of the same suite, branch and spec in this store
    /// (`dir:PATH` or `git:URL#BRANCH`).
    #[arg(long, env = "PIT_REPORT_STORE", conflicts_with = "baselines")]
    pub store: Option<pit_report::store::StoreSpec>,
    /// How many earlier runs of the store make the baseline.
    #[arg(long, default_value_t = 5)]
    pub last: usize,
    /// The change that counts, per metric: `latency.p99=5%` (repeatable).
    #[arg(long = "threshold", value_name = "METRIC=PERCENT")]
    pub thresholds: Vec<String>,
    /// The change that counts for other metrics, in percent.
    #[arg(long, default_value_t = 10.0)]
    pub default_threshold: f64,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Render a report as a self-contained HTML page (to stdout, or --out).
    Render {
        /// The report (`report.json`).
        report: PathBuf,
        #[command(flatten)]
        baseline: BaselineArgs,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Convert a report to JUnit XML (to stdout, or --out).
    Junit {
        /// The report.
        report: PathBuf,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare a report with a baseline: a verdict per metric.
    Compare {
        /// The report.
        report: PathBuf,
        #[command(flatten)]
        baseline: BaselineArgs,
        /// Exit 1 when a metric regressed.
        #[arg(long)]
        fail_on_regression: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// A suite's runs in a store, with the change points of each metric.
    History {
        /// The store.
        #[arg(long, env = "PIT_REPORT_STORE")]
        store: pit_report::store::StoreSpec,
        /// The project.
        #[arg(long)]
        project: String,
        /// The suite id.
        #[arg(long)]
        suite: String,
        /// The smallest change of level worth showing, in percent.
        #[arg(long, default_value_t = 5.0)]
        min_change: f64,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Serve a directory store's reports over HTTP (loopback by default).
    Serve {
        /// The store (`dir:PATH`).
        #[arg(long, env = "PIT_REPORT_STORE")]
        store: pit_report::store::StoreSpec,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: std::net::SocketAddr,
    },
}

/// Where suites run (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// k8s when a kubeconfig is given, else local.
    Auto,
    /// Sandboxes on this machine.
    Local,
    /// A namespace per suite.
    K8s,
}

impl From<Backend> for pit_run::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => Self::Auto,
            Backend::Local => Self::Local,
            Backend::K8s => Self::K8s,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BrownieArgs {
    /// What to clean, comma separated: `namespaces` (Kubernetes), `postgresql` (databases),
    /// `kafka` (topics), `elasticsearch` (indices). Several servers of a module, in the
    /// existing toolkit's form: `postgresql=pg1;pg2`, each set by its own prefixed flags and
    /// variables (`--pg1-pghost`, `PG1_PGHOST`; see docs/brownie.md).
    #[arg(long, env = "ENABLED_MODULES", value_delimiter = ',', default_value = "namespaces", value_parser = module_spec)]
    pub enabled_modules: Vec<ModuleSpec>,
    /// Delete PIT namespaces older than this (default: each namespace's own TTL).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Say what would be deleted and why; delete nothing. The existing toolkit's
    /// `--dry-run true|false` (or DRY_RUN) works too.
    #[arg(long, env = "DRY_RUN", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = toolkit_bool)]
    pub dry_run: Option<bool>,
    /// Sweep once and exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub once: bool,
    /// Sweep again after this long, until interrupted (such as `10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Only namespaces that also match this label selector (such as `pit.dev/project=shop`).
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Deletes at once (per module).
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// How long to wait for each namespace to be gone.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    /// The cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(flatten)]
    pub resources: BrownieResourceArgs,
    /// The per-server settings (`--pg1-pghost HOST`), taken out of the command line by
    /// [`server_flags`] before clap parses it.
    #[arg(skip)]
    pub server_flags: Vec<ServerFlag>,
}

/// What `pit brownie` cleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrownieModule {
    /// PIT's namespaces on Kubernetes.
    Namespaces,
    /// Stale PostgreSQL databases.
    #[value(alias = "postgres")]
    Postgresql,
    /// Stale Kafka topics.
    Kafka,
    /// Stale Elasticsearch or OpenSearch indices.
    Elasticsearch,
}

impl BrownieModule {
    /// Its name in `--enabled-modules`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Postgresql => "postgresql",
            Self::Kafka => "kafka",
            Self::Elasticsearch => "elasticsearch",
        }
    }

    /// The flags (of [`BrownieResourceArgs`]) each of its servers sets for itself, prefixed
    /// with the server's id.
    pub fn server_flags(self) -> &'static [&'static str] {
        match self {
            Self::Namespaces => &[],
            Self::Postgresql => &[
                "pghost",
                "pgport",
                "pgdatabase",
                "pguser",
                "pgpassword",
                "pgpassword-file",
            ],
            Self::Kafka => &[
                "kafka-brokers",
                "kafka-port",
                "kafka-client-id",
                "kafka-username",
                "kafka-password",
                "kafka-password-file",
                "kafka-sasl-mechanism",
            ],
            Self::Elasticsearch => &[
                "elasticsearch-url",
                "elasticsearch-username",
                "elasticsearch-password",
                "elasticsearch-password-file",
                "elasticsearch-ca-file",
            ],
        }
    }
}

/// A module in `--enabled-modules` and its servers: `postgresql` (one server, set by the
/// unprefixed flags: its id is the module's name) or `postgresql=pg1;pg2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The module.
    pub module: BrownieModule,
    /// Its servers' ids, unique.
    pub servers: Vec<String>,
}

fn module_spec(s: &str) -> Result<ModuleSpec, String> {
    let (name, ids) = match s.split_once('=') {
        Some((name, ids)) => (name.trim(), Some(ids)),
        None => (s.trim(), None),
    };
    let module = BrownieModule::from_str(name, true)
        .map_err(|_| format!("`{name}` is not a module: namespaces, postgresql, kafka or elasticsearch"))?;
    let Some(ids) = ids else {
        return Ok(ModuleSpec {
            module,
            servers: vec![module.name().to_owned()],
        });
    };
    let servers: Vec<String> = ids
        .split(';')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect();
    if servers.is_empty() || module == BrownieModule::Namespaces {
        return Err(format!(
            "`{s}`: give a module's servers as `postgresql=pg1;pg2` (namespaces takes none)"
        ));
    }
    for (i, id) in servers.iter().enumerate() {
        let valid = id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "`{id}` is not a server id: letters, digits, `-` and `_`, starting with a letter or digit"
            ));
        }
        if servers[..i].contains(id) {
            return Err(format!("`{s}`: the server `{id}` is named twice"));
        }
    }
    Ok(ModuleSpec { module, servers })
}

/// A per-server setting of the existing toolkit's form: `--pg1-pghost HOST` is server `pg1`'s
/// `pghost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFlag {
    /// The server's id (`pg1`).
    pub server: String,
    /// The flag without the prefix (`pghost`).
    pub flag: String,
    /// Its value.
    pub value: String,
}

/// Takes the per-server settings (`--<id>-<flag> VALUE` or `--<id>-<flag>=VALUE`, where
/// `<flag>` is one of a module's [`BrownieModule::server_flags`]) out of `pit brownie`'s
/// command line, which clap cannot declare: the ids are the user's.
pub fn server_flags(mut argv: Vec<std::ffi::OsString>) -> (Vec<std::ffi::OsString>, Vec<ServerFlag>) {
    let mut found = Vec::new();
    if argv.get(1).and_then(|a| a.to_str()) != Some("brownie") {
        return (argv, found);
    }
    let flags: Vec<&str> = [
        BrownieModule::Postgresql,
        BrownieModule::Kafka,
        BrownieModule::Elasticsearch,
    ]
    .iter()
    .flat_map(|m| m.server_flags())
    .copied()
    .collect();
    let mut i = 2;
    while i < argv.len() {
        let Some(arg) = argv[i].to_str().and_then(|a| a.strip_prefix("--")) else {
            i += 1;
            continue;
        };
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg, None),
        };
        let split = flags.iter().find_map(|f| {
            let server = name.strip_suffix(f)?.strip_suffix('-')?;
            (!server.is_empty()).then(|| (server.to_owned(), (*f).to_owned()))
        });
        let Some((server, flag)) = split else {
            i += 1;
            continue;
        };
        let taken = if inline.is_some() { 1 } else { 2 };
        let value = inline.or_else(|| argv.get(i + 1).and_then(|v| v.to_str()).map(str::to_owned));
        let Some(value) = value else {
            // No value: leave it for clap to refuse.
            i += 1;
            continue;
        };
        found.push(ServerFlag { server, flag, value });
        argv.drain(i..i + taken);
    }
    (argv, found)
}

/// The settings of the modules beyond namespaces: the existing toolkit's flags and variables.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Databases, topics, indices (the existing toolkit's settings; see docs/brownie.md)")]
pub struct BrownieResourceArgs {
    /// Resources older than this are deleted: `3days`, `12hours`, `30minutes` (or `72h`, `2weeks`).
    #[arg(long, env = "RETENTION_PERIOD", default_value = "3days")]
    pub retention_period: String,
    /// A regular expression whose first group is the creation time, `ts` and 14 digits
    /// (`yyyyMMddHHmmss`, UTC) (default: PIT's, which takes `pit` as a word and the first
    /// timestamp after it).
    #[arg(long, env = "TIMESTAMP_PATTERN")]
    pub timestamp_pattern: Option<String>,
    /// Drop databases with their open connections (`DROP DATABASE … WITH (FORCE)`).
    #[arg(long)]
    pub force: bool,
    /// PostgreSQL: the host.
    #[arg(long, env = "PGHOST")]
    pub pghost: Option<String>,
    /// PostgreSQL: the port.
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub pgport: u16,
    /// PostgreSQL: the database to connect to (never dropped).
    #[arg(long, env = "PGDATABASE", default_value = "postgres")]
    pub pgdatabase: String,
    /// PostgreSQL: the user.
    #[arg(long, env = "PGUSER", default_value = "postgres")]
    pub pguser: String,
    /// PostgreSQL: the password. Prefer PGPASSWORD or --pgpassword-file: a flag's value shows
    /// in process lists.
    #[arg(long, env = "PGPASSWORD", hide_env_values = true)]
    pub pgpassword: Option<String>,
    /// PostgreSQL: a file holding the password (its first line).
    #[arg(long, value_name = "FILE")]
    pub pgpassword_file: Option<PathBuf>,
    /// PostgreSQL: never drop this database, whatever its name says (repeatable; the Lock
    /// Manager's, say).
    #[arg(long = "protect-database", value_name = "NAME")]
    pub protect_databases: Vec<String>,
    /// Keep the databases and topics of runs holding or waiting for locks in this Lock
    /// Manager (token from PIT_LOCK_TOKEN); if it cannot be asked, nothing is deleted.
    #[arg(long, env = "PIT_LOCK_MANAGER")]
    pub lock_manager: Option<String>,
    /// Kafka: the brokers, comma separated, `host[:port]`.
    #[arg(long, env = "KAFKA_BROKERS", value_delimiter = ',')]
    pub kafka_brokers: Vec<String>,
    /// Kafka: the port of brokers given without one.
    #[arg(long, env = "KAFKA_PORT", default_value_t = 9092)]
    pub kafka_port: u16,
    /// Kafka: the client id brownie connects as.
    #[arg(long, env = "KAFKA_CLIENT_ID", default_value = "pit-brownie")]
    pub kafka_client_id: String,
    /// Kafka: the SASL user (none: no SASL).
    #[arg(long, env = "KAFKA_USERNAME")]
    pub kafka_username: Option<String>,
    /// Kafka: the SASL password. Prefer KAFKA_PASSWORD or --kafka-password-file.
    #[arg(long, env = "KAFKA_PASSWORD", hide_env_values = true)]
    pub kafka_password: Option<String>,
    /// Kafka: a file holding the SASL password (its first line).
    #[arg(long, value_name = "FILE")]
    pub kafka_password_file: Option<PathBuf>,
    /// Kafka: `plain`, `scram-sha-256` or `scram-sha-512` (default `plain` with a user).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// Elasticsearch/OpenSearch: the nodes' URLs, comma separated (`https://es1:9200,https://es2:9200`).
    #[arg(long, env = "ELASTICSEARCH_URL")]
    pub elasticsearch_url: Option<String>,
    /// Elasticsearch/OpenSearch: the user (none: no authentication).
    #[arg(long, env = "ELASTICSEARCH_USERNAME")]
    pub elasticsearch_username: Option<String>,
    /// Elasticsearch/OpenSearch: the password. Prefer ELASTICSEARCH_PASSWORD or
    /// --elasticsearch-password-file.
    #[arg(long, env = "ELASTICSEARCH_PASSWORD", hide_env_values = true)]
    pub elasticsearch_password: Option<String>,
    /// Elasticsearch/OpenSearch: a file holding the password (its first line).
    #[arg(long, value_name = "FILE")]
    pub elasticsearch_password_file: Option<PathBuf>,
    /// Elasticsearch/OpenSearch: a CA certificate (PEM) to trust besides the system's, for
    /// clusters with their own CA. Certificates are always verified.
    #[arg(long, value_name = "FILE")]
    pub elasticsearch_ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Wait until every Deployment, StatefulSet and pod of a namespace has rolled out, by
    /// watching them: a status check for components that deploy workloads (exit 0 ready, 3 not).
    RolloutStatus {
        /// The namespace (default: the suite's, from PIT_NAMESPACE).
        #[arg(long, short, env = "PIT_NAMESPACE")]
        namespace: String,
        /// How long to wait.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// The cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}
