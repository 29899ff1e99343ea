//! `pit.Report`: read a report, render it as HTML or JUnit XML, compare it with earlier runs.

use std::path::PathBuf;

use pit_report::compare::{self, Thresholds};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Report>()?;
    m.add_class::<Comparison>()?;
    Ok(())
}

/// A test report (schema 1.0 of the existing PIT toolkit, or a suite record `pit run` stored).
#[pyclass(module = "pit", frozen)]
#[derive(Clone)]
pub struct Report {
    pub(crate) inner: pit_report::Report,
}

fn verdict_name(v: pit_report::Verdict) -> &'static str {
    match v {
        pit_report::Verdict::Passed => "passed",
        pit_report::Verdict::Failed => "failed",
        pit_report::Verdict::Error => "error",
    }
}

/// The baseline reports out of `baseline`: one `Report` or a list of them.
pub(crate) fn baselines(baseline: &Bound<'_, PyAny>) -> PyResult<Vec<pit_report::Report>> {
    if let Ok(one) = baseline.cast::<Report>() {
        return Ok(vec![one.get().inner.clone()]);
    }
    if let Ok(list) = baseline.cast::<PyList>() {
        return list
            .iter()
            .map(|r| Ok(r.cast::<Report>()?.get().inner.clone()))
            .collect();
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "baseline must be a Report or a list of Reports",
    ))
}

fn thresholds(threshold: f64, per_metric: Option<std::collections::BTreeMap<String, f64>>) -> PyResult<Thresholds> {
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "threshold must be a percentage >= 0",
        ));
    }
    let mut t = Thresholds {
        default_pct: threshold,
        ..Thresholds::default()
    };
    for (metric, pct) in per_metric.unwrap_or_default() {
        t.set(&format!("{metric}={pct}"))
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
    }
    Ok(t)
}

#[pymethods]
impl Report {
    /// Reads the report at `path`; raises `ReportError` saying where the file is wrong.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        pit_report::Report::load(&path)
            .map(|inner| Self { inner })
            .map_err(|e| errors::report_error(py, &e))
    }

    /// A report from JSON text (`name` is for messages).
    #[staticmethod]
    #[pyo3(signature = (text, *, name="report.json".to_owned()))]
    fn from_json(py: Python<'_>, text: &str, name: String) -> PyResult<Self> {
        pit_report::Report::from_json(name.as_ref(), text)
            .map(|inner| Self { inner })
            .map_err(|e| errors::report_error(py, &e))
    }

    /// The report's name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// The run id, when PIT made the report.
    #[getter]
    fn run_id(&self) -> Option<&str> {
        self.inner.run_id.as_deref()
    }

    /// `"passed"`, `"failed"` or `"error"`.
    #[getter]
    fn verdict(&self) -> &'static str {
        verdict_name(self.inner.verdict())
    }

    /// The report as plain Python data (schema 1.0 with PIT's additions).
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::to_py(py, &self.inner)
    }

    /// A self-contained HTML page (no scripts, no external requests), compared with
    /// `baseline` (a Report or a list of them) when given.
    #[pyo3(signature = (baseline=None, *, threshold=10.0))]
    fn to_html(&self, py: Python<'_>, baseline: Option<&Bound<'_, PyAny>>, threshold: f64) -> PyResult<String> {
        let comparison = match baseline {
            Some(b) => Some(compare::compare(
                &self.inner,
                &baselines(b)?,
                &thresholds(threshold, None)?,
            )),
            None => None,
        };
        pit_report::html::render_report(&self.inner, comparison.as_ref()).map_err(|e| errors::report_error(py, &e))
    }

    /// JUnit XML: one test case per scenario stream.
    fn to_junit(&self) -> String {
        pit_report::to_junit(&self.inner)
    }

    /// Compares every figure with `baseline` (a Report, or a list of earlier runs whose median
    /// is the baseline), as `pit report compare` does. `threshold` is the relative change in
    /// percent beyond which a figure has changed; `per_metric` overrides it by metric name
    /// (`"latency.p99": 5`).
    #[pyo3(signature = (baseline, *, threshold=10.0, per_metric=None))]
    fn compare(
        &self,
        baseline: &Bound<'_, PyAny>,
        threshold: f64,
        per_metric: Option<std::collections::BTreeMap<String, f64>>,
    ) -> PyResult<Comparison> {
        Ok(Comparison {
            inner: compare::compare(&self.inner, &baselines(baseline)?, &thresholds(threshold, per_metric)?),
        })
    }

    fn __repr__(&self) -> String {
        format!("<Report {} {}>", self.inner.name, self.verdict())
    }
}

/// The result of `Report.compare`.
#[pyclass(module = "pit", frozen)]
pub struct Comparison {
    inner: compare::Comparison,
}

#[pymethods]
impl Comparison {
    /// One dict per figure: `key`, `current`, `baseline`, `deltaPct`, `thresholdPct`,
    /// `direction`, `test`, `pValue`, and `change` (`"regression"`, `"improvement"`,
    /// `"changed"`, `"unchanged"`, `"new"` or `"missing"`).
    #[getter]
    fn verdicts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::to_py(py, &self.inner.metrics)
    }

    /// How many figures regressed.
    #[getter]
    fn regressions(&self) -> usize {
        self.inner.regressions()
    }

    /// The change of one figure, by key (`scenario/stream/metric[.stat]`), or None.
    fn change(&self, key: &str) -> Option<String> {
        self.inner.get(key).map(|m| {
            serde_json::to_value(m.change)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
    }

    /// The whole comparison as plain Python data (what `pit report compare -o json` prints).
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::to_py(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Comparison {} figures, {} regressions>",
            self.inner.metrics.len(),
            self.inner.regressions()
        )
    }
}
