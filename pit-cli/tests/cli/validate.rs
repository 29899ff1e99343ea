use crate::{fixture, pit, repo, run};

#[test]
fn a_valid_pitfile_exits_0_and_says_so_on_stderr() {
    let (code, out, err) = run(pit().arg("validate").arg(fixture("valid", "minimal.yml")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "no data on stdout for people's output");
    assert!(err.contains("minimal.yml is valid"), "{err}");
}

#[test]
fn validate_reads_pitfile_yml_in_the_current_directory_by_default() {
    let (code, _, err) = run(pit()
        .arg("validate")
        .current_dir(repo().join("examples/shop"))
        .env("PAYMENTS_REPO", "git://127.0.0.1/p.git"));
    assert_eq!(code, 0, "{err}");
    // Its `trigger:` is the existing toolkit's: known, no warning.
    assert!(err.contains("pitfile.yml is valid"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn an_invalid_pitfile_exits_2_with_located_diagnostics() {
    let file = fixture("invalid", "unknown-dependency.yml");
    let (code, out, err) = run(pit().arg("validate").arg(&file));
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(err.contains("unknown-dependency.yml:15:47"), "{err}");
    assert!(
        err.contains("testSuites[0].deployment.graph.components[1].dependsOn[0]"),
        "{err}"
    );
    assert!(err.contains("did you mean `database`?"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn json_output_puts_the_diagnostics_on_stdout() {
    let (code, out, _) = run(pit()
        .args(["validate", "--output", "json"])
        .arg(fixture("invalid", "dependency-cycle.yml")));
    assert_eq!(code, 2);
    let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 1);
    assert_eq!(json["diagnostics"][0]["code"], "pit::dependency-cycle");
    assert_eq!(json["diagnostics"][0]["message"], "dependency cycle: a -> b -> c -> a");
}

#[test]
fn json_output_of_a_valid_file_lists_its_warnings() {
    // Unknown keys are warnings without --strict.
    let (code, out, _) = run(pit()
        .args(["validate", "-o", "json"])
        .arg(fixture("invalid", "strict-unknown-keys.yml")));
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(json["valid"], true);
    assert_eq!(json["warnings"], 2);
    assert_eq!(json["diagnostics"][0]["path"], "testSuites[0].owner");
}

#[test]
fn strict_makes_unknown_keys_errors() {
    let file = fixture("invalid", "strict-unknown-keys.yml");
    let (code, _, _) = run(pit().args(["validate", "--strict"]).arg(&file));
    assert_eq!(code, 2);
    let (code, _, _) = run(pit().arg("validate").arg(&file).env("PIT_STRICT", "true"));
    assert_eq!(code, 2, "PIT_STRICT works like --strict");
}

#[test]
fn unset_variables_are_named_as_warnings() {
    let file = fixture("valid", "toolkit-reference.yml");
    let (code, _, err) = run(pit()
        .arg("validate")
        .arg(&file)
        .env_remove("GIT_REF_SOME_COMPONENT")
        .env("GIT_REF_TALOS_PERF_TESTS", "y"));
    assert_eq!(code, 0);
    assert!(
        err.contains("environment variable `GIT_REF_SOME_COMPONENT` is not set"),
        "{err}"
    );
}

#[test]
fn a_missing_file_exits_2_with_a_hint() {
    let (code, _, err) = run(pit().args(["validate", "does-not-exist.yml"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read pitfile `does-not-exist.yml`"), "{err}");
    assert!(err.contains("caused by:"), "{err}");
}

#[test]
fn colour_only_when_asked_and_never_with_no_color() {
    let file = fixture("invalid", "self-dependency.yml");
    let (_, _, plain) = run(pit().arg("validate").arg(&file));
    assert!(!plain.contains('\x1b'), "no colour when stderr is not a terminal");
    let (_, _, coloured) = run(pit().args(["--color", "always", "validate"]).arg(&file));
    assert!(coloured.contains('\x1b'), "colour when forced");
    let (_, _, no_color) = run(pit().arg("validate").arg(&file).env("NO_COLOR", "1"));
    assert!(!no_color.contains('\x1b'));
}
