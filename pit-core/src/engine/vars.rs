//! The environment variables commands get, and the outputs they publish.

#[allow(clippy::wildcard_imports)] // the engine's own types
use super::*;

pub(super) fn unresolved(suite: &SuitePlan) -> bool {
    suite.components().any(is_remote)
}

pub(super) fn is_remote(c: &ComponentPlan) -> bool {
    matches!(c.workdir, WorkDir::Git { .. })
}

pub(super) fn base_env(
    plan: &Plan,
    suite: &SuitePlan,
    env: &Environment,
    opts: &RunOptions,
) -> BTreeMap<String, String> {
    let mut vars = opts.env.clone();
    vars.insert("PIT_RUN_ID".into(), plan.run_id.to_string());
    vars.insert("PIT_PROJECT".into(), plan.project.clone());
    vars.insert("PIT_SUITE_ID".into(), suite.id.to_string());
    if let Some(test_app) = &suite.test_app {
        vars.insert("PIT_TEST_APP_ID".into(), test_app.id.to_string());
    }
    vars.insert("PIT_NAMESPACE".into(), env.name.clone());
    vars.insert(
        "PIT_RESOURCE_SUFFIX".into(),
        crate::naming::resource_suffix(&plan.run_id),
    );
    vars.insert("PIT_WORKSPACE".into(), env.workspace.display().to_string());
    vars.insert(
        crate::process::PROCESS_TAG_ENV.into(),
        crate::process::process_tag(&plan.run_id.to_string(), &env.name),
    );
    vars
}

/// `vars` plus what every command of `c` gets: its id and its outputs file.
pub(super) fn component_env(
    mut vars: BTreeMap<String, String>,
    env: &Environment,
    c: &ComponentPlan,
) -> BTreeMap<String, String> {
    vars.insert("PIT_COMPONENT_ID".into(), c.id.to_string());
    vars.insert("PIT_OUTPUTS".into(), outputs_file(env, c).display().to_string());
    vars
}

/// What an undeploy command gets: `base`, the component's own outputs, and its id and outputs
/// file.
pub(super) fn undeploy_env(
    mut vars: BTreeMap<String, String>,
    env: &Environment,
    c: &ComponentPlan,
) -> BTreeMap<String, String> {
    vars.extend(read_outputs(&outputs_file(env, c)));
    component_env(vars, env, c)
}

pub(super) fn outputs_file(env: &Environment, c: &ComponentPlan) -> std::path::PathBuf {
    env.outputs.join(format!("{}.env", c.id))
}

/// The step of `c`'s `cmd`; with `toolkit_args`, its arguments as the existing toolkit passes
/// them (see [`Engine::with_toolkit_args`]).
pub(super) fn step_for(
    c: &ComponentPlan,
    kind: StepKind,
    cmd: &CommandPlan,
    vars: &BTreeMap<String, String>,
    toolkit_args: bool,
) -> Step {
    // Plans are resolved before they run (see `unresolved`), so only local directories remain.
    let cwd = match &c.workdir {
        WorkDir::Local { path } => path.clone(),
        WorkDir::Git { path, .. } => std::path::PathBuf::from(path),
    };
    let mut argv = cmd.argv.clone();
    if toolkit_args && !argv.is_empty() {
        let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
        argv.insert(1, var("PIT_NAMESPACE"));
        if kind == StepKind::Deploy && vars.get("PIT_TEST_APP_ID").is_some_and(|t| *t == c.id.as_str()) {
            argv.push(var("PIT_SUITE_ID"));
        }
    }
    Step {
        kind,
        component: c.id.clone(),
        argv,
        cwd,
        env: vars.clone(),
        timeout: Duration::from_secs(cmd.timeout_seconds),
    }
}

/// Reads `key=value` lines; blank lines, `#` comments and keys that are not variable names are
/// skipped.
pub fn read_outputs(path: &std::path::Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| {
            let mut chars = k.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect()
}
