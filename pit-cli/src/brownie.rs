//! `pit brownie` (the janitor, once or in a loop) and `pit k8s rollout-status`.

use std::fmt::Write as _;

use pit_k8s::janitor::{sweep, Action, Sweep, SweepReport};

use std::path::PathBuf;

use crate::cli::{BrownieArgs, BrownieModule, Output};
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

/// `10d 3h`, `5h 2m`, `42m`.
fn age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A module's report as a table: each candidate with its age and rule, each kept resource
/// with its reason, then the summary.
fn human_module(r: &pit_brownie::ModuleReport, dry_run: bool) -> String {
    let mut out = String::new();
    let action = |a: pit_brownie::Action| match a {
        pit_brownie::Action::Deleted => "deleted",
        pit_brownie::Action::WouldDelete => "would delete",
        pit_brownie::Action::Failed => "FAILED",
    };
    for c in &r.candidates {
        let _ = writeln!(
            out,
            "{:<12} {}  (age {}; {}){}",
            action(c.action),
            c.name,
            age(c.age_secs),
            c.rule,
            c.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    for k in r.kept_unreadable.iter().chain(&r.kept_protected) {
        let _ = writeln!(out, "{:<12} {}  ({})", "kept", k.name, k.reason);
    }
    let _ = writeln!(
        out,
        "{}: {} found, {} kept (young), {} kept (unreadable name), {} kept (protected or live), {} {}, {} failed; {:.1}s",
        r.module,
        r.found,
        r.kept_young,
        r.kept_unreadable.len(),
        r.kept_protected.len(),
        r.deleted(),
        if dry_run { "would be deleted (dry run)" } else { "deleted" },
        r.failed(),
        r.seconds
    );
    out
}

/// A password: the flag's (or its variable's), else the first line of the file flag's file.
fn password(value: Option<&String>, file: Option<&PathBuf>, flag: &str) -> Result<Option<String>, CliError> {
    if let Some(p) = value {
        return Ok(Some(p.clone()));
    }
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("{flag} {}: {e}", path.display())))?;
            Ok(Some(text.lines().next().unwrap_or_default().trim().to_owned()))
        }
        None => Ok(None),
    }
}

/// The environments of the runs that hold or wait for locks in the Lock Manager at `url`.
async fn lock_holders(url: &str) -> Result<Vec<String>, CliError> {
    let client = pit_run::lock_client(url, std::env::var("PIT_LOCK_TOKEN").ok().filter(|t| !t.is_empty()))?;
    let list = client.list().await?;
    let owners = list
        .locks
        .iter()
        .map(|l| &l.owner)
        .chain(list.queue.iter().map(|q| &q.owner));
    Ok(owners
        .filter_map(|o| {
            let run: pit_core::naming::RunId = o.run_id.as_deref()?.parse().ok()?;
            let suite = pit_core::pitfile::SuiteId::from(o.suite.as_deref()?);
            Some(pit_core::naming::environment_name(&run, &suite))
        })
        .collect())
}

/// The kafka module, as the flags and the KAFKA_* variables say.
async fn kafka(args: &BrownieArgs) -> Result<pit_brownie::kafka::Kafka, CliError> {
    let r = &args.resources;
    if r.kafka_brokers.is_empty() {
        return Err(CliError::Usage(
            "the kafka module needs the brokers: give --kafka-brokers or set KAFKA_BROKERS".into(),
        ));
    }
    let brokers = r
        .kafka_brokers
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .map(|b| {
            if b.contains(':') {
                b.to_owned()
            } else {
                format!("{b}:{}", r.kafka_port)
            }
        })
        .collect();
    let secret = password(
        r.kafka_password.as_ref(),
        r.kafka_password_file.as_ref(),
        "--kafka-password-file",
    )?;
    let sasl = match (&r.kafka_username, secret) {
        (Some(user), Some(secret)) => Some(
            pit_brownie::kafka::Sasl::new(
                r.kafka_sasl_mechanism.as_deref().unwrap_or("plain"),
                user.clone(),
                secret,
            )
            .map_err(CliError::Usage)?,
        ),
        (Some(_), None) => {
            return Err(CliError::Usage(
                "--kafka-username needs a password: set KAFKA_PASSWORD or give --kafka-password-file".into(),
            ))
        }
        (None, _) => None,
    };
    Ok(pit_brownie::kafka::Kafka::connect(brokers, &r.kafka_client_id, sasl).await?)
}

/// The postgresql module, as the flags and the PG* variables say.
fn postgres(args: &BrownieArgs) -> Result<pit_brownie::postgres::Postgres, CliError> {
    let r = &args.resources;
    let host = r
        .pghost
        .clone()
        .ok_or_else(|| CliError::Usage("the postgresql module needs the server: give --pghost or set PGHOST".into()))?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&host)
        .port(r.pgport)
        .dbname(&r.pgdatabase)
        .user(&r.pguser)
        .application_name("pit-brownie");
    if let Some(password) = password(r.pgpassword.as_ref(), r.pgpassword_file.as_ref(), "--pgpassword-file")? {
        config.password(password);
    }
    Ok(pit_brownie::postgres::Postgres::new(config, args.parallel, r.force)?
        .protecting(r.protect_databases.iter().cloned()))
}

pub fn run(ui: &Ui, args: &BrownieArgs) -> Result<i32, CliError> {
    let dry_run = args.dry_run.unwrap_or(false);
    let enabled = |m: BrownieModule| args.enabled_modules.contains(&m);
    let r = &args.resources;
    if r.pgpassword.is_some() && std::env::var_os("PGPASSWORD").is_none() {
        ui.message("warning: --pgpassword shows in process lists: prefer PGPASSWORD or --pgpassword-file");
    }
    let rules = pit_brownie::rules::Rules::new(
        r.timestamp_pattern
            .as_deref()
            .unwrap_or(pit_brownie::rules::DEFAULT_PATTERN),
        pit_brownie::rules::parse_retention(&r.retention_period).map_err(|e| CliError::Usage(e.to_string()))?,
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let pg = if enabled(BrownieModule::Postgresql) {
            Some(postgres(args)?)
        } else {
            None
        };
        let kafka = if enabled(BrownieModule::Kafka) {
            Some(kafka(args).await?)
        } else {
            None
        };
        let modules: Vec<&dyn pit_brownie::Module> = [
            pg.as_ref().map(|m| m as &dyn pit_brownie::Module),
            kafka.as_ref().map(|m| m as &dyn pit_brownie::Module),
        ]
        .into_iter()
        .flatten()
        .collect();
        let client = if enabled(BrownieModule::Namespaces) {
            Some(pit_k8s::client(args.kubeconfig.as_deref()).await?)
        } else {
            None
        };
        let how = Sweep {
            older_than: args.older_than,
            dry_run,
            parallel: args.parallel,
            wait: args.wait,
            selector: args.selector.clone(),
        };
        let options = pit_brownie::Options {
            dry_run,
            parallel: args.parallel,
        };
        loop {
            let mut problems = 0;
            let mut all = serde_json::Map::new();
            let mut text = String::new();
            // The namespaces left alone are the environments of runs that may be alive: their
            // databases are kept whatever their age.
            let mut live = pit_brownie::Live::default();
            if let Some(client) = &client {
                let report = sweep(client, &how).await?;
                problems += report.problems();
                text.push_str(&human(&report, dry_run));
                live.environments.clone_from(&report.live);
                all.insert("namespaces".into(), serde_json::to_value(&report).unwrap_or_default());
            }
            // So are the runs with locks: a Lock Manager that cannot be asked stops brownie
            // before any database or topic is deleted (an error, exit 3).
            if let (Some(url), false) = (&args.resources.lock_manager, modules.is_empty()) {
                live.environments.extend(lock_holders(url).await?);
            }
            for module in &modules {
                let report = pit_brownie::clean(*module, &rules, &live, &options).await?;
                problems += report.failed();
                text.push_str(&human_module(&report, dry_run));
                all.insert(report.module.clone(), serde_json::to_value(&report).unwrap_or_default());
            }
            match args.output {
                // Namespaces alone: the shape `pit brownie -o json` always had.
                Output::Json if all.len() == 1 && client.is_some() => stdout(&json(&all["namespaces"]))?,
                Output::Json => stdout(&json(&all))?,
                Output::Human => stdout(&text)?,
            }
            let Some(every) = args.every else {
                return Ok(if problems > 0 {
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
