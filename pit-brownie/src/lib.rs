//! # pit-brownie
//!
//! The janitor's modules beyond Kubernetes namespaces (those are `pit_k8s::janitor`'s): it
//! finds what crashed runs left behind on shared servers by the creation time written in each
//! name (`…pit…ts<yyyyMMddHHmmss>…`, UTC), keeps what is young, unreadable, protected or in use
//! by a live run, and deletes the rest in parallel, with a bound.
//!
//! - [`rules`]: the pattern and the retention (the existing toolkit's settings, safer defaults);
//! - [`Module`]: one kind of resource on one server; [`postgres::Postgres`] drops databases,
//!   [`kafka::Kafka`] deletes topics, [`elasticsearch::Elasticsearch`] deletes indices;
//! - [`clean`]: runs a module and reports what it found, kept, deleted and failed;
//! - [`Server`]: a server to clean as settings, connected and cleaned on each sweep.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pit_brownie::ModuleError> {
//! use pit_brownie::{clean, postgres::Postgres, rules::Rules, Options, Live};
//! let pg = Postgres::connect("host=127.0.0.1 user=postgres dbname=postgres", false).await?;
//! let report = clean(&pg, &Rules::defaults(), &Live::default(), &Options { dry_run: true, parallel: 8 }).await?;
//! println!("{} stale of {} found", report.candidates.len(), report.found);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod elasticsearch;
pub mod kafka;
pub mod postgres;
pub mod rules;
pub mod server;

pub use server::Server;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::rules::{Rules, Verdict};

/// A resource a module found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its name.
    pub name: String,
    /// Why it is never deleted, whatever its name says (a template database, the maintenance
    /// database, an internal topic).
    pub protected: Option<String>,
}

/// Why a module failed as a whole (listing, connecting). Never shows a password.
#[derive(Debug, thiserror::Error)]
#[error("{module}: {message}")]
pub struct ModuleError {
    /// The module (`postgresql`).
    pub module: String,
    /// What went wrong.
    pub message: String,
}

impl ModuleError {
    /// The error of `module`, as `e` and its causes say (never a password: the clients'
    /// errors do not carry one).
    pub fn of(module: &str, e: &dyn std::error::Error) -> Self {
        Self {
            module: module.to_owned(),
            message: pit_core::engine::error_chain(e),
        }
    }
}

/// One kind of resource on one server.
#[async_trait]
pub trait Module: Send + Sync {
    /// Its name in `--enabled-modules` (`postgresql`).
    fn name(&self) -> &str;

    /// Every resource there, with those it must never delete marked.
    async fn list(&self) -> Result<Vec<Resource>, ModuleError>;

    /// Deletes one resource.
    async fn delete(&self, name: &str) -> Result<(), String>;
}

/// Runs still alive: a resource whose name carries one of their environment names, or the run
/// id an environment name ends with (as `PIT_RESOURCE_SUFFIX` does), is kept, whatever its age.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Environment names (namespaces) of live runs.
    pub environments: Vec<String>,
}

impl Live {
    /// The live environment `name` belongs to (compared with `-` and `_` alike, since
    /// database and topic names often turn one into the other).
    pub fn owner_of(&self, name: &str) -> Option<&str> {
        let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
        let name = norm(name);
        self.environments
            .iter()
            .find(|env| {
                let env_norm = norm(env);
                // `pit-<suite>-<run id>`: the run id is its last part (a 26-character ULID).
                let run = env_norm.rsplit('_').next().filter(|r| r.len() == 26);
                !env.is_empty() && (name.contains(&env_norm) || run.is_some_and(|r| name.contains(r)))
            })
            .map(String::as_str)
    }
}

/// How a module runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// List the candidates; delete nothing.
    pub dry_run: bool,
    /// Deletes at once.
    pub parallel: usize,
}

/// What happened to a resource the rules selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Deleted.
    Deleted,
    /// A dry run: would be deleted.
    WouldDelete,
    /// The delete failed.
    Failed,
}

/// A resource older than the retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its name.
    pub name: String,
    /// Its age, in seconds.
    pub age_secs: u64,
    /// The rule that selected it: the pattern's match and the retention.
    pub rule: String,
    /// What happened.
    pub action: Action,
    /// Why the delete failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A resource kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// What a module found and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleReport {
    /// The module.
    pub module: String,
    /// Resources whose names match the pattern.
    pub found: usize,
    /// Kept: younger than the retention.
    pub kept_young: usize,
    /// Kept: no creation time could be read from the name.
    pub kept_unreadable: Vec<Kept>,
    /// Kept: protected, or in use by a live run.
    pub kept_protected: Vec<Kept>,
    /// Older than the retention: deleted, would be deleted, or failed.
    pub candidates: Vec<Candidate>,
    /// Wall time, in seconds.
    pub seconds: f64,
}

impl ModuleReport {
    /// How many were deleted (or would be, in a dry run).
    pub fn deleted(&self) -> usize {
        self.candidates.iter().filter(|c| c.action != Action::Failed).count()
    }

    /// How many deletes failed.
    pub fn failed(&self) -> usize {
        self.candidates.iter().filter(|c| c.action == Action::Failed).count()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs `module`: lists, applies `rules` (and `live`), then deletes the stale resources,
/// `options.parallel` at a time, or only lists them in a dry run.
///
/// # Errors
/// [`ModuleError`] when the module cannot list; a failed delete is in the report.
pub async fn clean(
    module: &dyn Module,
    rules: &Rules,
    live: &Live,
    options: &Options,
) -> Result<ModuleReport, ModuleError> {
    let started = Instant::now();
    let now = now_secs();
    let mut report = ModuleReport {
        module: module.name().to_owned(),
        found: 0,
        kept_young: 0,
        kept_unreadable: Vec::new(),
        kept_protected: Vec::new(),
        candidates: Vec::new(),
        seconds: 0.0,
    };
    let mut stale = Vec::new();
    for resource in module.list().await? {
        let verdict = rules.evaluate(&resource.name, now);
        if verdict == Verdict::NotOurs {
            continue;
        }
        report.found += 1;
        if let Some(reason) = resource.protected {
            report.kept_protected.push(Kept {
                name: resource.name,
                reason,
            });
            continue;
        }
        if let Some(env) = live.owner_of(&resource.name) {
            report.kept_protected.push(Kept {
                reason: format!("in use by the live run of environment `{env}`"),
                name: resource.name,
            });
            continue;
        }
        match verdict {
            Verdict::NotOurs => {}
            Verdict::Unreadable { reason } => report.kept_unreadable.push(Kept {
                name: resource.name,
                reason,
            }),
            Verdict::Young { .. } => report.kept_young += 1,
            Verdict::Stale { age_secs } => stale.push((resource.name, age_secs)),
        }
    }
    let rule = format!(
        "matches `{}`, older than {}",
        rules.pattern(),
        describe(rules.retention().as_secs())
    );
    let parallel = options.parallel.max(1);
    report.candidates = stream::iter(stale)
        .map(|(name, age_secs)| {
            let rule = rule.clone();
            async move {
                let result = if options.dry_run {
                    Ok(Action::WouldDelete)
                } else {
                    module.delete(&name).await.map(|()| Action::Deleted)
                };
                let (action, error) = match result {
                    Ok(a) => (a, None),
                    Err(e) => (Action::Failed, Some(e)),
                };
                Candidate {
                    name,
                    age_secs,
                    rule,
                    action,
                    error,
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    report.candidates.sort_by(|a, b| a.name.cmp(&b.name));
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `3 days`, `12 hours`, `30 minutes`.
fn describe(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3_600 == 0 => format!("{} hour(s)", s / 3_600),
        s => format!("{} minute(s)", s / 60),
    }
}
