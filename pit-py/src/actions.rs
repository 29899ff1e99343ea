//! `pit.actions`: post-test actions on a report (`run_actions`), and the actions `pit.run`
//! takes (`actions_from`), through pit-actions as `pit actions run` and `pit run` use it.

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::hook::PostTestActions;
use pit_actions::summary::{Links, Summary, Trigger};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_actions, m)?)?;
    m.add("ActionFailed", m.py().get_type::<errors::ActionFailed>())?;
    Ok(())
}

fn trigger(name: &str) -> PyResult<Trigger> {
    match name {
        "onPass" | "on_pass" => Ok(Trigger::OnPass),
        "onFail" | "on_fail" => Ok(Trigger::OnFail),
        "onRegression" | "on_regression" => Ok(Trigger::OnRegression),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "actions: `{other}` is not a trigger (onPass, onFail, onRegression)"
        ))),
    }
}

/// One action: `"teams:env:TEAMS_WEBHOOK"` as on the command line, or a dict as in a
/// pitfile's `postTestActions` (`{"action": "teams", "webhook": {"env": "TEAMS_WEBHOOK"}}`).
fn action(item: &Bound<'_, PyAny>) -> PyResult<Action> {
    if let Ok(text) = item.extract::<String>() {
        return text
            .parse()
            .map_err(|e: String| pyo3::exceptions::PyValueError::new_err(format!("actions: {e}")));
    }
    let spec: pit_core::pitfile::ActionSpec = crate::from_py(item, "actions")?;
    Action::try_from(&spec).map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("actions: {e}")))
}

/// The actions of `{"onFail": [...], ...}`, each under its trigger.
pub(crate) fn actions_from(actions: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(Trigger, Action)>> {
    let mut out = Vec::new();
    for (key, list) in actions.into_iter().flat_map(|d| d.iter()) {
        let t = trigger(&key.extract::<String>()?)?;
        let list = list
            .cast::<PyList>()
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err("actions: each trigger takes a list of actions"))?;
        for item in list.iter() {
            out.push((t, action(&item)?));
        }
    }
    Ok(out)
}

/// Runs the actions `report`'s verdict (and regressions against `baseline`) call for, as
/// `pit actions run` does; one dict per action run. See `pit.actions.run`.
#[pyfunction]
#[pyo3(signature = (report, actions, *, dry_run=false, baseline=None, report_url=None, job_url=None, fail_on_error=false))]
#[allow(clippy::too_many_arguments)] // keyword arguments, one per flag
fn run_actions(
    py: Python<'_>,
    report: &Bound<'_, crate::report::Report>,
    actions: &Bound<'_, PyDict>,
    dry_run: bool,
    baseline: Option<&Bound<'_, PyAny>>,
    report_url: Option<String>,
    job_url: Option<String>,
    fail_on_error: bool,
) -> PyResult<Py<PyList>> {
    let report = report.get().inner.clone();
    let comparison = match baseline {
        Some(b) => {
            let base = crate::report::baselines(b)?;
            (!base.is_empty())
                .then(|| pit_report::compare::compare(&report, &base, &pit_report::compare::Thresholds::default()))
        }
        None => None,
    };
    let summary = Summary::of(
        &report,
        comparison.as_ref(),
        Links {
            report: report_url,
            job: job_url,
        },
    );
    let hook = PostTestActions::new(Runner::from_env().dry_run(dry_run), actions_from(Some(actions))?);
    let (cancel, force) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let ran = crate::block_on(
        py,
        async move { hook.run_each(&summary).await },
        &cancel,
        &force,
        None::<tokio::sync::mpsc::UnboundedReceiver<()>>,
        |_, ()| Ok(()),
    )?;
    let list = PyList::empty(py);
    let mut failed = Vec::new();
    for r in &ran {
        let d = PyDict::new(py);
        d.set_item("action", r.action)?;
        d.set_item("trigger", r.trigger.as_str())?;
        d.set_item("outcome", r.outcome())?;
        d.set_item("detail", r.detail())?;
        match &r.result {
            Ok(Outcome::DryRun { body }) => d.set_item("body", crate::to_py(py, body)?)?,
            Ok(Outcome::Github { annotations, .. }) => d.set_item("annotations", annotations.clone())?,
            Ok(Outcome::Tagged(plan)) => d.set_item("tag", crate::to_py(py, plan)?)?,
            Ok(Outcome::Sent(delivered)) => d.set_item("status", delivered.status)?,
            Err(_) => failed.push(r.detail()),
        }
        list.append(d)?;
    }
    if fail_on_error && !failed.is_empty() {
        let err = errors::ActionFailed::new_err(failed.join("\n"));
        return Err(errors::with_attrs(
            py,
            err,
            pit_core::exit::INFRASTRUCTURE,
            &[("results", list.into_any().unbind())],
        ));
    }
    Ok(list.unbind())
}
