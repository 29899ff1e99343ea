//! `pit brownie` (the janitor, once or in a loop) and `pit k8s rollout-status`.

use std::fmt::Write as _;

use pit_k8s::janitor::{sweep, Action, Sweep, SweepReport};

use std::path::PathBuf;

use clap::{Args as _, FromArgMatches as _};

use pit_brownie::Server;

use crate::cli::{BrownieArgs, BrownieModule, BrownieResourceArgs, Output};
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
    file.map(|path| {
        pit_core::secret::SecretRef::File(path.clone())
            .read(&|_| None)
            .map(|s| s.expose().to_owned())
            .map_err(|e| CliError::Usage(format!("{flag}: {}", pit_core::engine::error_chain(&e))))
    })
    .transpose()
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

/// The variable that sets the flag `--name` when it is not given: `PGHOST` for `pghost`,
/// `PG1_PGHOST` for `pg1-pghost` (the existing toolkit's names).
fn variable(name: &str) -> String {
    name.replace('-', "_").to_ascii_uppercase()
}

/// The variable that sets `flag` of server `id`: `PG1_PGHOST` for `pghost` of `pg1`.
fn server_variable(id: &str, flag: &str) -> String {
    variable(&format!("{id}-{flag}"))
}

/// The settings of server `id` of `module`: the unprefixed flags and variables for the server
/// named as its module (`postgresql`), else its own `--<id>-<flag>` flags and `<ID>_<FLAG>`
/// variables only (never another server's). `--force` and `--protect-database` hold for all.
fn server_settings(args: &BrownieArgs, module: BrownieModule, id: &str) -> Result<BrownieResourceArgs, CliError> {
    if id == module.name() {
        return Ok(args.resources.clone());
    }
    let mut argv = vec!["pit brownie".to_owned()];
    for flag in module.server_flags() {
        let given = args
            .server_flags
            .iter()
            .rev()
            .find(|f| f.server == id && f.flag == *flag)
            .map(|f| f.value.clone());
        let value = given.or_else(|| {
            std::env::var(server_variable(id, flag))
                .ok()
                .filter(|v| !v.trim().is_empty())
        });
        if let Some(value) = value {
            argv.push(format!("--{flag}={value}"));
        }
    }
    // The unprefixed variables (PGHOST) belong to the server named as its module.
    let command = BrownieResourceArgs::augment_args(clap::Command::new("pit brownie")).mut_args(|a| a.env(None));
    let refused = |e: clap::Error| {
        let text = e.to_string();
        let mut first = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        for flag in module.server_flags() {
            first = first.replace(&format!("'--{flag} "), &format!("'--{id}-{flag} "));
        }
        CliError::Usage(format!("{} server `{id}`: {first}", module.name()))
    };
    let matches = command.try_get_matches_from(argv).map_err(refused)?;
    let mut settings = BrownieResourceArgs::from_arg_matches(&matches).map_err(refused)?;
    settings.force = args.resources.force;
    settings.protect_databases.clone_from(&args.resources.protect_databases);
    Ok(settings)
}

/// Server `id` of `module` as `r` sets it, checked (nothing is connected yet).
fn read_server(module: BrownieModule, id: &str, r: &BrownieResourceArgs) -> Result<Server, CliError> {
    // `flag` as this server's user writes it: `pghost`, or `pg1-pghost` for server `pg1`.
    let name = |flag: &str| {
        if id == module.name() {
            flag.to_owned()
        } else {
            format!("{id}-{flag}")
        }
    };
    let missing = |what: &str, flag: &str| {
        let n = name(flag);
        CliError::Usage(format!(
            "the {} server `{id}` needs {what}: give --{n} or {}",
            module.name(),
            variable(&n)
        ))
    };
    let file_flag = |flag: &str| format!("--{}", name(flag));
    match module {
        BrownieModule::Postgresql => {
            let host = r.pghost.clone().ok_or_else(|| missing("its host", "pghost"))?;
            let mut config = tokio_postgres::Config::new();
            config
                .host(&host)
                .port(r.pgport)
                .dbname(&r.pgdatabase)
                .user(&r.pguser)
                .application_name("pit-brownie");
            if let Some(p) = password(
                r.pgpassword.as_ref(),
                r.pgpassword_file.as_ref(),
                &file_flag("pgpassword-file"),
            )? {
                config.password(p);
            }
            Ok(Server::Postgres {
                config: Box::new(config),
                force: r.force,
                protected: r.protect_databases.clone(),
            })
        }
        BrownieModule::Kafka => {
            let brokers: Vec<String> = r
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
            if brokers.is_empty() {
                return Err(missing("its brokers", "kafka-brokers"));
            }
            let secret = password(
                r.kafka_password.as_ref(),
                r.kafka_password_file.as_ref(),
                &file_flag("kafka-password-file"),
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
                (Some(_), None) => return Err(missing("a password for its user", "kafka-password")),
                (None, _) => None,
            };
            Ok(Server::Kafka {
                brokers,
                client_id: r.kafka_client_id.clone(),
                sasl,
            })
        }
        BrownieModule::Elasticsearch => {
            let url = r
                .elasticsearch_url
                .clone()
                .ok_or_else(|| missing("its nodes", "elasticsearch-url"))?;
            let secret = password(
                r.elasticsearch_password.as_ref(),
                r.elasticsearch_password_file.as_ref(),
                &file_flag("elasticsearch-password-file"),
            )?;
            let auth = match (&r.elasticsearch_username, secret) {
                (Some(user), Some(secret)) => Some(pit_brownie::elasticsearch::BasicAuth {
                    username: user.clone(),
                    password: secret,
                }),
                (Some(_), None) => return Err(missing("a password for its user", "elasticsearch-password")),
                (None, Some(_)) => return Err(missing("the user of its password", "elasticsearch-username")),
                (None, None) => None,
            };
            let ca = match &r.elasticsearch_ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    CliError::Usage(format!(
                        "{} {}: {e}",
                        file_flag("elasticsearch-ca-file"),
                        path.display()
                    ))
                })?),
                None => None,
            };
            Ok(Server::Elasticsearch { url, auth, ca })
        }
        BrownieModule::Namespaces => Err(CliError::Usage("namespaces have no servers".into())),
    }
}

/// Every server of every module enabled beyond namespaces, labelled `postgresql` or
/// `postgresql/pg1`, its settings checked; a per-server flag of no enabled server is refused.
fn servers(args: &BrownieArgs) -> Result<Vec<(String, Server)>, CliError> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for spec in &args.enabled_modules {
        let name = spec.module.name();
        if seen.contains(&spec.module) {
            return Err(CliError::Usage(format!(
                "--enabled-modules names `{name}` twice: list its servers once, as `{name}=id1;id2`"
            )));
        }
        seen.push(spec.module);
        if spec.module == BrownieModule::Namespaces {
            continue;
        }
        for id in &spec.servers {
            let settings = server_settings(args, spec.module, id)?;
            let label = if id == name { id.clone() } else { format!("{name}/{id}") };
            out.push((label, read_server(spec.module, id, &settings)?));
        }
    }
    for f in &args.server_flags {
        let known = args
            .enabled_modules
            .iter()
            .any(|s| s.servers.contains(&f.server) && s.module.server_flags().contains(&f.flag.as_str()));
        if !known {
            return Err(CliError::Usage(format!(
                "--{}-{}: no enabled module has a server `{}` with that setting (hint: name the server in --enabled-modules, such as `postgresql={}`)",
                f.server, f.flag, f.server, f.server
            )));
        }
    }
    Ok(out)
}

pub fn run(ui: &Ui, args: &BrownieArgs) -> Result<i32, CliError> {
    let dry_run = args.dry_run.unwrap_or(false);
    let enabled = |m: BrownieModule| args.enabled_modules.iter().any(|s| s.module == m);
    let r = &args.resources;
    let in_process_list = [
        (r.pgpassword.is_some(), "PGPASSWORD", "--pgpassword"),
        (r.kafka_password.is_some(), "KAFKA_PASSWORD", "--kafka-password"),
        (
            r.elasticsearch_password.is_some(),
            "ELASTICSEARCH_PASSWORD",
            "--elasticsearch-password",
        ),
    ];
    for (given, var, flag) in in_process_list {
        if given && std::env::var_os(var).is_none() {
            ui.message(&format!(
                "warning: {flag} shows in process lists: prefer {var} or {flag}-file"
            ));
        }
    }
    if let Some(f) = args.server_flags.iter().find(|f| f.flag.ends_with("password")) {
        ui.message(&format!(
            "warning: --{}-{} shows in process lists: prefer {} or --{}-{}-file",
            f.server,
            f.flag,
            server_variable(&f.server, &f.flag),
            f.server,
            f.flag
        ));
    }
    let servers = servers(args)?;
    let rules = pit_brownie::rules::Rules::new(
        r.timestamp_pattern
            .as_deref()
            .unwrap_or(pit_brownie::rules::DEFAULT_PATTERN),
        pit_brownie::rules::parse_retention(&r.retention_period).map_err(|e| CliError::Usage(e.to_string()))?,
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
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
            if let (Some(url), false) = (&args.resources.lock_manager, servers.is_empty()) {
                live.environments.extend(lock_holders(url).await?);
            }
            // A server that cannot be reached does not stop the others: it is reported, and
            // the exit code says so.
            for (label, server) in &servers {
                match server.clean(&rules, &live, &options).await {
                    Ok(mut report) => {
                        label.clone_into(&mut report.module);
                        problems += report.failed();
                        text.push_str(&human_module(&report, dry_run));
                        all.insert(label.clone(), serde_json::to_value(&report).unwrap_or_default());
                    }
                    Err(e) => {
                        problems += 1;
                        let _ = writeln!(text, "{label}: FAILED: {}", e.message);
                        all.insert(
                            label.clone(),
                            serde_json::json!({ "module": label, "error": e.message }),
                        );
                    }
                }
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
