//! Turning a plan's REMOTE parts into local directories before a run.
//!
//! A REMOTE suite's definition lives in another repository's pitfile, and a REMOTE component's
//! scripts in another repository. [`resolve`] fetches each repository once through a
//! [`SourceFetcher`] (pit-git's git2 cache in `pit run`), replaces every REMOTE suite with the
//! suites of the remote pitfile that `testSuiteIds` selects (all when absent or empty), and
//! points every REMOTE component at its checkout. Planning never fetches; running does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::diagnostic::Diagnostics;
use crate::pitfile::{self, LoadError, LoadOptions};
use crate::plan::{ComponentPlan, Plan, WorkDir};

/// Fetches a repository at a reference into a local directory.
#[async_trait]
pub trait SourceFetcher: Send + Sync {
    /// A directory holding `repository` checked out at `git_ref` (a full ref such as
    /// `refs/remotes/origin/master`, a branch, a tag or a commit).
    async fn fetch(&self, repository: &str, git_ref: &str) -> Result<PathBuf, FetchError>;
}

/// Why a repository could not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch `{repository}` at `{git_ref}`: {message}")]
pub struct FetchError {
    /// The repository.
    pub repository: String,
    /// The reference.
    pub git_ref: String,
    /// What went wrong.
    pub message: String,
}

/// Why a plan could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// A repository could not be fetched.
    #[error("suite `{suite}`: remote source unavailable")]
    Fetch {
        /// The suite that needed it.
        suite: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// The remote pitfile could not be read.
    #[error("suite `{suite}`: cannot read the remote pitfile `{}`", path.display())]
    RemotePitfile {
        /// The REMOTE suite.
        suite: String,
        /// The remote pitfile.
        path: PathBuf,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// `testSuiteIds` names suites the remote pitfile does not have.
    #[error("suite `{suite}`: the remote pitfile has no suite {} (it has: {})", missing.join(", "), available.join(", "))]
    UnknownSuites {
        /// The REMOTE suite.
        suite: String,
        /// The ids not found.
        missing: Vec<String>,
        /// The ids there are.
        available: Vec<String>,
    },
    /// A remote pitfile's suite is REMOTE itself; PIT follows one level only.
    #[error(
        "suite `{suite}`: the remote suite `{nested}` is REMOTE too (hint: point at the repository that defines it)"
    )]
    Nested {
        /// The REMOTE suite.
        suite: String,
        /// The nested REMOTE suite.
        nested: String,
    },
}

impl ResolveError {
    /// The diagnostics of an invalid remote pitfile, to print with their excerpts.
    pub fn report(&self) -> Option<&Diagnostics> {
        match self {
            Self::RemotePitfile {
                source: LoadError::Invalid(report),
                ..
            } => Some(report),
            _ => None,
        }
    }
}

/// Replaces REMOTE suites and components of `plan` with fetched, local ones.
///
/// `opts` loads remote pitfiles (the same environment and strictness as the local one).
///
/// # Errors
/// The first [`ResolveError`]; nothing has run yet.
pub async fn resolve(plan: Plan, fetcher: &dyn SourceFetcher, opts: &LoadOptions) -> Result<Plan, ResolveError> {
    let mut fetched: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut suites = Vec::new();
    for suite in plan.suites {
        let Some(remote) = suite.remote.clone() else {
            suites.push(suite);
            continue;
        };
        let sid = suite.id.to_string();
        let dir = fetch_once(&mut fetched, fetcher, &remote.git_repository, &remote.git_ref, &sid).await?;
        let path = dir.join(&remote.pit_file);
        let remote_opts = LoadOptions {
            repository_root: Some(dir.clone()),
            // A remote pitfile's paths are relative to itself, whatever the local workspace.
            workspace: None,
            ..opts.clone()
        };
        let loaded = pitfile::load_file(&path, &remote_opts).map_err(|source| ResolveError::RemotePitfile {
            suite: sid.clone(),
            path: path.clone(),
            source,
        })?;
        let wanted = &remote.test_suite_ids;
        let available: Vec<String> = loaded.pitfile.test_suites.iter().map(|s| s.id.to_string()).collect();
        let missing: Vec<String> = wanted
            .iter()
            .map(ToString::to_string)
            .filter(|w| !available.contains(w))
            .collect();
        if !missing.is_empty() {
            return Err(ResolveError::UnknownSuites {
                suite: sid,
                missing,
                available,
            });
        }
        let sub = Plan::build(&loaded, plan.run_id);
        for s in sub
            .suites
            .into_iter()
            .filter(|s| wanted.is_empty() || wanted.contains(&s.id))
        {
            if s.remote.is_some() {
                return Err(ResolveError::Nested {
                    suite: sid,
                    nested: s.id.to_string(),
                });
            }
            suites.push(s);
        }
    }
    for suite in &mut suites {
        let sid = suite.id.to_string();
        for c in suite.waves.iter_mut().flatten().chain(suite.test_app.iter_mut()) {
            localise(c, &mut fetched, fetcher, &sid).await?;
        }
    }
    let mut lock_manager = plan.lock_manager;
    if let Some(c) = &mut lock_manager {
        localise(c, &mut fetched, fetcher, "lockManager").await?;
    }
    Ok(Plan {
        suites,
        lock_manager,
        ..plan
    })
}

/// Points a REMOTE component's workdir at its checkout.
async fn localise(
    c: &mut ComponentPlan,
    fetched: &mut HashMap<(String, String), PathBuf>,
    fetcher: &dyn SourceFetcher,
    suite: &str,
) -> Result<(), ResolveError> {
    if let WorkDir::Git {
        repository,
        git_ref,
        path,
    } = &c.workdir
    {
        let dir = fetch_once(fetched, fetcher, repository, git_ref, suite).await?;
        c.workdir = WorkDir::Local {
            path: clean_join(&dir, path),
        };
    }
    Ok(())
}

async fn fetch_once(
    cache: &mut HashMap<(String, String), PathBuf>,
    fetcher: &dyn SourceFetcher,
    repository: &str,
    git_ref: &str,
    suite: &str,
) -> Result<PathBuf, ResolveError> {
    let key = (repository.to_owned(), git_ref.to_owned());
    if let Some(dir) = cache.get(&key) {
        return Ok(dir.clone());
    }
    let dir = fetcher
        .fetch(repository, git_ref)
        .await
        .map_err(|source| ResolveError::Fetch {
            suite: suite.to_owned(),
            source,
        })?;
    cache.insert(key, dir.clone());
    Ok(dir)
}

fn clean_join(dir: &Path, rel: &str) -> PathBuf {
    dir.join(rel)
        .components()
        .filter(|p| !matches!(p, std::path::Component::CurDir))
        .collect()
}

/// Whether a plan still has parts that need fetching.
pub fn needs_fetching(plan: &Plan) -> bool {
    let remote = |c: &ComponentPlan| matches!(c.workdir, WorkDir::Git { .. });
    plan.lock_manager.as_ref().is_some_and(remote)
        || plan
            .suites
            .iter()
            .any(|s| s.remote.is_some() || s.components().any(remote))
}
