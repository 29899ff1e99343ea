//! What a run would do, computed without side effects.
//!
//! [`Plan::build`] turns a loaded pitfile into the steps `pit run` takes for each suite: its
//! environment name, the locks it takes, the deployment waves (every component of a wave starts
//! together once the earlier waves are healthy), each command with its working directory and
//! time limits, the test app, and the teardown order. `pit plan` prints it; `--output json`
//! serialises it (schema `pit.plan/v1`, documented in `docs/plan.md`).

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::graph;
use crate::naming::{environment_name, RunId};
use crate::pitfile::{
    Component, ComponentId, DeployInstructions, Loaded, Location, LocationType, LockId, LockManager, SuiteId, TestSuite,
};

/// The JSON schema identifier of [`Plan`].
pub const PLAN_SCHEMA: &str = "pit.plan/v1";

/// The plan of a whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always [`PLAN_SCHEMA`].
    pub schema: &'static str,
    /// The pitfile's `projectName`.
    pub project: String,
    /// The run id the plan was made for.
    pub run_id: RunId,
    /// Whether suites take locks through a Lock Manager (else the embedded lock store).
    pub lock_manager_enabled: bool,
    /// The Lock Manager deployed in each suite's environment before its locks are taken, when
    /// the `lockManager` section says how to deploy it (see [`LOCK_MANAGER_URL_KEY`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_manager: Option<ComponentPlan>,
    /// One entry per suite, in run order.
    pub suites: Vec<SuitePlan>,
}

/// What happens for one suite.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuitePlan {
    /// Suite id.
    pub id: SuiteId,
    /// Display name.
    pub name: String,
    /// Namespace or sandbox name (a DNS-1123 label).
    pub environment: String,
    /// Time the tests may run once started.
    pub timeout_seconds: u64,
    /// Locks taken before anything is deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<LockPlan>,
    /// For a REMOTE suite: where its definition is fetched from at run time. Its waves are
    /// empty in the plan, since planning never fetches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemotePlan>,
    /// Deployment waves, in order.
    pub waves: Vec<Vec<ComponentPlan>>,
    /// The Test Runner App, deployed after the last wave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_app: Option<ComponentPlan>,
    /// Undeploy order: groups undeployed together, first to last (the reverse of deployment).
    pub teardown: Vec<Vec<ComponentId>>,
}

impl SuitePlan {
    /// A short hash of what the suite does (its planned steps, without the run-specific
    /// environment name): two runs with the same hash ran the same thing.
    pub fn spec_hash(&self) -> String {
        use sha2::Digest;
        let mut spec = self.clone();
        spec.environment.clear();
        let bytes = serde_json::to_vec(&spec).unwrap_or_default();
        sha2::Sha256::digest(&bytes)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Every component in deployment order, the test app last.
    pub fn components(&self) -> impl Iterator<Item = &ComponentPlan> {
        self.waves.iter().flatten().chain(self.test_app.iter())
    }
}

/// The locks of a suite.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockPlan {
    /// Lock ids, taken together.
    pub ids: Vec<LockId>,
    /// The wait limit as written.
    pub timeout: String,
    /// The wait limit in milliseconds.
    pub timeout_ms: u128,
}

/// Where a REMOTE suite comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemotePlan {
    /// Repository URL.
    pub git_repository: String,
    /// Reference checked out.
    pub git_ref: String,
    /// The pitfile read there.
    pub pit_file: String,
    /// Suites kept from it (empty: all).
    pub test_suite_ids: Vec<SuiteId>,
}

/// One component's steps.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPlan {
    /// Component id.
    pub id: ComponentId,
    /// Display name.
    pub name: String,
    /// What it waits for.
    pub depends_on: Vec<ComponentId>,
    /// Where its commands run.
    pub workdir: WorkDir,
    /// The deploy step.
    pub deploy: CommandPlan,
    /// The undeploy step; `None` when the pitfile gives none (removing the environment cleans up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undeploy: Option<CommandPlan>,
    /// Whether its logs are streamed.
    pub log_tailing: bool,
    /// The container whose logs are streamed, where its pods have several (`logTailing.containerName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_container: Option<String>,
}

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum WorkDir {
    /// A directory of this repository.
    Local {
        /// The directory (absolute when the pitfile was loaded from disk).
        path: PathBuf,
    },
    /// A directory of a git checkout made at run time.
    Git {
        /// Repository URL.
        repository: String,
        /// Reference checked out.
        #[serde(rename = "ref")]
        git_ref: String,
        /// Directory inside the checkout.
        path: String,
    },
}

/// A command and its limits.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandPlan {
    /// Program followed by its parameters, run without a shell.
    pub argv: Vec<String>,
    /// Time limit.
    pub timeout_seconds: u64,
    /// The readiness check, retried until it passes or its time runs out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_check: Option<CheckPlan>,
}

/// A status check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckPlan {
    /// Program followed by its parameters.
    pub argv: Vec<String>,
    /// Time limit.
    pub timeout_seconds: u64,
}

impl Plan {
    /// Plans a run of `loaded` with id `run_id`.
    ///
    /// The pitfile must have loaded without errors, so its graphs are acyclic and every
    /// dependency exists.
    ///
    /// ```
    /// # use pit_core::{pitfile::*, plan::Plan, naming::RunId};
    /// let yaml = "version: '1.0'\nprojectName: p\ntestSuites:\n- name: S\n  id: s\n  deployment:\n    graph:\n      testApp: {name: T, id: t, deploy: {command: d}, undeploy: {command: u}}\n      components:\n      - {name: A, id: a, deploy: {command: d}, undeploy: {command: u}}\n      - {name: B, id: b, dependsOn: [a], deploy: {command: d}, undeploy: {command: u}}\n";
    /// let loaded = load_str("pitfile.yml", yaml, &LoadOptions::default()).unwrap();
    /// let plan = Plan::build(&loaded, RunId::generate());
    /// let waves: Vec<Vec<&str>> = plan.suites[0].waves.iter().map(|w| w.iter().map(|c| c.id.as_str()).collect()).collect();
    /// assert_eq!(waves, vec![vec!["a"], vec!["b"]]);
    /// ```
    ///
    /// # Panics
    /// If a graph has a cycle or an unknown dependency, which loading rules out.
    pub fn build(loaded: &Loaded, run_id: RunId) -> Self {
        let pitfile = &loaded.pitfile;
        let base = Base {
            dir: loaded.base_dir.as_deref(),
            workspace: loaded.workspace,
        };
        Self {
            schema: PLAN_SCHEMA,
            project: pitfile.project_name.clone(),
            run_id,
            lock_manager_enabled: pitfile.lock_manager.as_ref().is_some_and(|l| l.enabled),
            lock_manager: pitfile
                .lock_manager
                .as_ref()
                .filter(|l| l.enabled)
                .and_then(|l| lock_manager_plan(l, base)),
            suites: pitfile
                .test_suites
                .iter()
                .map(|s| suite_plan(s, &run_id, base))
                .collect(),
        }
    }
}

fn suite_plan(suite: &TestSuite, run_id: &RunId, base: Base<'_>) -> SuitePlan {
    let locks = suite.lock.as_ref().map(|l| LockPlan {
        ids: l.ids.clone(),
        timeout: l.timeout.text.clone(),
        timeout_ms: l.timeout.duration.as_millis(),
    });
    let remote = (suite.location.kind == LocationType::Remote).then(|| RemotePlan {
        git_repository: suite.location.git_repository.clone().unwrap_or_default(),
        git_ref: suite.location.git_ref.clone(),
        pit_file: suite.location.pit_file.clone(),
        test_suite_ids: suite.test_suite_ids.clone().unwrap_or_default(),
    });
    let mut waves = Vec::new();
    let mut test_app = None;
    let mut teardown = Vec::new();
    if let (None, Some(deployment)) = (&remote, &suite.deployment) {
        let g = &deployment.graph;
        let deps: Vec<Vec<usize>> = g
            .components
            .iter()
            .map(|c| {
                c.depends_on
                    .iter()
                    .map(|d| {
                        g.components
                            .iter()
                            .position(|o| &o.id == d)
                            .expect("loading checked every dependency")
                    })
                    .collect()
            })
            .collect();
        let order = graph::waves(&deps).expect("loading rejected cycles");
        waves = order
            .iter()
            .map(|w| w.iter().map(|&i| component_plan(&g.components[i], base)).collect())
            .collect();
        test_app = Some(component_plan(&g.test_app, base));
        teardown.push(vec![g.test_app.id.clone()]);
        teardown.extend(
            order
                .iter()
                .rev()
                .map(|w| w.iter().map(|&i| g.components[i].id.clone()).collect()),
        );
    }
    SuitePlan {
        id: suite.id.clone(),
        name: suite.name.clone(),
        environment: environment_name(run_id, &suite.id),
        timeout_seconds: suite.timeout_seconds,
        locks,
        remote,
        waves,
        test_app,
        teardown,
    }
}

/// What LOCAL paths are relative to.
#[derive(Debug, Clone, Copy)]
struct Base<'a> {
    /// The folder (`None` for a pitfile loaded from text).
    dir: Option<&'a Path>,
    /// Whether it is a workspace: a component without `location.path` runs in `<dir>/<id>`,
    /// as in the existing toolkit.
    workspace: bool,
}

fn component_plan(c: &Component, base: Base<'_>) -> ComponentPlan {
    let mut location = c.location.clone();
    if let Some(dir) = location.local_dir(Some(c.id.as_str()), base.workspace) {
        location.path = Some(dir);
    }
    ComponentPlan {
        id: c.id.clone(),
        name: c.name.clone(),
        depends_on: c.depends_on.clone(),
        workdir: workdir(&location, base.dir),
        deploy: command_plan(&c.deploy),
        undeploy: c.undeploy.as_ref().map(command_plan),
        log_tailing: c.log_tailing.as_ref().is_some_and(|l| l.enabled),
        log_container: c.log_tailing.as_ref().and_then(|l| l.container_name.clone()),
    }
}

/// The Lock Manager as a component, when the section says how to deploy and undeploy it.
fn lock_manager_plan(l: &LockManager, base: Base<'_>) -> Option<ComponentPlan> {
    let (deploy, undeploy) = (l.deploy.as_ref()?, l.undeploy.as_ref()?);
    Some(ComponentPlan {
        id: l
            .id
            .clone()
            .unwrap_or_else(|| ComponentId(DEFAULT_LOCK_MANAGER_ID.into())),
        name: l.name.clone().unwrap_or_else(|| "Lock Manager".into()),
        depends_on: Vec::new(),
        workdir: workdir(&l.location.clone().unwrap_or_default(), base.dir),
        deploy: command_plan(deploy),
        undeploy: Some(command_plan(undeploy)),
        log_tailing: l.log_tailing.as_ref().is_some_and(|t| t.enabled),
        log_container: l.log_tailing.as_ref().and_then(|t| t.container_name.clone()),
    })
}

/// The component id of a deployed Lock Manager whose section gives none.
pub const DEFAULT_LOCK_MANAGER_ID: &str = "lock-manager";

/// The output a deployed Lock Manager publishes: its base URL, written as
/// `PIT_LOCK_MANAGER_URL=http://…` to the file named by `$PIT_OUTPUTS`.
pub const LOCK_MANAGER_URL_KEY: &str = "PIT_LOCK_MANAGER_URL";

fn workdir(location: &Location, base: Option<&Path>) -> WorkDir {
    let rel = location.path.clone().unwrap_or_else(|| ".".to_owned());
    match location.kind {
        LocationType::Local => WorkDir::Local {
            path: base.map_or_else(|| PathBuf::from(&rel), |b| clean(&b.join(&rel))),
        },
        LocationType::Remote => WorkDir::Git {
            repository: location.git_repository.clone().unwrap_or_default(),
            git_ref: location.git_ref.clone(),
            path: rel,
        },
    }
}

fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|p| !matches!(p, std::path::Component::CurDir))
        .collect()
}

fn command_plan(d: &DeployInstructions) -> CommandPlan {
    CommandPlan {
        argv: std::iter::once(d.command.clone())
            .chain(d.params.iter().cloned())
            .collect(),
        timeout_seconds: d.timeout_seconds,
        status_check: d.status_check.as_ref().map(|s| CheckPlan {
            argv: std::iter::once(s.command.clone())
                .chain(s.params.iter().cloned())
                .collect(),
            timeout_seconds: s.timeout_seconds,
        }),
    }
}

/// Quotes an argument for a POSIX shell, for display only (PIT never runs commands through a
/// shell): plain words stay as they are, anything else is single-quoted.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn argv_text(argv: &[String]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for WorkDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkDir::Local { path } => write!(f, "{}", path.display()),
            WorkDir::Git {
                repository,
                git_ref,
                path,
            } => write!(f, "{repository} @ {git_ref} : {path}"),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let locks = match (&self.lock_manager, self.lock_manager_enabled) {
            (Some(lm), _) => format!("Lock Manager `{}`, deployed in each locked suite's environment", lm.id),
            (None, true) => "Lock Manager".to_owned(),
            (None, false) => "embedded lock store".to_owned(),
        };
        let _ = writeln!(
            out,
            "plan for `{}` (run {}, locks via {locks})",
            self.project, self.run_id
        );
        if let Some(lm) = &self.lock_manager {
            let _ = writeln!(
                out,
                "\nlock manager, deployed before each locked suite's locks and removed after their release:"
            );
            write_component(&mut out, lm);
        }
        for (n, s) in self.suites.iter().enumerate() {
            let _ = writeln!(out, "\nsuite {}/{}: {} (`{}`)", n + 1, self.suites.len(), s.name, s.id);
            let _ = writeln!(out, "  environment: {}", s.environment);
            match &s.locks {
                Some(l) => {
                    let ids: Vec<&str> = l.ids.iter().map(LockId::as_str).collect();
                    let _ = writeln!(out, "  locks: {} (wait up to {})", ids.join(", "), l.timeout);
                }
                None => {
                    let _ = writeln!(out, "  locks: none");
                }
            }
            if let Some(r) = &s.remote {
                let ids: Vec<&str> = r.test_suite_ids.iter().map(SuiteId::as_str).collect();
                let which = if ids.is_empty() {
                    "all suites".to_owned()
                } else {
                    format!("suites {}", ids.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  remote: {} from `{}` @ {} ({which}); its graph is resolved at run time",
                    r.pit_file, r.git_repository, r.git_ref
                );
            }
            for (w, wave) in s.waves.iter().enumerate() {
                let _ = writeln!(out, "  wave {}:", w + 1);
                for c in wave {
                    write_component(&mut out, c);
                }
            }
            if let Some(t) = &s.test_app {
                let _ = writeln!(out, "  test app:");
                write_component(&mut out, t);
                let _ = writeln!(
                    out,
                    "  tests: start, wait up to {}s, fetch the report",
                    s.timeout_seconds
                );
            }
            if !s.teardown.is_empty() {
                let groups: Vec<String> = s
                    .teardown
                    .iter()
                    .map(|g| g.iter().map(ComponentId::as_str).collect::<Vec<_>>().join(" + "))
                    .collect();
                let _ = writeln!(out, "  teardown: {}", groups.join(" -> "));
            }
        }
        f.write_str(&out)
    }
}

fn write_component(out: &mut String, c: &ComponentPlan) {
    let deps = if c.depends_on.is_empty() {
        String::new()
    } else {
        format!(
            " after {}",
            c.depends_on
                .iter()
                .map(ComponentId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let _ = writeln!(out, "    - {} (`{}`){deps}", c.name, c.id);
    let _ = writeln!(out, "      in:       {}", c.workdir);
    let _ = writeln!(
        out,
        "      deploy:   {} (timeout {}s)",
        argv_text(&c.deploy.argv),
        c.deploy.timeout_seconds
    );
    if let Some(sc) = &c.deploy.status_check {
        let _ = writeln!(
            out,
            "      check:    {} (retried for up to {}s)",
            argv_text(&sc.argv),
            sc.timeout_seconds
        );
    }
    match &c.undeploy {
        Some(u) => {
            let _ = writeln!(
                out,
                "      undeploy: {} (timeout {}s)",
                argv_text(&u.argv),
                u.timeout_seconds
            );
        }
        None => {
            let _ = writeln!(
                out,
                "      undeploy: none (nothing undeploys it: removing the environment cleans up)"
            );
        }
    }
}
