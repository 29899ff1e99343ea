//! Against a real control plane: `scripts/k8s up DIR` prints the KUBECONFIG these tests need,
//! as `PIT_TEST_KUBECONFIG` (`scripts/test` does it for you).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use pit_core::deploy::{Deployer, EnvironmentRequest, Step, StepKind};
use pit_core::naming::RunId;
use pit_k8s::janitor::{sweep, Action, Sweep};
use pit_k8s::K8sDeployer;
use tokio_util::sync::CancellationToken;

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("PIT_TEST_KUBECONFIG").expect(
        "PIT_TEST_KUBECONFIG is not set: start a control plane with `scripts/k8s up DIR` and export its KUBECONFIG as PIT_TEST_KUBECONFIG",
    ))
}

async fn client() -> Client {
    pit_k8s::client(Some(&kubeconfig())).await.unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        ulid::Ulid::new().to_string().to_lowercase()[20..].to_owned()
    )
}

#[tokio::test]
async fn a_suite_namespace_is_labelled_active_while_it_runs_and_gone_after() {
    let client = client().await;
    let scratch = tempfile::Builder::new().prefix("pit-k8s-deployer-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let deployer = K8sDeployer::new(client.clone(), &dir, Some(kubeconfig()));
    let run_id = RunId::generate();
    let name = unique("pit-shop-checkout");
    let env = deployer
        .create_environment(&EnvironmentRequest {
            run_id,
            project: "shop".into(),
            suite: "checkout".into(),
            name: name.clone(),
            ci_job: Some("https://ci.example.com/jobs/42".into()),
        })
        .await
        .unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api.get(&name).await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    // The CI job the frontend gave is recorded on the namespace.
    assert_eq!(
        ns.metadata.annotations.as_ref().unwrap()["pit.dev/ci-job"],
        "https://ci.example.com/jobs/42"
    );
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "pit");
    assert_eq!(labels["pit.dev/run-id"], run_id.to_string());
    assert_eq!(labels["pit.dev/suite"], "checkout");
    let annotations = ns.metadata.annotations.unwrap();
    assert!(annotations.contains_key("pit.dev/created-at") && annotations["pit.dev/ttl"] == "6h");
    // Commands get the namespace and the kubeconfig.
    let step = Step {
        kind: StepKind::Deploy,
        component: "probe".into(),
        argv: vec!["sh".into(), "-c".into(), "echo \"$PIT_NAMESPACE $KUBECONFIG\"".into()],
        cwd: dir.clone(),
        env: BTreeMap::new(),
        timeout: Duration::from_secs(10),
    };
    let done = deployer.run(&env, &step, &CancellationToken::new()).await.unwrap();
    assert!(done.success());
    let log = std::fs::read_to_string(deployer_log(&env)).unwrap();
    assert!(
        log.contains(&name) && log.contains(&kubeconfig().display().to_string()),
        "{log}"
    );
    deployer.remove_environment(&env).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_none(), "the namespace is gone");
}

fn deployer_log(env: &pit_core::deploy::Environment) -> PathBuf {
    env.logs.join("probe.deploy.log")
}

async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

#[tokio::test]
async fn brownie_deletes_stale_pit_namespaces_and_leaves_fresh_kept_and_unlabelled_ones() {
    let client = client().await;
    let tag = unique("bt");
    let pit = ("app.kubernetes.io/managed-by", "pit");
    let run = ("pit.dev/run-id", tag.as_str());
    let stale = format!("{tag}-stale");
    let fresh = format!("{tag}-fresh");
    let kept = format!("{tag}-kept");
    let foreign = format!("{tag}-foreign");
    namespace(&client, &stale, &[pit, run], &[("pit.dev/ttl", "1s")]).await;
    namespace(&client, &fresh, &[pit, run], &[("pit.dev/ttl", "1h")]).await;
    namespace(
        &client,
        &kept,
        &[pit, run, ("pit.dev/keep", "true")],
        &[("pit.dev/ttl", "1s")],
    )
    .await;
    namespace(&client, &foreign, &[("team", "payments")], &[("pit.dev/ttl", "1s")]).await;
    // Creation times have a resolution of a second: let the 1 s TTL run out.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mine = |r: &pit_k8s::janitor::SweepReport| -> Vec<(String, Action)> {
        r.swept
            .iter()
            .filter(|s| s.name.starts_with(&tag))
            .map(|s| (s.name.clone(), s.action.clone()))
            .collect()
    };
    // Only this test's namespaces: the other tests run at the same time.
    let only = Some(format!("pit.dev/run-id={tag}"));
    let dry = sweep(
        &client,
        &Sweep {
            dry_run: true,
            selector: only.clone(),
            ..Sweep::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mine(&dry), vec![(stale.clone(), Action::WouldDelete)]);
    // The fresh and the kept one are the environments of runs that may be alive.
    let mut live = dry.live.clone();
    live.sort();
    assert_eq!(live, [fresh.clone(), kept.clone()]);
    let api: Api<Namespace> = Api::all(client.clone());
    assert!(
        api.get_opt(&stale).await.unwrap().is_some(),
        "a dry run deletes nothing"
    );
    let real = sweep(
        &client,
        &Sweep {
            selector: only.clone(),
            ..Sweep::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mine(&real), vec![(stale.clone(), Action::Deleted)]);
    assert!(real
        .swept
        .iter()
        .find(|s| s.name == stale)
        .unwrap()
        .reason
        .contains("past its TTL of 1s"));
    assert!(api.get_opt(&stale).await.unwrap().is_none());
    for left in [&fresh, &kept, &foreign] {
        let ns = api.get(left).await.unwrap();
        assert!(ns.metadata.deletion_timestamp.is_none(), "{left} was left alone");
    }
    // --older-than takes over from the TTL, and still spares kept and unlabelled ones.
    let older = sweep(
        &client,
        &Sweep {
            older_than: Some(Duration::ZERO),
            selector: only,
            ..Sweep::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mine(&older), vec![(fresh.clone(), Action::Deleted)]);
    for left in [&kept, &foreign] {
        assert!(api.get(left).await.unwrap().metadata.deletion_timestamp.is_none());
        let _ = api.delete(left, &Default::default()).await;
    }
}

/// `kubectl apply --dry-run=server` of `file` into `namespace`: the API server checks every
/// object (schemas, RBAC references, admission) without storing it.
fn server_dry_run(file: &str, namespace: &str) -> Result<String, String> {
    let kubectl = std::env::var("PIT_KUBECTL").expect("PIT_KUBECTL is not set (scripts/k8s up prints it)");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    output(
        std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["apply", "--dry-run=server", "--namespace", namespace, "-f"])
            .arg(path),
    )
}

/// Runs `cmd`: what it printed (stdout, then stderr), as `Ok` when it succeeded.
fn output(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[tokio::test]
async fn the_brownie_and_lock_manager_manifests_pass_a_server_side_dry_run() {
    let client = client().await;
    let ns = unique("pit-manifests");
    namespace(&client, &ns, &[], &[]).await;
    let brownie = server_dry_run("deploy/brownie/kubernetes.yaml", &ns).unwrap();
    for object in [
        "serviceaccount/pit-brownie",
        "clusterrole.rbac.authorization.k8s.io/pit-brownie",
        "cronjob.batch/pit-brownie",
    ] {
        assert!(brownie.contains(object), "{brownie}");
    }
    let locks = server_dry_run("deploy/lock-manager/kubernetes.yaml", &ns).unwrap();
    for object in [
        "deployment.apps/pit-lock-manager",
        "service/pit-lock-manager",
        "poddisruptionbudget.policy/pit-lock-manager",
    ] {
        assert!(locks.contains(object), "{locks}");
    }
    // The check can fail: a manifest the API server refuses is reported.
    let scratch = tempfile::Builder::new().prefix("pit-bad-manifest-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: batch/v1\nkind: CronJob\nmetadata: { name: bad }\nspec: { schedule: 'not a schedule', jobTemplate: { spec: { template: { spec: { restartPolicy: Never, containers: [{ name: c, image: x }] } } } } }\n").unwrap();
    assert!(
        server_dry_run(bad.to_str().unwrap(), &ns).is_err(),
        "an invalid schedule is refused"
    );
    let _ = Api::<Namespace>::all(client).delete(&ns, &Default::default()).await;
}

/// `helm ARGS…` against the test cluster (`PIT_HELM`, which `scripts/helm build` prints and
/// `scripts/test` exports): whether it succeeded, and what it printed.
fn helm(args: &[&str]) -> (bool, String) {
    let helm = std::env::var("PIT_HELM").expect("PIT_HELM is not set (scripts/helm build prints it)");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir();
    match output(
        std::process::Command::new(helm)
            .current_dir(repo)
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(args)
            .env("HELM_CACHE_HOME", scratch.join("pit-helm-cache"))
            .env("HELM_CONFIG_HOME", scratch.join("pit-helm-config"))
            .env("HELM_DATA_HOME", scratch.join("pit-helm-data")),
    ) {
        Ok(text) => (true, text),
        Err(text) => (false, text),
    }
}

#[tokio::test]
async fn the_helm_charts_lint_render_pass_a_server_side_dry_run_install_and_uninstall() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::CronJob;
    let client = client().await;
    let ns = unique("pit-helm");
    namespace(&client, &ns, &[], &[]).await;
    let scratch = tempfile::Builder::new().prefix("pit-helm-render-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let release = unique("t");
    for (chart, objects) in [
        (
            "deploy/helm/pit-lock-manager",
            vec!["deployment.apps/", "service/", "poddisruptionbudget.policy/"],
        ),
        (
            "deploy/helm/pit-brownie",
            vec![
                "serviceaccount/",
                "clusterrole.rbac.authorization.k8s.io/",
                "clusterrolebinding.rbac.authorization.k8s.io/",
                "cronjob.batch/",
            ],
        ),
    ] {
        let (ok, out) = helm(&["lint", "--strict", chart]);
        assert!(ok, "{chart}: {out}");
        let (ok, rendered) = helm(&["template", &release, chart, "--namespace", &ns]);
        assert!(ok, "{chart}: {rendered}");
        let file = dir.join(format!("{}.yaml", chart.rsplit('/').next().unwrap()));
        std::fs::write(&file, &rendered).unwrap();
        let applied = server_dry_run(file.to_str().unwrap(), &ns).unwrap_or_else(|e| panic!("{chart}: {e}"));
        for object in objects {
            assert!(applied.contains(object), "{chart}: {applied}");
        }
    }

    // Installed with values of one's own, then uninstalled.
    let (ok, out) = helm(&[
        "install",
        &release,
        "deploy/helm/pit-lock-manager",
        "--namespace",
        &ns,
        "--set",
        "replicaCount=3",
        "--set",
        "image.tag=9.9.9",
        "--set",
        "secret.name=db-and-tokens",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = helm(&[
        "install",
        &format!("{release}-b"),
        "deploy/helm/pit-brownie",
        "--namespace",
        &ns,
        "--set",
        "schedule=0 * * * *",
        "--set",
        "enabledModules=namespaces\\,postgresql",
    ]);
    assert!(ok, "{out}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let lm = deployments.get(&format!("{release}-pit-lock-manager")).await.unwrap();
    let spec = lm.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert!(container.image.as_deref().unwrap().ends_with(":9.9.9"), "{container:?}");
    let secret_of = |name: &str| {
        container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref().map(|s| s.name.clone()))
    };
    assert_eq!(secret_of("DATABASE_URL").as_deref(), Some("db-and-tokens"));
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let brownie = cronjobs.get(&format!("{release}-b-pit-brownie")).await.unwrap();
    let spec = brownie.spec.unwrap();
    assert_eq!(spec.schedule, "0 * * * *");
    let env = spec.job_template.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let modules = env.iter().find(|e| e.name == "ENABLED_MODULES").unwrap();
    assert_eq!(modules.value.as_deref(), Some("namespaces,postgresql"));

    // The API server's checks reach the user: a schedule it refuses fails the install.
    let (ok, out) = helm(&[
        "install",
        &format!("{release}-bad"),
        "deploy/helm/pit-brownie",
        "--namespace",
        &ns,
        "--set",
        "schedule=not a schedule",
    ]);
    assert!(!ok && out.contains("schedule"), "{out}");
    let _ = helm(&["uninstall", &format!("{release}-bad"), "--namespace", &ns]);

    for name in [release.clone(), format!("{release}-b")] {
        let (ok, out) = helm(&["uninstall", &name, "--namespace", &ns, "--wait"]);
        assert!(ok, "{out}");
    }
    assert!(deployments
        .get_opt(&format!("{release}-pit-lock-manager"))
        .await
        .unwrap()
        .is_none());
    assert!(cronjobs
        .get_opt(&format!("{release}-b-pit-brownie"))
        .await
        .unwrap()
        .is_none());
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    assert!(
        roles
            .get_opt(&format!("{release}-b-pit-brownie"))
            .await
            .unwrap()
            .is_none(),
        "cluster-wide objects go too"
    );
    let _ = Api::<Namespace>::all(client).delete(&ns, &Default::default()).await;
}

/// Stands in for HNC's controller (only its resource definitions are installed): makes the
/// sub-namespace of each anchor in `parent`, and removes it when the anchor goes.
async fn hnc_stand_in(client: Client, parent: String, stop: CancellationToken) {
    use futures::StreamExt;
    use kube::api::DynamicObject;
    use kube::runtime::watcher;
    let anchors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &parent, &pit_k8s::namespace::anchor_resource());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut events = std::pin::pin!(watcher(anchors, watcher::Config::default()));
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            () = stop.cancelled() => return,
        };
        match event {
            Some(Ok(watcher::Event::Apply(a) | watcher::Event::InitApply(a))) => {
                let name = a.metadata.name.clone().unwrap();
                namespace(
                    &client,
                    &name,
                    &[],
                    &[("hnc.x-k8s.io/subnamespace-of", parent.as_str())],
                )
                .await;
            }
            Some(Ok(watcher::Event::Delete(a))) => {
                let _ = namespaces.delete(&a.metadata.name.unwrap(), &Default::default()).await;
            }
            Some(_) => {}
            None => return,
        }
    }
}

#[tokio::test]
async fn with_a_parent_namespace_the_suite_gets_an_hnc_sub_namespace() {
    let client = client().await;
    let kubectl = std::env::var("PIT_KUBECTL").expect("PIT_KUBECTL is not set (scripts/k8s up prints it)");
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/hnc-crds.yaml");
    let out = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(["apply", "--server-side", "-f"])
        .arg(&crds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let established = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args([
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/subnamespaceanchors.hnc.x-k8s.io",
        ])
        .output()
        .unwrap();
    assert!(established.status.success());
    let parent = unique("pit-team");
    namespace(&client, &parent, &[], &[]).await;
    let stop = CancellationToken::new();
    let controller = tokio::spawn(hnc_stand_in(client.clone(), parent.clone(), stop.clone()));
    let scratch = tempfile::Builder::new().prefix("pit-k8s-hnc-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let deployer =
        K8sDeployer::new(client.clone(), &dir, Some(kubeconfig())).with_parent_namespace(Some(parent.clone()));
    let name = unique("pit-sub");
    let env = deployer
        .create_environment(&EnvironmentRequest {
            run_id: RunId::generate(),
            project: "shop".into(),
            suite: "checkout".into(),
            name: name.clone(),
            ci_job: None,
        })
        .await
        .unwrap();
    let anchors: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &parent, &pit_k8s::namespace::anchor_resource());
    assert!(
        anchors.get_opt(&name).await.unwrap().is_some(),
        "an anchor in the parent"
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api.get(&name).await.unwrap();
    assert_eq!(
        ns.metadata.annotations.as_ref().unwrap()["hnc.x-k8s.io/subnamespace-of"],
        parent
    );
    assert_eq!(
        ns.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "pit",
        "PIT's labels added"
    );
    deployer.remove_environment(&env).await.unwrap();
    assert!(anchors.get_opt(&name).await.unwrap().is_none(), "the anchor is gone");
    assert!(
        api.get_opt(&name).await.unwrap().is_none(),
        "and with it the sub-namespace"
    );
    stop.cancel();
    let _ = controller.await;
    let _ = api.delete(&parent, &Default::default()).await;
}

#[tokio::test]
async fn brownie_never_touches_system_namespaces_honours_keep_in_any_form_and_spares_a_recreated_namespace() {
    // Issue 13: kube-node-lease was deleted once it carried PIT's label; `pit.dev/keep=True`
    // and a keep annotation did not protect.
    let client = client().await;
    let tag = unique("bs");
    let pit = ("app.kubernetes.io/managed-by", "pit");
    let run = ("pit.dev/run-id", tag.as_str());
    let kept_label = format!("{tag}-label");
    let kept_note = format!("{tag}-note");
    namespace(&client, &kept_label, &[pit, run, ("pit.dev/keep", "True")], &[]).await;
    namespace(&client, &kept_note, &[pit, run], &[("pit.dev/keep", "TRUE")]).await;
    let api: Api<Namespace> = Api::all(client.clone());
    let labels =
        serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "pit", "pit.dev/run-id": tag}}});
    api.patch(
        "kube-node-lease",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&labels),
    )
    .await
    .unwrap();
    let report = sweep(
        &client,
        &Sweep {
            older_than: Some(Duration::ZERO),
            selector: Some(format!("pit.dev/run-id={tag}")),
            ..Sweep::default()
        },
    )
    .await
    .unwrap();
    let unlabel =
        serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null, "pit.dev/run-id": null}}});
    api.patch(
        "kube-node-lease",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&unlabel),
    )
    .await
    .unwrap();
    assert_eq!(report.seen, 3, "{report:?}");
    assert!(report.swept.is_empty(), "{report:?}");
    assert_eq!(report.kept, 3);
    for left in ["kube-node-lease", kept_label.as_str(), kept_note.as_str()] {
        assert!(
            api.get(left).await.unwrap().metadata.deletion_timestamp.is_none(),
            "{left}"
        );
    }
    for left in [&kept_label, &kept_note] {
        let _ = api.delete(left, &Default::default()).await;
    }

    // Deleting by UID: a namespace re-created under the listed name is another one.
    let name = format!("{tag}-again");
    namespace(&client, &name, &[pit, run], &[]).await;
    let old_uid = api.get(&name).await.unwrap().metadata.uid.unwrap();
    pit_k8s::namespace::delete(&client, &name, Duration::from_secs(60))
        .await
        .unwrap();
    namespace(&client, &name, &[pit, run], &[]).await;
    let err = pit_k8s::namespace::delete_exact(&client, &name, &old_uid, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(err, pit_k8s::namespace::NamespaceError::Replaced { .. }),
        "{err}"
    );
    let now = api.get(&name).await.unwrap();
    assert!(
        now.metadata.deletion_timestamp.is_none(),
        "the new namespace was left alone"
    );
    let new_uid = now.metadata.uid.unwrap();
    pit_k8s::namespace::delete_exact(&client, &name, &new_uid, Duration::from_secs(60))
        .await
        .unwrap();
}

/// A one-route HTTP server on loopback standing in for a test app: answers every request
/// with its method and path. Returns its port.
async fn loopback_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or_default().to_owned();
                let body = format!("{{\"seen\":\"{}\"}}", line.rsplit_once(' ').map_or(&*line, |(l, _)| l));
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

/// Raw HTTP/1.0 `GET url` (http://host:port/path): status line and body.
async fn http_get(url: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_string(&mut text))
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {url} within 60 s"))
        .unwrap();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Issue 14: a test app that publishes no URL is reached through the API server's service
/// proxy, as the existing toolkit's `--use-kube-proxy` does: PIT serves it on loopback with the
/// kubeconfig's credentials, and the request ends at the process behind the Service.
#[tokio::test]
async fn a_service_is_reached_through_the_api_servers_proxy() {
    use pit_k8s::{K8sDeployer, ServiceAccess};
    let client = client().await;
    let port = loopback_app().await;
    let scratch = tempfile::Builder::new().prefix("pit-k8s-access-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let deployer =
        K8sDeployer::new(client.clone(), &dir, Some(kubeconfig())).with_access(ServiceAccess::ApiProxy { port: 80 });
    let name = unique("pit-access-proxy");
    let env = deployer
        .create_environment(&EnvironmentRequest {
            run_id: RunId::generate(),
            project: "access".into(),
            suite: "s".into(),
            name: name.clone(),
            ci_job: None,
        })
        .await
        .unwrap();
    // As a helm chart would: a pod and a Service named after the test app.
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
        {{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"app","labels":{{"app":"app"}}}},
          "spec":{{"containers":[{{"name":"app","image":"x","ports":[{{"containerPort":{port}}}]}}]}}}},
        {{"apiVersion":"v1","kind":"Service","metadata":{{"name":"app"}},
          "spec":{{"selector":{{"app":"app"}},"ports":[{{"name":"http","port":80,"targetPort":{port}}}]}}}}]}}"#
    );
    let kubectl = std::env::var("PIT_KUBECTL").expect("PIT_KUBECTL (scripts/k8s up prints it)");
    let mut apply = std::process::Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig().display().to_string(),
            "apply",
            "-n",
            &name,
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
    assert!(apply.wait().unwrap().success());
    let url = deployer.service_url(&env, "app", "s").await.unwrap().expect("derived");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Until the Service has its endpoint, the API server answers 503.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body) = http_get(&format!("{url}/status?sessionId=1")).await;
        if status.contains(" 200 ") || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.contains(" 200 "), "{status}: {body}");
    assert_eq!(body, r#"{"seen":"GET /status?sessionId=1"}"#);
    deployer.remove_environment(&env).await.unwrap();
    let (status, _) = http_get_or_refused(&url).await;
    assert_eq!(status, "refused", "the proxy stops with the environment");
}

async fn http_get_or_refused(url: &str) -> (String, String) {
    let host = url.strip_prefix("http://").unwrap();
    match tokio::net::TcpStream::connect(host).await {
        Err(_) => ("refused".into(), String::new()),
        Ok(_) => http_get(url).await,
    }
}

#[test]
fn ingress_urls_follow_the_existing_toolkits_pattern() {
    let access = pit_k8s::ServiceAccess::Ingress {
        cluster_url: "http://localhost/".into(),
    };
    assert_eq!(
        access.ingress_url("pit-ns", "suite-1").as_deref(),
        Some("http://localhost/pit-ns.suite-1")
    );
    assert_eq!(pit_k8s::ServiceAccess::Published.ingress_url("a", "b"), None);
}

/// Issue 15: the cluster's own error is kept as the source of a `DeployError::Backend`, not
/// flattened into a string.
#[tokio::test]
async fn a_namespace_the_cluster_refuses_is_a_backend_error_with_the_clusters_error_inside() {
    let client = client().await;
    let scratch = tempfile::Builder::new().prefix("pit-k8s-refused-").tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let deployer = K8sDeployer::new(client, &dir, Some(kubeconfig()));
    let err = deployer
        .create_environment(&EnvironmentRequest {
            run_id: RunId::generate(),
            project: "p".into(),
            suite: "s".into(),
            name: "Not_A_DNS_Label".into(),
            ci_job: None,
        })
        .await
        .unwrap_err();
    let pit_core::deploy::DeployError::Backend { action, source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*action, "creating");
    assert!(
        source.downcast_ref::<pit_k8s::namespace::NamespaceError>().is_some(),
        "{source:?}"
    );
    let chain = pit_core::engine::error_chain(&err);
    assert!(
        chain.contains("the backend failed creating environment `Not_A_DNS_Label`"),
        "{chain}"
    );
    assert!(chain.to_lowercase().contains("invalid"), "the API's own words: {chain}");
}
