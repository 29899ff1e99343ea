//! End-to-end tests of the `pit` binary: exit codes, streams, formats.

mod actions;
mod brownie;
mod ci;
mod k8s;
mod live;
mod lock;
mod plan;
mod report;
mod run;
mod toolkit;
mod validate;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test (`pit-cli-NAME-…` in the system's temporary directory),
/// removed with everything in it when dropped, also when the test fails: the tests leave
/// nothing behind. It reads as the [`Path`] it is.
pub struct Scratch(tempfile::TempDir);

/// A [`Scratch`] directory named after `name`.
pub fn scratch(name: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("pit-cli-{name}-"))
            .tempdir()
            .expect("a temporary directory"),
    )
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.path().as_os_str()
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

/// A pitfile fixture of pit-core's tests.
pub fn fixture(kind: &str, name: &str) -> PathBuf {
    repo().join("pit-core/tests/testdata").join(kind).join(name)
}

/// `pit` with a clean environment for colour and logging.
pub fn pit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pit"));
    cmd.env_remove("NO_COLOR")
        .env_remove("PIT_COLOR")
        .env_remove("PIT_LOG")
        .env_remove("PIT_FILE")
        .env_remove("KUBECONFIG")
        .env_remove("PIT_BACKEND")
        .env("COLUMNS", "250");
    cmd
}

/// Every file below `dir`, at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// Reads lines of `out` until one contains `needle` (or it ends); every line read.
pub fn read_until(out: &mut impl std::io::BufRead, needle: &str) -> String {
    let mut seen = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).expect("readable") > 0 {
        seen.push_str(&line);
        if line.contains(needle) {
            break;
        }
        line.clear();
    }
    seen
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("pit runs");
    (
        status.code().expect("pit exits normally"),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn version_and_help_describe_the_tool() {
    let (code, out, _) = run(pit().arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("pit "), "{out}");
    let (code, out, _) = run(pit().arg("--help"));
    assert_eq!(code, 0);
    for sub in ["validate", "plan", "completions"] {
        assert!(out.contains(sub), "help lists `{sub}`: {out}");
    }
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(pit().args(["completions", shell]));
        assert_eq!(code, 0);
        assert!(out.contains("validate"), "{shell} completions mention the subcommands");
    }
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, err) = run(pit().arg("frobnicate"));
    assert_eq!(code, 2);
    assert!(err.contains("frobnicate"), "{err}");
}

/// Checks `json` against a schema of `docs/schemas/`.
pub fn assert_matches_schema(schema_file: &str, json: &serde_json::Value) {
    let text = std::fs::read_to_string(repo().join("docs/schemas").join(schema_file)).expect("the schema exists");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let errors: Vec<String> = validator
        .iter_errors(json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:#?}\n{json:#}");
}

#[test]
fn every_fixture_gives_json_that_matches_the_documented_schemas() {
    for kind in ["valid", "invalid"] {
        let dir = repo().join("pit-core/tests/testdata").join(kind);
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let file = entry.expect("entry").path();
            if file.extension().is_none_or(|e| e != "yml") {
                continue; // the folders valid pitfiles' LOCAL paths name
            }
            let (_, out, _) = run(pit().args(["validate", "-o", "json"]).arg(&file));
            let json: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
            assert_matches_schema("diagnostics.schema.json", &json);
            if kind == "valid" {
                let (code, out, err) = run(pit().args(["plan", "-o", "json"]).arg(&file));
                assert_eq!(code, 0, "{err}");
                assert_matches_schema("plan.schema.json", &serde_json::from_str(&out).expect("stdout is JSON"));
            }
        }
    }
}
