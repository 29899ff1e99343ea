//! Suite namespaces: created with PIT's labels and annotations, awaited until Active, deleted
//! and awaited until gone (saying what blocks them when they are not).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};

/// `app.kubernetes.io/managed-by: pit` marks every namespace PIT made.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "pit");
/// The run id label.
pub const RUN_LABEL: &str = "pit.dev/run-id";
/// The project label.
pub const PROJECT_LABEL: &str = "pit.dev/project";
/// The suite label.
pub const SUITE_LABEL: &str = "pit.dev/suite";
/// `pit.dev/keep: "true"`: the janitor never deletes it.
pub const KEEP_LABEL: &str = "pit.dev/keep";
/// When PIT created it (RFC 3339).
pub const CREATED_ANNOTATION: &str = "pit.dev/created-at";
/// How long it may live (humantime, such as `6h`): the janitor deletes it after that.
pub const TTL_ANNOTATION: &str = "pit.dev/ttl";
/// The CI job that made it.
pub const CI_JOB_ANNOTATION: &str = "pit.dev/ci-job";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamespaceError {
    /// The namespace was deleted and re-created under the same name since it was listed: the
    /// new one was left alone.
    #[error("namespace `{name}` was re-created since it was listed; the new one was left alone")]
    Replaced {
        /// Its name.
        name: String,
    },
    /// The API server refused or failed.
    #[error("Kubernetes API: {action} namespace `{name}` failed")]
    Api {
        /// What was done.
        action: &'static str,
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// It did not become Active in time.
    #[error("namespace `{name}` did not become Active within {}s", waited.as_secs())]
    NotActive {
        /// The namespace.
        name: String,
        /// How long PIT waited.
        waited: Duration,
    },
    /// It was not gone in time.
    #[error("namespace `{name}` is still there after {}s: {blockers}", waited.as_secs())]
    Stuck {
        /// The namespace.
        name: String,
        /// How long PIT waited.
        waited: Duration,
        /// What holds it: finalizers and remaining content, from its status.
        blockers: String,
    },
}

/// A label value made valid: at most 63 characters of `[a-zA-Z0-9._-]`, starting and ending
/// alphanumeric.
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// What a suite's namespace says about itself.
#[derive(Debug, Clone)]
pub struct NamespaceSpec {
    /// Its name.
    pub name: String,
    /// The run.
    pub run_id: String,
    /// The project.
    pub project: String,
    /// The suite.
    pub suite: String,
    /// How long it may live before the janitor deletes it.
    pub ttl: Duration,
    /// The CI job that made it, if known (an annotation).
    pub ci_job: Option<String>,
}

impl NamespaceSpec {
    /// The namespace object.
    pub fn to_namespace(&self) -> Namespace {
        let labels: BTreeMap<String, String> = [
            (MANAGED_BY.0, MANAGED_BY.1.to_owned()),
            (RUN_LABEL, label_value(&self.run_id)),
            (PROJECT_LABEL, label_value(&self.project)),
            (SUITE_LABEL, label_value(&self.suite)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut annotations = BTreeMap::from([
            (
                CREATED_ANNOTATION.to_owned(),
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ),
            (
                TTL_ANNOTATION.to_owned(),
                humantime::format_duration(self.ttl).to_string(),
            ),
        ]);
        if let Some(job) = &self.ci_job {
            annotations.insert(CI_JOB_ANNOTATION.to_owned(), job.clone());
        }
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }
}

fn is_active(ns: Option<&Namespace>) -> bool {
    ns.and_then(|n| n.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Active")
}

/// Creates the namespace and waits (by watching) until it is Active.
///
/// # Errors
/// [`NamespaceError`] when the API refuses or it does not become Active within `timeout`.
pub async fn create(client: &Client, spec: &NamespaceSpec, timeout: Duration) -> Result<Namespace, NamespaceError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let made = api
        .create(&PostParams::default(), &spec.to_namespace())
        .await
        .map_err(|source| NamespaceError::Api {
            action: "creating",
            name: spec.name.clone(),
            source,
        })?;
    let active = await_condition(api, &spec.name, |ns: Option<&Namespace>| is_active(ns));
    match tokio::time::timeout(timeout, active).await {
        Ok(Ok(Some(ns))) => Ok(ns),
        Ok(Ok(None)) | Err(_) => Err(NamespaceError::NotActive {
            name: spec.name.clone(),
            waited: timeout,
        }),
        Ok(Err(_)) => Ok(made),
    }
}

/// What keeps a terminating namespace: its finalizers and the conditions of its status.
pub fn blockers(ns: &Namespace) -> String {
    let mut out = Vec::new();
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    let meta_finalizers = ns.finalizers().to_vec();
    if !finalizers.is_empty() || !meta_finalizers.is_empty() {
        out.push(format!(
            "finalizers {}",
            finalizers
                .iter()
                .chain(meta_finalizers.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for c in ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
    {
        if c.status == "True" {
            out.push(format!("{}: {}", c.type_, c.message.unwrap_or_default()));
        }
    }
    if out.is_empty() {
        "no finalizer or remaining content reported (is kube-controller-manager running?)".into()
    } else {
        out.join("; ")
    }
}

/// Waits (by watching) until namespace `name` is gone; if it is not within `timeout`, says what
/// holds it (`hint` adds to that).
async fn await_gone(client: &Client, name: &str, timeout: Duration, hint: &str) -> Result<(), NamespaceError> {
    await_uid_gone(client, name, None, timeout, hint).await
}

/// Waits until the namespace `name` with `uid` (the one there now, when `None`) is gone: a
/// namespace re-created under the same name since is another one.
async fn await_uid_gone(
    client: &Client,
    name: &str,
    uid: Option<&str>,
    timeout: Duration,
    hint: &str,
) -> Result<(), NamespaceError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let uid = match (uid, api.get_opt(name).await) {
        (Some(uid), _) => uid.to_owned(),
        (None, Ok(Some(ns))) => ns.uid().unwrap_or_default(),
        (None, Ok(None)) => return Ok(()),
        (None, Err(source)) => {
            return Err(NamespaceError::Api {
                action: "reading",
                name: name.to_owned(),
                source,
            })
        }
    };
    let gone = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    if let Ok(Ok(_)) = tokio::time::timeout(timeout, gone).await {
        return Ok(());
    }
    let blockers = match api.get_opt(name).await {
        Ok(Some(ns)) if ns.uid().as_deref() == Some(uid.as_str()) => format!("{}{hint}", blockers(&ns)),
        Ok(_) => return Ok(()),
        Err(e) => format!("(cannot read it: {e})"),
    };
    Err(NamespaceError::Stuck {
        name: name.to_owned(),
        waited: timeout,
        blockers,
    })
}

/// Deletes the namespace and waits (by watching) until it is gone. A namespace that is
/// already gone is fine.
///
/// # Errors
/// [`NamespaceError::Stuck`] naming what holds it when it is not gone within `timeout`.
pub async fn delete(client: &Client, name: &str, timeout: Duration) -> Result<(), NamespaceError> {
    delete_uid(client, name, None, timeout).await
}

/// Deletes the namespace `name` only if it is still the one with `uid` (a precondition the API
/// server checks), and waits until that one is gone. A namespace re-created under the same name
/// since is never touched: [`NamespaceError::Replaced`].
///
/// # Errors
/// [`NamespaceError::Replaced`], [`NamespaceError::Stuck`], or the API's refusal.
pub async fn delete_exact(client: &Client, name: &str, uid: &str, timeout: Duration) -> Result<(), NamespaceError> {
    delete_uid(client, name, Some(uid), timeout).await
}

/// Deletes `name` (only while its UID is `uid`, when given) and waits until it is gone.
async fn delete_uid(client: &Client, name: &str, uid: Option<&str>, timeout: Duration) -> Result<(), NamespaceError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = DeleteParams {
        preconditions: uid.map(|uid| kube::api::Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        // The precondition failed: the UID is another one's.
        Err(kube::Error::Api(e)) if e.code == 409 && uid.is_some() => {
            return Err(NamespaceError::Replaced { name: name.to_owned() })
        }
        Err(source) => {
            return Err(NamespaceError::Api {
                action: "deleting",
                name: name.to_owned(),
                source,
            })
        }
    }
    await_uid_gone(client, name, uid, timeout, "").await
}

/// The Hierarchical Namespace Controller's anchor: creating one in a parent namespace makes HNC
/// create a sub-namespace of the same name; deleting it removes the sub-namespace.
pub fn anchor_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "hnc.x-k8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "hnc.x-k8s.io/v1alpha2".into(),
        kind: "SubnamespaceAnchor".into(),
        plural: "subnamespaceanchors".into(),
    }
}

/// Creates the namespace as a sub-namespace of `parent` through an HNC anchor, waits (by
/// watching) until HNC has made it Active, then gives it PIT's labels and annotations.
///
/// # Errors
/// [`NamespaceError`] when the anchor is refused (is HNC installed?) or the namespace does not
/// become Active within `timeout`.
pub async fn create_under(
    client: &Client,
    parent: &str,
    spec: &NamespaceSpec,
    timeout: Duration,
) -> Result<Namespace, NamespaceError> {
    use kube::api::{DynamicObject, Patch, PatchParams};
    let anchors: Api<DynamicObject> = Api::namespaced_with(client.clone(), parent, &anchor_resource());
    let mut anchor = DynamicObject::new(&spec.name, &anchor_resource());
    anchor.metadata.labels = Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into());
    anchors
        .create(&PostParams::default(), &anchor)
        .await
        .map_err(|source| NamespaceError::Api {
            action: "anchoring (HNC SubnamespaceAnchor in the parent) the sub-",
            name: spec.name.clone(),
            source,
        })?;
    let api: Api<Namespace> = Api::all(client.clone());
    let active = await_condition(api.clone(), &spec.name, |ns: Option<&Namespace>| is_active(ns));
    match tokio::time::timeout(timeout, active).await {
        Ok(Ok(Some(_))) => {}
        _ => {
            return Err(NamespaceError::NotActive {
                name: spec.name.clone(),
                waited: timeout,
            })
        }
    }
    let ours = spec.to_namespace();
    let patch =
        serde_json::json!({"metadata": {"labels": ours.metadata.labels, "annotations": ours.metadata.annotations}});
    api.patch(&spec.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NamespaceError::Api {
            action: "labelling",
            name: spec.name.clone(),
            source,
        })
}

/// Deletes the HNC anchor of sub-namespace `name` in `parent` (HNC then removes the
/// namespace), and waits until the namespace is gone.
///
/// # Errors
/// [`NamespaceError::Stuck`] naming what holds it when it is not gone within `timeout`.
pub async fn delete_under(client: &Client, parent: &str, name: &str, timeout: Duration) -> Result<(), NamespaceError> {
    let anchors: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), parent, &anchor_resource());
    match anchors.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(NamespaceError::Api {
                action: "deleting the anchor of",
                name: name.to_owned(),
                source,
            })
        }
    }
    await_gone(
        client,
        name,
        timeout,
        " (HNC removes a sub-namespace when its anchor goes)",
    )
    .await
}
