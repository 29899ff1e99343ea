//! The serde model and the diagnostic loader agree on every field name and default.

use pit_core::pitfile::{load_str, Pitfile};

use crate::{fixtures, options_for};

#[test]
fn serialised_models_load_back_unchanged() {
    for file in fixtures("valid") {
        let loaded = pit_core::pitfile::load_file(&file, &options_for(&file)).unwrap();
        let yaml = serde_yaml::to_string(&loaded.pitfile).unwrap();
        let again = load_str("roundtrip.yml", &yaml, &Default::default()).unwrap_or_else(|r| panic!("{r}\n{yaml}"));
        assert_eq!(again.pitfile, loaded.pitfile, "{}", file.display());
        assert_eq!(
            again.warnings.diagnostics().len(),
            0,
            "{}: {}",
            file.display(),
            again.warnings
        );
        let via_serde: Pitfile = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(via_serde, loaded.pitfile, "{}", file.display());
    }
}

#[test]
fn serde_reads_teams_files_directly_with_defaults() {
    let yaml = "version: 1.0\nprojectName: p\ntestSuites:\n- name: S\n  id: s\n  deployment:\n    graph:\n      testApp: {name: T, id: t, deploy: {command: d}, undeploy: {command: u}}\n";
    let p: Pitfile = serde_yaml::from_str(yaml).unwrap();
    let loaded = load_str("p.yml", yaml, &Default::default()).unwrap();
    assert_eq!(p, loaded.pitfile);
    assert_eq!(p.test_suites[0].timeout_seconds, 60);
    assert_eq!(p.test_suites[0].location.git_ref, "refs/remotes/origin/master");
}
