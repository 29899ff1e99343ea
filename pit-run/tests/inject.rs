//! A whole run through `pit_run::run` with every part the embedding program's own: deployer,
//! lock store, report store, test runner and REMOTE fetcher. Nothing of PIT's defaults (git,
//! the embedded lock store, the directory report store, HTTP) is touched.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pit_core::deploy::StepKind;
use pit_core::resolve::{FetchError, SourceFetcher};
use pit_core::testing::{LockCall, MemoryReportSink, MockLockStore, ScriptedDeployer, ScriptedRunner, Session};
use pit_run::{async_trait, CancellationToken, Custom, RunSettings};

/// Serves one repository from a folder, and records what it was asked.
struct FolderFetcher {
    dir: PathBuf,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl SourceFetcher for FolderFetcher {
    async fn fetch(&self, repository: &str, _git_ref: &str) -> Result<PathBuf, FetchError> {
        self.asked.lock().unwrap().push(repository.to_owned());
        Ok(self.dir.clone())
    }
}

const REMOTE: &str = r#"
version: "1.0"
projectName: elsewhere
testSuites:
  - name: Remote suite
    id: remote-suite
    lock: { timeout: 10s, ids: [db] }
    deployment:
      graph:
        testApp: { name: T, id: t, deploy: { command: ./deploy.sh }, undeploy: { command: ./undeploy.sh } }
        components:
          - { name: A, id: a, deploy: { command: ./deploy.sh }, undeploy: { command: ./undeploy.sh } }
"#;

#[tokio::test]
async fn every_part_of_a_run_can_be_the_embedding_programs_own() {
    let guard = tempfile::Builder::new().prefix("pit-run-inject-").tempdir().unwrap();
    let root = guard.path();
    let checkout = root.join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(checkout.join("pitfile.yml"), REMOTE).unwrap();
    let pitfile = root.join("pitfile.yml");
    std::fs::write(
        &pitfile,
        "version: '1.0'\nprojectName: local\ntestSuites:\n  - name: From elsewhere\n    id: from-elsewhere\n    location: { type: REMOTE, gitRepository: 'https://git.example.invalid/suites.git' }\n    testSuiteIds: [remote-suite]\n",
    )
    .unwrap();

    let deployer = Arc::new(ScriptedDeployer::new());
    let locks = Arc::new(MockLockStore::new());
    let reports = MemoryReportSink::new();
    let runner = ScriptedRunner::new(Session::Report(
        ScriptedRunner::passing_report(),
        std::time::Duration::ZERO,
    ));
    let fetcher = Arc::new(FolderFetcher {
        dir: checkout,
        asked: Mutex::default(),
    });
    let state = root.join("state");
    let settings = RunSettings {
        state_dir: Some(state.clone()),
        deployer: Some(Custom(deployer.clone())),
        locks: Some(Custom(locks.clone())),
        reports: Some(Custom(reports.clone())),
        runner: Some(Custom(runner.factory())),
        fetcher: Some(Custom(fetcher.clone())),
        ..RunSettings::new(&pitfile)
    };
    let notes = Mutex::new(Vec::<String>::new());
    let summary = pit_run::run(&settings, &CancellationToken::new(), &|n: &str| {
        notes.lock().unwrap().push(n.to_owned());
    })
    .await
    .unwrap();

    assert_eq!(summary.exit_code(), 0, "{:?}", summary.suites);
    assert_eq!(
        *fetcher.asked.lock().unwrap(),
        ["https://git.example.invalid/suites.git"]
    );
    assert_eq!(deployer.ran(StepKind::Deploy), ["a", "t"]);
    assert_eq!(deployer.ran(StepKind::Undeploy), ["t", "a"]);
    assert!(matches!(locks.calls().first(), Some(LockCall::Acquire(ids)) if ids[0].as_str() == "db"));
    assert!(matches!(locks.calls().last(), Some(LockCall::Release(_))));
    assert_eq!(runner.calls().first().map(String::as_str), Some("start"));
    assert_eq!(reports.reports().len(), 1);
    assert_eq!(reports.reports()[0].suite_id, "remote-suite");
    // PIT's own stores were not touched.
    for default in ["reports", "locks", "sources"] {
        assert!(
            !state.join(default).exists(),
            "{default} was used: {:?}",
            notes.lock().unwrap()
        );
    }
}
