//! Fetching real repositories: a bare repository over `file://` and served by `git daemon` on
//! loopback, then resolving a plan's REMOTE suite from it.

use std::path::PathBuf;

use pit_core::naming::RunId;
use pit_core::pitfile::{load_str, LoadOptions};
use pit_core::plan::{Plan, WorkDir};
use pit_core::resolve::{resolve, ResolveError, SourceFetcher};
use pit_git::testing::{git, GitDaemon};
use pit_git::GitCache;

const REMOTE_PITFILE: &str = r#"
version: "1.0"
projectName: remote-tests
testSuites:
  - name: Contract
    id: contract
    deployment:
      graph:
        testApp: { name: T, id: t, location: { path: scripts }, deploy: { command: ./ok.sh }, undeploy: { command: ./ok.sh } }
        components:
          - { name: A, id: a, location: { path: scripts }, deploy: { command: ./ok.sh }, undeploy: { command: ./ok.sh } }
  - name: Other
    id: other
    deployment:
      graph:
        testApp: { name: T, id: t, deploy: { command: ./ok.sh }, undeploy: { command: ./ok.sh } }
"#;

/// A bare repository `<root>/perf-tests.git` holding the remote pitfile on `master`, and a
/// `v1` tag; returns the root.
fn remote_repository(name: &str) -> (tempfile::TempDir, PathBuf) {
    let guard = tempfile::Builder::new()
        .prefix(&format!("pit-git-{name}-"))
        .tempdir()
        .unwrap();
    let root = guard.path().to_path_buf();
    let work = root.join("work");
    std::fs::create_dir_all(work.join("scripts")).unwrap();
    std::fs::write(work.join("pitfile.yml"), REMOTE_PITFILE).unwrap();
    std::fs::write(work.join("scripts/ok.sh"), "#!/bin/sh\necho ok\n").unwrap();
    git(&work, &["init", "-q", "-b", "master"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "remote suites"]);
    git(&work, &["tag", "v1"]);
    git(&root, &["clone", "-q", "--bare", "work", "perf-tests.git"]);
    (guard, root)
}

fn local_plan(url: &str, suite_ids: &str) -> Plan {
    let yaml = format!(
        "version: '1.0'\nprojectName: local\ntestSuites:\n  - name: Remote\n    id: remote\n    location: {{ type: REMOTE, gitRepository: '{url}' }}\n    testSuiteIds: {suite_ids}\n"
    );
    let loaded = load_str("pitfile.yml", &yaml, &LoadOptions::default()).unwrap_or_else(|r| panic!("{r}"));
    Plan::build(&loaded, RunId::generate())
}

#[tokio::test]
async fn a_remote_suite_is_fetched_over_file_urls_and_filtered_by_id() {
    let (_guard, root) = remote_repository("file");
    let cache = GitCache::new(root.join("cache"));
    let url = format!("file://{}", root.join("perf-tests.git").display());
    let plan = resolve(local_plan(&url, "[contract]"), &cache, &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.suites.len(), 1);
    let suite = &plan.suites[0];
    assert_eq!(suite.id.as_str(), "contract");
    let WorkDir::Local { path } = &suite.waves[0][0].workdir else {
        panic!("resolved to a local directory")
    };
    assert!(path.join("ok.sh").is_file(), "{}", path.display());
    assert!(path.starts_with(root.join("cache")));

    // Absent or empty ids take every suite.
    let all = resolve(local_plan(&url, "[]"), &cache, &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(all.suites.len(), 2);
}

#[tokio::test]
async fn unknown_suite_ids_and_refs_are_named() {
    let (_guard, root) = remote_repository("unknown");
    let cache = GitCache::new(root.join("cache"));
    let url = format!("file://{}", root.join("perf-tests.git").display());
    let err = resolve(local_plan(&url, "[contrakt]"), &cache, &LoadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::UnknownSuites { .. }), "{err}");
    assert!(
        err.to_string().contains("contrakt") && err.to_string().contains("contract, other"),
        "{err}"
    );

    let err = cache.fetch(&url, "refs/remotes/origin/main").await.unwrap_err();
    assert!(
        err.to_string().contains("refs/remotes/origin/master"),
        "the message lists the branches: {err}"
    );
    // Tags and short branch names resolve too.
    assert!(cache.fetch(&url, "v1").await.unwrap().join("pitfile.yml").is_file());
    assert!(cache.fetch(&url, "master").await.unwrap().join("pitfile.yml").is_file());
}

#[tokio::test]
async fn a_remote_suite_is_fetched_from_git_daemon() {
    let (_guard, root) = remote_repository("daemon");
    let daemon = GitDaemon::start(&root);
    let cache = GitCache::new(root.join("cache"));
    let url = format!("git://127.0.0.1:{}/perf-tests.git", daemon.port);
    let plan = resolve(local_plan(&url, "[other]"), &cache, &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.suites.len(), 1);
    assert_eq!(plan.suites[0].id.as_str(), "other");
    // A second fetch reuses the checkout.
    let a = cache.fetch(&url, "master").await.unwrap();
    let b = cache.fetch(&url, "refs/remotes/origin/master").await.unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn a_remote_component_runs_from_its_checkout() {
    let (_guard, root) = remote_repository("component");
    let cache = GitCache::new(root.join("cache"));
    let url = format!("file://{}", root.join("perf-tests.git").display());
    let yaml = format!(
        "version: '1.0'\nprojectName: local\ntestSuites:\n  - name: S\n    id: s\n    deployment:\n      graph:\n        testApp: {{ name: T, id: t, deploy: {{ command: d }}, undeploy: {{ command: u }} }}\n        components:\n          - {{ name: R, id: r, location: {{ type: REMOTE, gitRepository: '{url}', gitRef: v1, path: scripts }}, deploy: {{ command: ./ok.sh }}, undeploy: {{ command: ./ok.sh }} }}\n"
    );
    let loaded = load_str("pitfile.yml", &yaml, &LoadOptions::default()).unwrap_or_else(|r| panic!("{r}"));
    let plan = Plan::build(&loaded, RunId::generate());
    assert!(
        matches!(plan.suites[0].waves[0][0].workdir, WorkDir::Git { .. }),
        "planning does not fetch"
    );
    let plan = resolve(plan, &cache, &LoadOptions::default()).await.unwrap();
    let WorkDir::Local { path } = &plan.suites[0].waves[0][0].workdir else {
        panic!("resolved")
    };
    assert!(path.join("ok.sh").is_file(), "{}", path.display());
    assert!(!pit_core::resolve::needs_fetching(&plan));
}
