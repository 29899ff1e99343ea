//! # pit-git
//!
//! Fetches the repositories of REMOTE suites and components for `pit run`: [`GitCache`]
//! implements [`pit_core::resolve::SourceFetcher`] with git2. Each repository is mirrored once
//! (a bare clone, updated by fetch) and each commit checked out once into its own directory,
//! so suites that share a repository share the download, and concurrent `pit` processes wait
//! for each other through a file lock per repository.
//!
//! Credentials: SSH URLs use the SSH agent; HTTPS URLs use the [`Credentials`] the frontend
//! gives ([`Credentials::from_env`] reads `PIT_GIT_TOKEN` and `PIT_GIT_USERNAME`, default
//! `x-access-token`). Tokens are never logged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pit_core::resolve::FetchError> {
//! use pit_core::resolve::SourceFetcher;
//! let cache = pit_git::GitCache::new("/tmp/pit/sources");
//! let dir = cache.fetch("https://git.example.com/team/perf-tests.git", "refs/remotes/origin/master").await?;
//! assert!(dir.join("pitfile.yml").exists());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
pub use git2;
use git2::{build::CheckoutBuilder, Cred, FetchOptions, Oid, RemoteCallbacks, Repository};
use pit_core::resolve::{FetchError, SourceFetcher};

/// What PIT answers a git server that asks who it is, over HTTPS: a token (a personal access
/// token, a CI job token) and its user name. Its `Debug` never shows the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (default `x-access-token`, what GitHub and GitLab accept with a token).
    pub username: Option<String>,
    /// The token.
    pub token: Option<String>,
}

/// The variable [`Credentials::from_env`] reads the token from.
pub const TOKEN_ENV: &str = "PIT_GIT_TOKEN";
/// The variable [`Credentials::from_env`] reads the user name from.
pub const USERNAME_ENV: &str = "PIT_GIT_USERNAME";

impl Credentials {
    /// A token, with the default user name.
    pub fn token(token: impl Into<String>) -> Self {
        Self {
            username: None,
            token: Some(token.into()),
        }
    }

    /// From `PIT_GIT_TOKEN` and `PIT_GIT_USERNAME`: for frontends (the library never reads
    /// them on its own).
    pub fn from_env() -> Self {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        Self {
            username: var(USERNAME_ENV),
            token: var(TOKEN_ENV),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

/// Callbacks that give a remote its credentials: the SSH agent for SSH URLs, and `credentials`
/// for HTTPS. Shared by every git operation of PIT (fetching sources, pushing reports); the
/// token is never logged.
pub fn remote_callbacks(credentials: &Credentials) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username, allowed| {
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            Cred::ssh_key_from_agent(username.unwrap_or("git"))
        } else if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            match &credentials.token {
                Some(token) => {
                    Cred::userpass_plaintext(credentials.username.as_deref().unwrap_or("x-access-token"), token)
                }
                None => Err(git2::Error::from_str(
                    "the repository asks for credentials (hint: set PIT_GIT_TOKEN)",
                )),
            }
        } else {
            Cred::default()
        }
    });
    callbacks
}

pub use pit_core::naming::redact_url;

#[cfg(feature = "testing")]
pub mod testing;

/// A cache of repositories and checkouts in one directory.
#[derive(Debug, Clone)]
pub struct GitCache {
    dir: PathBuf,
    credentials: Credentials,
}

impl GitCache {
    /// A cache in `dir` (created on first use), fetching without credentials (SSH URLs still
    /// use the SSH agent).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            credentials: Credentials::default(),
        }
    }

    /// The same, answering HTTPS servers that ask with `credentials`.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl SourceFetcher for GitCache {
    async fn fetch(&self, repository: &str, git_ref: &str) -> Result<PathBuf, FetchError> {
        let (dir, repo, reference) = (self.dir.clone(), repository.to_owned(), git_ref.to_owned());
        let credentials = self.credentials.clone();
        let fail = |message: String| FetchError {
            repository: repository.to_owned(),
            git_ref: git_ref.to_owned(),
            message,
        };
        tokio::task::spawn_blocking(move || fetch_blocking(&dir, &repo, &reference, &credentials))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)
    }
}

/// A short, stable name for a repository URL (FNV-1a; file names must not change between
/// releases, which std's hasher does not promise).
fn key(url: &str) -> String {
    let h = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tail: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    format!("{tail}-{h:016x}")
}

fn fetch_blocking(dir: &Path, url: &str, git_ref: &str, credentials: &Credentials) -> Result<PathBuf, String> {
    use fs4::fs_std::FileExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the cache `{}`: {e}", dir.display()))?;
    let key = key(url);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{key}.lock")))
        .map_err(|e| e.to_string())?;
    lock.lock_exclusive().map_err(|e| e.to_string())?;
    let result = update_and_checkout(dir, &key, url, git_ref, credentials);
    let _ = FileExt::unlock(&lock);
    result
}

fn update_and_checkout(
    dir: &Path,
    key: &str,
    url: &str,
    git_ref: &str,
    credentials: &Credentials,
) -> Result<PathBuf, String> {
    let mirror_path = dir.join(format!("{key}.git"));
    let repo = match Repository::open_bare(&mirror_path) {
        Ok(r) => r,
        Err(_) => {
            let r = Repository::init_bare(&mirror_path).map_err(|e| e.message().to_owned())?;
            r.remote("origin", url).map_err(|e| e.message().to_owned())?;
            r
        }
    };
    {
        let mut remote = repo.find_remote("origin").map_err(|e| e.message().to_owned())?;
        let callbacks = remote_callbacks(credentials);
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks).download_tags(git2::AutotagOption::All);
        tracing::debug!(repository = %url, "fetching");
        remote
            .fetch(
                &["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut opts),
                None,
            )
            .map_err(|e| e.message().to_owned())?;
    }
    let commit = resolve_ref(&repo, git_ref)?;
    let checkout = dir.join(format!("{key}-{}", &commit.to_string()[..12]));
    if checkout.join(".pit-checkout-complete").exists() {
        return Ok(checkout);
    }
    let tmp = dir.join(format!(
        "{key}-{}.tmp-{}",
        &commit.to_string()[..12],
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let object = repo.find_object(commit, None).map_err(|e| e.message().to_owned())?;
    repo.checkout_tree(
        &object,
        Some(CheckoutBuilder::new().target_dir(&tmp).force().recreate_missing(true)),
    )
    .map_err(|e| e.message().to_owned())?;
    std::fs::write(tmp.join(".pit-checkout-complete"), commit.to_string()).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&checkout);
    std::fs::rename(&tmp, &checkout).map_err(|e| e.to_string())?;
    Ok(checkout)
}

/// Finds the commit `git_ref` names: a full ref, a branch of origin, a tag, or a commit id.
fn resolve_ref(repo: &Repository, git_ref: &str) -> Result<Oid, String> {
    let candidates = [
        git_ref.to_owned(),
        git_ref.replace("refs/heads/", "refs/remotes/origin/"),
        format!("refs/remotes/origin/{git_ref}"),
        format!("refs/tags/{git_ref}"),
    ];
    for name in &candidates {
        if let Ok(r) = repo.find_reference(name) {
            if let Ok(c) = r.peel_to_commit() {
                return Ok(c.id());
            }
        }
    }
    repo.revparse_single(git_ref)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| {
            let mut branches: Vec<String> = repo
                .references_glob("refs/remotes/origin/*")
                .map(|refs| refs.flatten().filter_map(|r| r.name().map(str::to_owned)).collect())
                .unwrap_or_default();
            branches.sort();
            format!(
                "no branch, tag or commit `{git_ref}` (hint: the repository has {})",
                if branches.is_empty() {
                    "no branches".to_owned()
                } else {
                    branches.join(", ")
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_stable_and_readable() {
        assert_eq!(
            key("git://127.0.0.1:9418/perf-tests.git"),
            key("git://127.0.0.1:9418/perf-tests.git")
        );
        assert!(key("https://x/perf-tests.git").starts_with("perf-tests-"));
        assert_ne!(key("https://a/x.git"), key("https://b/x.git"));
    }
}
