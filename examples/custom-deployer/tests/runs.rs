//! The example runs the existing toolkit's suite with its own deployer, end to end.

#[test]
fn a_pitfile_runs_with_a_deployer_of_the_programs_own() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let state = tempfile::Builder::new()
        .prefix("pit-custom-deployer-state-")
        .tempdir()
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pit-example-custom-deployer"))
        .current_dir(&repo)
        .env("XDG_STATE_HOME", state.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("backend: the embedding program's own"), "{stderr}");
    // Every step went through it, timed: both deploys and status checks.
    for line in [
        "node-1 deploy: Ok(Some(0))",
        "node-1-test-app status-check: Ok(Some(0))",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
}
