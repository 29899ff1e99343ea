//! The pitfile: its typed model, and loading with diagnostics.
//!
//! Start with [`load_file`] (or [`load_str`] for text in memory). It reads the YAML, expands
//! `${{ env.NAME }}` placeholders, checks everything it can without network or cluster, and
//! returns either the [`Pitfile`] with its warnings or a [`Report`] of every problem found.
//!
//! ```
//! use pit_core::pitfile::{load_str, LoadOptions};
//!
//! let yaml = r#"
//! version: "1.0"
//! projectName: demo
//! testSuites:
//!   - name: Smoke
//!     id: smoke
//!     deployment:
//!       graph:
//!         testApp:
//!           name: Test app
//!           id: test-app
//!           deploy: { command: deploy.sh }
//!           undeploy: { command: undeploy.sh }
//!         components: []
//! "#;
//! let loaded = load_str("pitfile.yml", yaml, &LoadOptions::default()).unwrap();
//! assert_eq!(loaded.pitfile.test_suites[0].id.as_str(), "smoke");
//! assert_eq!(loaded.warnings.diagnostics().len(), 0);
//! ```

mod check;
mod decode;
mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use model::*;

use crate::diagnostic::{Diagnostic, FieldPath, Report, Severity};
use crate::yaml::{self, Span};

/// How to load a pitfile.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Make every unknown key an error (by default only likely typos are).
    pub strict: bool,
    /// What an unset `${{ env.NAME }}` is: a warning for `pit validate`, an error for `pit run`.
    pub unset_env: Severity,
    /// Variables for `${{ env.NAME }}`; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
    /// The repository that LOCAL paths must stay inside; `None` finds it from the pitfile's
    /// directory (the nearest ancestor with `.git`). Only used for files on disk.
    pub repository_root: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            strict: false,
            unset_env: Severity::Warning,
            env: None,
            repository_root: None,
        }
    }
}

/// A pitfile that loaded, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model, placeholders expanded.
    pub pitfile: Pitfile,
    /// Warnings (never errors).
    pub warnings: Report,
    /// The directory holding the pitfile, which LOCAL paths are relative to (`None` for text
    /// loaded with [`load_str`]).
    pub base_dir: Option<PathBuf>,
}

/// Why a pitfile file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read pitfile `{}` (hint: pass the pitfile's path, or run PIT where `pitfile.yml` is)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid UTF-8.
    #[error("pitfile `{}` is not UTF-8 text (hint: save it as UTF-8)", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The pitfile has errors; the report lists all of them.
    #[error("pitfile `{}` has {} error(s)", .0.file(), .0.error_count())]
    Invalid(Report),
}

/// Loads the pitfile at `path`.
///
/// # Errors
/// [`LoadError::Read`] or [`LoadError::NotUtf8`] if the file cannot be read,
/// [`LoadError::Invalid`] with every problem if it has errors.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let source = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: path.to_owned() })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base = absolute.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let root = opts
        .repository_root
        .clone()
        .unwrap_or_else(|| check::repository_root(&base));
    let mut loaded =
        load(&path.display().to_string(), &source, opts, Some((base.clone(), root))).map_err(LoadError::Invalid)?;
    loaded.base_dir = Some(base);
    Ok(loaded)
}

/// Loads a pitfile from text; `file` names it in messages. LOCAL paths are not checked against
/// a repository, since text has no directory.
///
/// # Errors
/// A [`Report`] with every problem found, if any is an error.
pub fn load_str(file: &str, source: &str, opts: &LoadOptions) -> Result<Loaded, Report> {
    load(file, source, opts, None)
}

fn load(file: &str, source: &str, opts: &LoadOptions, dirs: Option<(PathBuf, PathBuf)>) -> Result<Loaded, Report> {
    let fail = |d: Diagnostic| Err(Report::new(file, source, vec![d]));
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return fail(
                Diagnostic::error(
                    "pit::empty-file",
                    FieldPath::root(),
                    Span::default(),
                    "the pitfile is empty",
                )
                .with_help("start from `examples/` or `docs/pitfile.md`"),
            )
        }
        Err(e) => {
            return fail(
                Diagnostic::error(
                    "pit::yaml-syntax",
                    FieldPath::root(),
                    e.span,
                    format!("invalid YAML: {}", e.message),
                )
                .with_label("here")
                .with_help("check the indentation and the brackets and quotes around this point"),
            )
        }
    };
    let mut decoder = decode::Decoder::new(source, opts);
    let pitfile = decoder.pitfile(&root);
    let mut checker = check::Checker {
        root: &root,
        diags: Vec::new(),
        dirs,
    };
    checker.check(&pitfile);
    let mut diags = decoder.diags;
    diags.append(&mut checker.diags);
    let report = Report::new(file, source, diags);
    if report.has_errors() {
        Err(report)
    } else {
        Ok(Loaded {
            pitfile,
            warnings: report,
            base_dir: None,
        })
    }
}
