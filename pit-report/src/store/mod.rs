//! Report stores: a directory, or a git repository (a branch per project, a folder per run).
//! Both are [`ReportSink`]s for `pit run`. Storing a suite's report writes, in its run's
//! folder, `report.json` (schema 1.0), `report.html` (compared with the earlier runs of the
//! same branch and spec) and `junit.xml`, and refreshes the suite's `index.html`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pit_core::sink::{ReportSink, SinkError, StoredReport, SuiteReport};
use pit_git::git2::{self, build::TreeUpdateBuilder, FileMode, Repository};

use crate::compare::history;
use crate::html::{render_index, render_report, IndexRun};
use crate::{to_junit, Report};

mod artifacts;
mod dir;
mod git;

pub use artifacts::artifacts;
pub use dir::{read_reports, DirStore, ReportCache};
pub use git::{GitStore, Pushed};

/// How many earlier runs a stored report is compared with.
pub const BASELINE_RUNS: usize = 5;

/// What a run tested, added to every report stored: the branch and commit (the frontend reads
/// them from the CI's variables, see `pit_run::JobContext`).
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// The branch.
    pub branch: Option<String>,
    /// The commit.
    pub git_commit: Option<String>,
}

impl RunContext {
    /// Fills in what `report` does not say itself.
    pub fn apply(&self, report: &mut Report) {
        if report.branch.is_none() {
            report.branch.clone_from(&self.branch);
        }
        if report.git_commit.is_none() {
            report.git_commit.clone_from(&self.git_commit);
        }
    }
}

/// A folder name for `s` (never empty).
fn path_safe(s: &str) -> String {
    let safe = pit_core::sink::path_safe(s);
    if safe.is_empty() {
        "_".into()
    } else {
        safe
    }
}

/// A store named on the command line: `dir:PATH` (or a plain path), or `git:URL#BRANCH`
/// (`#BRANCH` optional: a branch per project).
///
/// ```
/// use pit_report::store::StoreSpec;
/// assert!(matches!("dir:/var/reports".parse(), Ok(StoreSpec::Dir(_))));
/// let git: StoreSpec = "git:https://git.example.com/perf/reports.git#nightly".parse().unwrap();
/// assert!(matches!(git, StoreSpec::Git { branch: Some(ref b), .. } if b == "nightly"));
/// assert!("git:".parse::<StoreSpec>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A directory.
    Dir(PathBuf),
    /// A git repository.
    Git {
        /// Its URL.
        url: String,
        /// The branch, if not one per project.
        branch: Option<String>,
    },
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(url) = s.strip_prefix("git:") {
            let (url, branch) = match url.rsplit_once('#') {
                Some((u, b)) => (u, Some(b.to_owned()).filter(|b| !b.is_empty())),
                None => (url, None),
            };
            if url.is_empty() {
                return Err(format!("`{s}`: give the repository, as git:URL#BRANCH"));
            }
            return Ok(Self::Git {
                url: url.to_owned(),
                branch,
            });
        }
        let path = s.strip_prefix("dir:").unwrap_or(s);
        if path.is_empty() {
            return Err(format!(
                "`{s}`: give a directory, as dir:PATH, or a repository, as git:URL#BRANCH"
            ));
        }
        Ok(Self::Dir(PathBuf::from(path)))
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "dir:{}", p.display()),
            Self::Git { url, branch: Some(b) } => write!(f, "git:{}#{b}", pit_git::redact_url(url)),
            Self::Git { url, branch: None } => write!(f, "git:{}", pit_git::redact_url(url)),
        }
    }
}

/// A directory or git store, opened from a [`StoreSpec`].
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A directory.
    Dir(DirStore),
    /// A git repository.
    Git(GitStore),
}

impl AnyStore {
    /// Opens `spec`; a git store keeps its local repository under `work_dir`.
    pub fn open(spec: &StoreSpec, work_dir: &Path) -> Self {
        match spec {
            StoreSpec::Dir(p) => Self::Dir(DirStore::new(p)),
            StoreSpec::Git { url, branch } => {
                let key: String = pit_git::redact_url(url)
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                Self::Git(GitStore::new(url, branch.clone(), work_dir.join(key)))
            }
        }
    }

    /// The same, recording `context` in every report.
    #[must_use]
    pub fn with_context(self, context: RunContext) -> Self {
        match self {
            Self::Dir(d) => Self::Dir(d.with_context(context)),
            Self::Git(g) => Self::Git(g.with_context(context)),
        }
    }

    /// The same, with this author for a git store's commits (see [`GitStore::with_author`]).
    #[must_use]
    pub fn with_author(self, name: Option<String>, email: Option<String>) -> Self {
        match self {
            Self::Dir(d) => Self::Dir(d),
            Self::Git(g) => Self::Git(g.with_author(name, email)),
        }
    }

    /// The same, with these credentials for a git store (see [`GitStore::with_credentials`]).
    #[must_use]
    pub fn with_credentials(self, credentials: pit_git::Credentials) -> Self {
        match self {
            Self::Dir(d) => Self::Dir(d),
            Self::Git(g) => Self::Git(g.with_credentials(credentials)),
        }
    }

    /// Every stored report of `project`'s `suite`, oldest first.
    ///
    /// # Errors
    /// [`SinkError`] when the store cannot be read.
    pub async fn reports(&self, project: &str, suite: &str) -> Result<Vec<Report>, SinkError> {
        match self {
            Self::Dir(d) => d.reports(project, suite),
            Self::Git(g) => g.reports(project, suite).await,
        }
    }
}

#[async_trait]
impl ReportSink for AnyStore {
    async fn store(&self, report: &SuiteReport) -> Result<StoredReport, SinkError> {
        match self {
            Self::Dir(d) => d.store(report).await,
            Self::Git(g) => g.store(report).await,
        }
    }

    async fn list(&self, project: &str, suite: &str) -> Result<Vec<SuiteReport>, SinkError> {
        match self {
            Self::Dir(d) => d.list(project, suite).await,
            Self::Git(g) => g.list(project, suite).await,
        }
    }
}
