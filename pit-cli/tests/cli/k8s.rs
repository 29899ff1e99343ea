//! `pit run --backend k8s` against a real control plane (`scripts/k8s up`, which
//! `scripts/test` runs; it passes its kubeconfig as PIT_TEST_KUBECONFIG and its kubectl as
//! PIT_KUBECTL).

use std::path::{Path, PathBuf};

use crate::{pit, repo, run, walk};

/// The test cluster's kubeconfig and kubectl (from scripts/k8s up, through scripts/test).
pub fn cluster() -> (String, String) {
    let kubeconfig = std::env::var("PIT_TEST_KUBECONFIG")
        .expect("PIT_TEST_KUBECONFIG is not set: start a control plane with `scripts/k8s up DIR` (scripts/test does)");
    let kubectl = std::env::var("PIT_KUBECTL").expect("PIT_KUBECTL is not set (scripts/k8s up prints it)");
    (kubeconfig, kubectl)
}

/// Runs kubectl on the test cluster; it must succeed.
pub fn kubectl(args: &[&str]) {
    let (kubeconfig, kubectl) = cluster();
    let out = std::process::Command::new(&kubectl)
        .args(["--kubeconfig", &kubeconfig])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where cargo put the example's test app (built with the workspace's tests).
fn example_bins() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pit")).parent().unwrap().to_path_buf()
}

fn namespace_exists(kubectl: &str, kubeconfig: &str, name: &str) -> bool {
    std::process::Command::new(kubectl)
        .args(["--kubeconfig", kubeconfig, "get", "namespace", name])
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs an example pitfile on the cluster: exit code, stderr, the log of its first
/// component's deploy, the suite's namespace, and the state directory (removed when dropped).
fn run_on_cluster(pitfile: &str, component: &str) -> (i32, String, String, String, crate::Scratch) {
    let (kubeconfig, kubectl) = cluster();
    let state = crate::scratch(&format!("k8s-{component}"));
    let (code, _, err) = run(pit()
        .args(["run", "--backend", "k8s", "--kubeconfig", &kubeconfig, "--state-dir"])
        .arg(&state)
        .arg(repo().join("examples/k8s-shop").join(pitfile))
        .env("PIT_KUBECTL", &kubectl)
        .env("PIT_EXAMPLE_BIN_DIR", example_bins()));
    let log_file = walk(&state.join("runs"))
        .into_iter()
        .find(|p| p.ends_with(format!("{component}.deploy.log")))
        .unwrap_or_else(|| panic!("no deploy log of {component}: {err}"));
    let log = std::fs::read_to_string(log_file).unwrap();
    let namespace = log
        .split_whitespace()
        .find(|w| w.starts_with("pit-"))
        .unwrap_or_else(|| panic!("the log names the namespace: {log}"))
        .to_owned();
    (code, err, log, namespace, state)
}

/// The bundle's folder, as the run's output names it.
fn forensics_root(err: &str) -> PathBuf {
    let line = err.lines().find(|l| l.contains("forensics: ")).unwrap();
    let after = line.split(" in ").nth(1).unwrap();
    PathBuf::from(after.split(';').next().unwrap().trim())
}

#[test]
fn a_suite_runs_in_its_own_labelled_namespace_which_is_gone_afterwards() {
    let (kubeconfig, kubectl) = cluster();
    let (code, err, log, namespace, _state) = run_on_cluster("pitfile.yml", "web");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("backend: Kubernetes"), "{err}");
    // Seen from inside the run, by the component's own kubectl: labelled, Active.
    for label in [
        "app.kubernetes.io/managed-by=pit",
        "pit.dev/project=k8s-shop",
        "pit.dev/suite=web",
    ] {
        assert!(log.contains(label), "{label} in {log}");
    }
    assert!(
        log.contains("Active") && log.contains("deployment.apps/web created"),
        "{log}"
    );
    assert!(err.contains("tests finished: passed"), "{err}");
    assert!(
        !namespace_exists(&kubectl, &kubeconfig, &namespace),
        "{namespace} is gone after the run"
    );
}

#[test]
fn a_deployment_that_never_becomes_ready_fails_the_run_and_its_namespace_is_still_removed() {
    let (kubeconfig, kubectl) = cluster();
    let (code, err, _, namespace, _state) = run_on_cluster("broken.yml", "stuck");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("status check of `stuck` did not pass"), "{err}");
    assert!(
        err.contains("0 of 1 updated replicas are available"),
        "the last output is quoted: {err}"
    );
    // The forensics bundle, gathered before teardown, holds its events and state.
    assert!(
        err.contains("forensics: ") && err.contains("not ready: stuck-"),
        "{err}"
    );
    let bundle = walk(&forensics_root(&err));
    let events = bundle.iter().find(|p| p.ends_with("events.txt")).expect("events.txt");
    let events = std::fs::read_to_string(events).unwrap();
    assert!(
        events.contains("FailedScheduling") && events.contains("node(s) didn't match"),
        "{events}"
    );
    let pods = std::fs::read_to_string(bundle.iter().find(|p| p.ends_with("pods.json")).unwrap()).unwrap();
    assert!(pods.contains("\"Pending\""), "{pods}");
    assert!(bundle.iter().any(|p| p.ends_with("workloads.json")));
    assert!(
        !namespace_exists(&kubectl, &kubeconfig, &namespace),
        "{namespace} is gone after the failure"
    );
}

#[test]
fn rollout_status_waits_by_watching_until_workloads_are_ready_and_names_what_is_not() {
    let (kubeconfig, _) = cluster();
    let ns = format!("pit-rollout-{}", std::process::id());
    let kc = kubectl;
    kc(&["create", "namespace", &ns]);
    let k8s = repo().join("examples/k8s-shop/k8s");
    // Applied just before the wait starts: the wait sees it roll out.
    kc(&["apply", "-n", &ns, "-f", k8s.join("web.yaml").to_str().unwrap()]);
    let (code, _, err) = run(pit().args([
        "k8s",
        "rollout-status",
        "--kubeconfig",
        &kubeconfig,
        "--timeout",
        "60s",
        "-n",
        &ns,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("everything has rolled out"), "{err}");
    kc(&["apply", "-n", &ns, "-f", k8s.join("stuck.yaml").to_str().unwrap()]);
    let (code, _, err) = run(pit()
        .args(["k8s", "rollout-status", "--kubeconfig", &kubeconfig, "--timeout", "3s"])
        .env("PIT_NAMESPACE", &ns));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("deployment/stuck: 0 of 1 available") && err.contains("Pending"),
        "{err}"
    );
    kc(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Rows of `sql` (one text column) in the database at `url`.
fn query(url: &str, sql: &str) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        let rows = client.query(sql, &[]).await.unwrap();
        drop(client);
        let _ = conn.await;
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    })
}

#[test]
fn a_lock_manager_deployed_for_the_suite_takes_its_locks_and_the_web_pods_logs_are_tailed() {
    let (kubeconfig, kubectl) = cluster();
    // What the web containers "print": kwok serves every container's log from this file, in
    // the kubelet's (CRI) format.
    let pod_log = std::env::var("PIT_TEST_POD_LOG").expect("PIT_TEST_POD_LOG is not set (scripts/k8s up prints it)");
    let marker = format!("web says hello to run {}", std::process::id());
    let now = chrono_like_now();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&pod_log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{now} stdout F {marker}\n").as_bytes()))
        .unwrap();
    let database = crate::lock::fresh_database("k8s_lock_manager");
    let state = crate::scratch("k8s-lm");
    let (code, _, err) = run(pit()
        .args(["run", "--backend", "k8s", "--kubeconfig", &kubeconfig, "--state-dir"])
        .arg(&state)
        .arg(repo().join("examples/k8s-shop/with-lock-manager.yml"))
        .env("PIT_KUBECTL", &kubectl)
        .env("PIT_EXAMPLE_BIN_DIR", example_bins())
        .env("DATABASE_URL", &database)
        .env_remove("PIT_LOCK_MANAGER"));
    assert_eq!(code, 0, "{err}");
    let files = walk(&state.join("runs"));
    let log_of = |name: &str| {
        let file = files
            .iter()
            .find(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {files:?}"));
        std::fs::read_to_string(file).unwrap()
    };
    // The Lock Manager came up in the suite's environment before the locks were taken …
    let deployed = log_of("lock-manager.deploy.log");
    let url = deployed
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{deployed}"))
        .to_owned();
    let ready = err.find("lock-manager: ready").unwrap_or_else(|| panic!("{err}"));
    let locked = err.find("locks taken").unwrap_or_else(|| panic!("{err}"));
    assert!(ready < locked, "{err}");
    // … the lease lived in its database, and was released …
    assert_eq!(
        query(&database, "SELECT lock_id || '#' || token FROM pit_lock_fencing"),
        ["k8s-shop-web#1"]
    );
    assert!(query(&database, "SELECT lock_id FROM pit_locks").is_empty(), "released");
    assert_eq!(
        query(&database, "SELECT lease_id FROM pit_lock_released WHERE held").len(),
        1
    );
    // … and it is gone after the run.
    let addr = url.trim_start_matches("http://");
    assert!(std::net::TcpStream::connect(addr).is_err(), "{url} still answers");
    // The web pods' container logs were streamed into the output and the run's log files.
    assert!(
        err.lines()
            .any(|l| l.contains("web|") && l.contains("/web| ") && l.contains(&marker)),
        "{err}"
    );
    assert!(log_of("web.pods.log").contains(&marker));
}

/// Now in RFC 3339 with nanoseconds, UTC, as the kubelet writes it.
fn chrono_like_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `pit run` of the existing toolkit's suite on the cluster: its test app's deploy registers
/// it (pod, Service, Ingress) and publishes no URL, as there.
fn run_toolkit_suite(name: &str, extra: &[&str]) -> (i32, String) {
    let (kubeconfig, kubectl) = cluster();
    let state = crate::scratch(&format!("k8s-toolkit-{name}"));
    let workspace = repo().join("examples/toolkit-compat");
    let (code, out, err) = run(pit()
        .args(["run", "--backend", "k8s", "--kubeconfig", &kubeconfig, "--state-dir"])
        .arg(&state)
        .arg("--workspace")
        .arg(&workspace)
        .args(extra)
        .arg(workspace.join("node-1/pitfile-k8s.yml"))
        .env("PIT_KUBECTL", &kubectl));
    (code, format!("{out}\n{err}"))
}

/// Issue 14: through the API server's service proxy (the existing deployer's default,
/// `--use-kube-proxy`), with the kubeconfig's credentials, to the test app's process.
#[test]
fn a_test_app_that_publishes_no_url_is_reached_through_the_api_servers_proxy() {
    let (code, out) = run_toolkit_suite("proxy", &["--use-kube-proxy", "true", "--test-runner-app-port", "80"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tests started (session 1)"), "{out}");
    assert!(out.contains("tests finished: passed"), "{out}");
}

/// Only what deploys publish: a clear error naming the output.
#[test]
fn without_a_way_to_derive_it_a_missing_test_app_url_is_a_clear_error() {
    let (code, out) = run_toolkit_suite("none", &["--test-app-access", "none"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("did not publish its URL"), "{out}");
}

/// A stand-in for the cluster's NGINX ingress controller: routes `/<path>` by the Ingress
/// resources of the namespace named in the path's first segment (`/<namespace>.<suite id>`)
/// to the backend Service, which it reaches through the API server (the service proxy, then
/// the test control plane's cluster network, to the process). Records what it routed.
struct FakeIngress {
    url: String,
    routed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeIngress {
    fn start(kubeconfig: &str) -> Self {
        use axum::extract::Request;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let routed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = routed.clone();
        let url = runtime.block_on(async {
            let client = pit_k8s::client(Some(Path::new(kubeconfig))).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = axum::Router::new().fallback(move |req: Request| {
                let (client, seen) = (client.clone(), seen.clone());
                async move { Self::route(client, seen, req).await }
            });
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            url
        });
        Self {
            url,
            routed,
            _runtime: runtime,
        }
    }

    async fn route(
        client: pit_k8s::kube::Client,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        mut req: axum::extract::Request,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let path = req.uri().path().to_owned();
        let namespace = path
            .trim_start_matches('/')
            .split(['.', '/'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let list = axum::http::Request::get(format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"))
            .body(Vec::new())
            .unwrap();
        let Ok(text) = client.request_text(list).await else {
            return (axum::http::StatusCode::NOT_FOUND, "no such namespace").into_response();
        };
        let ingresses: serde_json::Value = serde_json::from_str(&text).unwrap();
        let backend = ingresses["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["spec"]["rules"].as_array().cloned().unwrap_or_default())
            .flat_map(|r| r["http"]["paths"].as_array().cloned().unwrap_or_default())
            .find(|p| p["path"].as_str().is_some_and(|prefix| path.starts_with(prefix)));
        let Some(backend) = backend else {
            return (axum::http::StatusCode::NOT_FOUND, "no ingress rule").into_response();
        };
        let prefix = backend["path"].as_str().unwrap();
        let service = backend["backend"]["service"]["name"].as_str().unwrap();
        let port = u16::try_from(backend["backend"]["service"]["port"]["number"].as_u64().unwrap()).unwrap();
        seen.lock()
            .unwrap()
            .push(format!("{} {path} -> {service}:{port}", req.method()));
        let rest = match &path[prefix.len()..] {
            "" => "/",
            r => r,
        };
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        *req.uri_mut() = format!("{rest}{query}").parse().unwrap();
        pit_k8s::access::forward(
            client,
            pit_k8s::access::service_proxy_path(&namespace, service, port),
            req,
        )
        .await
    }
}

/// Issue 14: through the cluster's ingress at `<cluster-url>/<namespace>.<suite id>`, as the
/// existing deployer does with `--use-kube-proxy false`.
#[test]
fn a_test_app_that_publishes_no_url_is_reached_through_the_ingress() {
    let (kubeconfig, _) = cluster();
    let ingress = FakeIngress::start(&kubeconfig);
    let (code, out) = run_toolkit_suite("ingress", &["--use-kube-proxy", "false", "--cluster-url", &ingress.url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tests finished: passed"), "{out}");
    let routed = ingress.routed.lock().unwrap().clone();
    assert!(
        routed.iter().any(|r| r.starts_with("POST /pit-testset-node-1-default-")
            && r.contains(".testset-node-1-default/start -> node-1-test-app:80")),
        "{routed:?}"
    );
    assert!(routed.iter().any(|r| r.contains("/reports")), "{routed:?}");
}
