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
