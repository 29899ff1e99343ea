//! `pit brownie` removing stale namespaces, against a shell loop of `kubectl delete namespace`
//! on the same control plane, as a ratio in one run. Goal: at least 10 times faster.
//!
//! `PIT_TEST_KUBECONFIG=… PIT_KUBECTL=… cargo bench -p pit-k8s --bench brownie` (after
//! `scripts/k8s up DIR`); 300 namespaces each way with `--bench`, 5 otherwise.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use pit_k8s::janitor::{sweep, Action, Sweep};

async fn make(api: &Api<Namespace>, prefix: &str, n: usize, pit: bool) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    let labels: std::collections::BTreeMap<String, String> = if pit {
        [
            ("app.kubernetes.io/managed-by".to_owned(), "pit".to_owned()),
            ("pit.dev/run-id".to_owned(), prefix.to_owned()),
        ]
        .into()
    } else {
        [("pit-bench".to_owned(), prefix.to_owned())].into()
    };
    futures::future::join_all(names.iter().map(|name| {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        async move { api.create(&PostParams::default(), &ns).await.map(drop) }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .expect("namespaces are created");
    names
}

#[tokio::main]
async fn main() {
    let (Ok(kubeconfig), Ok(kubectl)) = (std::env::var("PIT_TEST_KUBECONFIG"), std::env::var("PIT_KUBECTL")) else {
        eprintln!("PIT_TEST_KUBECONFIG and PIT_KUBECTL are not set: start a control plane with `scripts/k8s up DIR`");
        std::process::exit(2);
    };
    let n = if std::env::args().any(|a| a == "--bench") {
        300
    } else {
        5
    };
    let client = pit_k8s::client(Some(kubeconfig.as_ref())).await.unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    let tag = format!("bench{}", std::process::id());

    // The shell loop: one `kubectl delete namespace` after the other, each waiting until gone.
    let names = make(&api, &format!("{tag}-kubectl"), n, false).await;
    let script = format!(
        "for ns in {}; do \"$KUBECTL\" --kubeconfig \"$KUBECONFIG\" delete namespace \"$ns\" >/dev/null; done",
        names.join(" ")
    );
    let t = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("KUBECTL", &kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .status()
        .unwrap();
    assert!(status.success());
    let shell = t.elapsed();

    // Brownie over the same number of stale PIT namespaces.
    make(&api, &format!("{tag}-brownie"), n, true).await;
    let t = Instant::now();
    let report = sweep(
        &client,
        &Sweep {
            older_than: Some(Duration::ZERO),
            selector: Some(format!("pit.dev/run-id={tag}-brownie")),
            parallel: 64,
            wait: Duration::from_secs(600),
            ..Sweep::default()
        },
    )
    .await
    .unwrap();
    let brownie = t.elapsed();
    let deleted = report.swept.iter().filter(|s| s.action == Action::Deleted).count();
    println!(
        "{n} namespaces: kubectl delete loop {:.1} s, brownie {:.1} s ({deleted} deleted and gone): brownie is {:.1} times faster (goal: at least 10)",
        shell.as_secs_f64(),
        brownie.as_secs_f64(),
        shell.as_secs_f64() / brownie.as_secs_f64()
    );
}
