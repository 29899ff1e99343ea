//! Integration tests of pit-core, one module per feature.

#[path = "../support/generate.rs"]
mod generate;

mod diagnostics;
mod engine;
mod lock_contract;
mod plans;
mod properties;
mod roundtrip;
mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pit_core::diagnostic::Severity;
use pit_core::pitfile::LoadOptions;

/// The fixtures folder.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata")
}

/// The fixture files of `kind` (`valid` or `invalid`), sorted, as paths relative to the crate.
pub fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join(kind))
        .expect("the testdata folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .expect("under the crate")
                .to_path_buf()
        })
        .collect();
    files.sort();
    files
}

/// Options for a fixture: a fixed environment, the testdata folder as repository, and
/// `strict-` / `run-` name prefixes selecting `--strict` and `pit run`'s handling of unset
/// variables.
pub fn options_for(file: &Path) -> LoadOptions {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let env = HashMap::from([
        ("GIT_REF_SOME_COMPONENT".to_owned(), "refs/heads/main".to_owned()),
        ("GIT_REF_TALOS_PERF_TESTS".to_owned(), "refs/tags/v1.2.3".to_owned()),
        ("PIT_TEST_REF".to_owned(), "refs/heads/release".to_owned()),
    ]);
    LoadOptions {
        strict: name.starts_with("strict-"),
        unset_env: if name.starts_with("run-") {
            Severity::Error
        } else {
            Severity::Warning
        },
        env: Some(env),
        repository_root: Some(testdata()),
        workspace: None,
    }
}
