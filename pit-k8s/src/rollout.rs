//! The built-in readiness wait: until every Deployment, StatefulSet and pod of a namespace has
//! rolled out, by watching them (not by polling in a loop).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::forensics::pod_problem;

/// What is not rolled out yet in a namespace (empty: everything is).
///
/// # Errors
/// The API error when the namespace's objects cannot be listed.
pub async fn pending(client: &Client, ns: &str) -> Result<Vec<String>, kube::Error> {
    let lp = ListParams::default();
    let mut out = Vec::new();
    for d in Api::<Deployment>::namespaced(client.clone(), ns).list(&lp).await? {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let updated = st.updated_replicas.unwrap_or(0);
        let available = st.available_replicas.unwrap_or(0);
        if !observed || updated < want || available < want || st.replicas.unwrap_or(0) > want {
            out.push(format!(
                "deployment/{}: {available} of {want} available, {updated} updated",
                d.name_any()
            ));
        }
    }
    for s in Api::<StatefulSet>::namespaced(client.clone(), ns).list(&lp).await? {
        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = s.status.clone().unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        let updated = st.updated_replicas.unwrap_or(0);
        if ready < want || updated < want {
            out.push(format!(
                "statefulset/{}: {ready} of {want} ready, {updated} updated",
                s.name_any()
            ));
        }
    }
    for p in Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await? {
        if let Some(problem) = pod_problem(&p) {
            out.push(format!("pod/{problem}"));
        }
    }
    Ok(out)
}

/// Waits until everything in `ns` has rolled out, or `timeout` passes. Every change to a
/// Deployment, StatefulSet or pod of the namespace wakes it to look again.
///
/// # Errors
/// `Err` with what is still pending when the time is up (or the API error).
pub async fn wait(client: &Client, ns: &str, timeout: Duration) -> Result<(), String> {
    let cfg = watcher::Config::default();
    let changes = futures::stream::select(
        futures::stream::select(
            watcher(Api::<Deployment>::namespaced(client.clone(), ns), cfg.clone()).map(drop),
            watcher(Api::<StatefulSet>::namespaced(client.clone(), ns), cfg.clone()).map(drop),
        ),
        watcher(Api::<Pod>::namespaced(client.clone(), ns), cfg).map(drop),
    );
    let mut changes = std::pin::pin!(changes);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last;
    loop {
        last = pending(client, ns).await.map_err(|e| e.to_string())?;
        if last.is_empty() {
            return Ok(());
        }
        tokio::select! {
            next = changes.next() => if next.is_none() { return Err("the watch ended".into()); },
            () = tokio::time::sleep_until(deadline) => return Err(last.join("; ")),
        }
    }
}
