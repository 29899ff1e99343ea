//! A failed suite's forensics bundle: the namespace's events, the state of every workload and
//! pod, and container logs (the previous ones too), gathered before teardown removes them.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};

/// The last lines of each container's log that forensics keeps.
const FORENSIC_LOG_LINES: i64 = 1000;

/// The most of each container's log that forensics keeps (the API server cuts there): a
/// container writing huge lines cannot fill the run's disk or memory.
const FORENSIC_LOG_BYTES: i64 = 4 << 20;

/// Why a pod is not ready, in a few words: its phase and the first false condition's message,
/// or a waiting container's reason.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready || status.phase.as_deref() == Some("Succeeded") {
        return None;
    }
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let waiting = status.container_statuses.iter().flatten().find_map(|c| {
        c.state.as_ref().and_then(|s| s.waiting.as_ref()).map(|w| {
            format!(
                "{}: {}",
                w.reason.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default()
            )
        })
    });
    let condition = status.conditions.iter().flatten().find_map(|c| {
        (c.status == "False")
            .then(|| c.message.clone().or_else(|| c.reason.clone()))
            .flatten()
    });
    Some(format!(
        "{} {phase}{}",
        pod.name_any(),
        waiting.or(condition).map(|m| format!(" ({m})")).unwrap_or_default()
    ))
}

async fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::write(path, text).await
}

/// Gathers the bundle of namespace `ns` into `dir`: `events.txt`, `workloads.json`,
/// `pods.json` and `logs/<pod>.<container>[.previous].log`. Returns a one-line summary.
///
/// # Errors
/// When the bundle cannot be written; API failures are noted in the bundle instead.
pub async fn collect(client: &Client, ns: &str, dir: &Path) -> std::io::Result<String> {
    let lp = ListParams::default();
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    events.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .or_else(|| e.first_timestamp.clone())
            .map(|t| t.0)
    });
    let mut text = String::new();
    for e in &events {
        let _ = writeln!(
            text,
            "{} {} {}/{}: {}",
            e.type_.as_deref().unwrap_or("-"),
            e.reason.as_deref().unwrap_or("-"),
            e.involved_object.kind.as_deref().unwrap_or("-"),
            e.involved_object.name.as_deref().unwrap_or("-"),
            e.message.as_deref().unwrap_or("").trim()
        );
    }
    write(&dir.join("events.txt"), &text).await?;
    let warnings = events.iter().filter(|e| e.type_.as_deref() == Some("Warning")).count();

    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map(|l| l.items);
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map(|l| l.items);
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map(|l| l.items);
    let workloads = serde_json::json!({
        "deployments": deployments.as_ref().map_err(ToString::to_string),
        "statefulSets": statefulsets.as_ref().map_err(ToString::to_string),
        "replicaSets": replicasets.as_ref().map_err(ToString::to_string),
    });
    write(
        &dir.join("workloads.json"),
        &serde_json::to_string_pretty(&workloads).unwrap_or_default(),
    )
    .await?;

    let pods_api = Api::<Pod>::namespaced(client.clone(), ns);
    let pods = pods_api.list(&lp).await.map(|l| l.items).unwrap_or_default();
    write(
        &dir.join("pods.json"),
        &serde_json::to_string_pretty(&pods).unwrap_or_default(),
    )
    .await?;
    let mut logs = 0;
    for pod in &pods {
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        for c in containers {
            for previous in [false, true] {
                let params = LogParams {
                    container: Some(c.clone()),
                    previous,
                    tail_lines: Some(FORENSIC_LOG_LINES),
                    limit_bytes: Some(FORENSIC_LOG_BYTES),
                    ..LogParams::default()
                };
                let name = format!("{}.{c}{}.log", pod.name_any(), if previous { ".previous" } else { "" });
                match pods_api.logs(&pod.name_any(), &params).await {
                    Ok(text) => {
                        write(&dir.join("logs").join(name), &text).await?;
                        logs += 1;
                    }
                    // No previous container, or no node agent to ask: say so beside the logs.
                    Err(e) if !previous => {
                        write(&dir.join("logs").join(format!("{name}.unavailable")), &e.to_string()).await?
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let problems: Vec<String> = pods.iter().filter_map(pod_problem).collect();
    let mut summary = format!(
        "{} events ({warnings} warnings), {} pods, {logs} container logs in {}",
        events.len(),
        pods.len(),
        dir.display()
    );
    if !problems.is_empty() {
        let _ = write!(summary, "; not ready: {}", problems.join("; "));
    }
    Ok(summary)
}
