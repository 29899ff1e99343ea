//! Checks a JUnit XML file against the common Jenkins/Surefire dialect's XML schema
//! (`pit-report/tests/junit.xsd`) with xmllint (Debian's libxml2-utils; scripts/test installs
//! it). Shared by pit-report's tests and the CLI's (`#[path]`).

use std::path::Path;

/// `Err` with xmllint's words when `file` does not fit the schema.
pub fn validate(file: &Path) -> Result<(), String> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("pit-report/tests/junit.xsd");
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema)
        .arg(file)
        .output()
        .expect("xmllint runs (Debian's libxml2-utils; scripts/test installs it)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
