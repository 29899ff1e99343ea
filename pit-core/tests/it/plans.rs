//! Valid fixtures load and plan as their snapshots say.

use pit_core::naming::RunId;
use pit_core::pitfile::load_file;
use pit_core::plan::{Plan, WorkDir};

use crate::{fixtures, options_for, testdata};

fn run_id() -> RunId {
    "01jq3v5c2m8k4r6t9w0x1y2z3a".parse().expect("a valid run id")
}

#[test]
fn there_are_at_least_5_valid_fixtures() {
    assert!(fixtures("valid").len() >= 5);
}

#[test]
fn valid_pitfiles_plan_as_expected() {
    let root = testdata().display().to_string();
    for file in fixtures("valid") {
        let loaded = load_file(&file, &options_for(&file)).unwrap_or_else(|e| panic!("{}: {e}\n{e:?}", file.display()));
        assert!(!loaded.warnings.has_errors());
        let plan = Plan::build(&loaded, run_id());
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        let text = format!("{}{plan}", loaded.warnings.render(false, 100)).replace(&root, "[testdata]");
        insta::assert_snapshot!(format!("plan-{name}"), text);
    }
}

#[test]
fn the_shop_example_is_valid() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/pitfile.yml");
    let loaded = load_file(&file, &Default::default()).expect("the example is valid");
    assert_eq!(loaded.pitfile.project_name, "shop");
}

#[test]
fn local_work_directories_are_relative_to_the_pitfile() {
    let file = testdata().join("valid/two-suites-with-locks.yml");
    let loaded = load_file(&file, &options_for(&file)).unwrap();
    let plan = Plan::build(&loaded, run_id());
    assert_eq!(
        plan.suites[0].waves[0][0].workdir,
        WorkDir::Local {
            path: testdata().join("valid/services/reader")
        }
    );
}

#[test]
fn plan_json_follows_the_documented_schema() {
    let file = testdata().join("valid/toolkit-reference.yml");
    let loaded = load_file(&file, &options_for(&file)).unwrap();
    let json = serde_json::to_value(Plan::build(&loaded, run_id())).unwrap();
    assert_eq!(json["schema"], "pit.plan/v1");
    assert_eq!(json["runId"], "01jq3v5c2m8k4r6t9w0x1y2z3a");
    assert_eq!(json["lockManagerEnabled"], true);
    let suite = &json["suites"][0];
    assert_eq!(
        suite["environment"],
        "pit-testset-talos-certifier-default-01jq3v5c2m8k4r6t9w0x1y2z3a"
    );
    assert_eq!(suite["locks"]["timeoutMs"], 3_600_000);
    assert_eq!(suite["waves"][0][0]["deploy"]["argv"][0], "deployment/pit/deploy.sh");
    assert_eq!(suite["waves"][0][1]["workdir"]["kind"], "git");
    assert_eq!(suite["waves"][0][1]["workdir"]["ref"], "refs/heads/main");
    assert_eq!(suite["teardown"][0][0], "talos-certifier-test-app");
    let remote = &json["suites"][1]["remote"];
    assert_eq!(remote["gitRef"], "refs/tags/v1.2.3");
    assert_eq!(remote["testSuiteIds"][0], "testset-talos-certifier-and-messenger");
}

#[test]
fn a_500_component_graph_validates_and_plans_every_component() {
    let deps = crate::generate::layered_dag(500);
    let yaml = crate::generate::pitfile_with_graph(&deps);
    let loaded =
        pit_core::pitfile::load_str("large.yml", &yaml, &Default::default()).expect("the generated graph is valid");
    let plan = Plan::build(&loaded, run_id());
    let planned: usize = plan.suites[0].waves.iter().map(Vec::len).sum();
    assert_eq!(planned, 500);
    assert!(
        plan.suites[0].waves.len() > 1,
        "the graph has dependencies, so more than one wave"
    );
}

/// The existing toolkit's layout: `examples/node-1/pitfile.yml` names its test app
/// `node-1/pit-test-app`, relative to the workspace `examples/`, and a component without a path
/// runs in `<workspace>/<id>`.
fn toolkit_layout(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let guard = tempfile::Builder::new()
        .prefix(&format!("pit-core-workspace-{name}-"))
        .tempdir()
        .unwrap();
    let root = guard.path().to_path_buf();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("examples/node-1/pit-test-app/deployment/pit")).unwrap();
    std::fs::write(
        root.join("examples/node-1/pitfile.yml"),
        r#"projectName: Node Example 1
version: "1.0"
testSuites:
  - name: Testset for standalone Node 1
    id: testset-node-1-default
    deployment:
      graph:
        testApp:
          name: Test App for Node 1
          id: node-1-test-app
          location:
            path: node-1/pit-test-app
          deploy:
            command: deployment/pit/deploy.sh
        components:
          - name: Node 1
            id: node-1
            deploy:
              command: deployment/pit/deploy.sh
"#,
    )
    .unwrap();
    (guard, root)
}

fn load_with_workspace(
    file: &std::path::Path,
    workspace: Option<std::path::PathBuf>,
) -> Result<pit_core::pitfile::Loaded, pit_core::pitfile::LoadError> {
    let opts = pit_core::pitfile::LoadOptions {
        workspace,
        ..Default::default()
    };
    load_file(file, &opts)
}

fn diagnostics(e: pit_core::pitfile::LoadError) -> Vec<pit_core::diagnostic::Diagnostic> {
    match e {
        pit_core::pitfile::LoadError::Invalid(report) => report.diagnostics().to_vec(),
        other => panic!("not a validation error: {other}"),
    }
}

#[test]
fn a_workspace_makes_local_paths_and_pathless_components_resolve_as_in_the_existing_toolkit() {
    let (_guard, root) = toolkit_layout("ok");
    let file = root.join("examples/node-1/pitfile.yml");
    let loaded = load_with_workspace(&file, Some(root.join("examples"))).expect("valid with its workspace");
    let plan = Plan::build(&loaded, run_id());
    let suite = &plan.suites[0];
    assert_eq!(
        suite.test_app.as_ref().unwrap().workdir,
        WorkDir::Local {
            path: root.join("examples/node-1/pit-test-app")
        }
    );
    assert_eq!(
        suite.waves[0][0].workdir,
        WorkDir::Local {
            path: root.join("examples/node-1")
        },
        "no path: <workspace>/<id>"
    );
    assert!(suite.waves[0][0].undeploy.is_none(), "undeploy is optional");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_local_folder_that_does_not_exist_is_refused_with_the_base_where_it_does() {
    let (_guard, root) = toolkit_layout("missing");
    let file = root.join("examples/node-1/pitfile.yml");
    // Without a workspace, paths are relative to the pitfile's folder: the test app's is not.
    let diags = diagnostics(load_with_workspace(&file, None).unwrap_err());
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d.code, "pit::location-not-found");
    assert_eq!(
        d.path.to_string(),
        "testSuites[0].deployment.graph.testApp.location.path"
    );
    assert_eq!((d.line, d.column), (12, 19));
    let help = d.help.as_deref().unwrap();
    assert!(
        help.contains(&format!("--workspace {}", root.join("examples").display())),
        "{help}"
    );
    // With the repository root as the workspace, both are missing; the pathless component is
    // pointed at by its id.
    let diags = diagnostics(load_with_workspace(&file, Some(root.clone())).unwrap_err());
    let paths: Vec<String> = diags.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(
        paths,
        [
            "testSuites[0].deployment.graph.testApp.location.path",
            "testSuites[0].deployment.graph.components[0].id",
        ],
        "in the order of the file"
    );
    assert!(
        diags[1].message.contains("has no `location.path`"),
        "{}",
        diags[1].message
    );
    assert!(
        diags[0].help.as_deref().unwrap().contains("--workspace"),
        "{:?}",
        diags[0].help
    );
    // A workspace where a path does exist relative to the pitfile: the hint says to drop it.
    std::fs::create_dir_all(root.join("examples/node-1/node-1/pit-test-app")).unwrap();
    std::fs::create_dir_all(root.join("elsewhere")).unwrap();
    let diags = diagnostics(load_with_workspace(&file, Some(root.join("elsewhere"))).unwrap_err());
    let test_app = diags
        .iter()
        .find(|d| d.path.to_string().ends_with("location.path"))
        .unwrap();
    assert!(
        test_app.help.as_deref().unwrap().contains("run without `--workspace`"),
        "{:?}",
        test_app.help
    );
    let _ = std::fs::remove_dir_all(root);
}
