//! The pitfile: its typed model, and loading with diagnostics.
//!
//! Start with [`load_file`] (or [`load_str`] for text in memory). It reads the YAML, expands
//! `${{ env.NAME }}` placeholders, checks everything it can without network or cluster, and
//! returns either the [`Pitfile`] with its warnings or a [`Diagnostics`] of every problem found.
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

use crate::diagnostic::{Diagnostic, Diagnostics, FieldPath, Severity};
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
    /// The folder LOCAL paths are relative to, as the existing toolkit's `--workspace`: a
    /// component without `location.path` then runs in `<workspace>/<id>`, as there. `None`
    /// (PIT's default): LOCAL paths are relative to the pitfile's folder, and a component
    /// without a path runs in that folder.
    pub workspace: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            strict: false,
            unset_env: Severity::Warning,
            env: None,
            repository_root: None,
            workspace: None,
        }
    }
}

/// A pitfile that loaded, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model, placeholders expanded.
    pub pitfile: Pitfile,
    /// Warnings (never errors).
    pub warnings: Diagnostics,
    /// The folder LOCAL paths are relative to: the workspace when one was given, else the
    /// pitfile's folder (`None` for text loaded with [`load_str`]).
    pub base_dir: Option<PathBuf>,
    /// Whether `base_dir` is a workspace ([`LoadOptions::workspace`]): a component without
    /// `location.path` then runs in `<workspace>/<id>`.
    pub workspace: bool,
    /// The values `${{ env.X }}` placeholders were replaced with: pass anything shown to people
    /// or logs through [`Redactions::apply`], so it shows the placeholders as written.
    pub redactions: Redactions,
}

/// The values of the `${{ env.X }}` placeholders of a pitfile, which may be secrets: text shown
/// to people or logs shows the placeholder, as written, in place of each value.
///
/// Values shorter than [`Redactions::MIN_LEN`] characters (`1`, `on`) are left alone: they
/// are no secrets, and replacing them everywhere would garble every output.
///
/// ```
/// use pit_core::pitfile::{load_str, LoadOptions};
/// let opts = LoadOptions {
///     env: Some([("REPO_TOKEN".to_owned(), "s3cr3t-t0ken".to_owned())].into()),
///     ..LoadOptions::default()
/// };
/// let yaml = r#"
/// version: "1.0"
/// projectName: p
/// testSuites:
///   - name: s
///     id: s
///     location: { type: REMOTE, gitRepository: "https://ci:${{ env.REPO_TOKEN }}@git.example.com/s.git" }
/// "#;
/// let loaded = load_str("pitfile.yml", yaml, &opts).unwrap();
/// let shown = loaded.redactions.apply("cannot fetch https://ci:s3cr3t-t0ken@git.example.com/s.git");
/// assert_eq!(shown, "cannot fetch https://ci:${{ env.REPO_TOKEN }}@git.example.com/s.git");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactions {
    /// (value, placeholder as written), longest value first.
    pairs: Vec<(String, String)>,
}

impl Redactions {
    /// The shortest value treated as a possible secret.
    pub const MIN_LEN: usize = 3;

    /// Remembers that `placeholder` stood for `value`.
    pub fn add(&mut self, value: &str, placeholder: &str) {
        if value.chars().count() < Self::MIN_LEN || self.pairs.iter().any(|(v, _)| v == value) {
            return;
        }
        self.pairs.push((value.to_owned(), placeholder.to_owned()));
        self.pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `text` with each value replaced by its placeholder.
    pub fn apply<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for (value, placeholder) in &self.pairs {
            if out.contains(value.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(value.as_str(), placeholder));
            }
        }
        out
    }

    /// Every string in `value` (keys too) with each value replaced by its placeholder.
    pub fn apply_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(o) = self.apply(s) {
                    *s = o;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.apply_json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.apply_json(&mut v);
                    map.insert(self.apply(&k).into_owned(), v);
                }
            }
            _ => {}
        }
    }

    /// Each diagnostic's message, label and help, redacted.
    fn apply_diagnostics(&self, diags: &mut [Diagnostic]) {
        for d in diags {
            d.message = self.apply(&d.message).into_owned();
            d.label = d.label.as_deref().map(|l| self.apply(l).into_owned());
            d.help = d.help.as_deref().map(|h| self.apply(h).into_owned());
        }
    }
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
    Invalid(Diagnostics),
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
    let pitfile_dir = absolute.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let workspace = opts
        .workspace
        .as_ref()
        .map(|w| std::path::absolute(w).unwrap_or_else(|_| w.clone()));
    let base = workspace.clone().unwrap_or_else(|| pitfile_dir.clone());
    let root = opts
        .repository_root
        .clone()
        .unwrap_or_else(|| check::repository_root(&base));
    let dirs = check::Dirs {
        base: base.clone(),
        root,
        pitfile_dir,
        workspace: workspace.is_some(),
    };
    let mut loaded = load(&path.display().to_string(), &source, opts, Some(dirs)).map_err(LoadError::Invalid)?;
    loaded.base_dir = Some(base);
    loaded.workspace = workspace.is_some();
    Ok(loaded)
}

/// Loads a pitfile from text; `file` names it in messages. LOCAL paths are not checked against
/// a repository, since text has no directory.
///
/// # Errors
/// A [`Diagnostics`] with every problem found, if any is an error.
pub fn load_str(file: &str, source: &str, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    load(file, source, opts, None)
}

/// The diagnostic for a file that is not one valid YAML document.
fn syntax_diagnostic(e: &yaml::SyntaxError) -> Diagnostic {
    match e.kind {
        yaml::SyntaxErrorKind::SecondDocument => Diagnostic::error(
            "pit::multiple-documents",
            FieldPath::root(),
            e.span,
            "the file holds more than one YAML document",
        )
        .with_label("a second document starts here")
        .with_help("a pitfile is one document: remove this `---` and what follows, or move it to a file of its own"),
        _ => Diagnostic::error(
            "pit::yaml-syntax",
            FieldPath::root(),
            e.span,
            format!("invalid YAML: {}", e.message),
        )
        .with_label("here")
        .with_help("check the indentation and the brackets and quotes around this point"),
    }
}

/// `source` with the bytes of `spans` replaced by `*` (a character by as many `*` as it has
/// bytes, so that every other span still points where it did).
fn mask(source: &str, spans: &[Span]) -> String {
    let mut bytes = source.as_bytes().to_vec();
    for span in spans {
        let end = (span.offset + span.len).min(bytes.len());
        for b in &mut bytes[span.offset.min(end)..end] {
            if !matches!(*b, b'\n' | b'\r') {
                *b = b'*';
            }
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| source.to_owned())
}

fn load(file: &str, source: &str, opts: &LoadOptions, dirs: Option<check::Dirs>) -> Result<Loaded, Diagnostics> {
    // A byte order mark (editors on Windows write one) is no part of the first key.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let fail = |d: Diagnostic| Err(Diagnostics::new(file, source, vec![d]));
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
        Err(e) => return fail(syntax_diagnostic(&e)),
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
    // A message may quote a value; never a placeholder's (it may be a secret).
    decoder.redactions.apply_diagnostics(&mut diags);
    // A secret written inline is shown masked where the diagnostics quote the source.
    let masked = mask(source, &decoder.secrets);
    let report = Diagnostics::new(file, masked.as_str(), diags);
    if report.has_errors() {
        Err(report)
    } else {
        Ok(Loaded {
            pitfile,
            warnings: report,
            base_dir: None,
            workspace: false,
            redactions: decoder.redactions,
        })
    }
}
