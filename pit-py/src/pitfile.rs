//! `pit.Pitfile`: load, validate and plan a pitfile, as `pit validate` and `pit plan` do.

use std::collections::HashMap;
use std::path::PathBuf;

use pit_core::diagnostic::Severity;
use pit_core::naming::RunId;
use pit_core::pitfile::{LoadOptions, Loaded};
use pyo3::prelude::*;

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pitfile>()?;
    Ok(())
}

/// One problem in a pitfile: where it is (file, line, column, field path) and what to do.
#[pyclass(module = "pit", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// `"error"` or `"warning"`.
    pub severity: String,
    /// Stable identifier, such as `pit::unknown-key` (see docs/diagnostics.md).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// The file (as it was named when loaded).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The value at fault, such as `testSuites[0].deployment.graph.components[1].dependsOn[0]`.
    pub path: String,
    /// What to do about it, if PIT knows.
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn of(file: &str, d: &pit_core::diagnostic::Diagnostic) -> Self {
        Self {
            severity: match d.severity {
                Severity::Error => "error".into(),
                Severity::Warning => "warning".into(),
            },
            code: d.code.to_owned(),
            message: d.message.clone(),
            file: file.to_owned(),
            line: d.line,
            column: d.column,
            path: d.path.to_string(),
            help: d.help.clone(),
        }
    }
}

#[pymethods]
impl Diagnostic {
    fn __repr__(&self) -> String {
        format!(
            "<Diagnostic {} {}:{}:{} {}: {}>",
            self.severity, self.file, self.line, self.column, self.path, self.message
        )
    }

    fn __str__(&self) -> String {
        let help = self
            .help
            .as_deref()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        format!(
            "{}:{}:{}: {}: {}: {}{help}",
            self.file, self.line, self.column, self.severity, self.path, self.message
        )
    }
}

/// A pitfile (format v1.0 of the existing PIT toolkit), read but not yet checked.
///
/// `Pitfile.load(path)` reads a file, `Pitfile.from_str(text)` takes text; `.validate()`
/// checks it as `pit validate` does and `.plan()` returns what `pit plan -o json` prints.
#[pyclass(module = "pit", frozen)]
pub struct Pitfile {
    name: String,
    text: String,
    /// The file, when loaded from disk (LOCAL paths are relative to it).
    path: Option<PathBuf>,
    env: Option<HashMap<String, String>>,
    /// The folder LOCAL paths are relative to, when not the pitfile's.
    workspace: Option<PathBuf>,
}

impl Pitfile {
    fn options(&self, strict: bool, unset_env: Severity) -> LoadOptions {
        LoadOptions {
            strict,
            unset_env,
            env: self.env.clone(),
            workspace: self.workspace.clone(),
            ..LoadOptions::default()
        }
    }

    fn loaded(&self, py: Python<'_>, strict: bool, unset_env: Severity) -> PyResult<Loaded> {
        let opts = self.options(strict, unset_env);
        match &self.path {
            Some(path) => pit_core::pitfile::load_file(path, &opts).map_err(|e| errors::load_error(py, &e)),
            None => {
                pit_core::pitfile::load_str(&self.name, &self.text, &opts).map_err(|r| errors::pitfile_error(py, &r))
            }
        }
    }
}

#[pymethods]
impl Pitfile {
    /// Reads the pitfile at `path`. `env` replaces the process environment for
    /// `${{ env.NAME }}` placeholders; `workspace` is the folder LOCAL paths are relative to
    /// (`pit --workspace`; default: the pitfile's folder). Raises `PitfileError` when the file
    /// cannot be read.
    #[staticmethod]
    #[pyo3(signature = (path, *, env=None, workspace=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        env: Option<HashMap<String, String>>,
        workspace: Option<PathBuf>,
    ) -> PyResult<Self> {
        let text = std::fs::read(&path)
            .map_err(|source| pit_core::pitfile::LoadError::Read {
                path: path.clone(),
                source,
            })
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| pit_core::pitfile::LoadError::NotUtf8 { path: path.clone() })
            })
            .map_err(|e| errors::load_error(py, &e))?;
        Ok(Self {
            name: path.display().to_string(),
            text,
            path: Some(path),
            env,
            workspace,
        })
    }

    /// A pitfile from `text`; `name` names it in diagnostics. LOCAL paths are relative to the
    /// current directory and not checked against a repository.
    #[staticmethod]
    #[pyo3(signature = (text, *, name="pitfile.yml".to_owned(), env=None))]
    fn from_str(text: String, name: String, env: Option<HashMap<String, String>>) -> Self {
        Self {
            name,
            text,
            path: None,
            env,
            workspace: None,
        }
    }

    /// The file name used in diagnostics.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The pitfile's text.
    #[getter]
    fn text(&self) -> &str {
        &self.text
    }

    /// Checks the pitfile as `pit validate` does. Returns the warnings; raises `PitfileError`
    /// (with every problem in `.diagnostics`) when there is an error. `strict` makes every
    /// unknown key an error.
    #[pyo3(signature = (*, strict=false))]
    fn validate(&self, py: Python<'_>, strict: bool) -> PyResult<Vec<Diagnostic>> {
        let loaded = self.loaded(py, strict, Severity::Warning)?;
        Ok(loaded
            .warnings
            .diagnostics()
            .iter()
            .map(|d| Diagnostic::of(loaded.warnings.file(), d))
            .collect())
    }

    /// The plan `pit plan -o json` prints, as plain Python data (dicts and lists): the
    /// environments, locks, waves of components and teardown order of every suite. Raises
    /// `PitfileError` if the pitfile has errors.
    #[pyo3(signature = (*, run_id=None, strict=false))]
    fn plan(&self, py: Python<'_>, run_id: Option<&str>, strict: bool) -> PyResult<Py<PyAny>> {
        let loaded = self.loaded(py, strict, Severity::Warning)?;
        let run_id = match run_id {
            Some(id) => id
                .parse::<RunId>()
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("run_id: {e}")))?,
            None => RunId::generate(),
        };
        crate::to_py(py, &pit_core::plan::Plan::build(&loaded, run_id))
    }

    /// The pitfile's model (placeholders expanded) as plain Python data, in the pitfile's own
    /// key names. Raises `PitfileError` if it has errors.
    #[pyo3(signature = (*, strict=false))]
    fn to_dict(&self, py: Python<'_>, strict: bool) -> PyResult<Py<PyAny>> {
        let loaded = self.loaded(py, strict, Severity::Warning)?;
        crate::to_py(py, &loaded.pitfile)
    }

    fn __repr__(&self) -> String {
        format!("<Pitfile {}>", self.name)
    }
}
