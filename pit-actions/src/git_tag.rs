//! The `git-tag` action: tags the tested commit with git2 (no shell), as the existing toolkit's
//! `tag-git-repository` does (`dpt-pass-<sha7>` / `dpt-fail-<sha7>`), and moves the opposite
//! tag away. The repository is fetched into a temporary bare repository (removed afterwards);
//! one push creates the tag and deletes the opposite one. A dry run pushes nothing.

use std::path::Path;

use pit_git::git2::{self, Oid, Repository};
use serde::Serialize;

use crate::summary::Summary;

/// The tag of a passed run, a template (`sha`, `sha7` and `summary` are defined).
pub const DEFAULT_PASS_TAG: &str = "dpt-pass-{{ sha7 }}";
/// The tag of a failed run, a template.
pub const DEFAULT_FAIL_TAG: &str = "dpt-fail-{{ sha7 }}";

/// What the action does, or would do in a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagPlan {
    /// The repository, without credentials.
    pub repository: String,
    /// The commit tagged.
    pub commit: String,
    /// The tag set on it (none when the verdict's tag template is empty: then the opposite
    /// tag is only removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The opposite tag, when the repository has it: deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    /// Whether the tag is there already, on this commit, or there is none to set (nothing to
    /// push for it).
    pub unchanged: bool,
}

/// Why tagging failed. Never shows a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// A setting is missing or wrong.
    #[error("{0}")]
    Setting(String),
    /// A tag template is wrong, or makes no valid tag name.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// git failed (fetching, resolving the ref, pushing).
    #[error("git: {}", redact(.0))]
    Git(#[source] git2::Error),
    /// The server refused the push.
    #[error("the repository refused `{refname}`: {reason}")]
    Rejected {
        /// The ref.
        refname: String,
        /// The server's reason.
        reason: String,
    },
}

fn redact(e: &git2::Error) -> String {
    pit_git::redact_url(e.message())
}

impl From<git2::Error> for TagError {
    fn from(e: git2::Error) -> Self {
        Self::Git(e)
    }
}

/// The settings of one tagging.
#[derive(Debug, Clone)]
pub struct Tagging<'a> {
    /// The repository's URL or path.
    pub repository: &'a str,
    /// What to tag: a commit id, a branch, `refs/remotes/origin/<branch>`, `refs/tags/<tag>`.
    pub git_ref: &'a str,
    /// The tag template of a pass.
    pub pass_tag: &'a str,
    /// The tag template of a failure.
    pub fail_tag: &'a str,
    /// Credentials for HTTPS.
    pub credentials: &'a pit_git::Credentials,
}

/// The repository an action names, else the `origin` of the git repository around `dir`.
///
/// # Errors
/// [`TagError::Setting`] when there is neither.
pub fn repository_or_origin(repository: Option<&str>, dir: &Path) -> Result<String, TagError> {
    if let Some(r) = repository {
        return Ok(r.to_owned());
    }
    let found = Repository::discover(dir)
        .ok()
        .and_then(|repo| repo.find_remote("origin").ok().and_then(|r| r.url().map(str::to_owned)));
    found.ok_or_else(|| {
        TagError::Setting(format!(
            "no repository to tag: {} is not in a git repository with an `origin` (set `repository`, or --git-repository-url)",
            dir.display()
        ))
    })
}

/// Tags `summary`'s commit as `tagging` says; with `dry_run`, only says what it would do.
///
/// A working copy on disk is tagged in place (libgit2 cannot push into one); any other
/// repository is fetched into a scratch bare repository and pushed to.
///
/// # Errors
/// [`TagError`].
pub fn tag(tagging: &Tagging<'_>, summary: &Summary, dry_run: bool) -> Result<TagPlan, TagError> {
    let working_copy = Path::new(tagging.repository)
        .is_dir()
        .then(|| Repository::open(tagging.repository).ok())
        .flatten()
        .filter(|r| !r.is_bare());
    if let Some(repo) = working_copy {
        let (plan, commit) = plan_in(&repo, tagging, summary)?;
        if !dry_run {
            if let Some(tag) = plan.tag.as_ref().filter(|_| !plan.unchanged) {
                repo.reference(&format!("refs/tags/{tag}"), commit, true, "pit git-tag")?;
            }
            if let Some(old) = &plan.delete {
                repo.find_reference(&format!("refs/tags/{old}"))?.delete()?;
            }
        }
        return Ok(plan);
    }
    let scratch = tempfile::Builder::new()
        .prefix("pit-git-tag-")
        .tempdir()
        .map_err(|e| TagError::Setting(format!("cannot make a scratch repository: {e}")))?;
    let repo = Repository::init_bare(scratch.path())?;
    let mut remote = repo.remote_anonymous(tagging.repository)?;
    let mut opts = git2::FetchOptions::new();
    opts.remote_callbacks(pit_git::remote_callbacks(tagging.credentials));
    // Heads and tags, under names of our own: the ref may be a branch, a tag or a commit.
    remote.fetch(
        &["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
        Some(&mut opts),
        None,
    )?;
    let (plan, commit) = plan_in(&repo, tagging, summary)?;
    if dry_run {
        return Ok(plan);
    }
    let mut refspecs = Vec::new();
    if let Some(tag) = plan.tag.as_ref().filter(|_| !plan.unchanged) {
        repo.reference(&format!("refs/tags/{tag}"), commit, true, "pit git-tag")?;
        refspecs.push(format!("+refs/tags/{tag}:refs/tags/{tag}"));
    }
    if let Some(old) = &plan.delete {
        refspecs.push(format!(":refs/tags/{old}"));
    }
    if refspecs.is_empty() {
        return Ok(plan);
    }
    let rejected = std::cell::RefCell::new(None::<(String, String)>);
    let mut callbacks = pit_git::remote_callbacks(tagging.credentials);
    callbacks.push_update_reference(|refname, status| {
        if let Some(s) = status {
            *rejected.borrow_mut() = Some((refname.to_owned(), s.to_owned()));
        }
        Ok(())
    });
    let mut opts = git2::PushOptions::new();
    opts.remote_callbacks(callbacks);
    remote.push(&refspecs, Some(&mut opts))?;
    drop(opts);
    if let Some((refname, reason)) = rejected.into_inner() {
        return Err(TagError::Rejected { refname, reason });
    }
    Ok(plan)
}

/// What to do in `repo` (with the remote's refs): the commit, its tag, the opposite tag.
fn plan_in(repo: &Repository, tagging: &Tagging<'_>, summary: &Summary) -> Result<(TagPlan, Oid), TagError> {
    let commit = resolve(repo, tagging.git_ref)?;
    let sha = commit.to_string();
    let context = minijinja::context! { sha => &sha, sha7 => &sha[..7], summary => summary };
    // An empty template sets no tag; its default name is still removed as the opposite.
    let name = |template: &str, default: &str| -> Result<Option<String>, TagError> {
        let tag = crate::template::render_str("tag name", template.to_owned(), context.clone())?;
        let tag = tag.trim().to_owned();
        if tag.is_empty() && default.is_empty() {
            return Ok(None);
        }
        if tag.is_empty() {
            let fallback = crate::template::render_str("tag name", default.to_owned(), context.clone())?;
            return Ok(Some(fallback));
        }
        if !git2::Reference::is_valid_name(&format!("refs/tags/{tag}")) {
            return Err(TagError::Setting(format!("`{tag}` is not a valid tag name")));
        }
        Ok(Some(tag))
    };
    let (own, other, other_default) = if summary.verdict == "passed" {
        (tagging.pass_tag, tagging.fail_tag, DEFAULT_FAIL_TAG)
    } else {
        (tagging.fail_tag, tagging.pass_tag, DEFAULT_PASS_TAG)
    };
    let tag = name(own, "")?;
    let opposite = name(other, other_default)?.unwrap_or_default();
    let existing = |t: &str| {
        repo.find_reference(&format!("refs/tags/{t}"))
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    };
    let plan = TagPlan {
        repository: pit_git::redact_url(tagging.repository),
        commit: sha,
        unchanged: tag.as_deref().is_none_or(|t| existing(t) == Some(commit)),
        delete: existing(&opposite)
            .filter(|_| Some(&opposite) != tag.as_ref())
            .map(|_| opposite.clone()),
        tag,
    };
    Ok((plan, commit))
}

/// The commit `git_ref` names in the fetched repository: a commit id (full or abbreviated), a
/// branch, `refs/remotes/origin/<branch>`, `refs/heads/<branch>`, a tag or `refs/tags/<tag>`.
fn resolve(repo: &Repository, git_ref: &str) -> Result<Oid, TagError> {
    let r = git_ref.trim();
    let candidates = [
        r.to_owned(),
        format!("refs/remotes/origin/{}", r.strip_prefix("refs/heads/").unwrap_or(r)),
        format!("refs/tags/{r}"),
    ];
    for c in &candidates {
        if let Ok(obj) = repo.revparse_single(c) {
            if let Ok(commit) = obj.peel_to_commit() {
                return Ok(commit.id());
            }
        }
    }
    Err(TagError::Setting(format!(
        "the repository has no commit, branch or tag `{r}` (hint: a commit must be on one of its branches)"
    )))
}
