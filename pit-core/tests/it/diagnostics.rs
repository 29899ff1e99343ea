//! Every invalid fixture fails with the diagnostics in its snapshot.

use pit_core::pitfile::{load_file, LoadError};

use crate::{fixtures, options_for};

#[test]
fn there_are_at_least_25_invalid_fixtures() {
    assert!(fixtures("invalid").len() >= 25, "found {}", fixtures("invalid").len());
}

#[test]
fn invalid_pitfiles_report_every_problem_with_position_and_hint() {
    for file in fixtures("invalid") {
        let report = match load_file(&file, &options_for(&file)) {
            Err(LoadError::Invalid(report)) => report,
            Err(other) => panic!("{}: unexpected {other}", file.display()),
            Ok(_) => panic!("{} loaded, but it is invalid", file.display()),
        };
        assert!(report.has_errors());
        for d in report.diagnostics() {
            assert!(d.line >= 1 && d.column >= 1, "{}: {d:?}", file.display());
            assert!(
                d.help.is_some(),
                "{}: every diagnostic says what to do: {d:?}",
                file.display()
            );
        }
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        insta::assert_snapshot!(format!("invalid-{name}"), report.render(false, 100));
    }
}

#[test]
fn json_diagnostics_carry_path_line_and_column() {
    let file = std::path::Path::new("tests/testdata/invalid/unknown-dependency.yml");
    let Err(LoadError::Invalid(report)) = load_file(file, &options_for(file)) else {
        panic!("must be invalid")
    };
    let json = report.to_json();
    assert_eq!(json["schema"], "pit.diagnostics/v1");
    assert_eq!(json["valid"], false);
    let first = &json["diagnostics"][0];
    assert_eq!(first["code"], "pit::unknown-dependency");
    assert_eq!(
        first["path"],
        "testSuites[0].deployment.graph.components[1].dependsOn[0]"
    );
    assert_eq!(first["line"], 15);
    assert_eq!(first["severity"], "error");
    assert_eq!(first["help"], "did you mean `database`?");
}

#[test]
fn strict_mode_turns_ignored_keys_into_errors() {
    let file = std::path::Path::new("tests/testdata/invalid/strict-unknown-keys.yml");
    let mut opts = options_for(file);
    opts.strict = false;
    let loaded = load_file(file, &opts).expect("without --strict unknown keys only warn");
    assert_eq!(loaded.warnings.warning_count(), 2);
}

#[test]
fn unset_variables_are_warnings_for_validation_and_errors_for_runs() {
    let file = std::path::Path::new("tests/testdata/invalid/run-unset-env.yml");
    let mut opts = options_for(file);
    opts.unset_env = pit_core::diagnostic::Severity::Warning;
    let loaded = load_file(file, &opts).expect("only a warning when validating");
    let d = &loaded.warnings.diagnostics()[0];
    assert_eq!((d.code, d.line, d.column), ("pit::unset-env", 8, 22));
    // The set variable was expanded, the unset one left as written.
    let location = &loaded.pitfile.test_suites[0].location;
    assert_eq!(location.git_ref, "refs/heads/release");
    assert_eq!(
        location.git_repository.as_deref(),
        Some("${{ env.PIT_TEST_UNSET_REPOSITORY }}")
    );
}

#[test]
fn a_missing_file_is_a_read_error_naming_the_file() {
    let err = load_file(std::path::Path::new("no/such/pitfile.yml"), &Default::default()).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(err.to_string().contains("no/such/pitfile.yml"), "{err}");
}

#[test]
fn a_file_that_is_not_utf8_is_refused_clearly() {
    let dir = tempfile::Builder::new().prefix("pit-core-test-").tempdir().unwrap();
    let file = dir.path().join("latin1.yml");
    std::fs::write(&file, b"projectName: caf\xe9\n").unwrap();
    let err = load_file(&file, &Default::default()).unwrap_err();
    assert!(matches!(err, LoadError::NotUtf8 { .. }), "{err}");
}

#[test]
fn a_secret_written_inline_is_refused_at_its_place_and_never_shown() {
    let file = std::path::Path::new("tests/testdata/invalid/post-test-actions.yml");
    let Err(LoadError::Invalid(report)) = load_file(file, &options_for(file)) else {
        panic!("must be invalid")
    };
    let inline = report
        .diagnostics()
        .iter()
        .find(|d| d.code == "pit::inline-secret")
        .expect("the inline webhook is refused");
    assert_eq!((inline.line, inline.column), (6, 16));
    assert_eq!(inline.path.to_string(), "postTestActions.onFail[0].webhook");
    let shown = format!("{}{}", report.render(false, 100), report.to_json());
    assert!(
        !shown.contains("s3cret") && !shown.contains("logic.azure.com"),
        "{shown}"
    );
}
