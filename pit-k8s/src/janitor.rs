//! The janitor behind `pit brownie`: deletes the namespaces crashed runs left behind.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::namespace::{self, KEEP_LABEL, MANAGED_BY, TTL_ANNOTATION};

/// What the janitor deletes and how.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Delete PIT namespaces older than this, whatever their TTL says. Without it, each
    /// namespace's `pit.dev/ttl` annotation decides (namespaces without one are left alone).
    pub older_than: Option<Duration>,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
    /// How many namespaces are deleted at once.
    pub parallel: usize,
    /// How long to wait for each namespace to be gone.
    pub wait: Duration,
    /// Only namespaces that also match this label selector (such as `pit.dev/project=shop`).
    pub selector: Option<String>,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            older_than: None,
            dry_run: false,
            parallel: 32,
            wait: Duration::from_secs(120),
            selector: None,
        }
    }
}

/// What happened to one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Deleted and gone.
    Deleted,
    /// Would be deleted (dry run).
    WouldDelete,
    /// Deleted, but still there: `reason` says what holds it.
    Stuck,
    /// The API refused.
    Failed,
    /// Left alone: it was re-created under the same name since it was listed.
    Skipped,
}

/// One namespace the janitor acted on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Swept {
    /// The namespace.
    pub name: String,
    /// Its age in seconds.
    pub age_seconds: u64,
    /// Why it was chosen (or why it is stuck).
    pub reason: String,
    /// What happened.
    pub action: Action,
    /// The run that made it.
    pub run_id: Option<String>,
}

/// A sweep's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// PIT namespaces seen.
    pub seen: usize,
    /// Left alone because they are labelled `pit.dev/keep=true`.
    pub kept: usize,
    /// Left alone because they are younger than their limit.
    pub fresh: usize,
    /// The ones acted on.
    pub swept: Vec<Swept>,
    /// The namespaces left alone (fresh or kept): the environments of runs that may be alive,
    /// whose databases and topics brownie's other modules keep.
    pub live: Vec<String>,
    /// Seconds the sweep took.
    pub seconds: f64,
}

impl SweepReport {
    /// How many could not be deleted (stuck or refused).
    pub fn problems(&self) -> usize {
        self.swept
            .iter()
            .filter(|s| matches!(s.action, Action::Stuck | Action::Failed))
            .count()
    }
}

/// Whether `name` is one of Kubernetes' own namespaces (`default`, `kube-*`), which the janitor
/// never touches whatever labels it carries.
pub fn is_system_namespace(name: &str) -> bool {
    name == "default" || name.starts_with("kube-")
}

/// Whether `ns` asks to be kept: `pit.dev/keep` as a label or an annotation, `true` in any
/// case (also `yes`, `1`).
pub fn is_kept(ns: &Namespace) -> bool {
    let truthy = |v: &String| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1");
    ns.labels().get(KEEP_LABEL).is_some_and(truthy) || ns.annotations().get(KEEP_LABEL).is_some_and(truthy)
}

/// Why `ns` is stale at `now`, or `None` when it is not (or must be kept).
pub fn staleness(
    ns: &Namespace,
    older_than: Option<Duration>,
    now: SystemTime,
) -> Result<Option<String>, &'static str> {
    if is_system_namespace(&ns.name_any()) {
        return Err("system");
    }
    if is_kept(ns) {
        return Err("kept");
    }
    let created = ns
        .creation_timestamp()
        .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.0.as_second()).unwrap_or(0)));
    let age = created.and_then(|c| now.duration_since(c).ok()).unwrap_or_default();
    if let Some(limit) = older_than {
        return Ok((age > limit).then(|| {
            format!(
                "{} old, older than --older-than {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(limit)
            )
        }));
    }
    let ttl = ns
        .annotations()
        .get(TTL_ANNOTATION)
        .and_then(|t| humantime::parse_duration(t).ok());
    Ok(ttl.and_then(|ttl| {
        (age > ttl).then(|| {
            format!(
                "{} old, past its TTL of {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(ttl)
            )
        })
    }))
}

/// Finds PIT's stale namespaces and deletes them in parallel, waiting until each is gone.
/// Never touches namespaces without PIT's `app.kubernetes.io/managed-by` label, nor those
/// labelled `pit.dev/keep=true`.
///
/// # Errors
/// The API error when the namespaces cannot be listed.
pub async fn sweep(client: &Client, how: &Sweep) -> Result<SweepReport, kube::Error> {
    let start = std::time::Instant::now();
    let api: Api<Namespace> = Api::all(client.clone());
    let mut selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    if let Some(more) = how.selector.as_deref().filter(|s| !s.is_empty()) {
        selector = format!("{selector},{more}");
    }
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    let now = SystemTime::now();
    let (mut kept, mut fresh) = (0, 0);
    let (mut stale, mut live) = (Vec::new(), Vec::new());
    for ns in &list.items {
        match staleness(ns, how.older_than, now) {
            Err(why) => {
                kept += 1;
                if why != "system" {
                    live.push(ns.name_any());
                }
            }
            Ok(None) => {
                fresh += 1;
                live.push(ns.name_any());
            }
            Ok(Some(reason)) => stale.push((ns.clone(), reason)),
        }
    }
    let age = |ns: &Namespace| {
        ns.creation_timestamp()
            .map(|t| u64::try_from(jiff_now_secs() - t.0.as_second()).unwrap_or(0))
            .unwrap_or(0)
    };
    let swept: Vec<Swept> = futures::stream::iter(stale.into_iter().map(|(ns, reason)| {
        let client = client.clone();
        let how = how.clone();
        async move {
            let name = ns.name_any();
            let mut s = Swept {
                age_seconds: age(&ns),
                run_id: ns.labels().get(namespace::RUN_LABEL).cloned(),
                name: name.clone(),
                reason,
                action: Action::WouldDelete,
            };
            if how.dry_run {
                return s;
            }
            let uid = ns.uid().unwrap_or_default();
            match namespace::delete_exact(&client, &name, &uid, how.wait).await {
                Ok(()) => s.action = Action::Deleted,
                Err(e @ namespace::NamespaceError::Replaced { .. }) => {
                    s.action = Action::Skipped;
                    s.reason = e.to_string();
                }
                Err(namespace::NamespaceError::Stuck { blockers, .. }) => {
                    s.action = Action::Stuck;
                    s.reason = blockers;
                }
                Err(e) => {
                    s.action = Action::Failed;
                    s.reason = crate::error_chain(&e);
                }
            }
            s
        }
    }))
    .buffer_unordered(how.parallel.max(1))
    .collect()
    .await;
    let mut swept = swept;
    swept.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SweepReport {
        seen: list.items.len(),
        kept,
        fresh,
        swept,
        live,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn jiff_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
