//! The typed pitfile model, format version 1.0 of the existing PIT toolkit.
//!
//! The types derive `serde` so tools can read and write them with `serde_yaml` directly, but
//! [`load_str`](super::load_str) is the way to read a user's file: it reports every problem at
//! once with positions, expands `${{ env.NAME }}` and applies the checks serde cannot express.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::secret::SecretRef;

/// Default for every `timeoutSeconds`, as in the existing toolkit.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;
/// Default `gitRef` of a REMOTE location.
pub const DEFAULT_GIT_REF: &str = "refs/remotes/origin/master";
/// Default `pitFile` of a REMOTE test suite.
pub const DEFAULT_PIT_FILE: &str = "pitfile.yml";

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as written in the pitfile.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// The `id` of a test suite.
    SuiteId
);
id_type!(
    /// The `id` of a component or test app, unique within its graph.
    ComponentId
);
id_type!(
    /// The id of a lock on a shared resource.
    LockId
);

/// The pitfile format version. Only `1.0` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaVersion {
    /// `version: "1.0"` (or `1.0`).
    #[default]
    V1_0,
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("1.0")
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            F(f64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) if s == "1.0" => Ok(Self::V1_0),
            Raw::F(1.0) => Ok(Self::V1_0),
            _ => Err(serde::de::Error::custom(
                "unsupported pitfile version, expected \"1.0\"",
            )),
        }
    }
}

/// A whole pitfile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pitfile {
    /// Format version, `"1.0"`.
    pub version: SchemaVersion,
    /// Name of the project; reports are filed under it.
    pub project_name: String,
    /// The Lock Manager the run uses, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_manager: Option<LockManager>,
    /// The test suites, run in order.
    pub test_suites: Vec<TestSuite>,
    /// What to do once a suite's report is stored (PIT's section; optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_test_actions: Option<PostTestActions>,
}

/// The `postTestActions` section: actions per outcome, run on each suite's stored report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostTestActions {
    /// When every stream passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_pass: Vec<ActionSpec>,
    /// When a stream failed, or the run failed around the tests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_fail: Vec<ActionSpec>,
    /// When a metric regressed against the baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_regression: Vec<ActionSpec>,
}

/// One action as written: `{action: teams, webhook: {env: TEAMS_WEBHOOK}}` (see
/// `docs/actions.md`; pit-actions turns it into something that runs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionSpec {
    /// `teams`, `slack`, `webhook`, `github` or `git-tag`.
    pub action: String,
    /// teams, slack: the webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<SecretRef>,
    /// webhook: the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretRef>,
    /// webhook: the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// github, git-tag: the token (default: `GITHUB_TOKEN`, `PIT_GIT_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// github: `owner/name` (default: `GITHUB_REPOSITORY`); git-tag: the repository's URL or
    /// path (default: the `origin` of the repository PIT runs in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// github: the API's base URL (default: `GITHUB_API_URL`, else `https://api.github.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// github: the status's context (default `pit/<suite>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// git-tag: what to tag: a commit, a branch or a tag (default: the report's commit).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// git-tag: the tag of a pass, a template (default `dpt-pass-{{ sha7 }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_tag: Option<String>,
    /// git-tag: the tag of a failure, a template (default `dpt-fail-{{ sha7 }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_tag: Option<String>,
    /// A template file in place of the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// The `lockManager` section. Every field is optional: the existing toolkit fills it in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockManager {
    /// Whether suites take their locks through a Lock Manager (default `false`).
    #[serde(default)]
    pub enabled: bool,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Component id of the Lock Manager deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ComponentId>,
    /// Where its deployment scripts live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How to deploy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployInstructions>,
    /// How to remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undeploy: Option<DeployInstructions>,
    /// Whether to stream its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tailing: Option<LogTailing>,
}

/// One test suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestSuite {
    /// Display name.
    pub name: String,
    /// Unique id within the pitfile.
    pub id: SuiteId,
    /// How long the tests may run once started (default 60).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// LOCAL: defined here; REMOTE: taken from another repository's pitfile.
    #[serde(default, skip_serializing_if = "Location::is_default")]
    pub location: Location,
    /// Locks held while the suite runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<Lock>,
    /// The component graph (required for LOCAL suites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// For REMOTE suites: which suites of the remote pitfile to run (absent or empty: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_suite_ids: Option<Vec<SuiteId>>,
}

/// Exclusive locks taken before a suite deploys anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// How long to wait for the locks.
    pub timeout: LockTimeout,
    /// The lock ids, taken all at once.
    pub ids: Vec<LockId>,
}

/// A duration written as text (`"1h"`, `"90s"`, `"500ms"`, `"1h 30m"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockTimeout {
    /// The parsed duration.
    pub duration: Duration,
    /// The text as written, kept for round trips.
    pub text: String,
}

impl FromStr for LockTimeout {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            duration: humantime::parse_duration(s.trim())?,
            text: s.to_owned(),
        })
    }
}

impl Serialize for LockTimeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for LockTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `deployment` of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The graph to deploy.
    pub graph: Graph,
}

/// The components of a suite and its test app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// The Test Runner App, deployed after every component.
    pub test_app: Component,
    /// The components under test, deployed in dependency order.
    #[serde(default)]
    pub components: Vec<Component>,
}

/// A deployable component (or the test app).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Display name.
    pub name: String,
    /// Unique id within the graph.
    pub id: ComponentId,
    /// Where its deployment scripts live (default: LOCAL, the pitfile's directory).
    #[serde(default, skip_serializing_if = "Location::is_default")]
    pub location: Location,
    /// How to deploy it.
    pub deploy: DeployInstructions,
    /// How to remove it. Optional, as in the existing toolkit: without it, nothing is run for
    /// the component at teardown, and removing the environment (the namespace on Kubernetes,
    /// the sandbox's processes locally) cleans up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undeploy: Option<DeployInstructions>,
    /// Whether to stream its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tailing: Option<LogTailing>,
    /// Ids of components that must be deployed and healthy first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ComponentId>,
}

/// A command to run, its parameters and time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployInstructions {
    /// Time limit in seconds (default 60).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The program, relative to the component's location. Run without a shell.
    pub command: String,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// How to tell that the deployment is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_check: Option<StatusCheck>,
    /// Accepted for compatibility; PIT decides parallelism from `dependsOn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<bool>,
}

/// A readiness check, retried until it succeeds or its time runs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCheck {
    /// Time limit in seconds (default 60).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The program to run.
    pub command: String,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

/// Log streaming settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogTailing {
    /// Whether to stream the logs (default `false`).
    #[serde(default)]
    pub enabled: bool,
    /// Which container's logs, where a pod has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// LOCAL or REMOTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LocationType {
    /// In this repository.
    #[default]
    Local,
    /// In another git repository.
    Remote,
}

/// Where a suite or component is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// LOCAL (default) or REMOTE.
    #[serde(rename = "type", default)]
    pub kind: LocationType,
    /// Directory, relative to the pitfile (LOCAL) or the repository root (REMOTE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Repository URL (required for REMOTE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_repository: Option<String>,
    /// Git reference to check out.
    #[serde(default = "default_git_ref", skip_serializing_if = "is_default_git_ref")]
    pub git_ref: String,
    /// The remote pitfile's name (REMOTE suites).
    #[serde(default = "default_pit_file", skip_serializing_if = "is_default_pit_file")]
    pub pit_file: String,
}

impl Location {
    /// The folder of a LOCAL location, relative to its base, as written or implied: its
    /// `path`, else, in a workspace (`--workspace`), the `component`'s id, as in the existing
    /// toolkit; `None` for the base itself (and for REMOTE locations).
    pub(crate) fn local_dir(&self, component: Option<&str>, workspace: bool) -> Option<String> {
        if self.kind != LocationType::Local {
            return None;
        }
        match (&self.path, component) {
            (Some(rel), _) => Some(rel.clone()),
            (None, Some(id)) if workspace => Some(id.to_owned()),
            (None, _) => None,
        }
    }
}

impl Default for Location {
    fn default() -> Self {
        Self {
            kind: LocationType::Local,
            path: None,
            git_repository: None,
            git_ref: DEFAULT_GIT_REF.to_owned(),
            pit_file: DEFAULT_PIT_FILE.to_owned(),
        }
    }
}

impl Location {
    /// Whether this is the default location: LOCAL, the pitfile's own directory.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn is_default_git_ref(r: &str) -> bool {
    r == DEFAULT_GIT_REF
}

fn is_default_pit_file(f: &str) -> bool {
    f == DEFAULT_PIT_FILE
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

fn default_git_ref() -> String {
    DEFAULT_GIT_REF.to_owned()
}

fn default_pit_file() -> String {
    DEFAULT_PIT_FILE.to_owned()
}
