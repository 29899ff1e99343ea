//! The git store.

#[allow(clippy::wildcard_imports)] // the stores' shared imports
use super::*;

/// Reports committed to a git repository: a branch per project (or the one given), a folder
/// per suite and run, one commit per report ("pit: report of shop/checkout, run 01jq…,
/// passed"). Concurrent runs that push at once retry on a rejected push, with jitter, until
/// their commit is in. Credentials are given ([`GitStore::with_credentials`]) and never reach
/// logs or messages.
///
/// ```no_run
/// # async fn demo() -> Result<(), pit_core::sink::SinkError> {
/// use pit_core::sink::ReportSink;
/// let store = pit_report::store::GitStore::new("https://git.example.com/perf/reports.git", None, "/tmp/pit/report-repo");
/// let reports = store.reports("shop", "checkout").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GitStore {
    url: String,
    branch: Option<String>,
    cache: PathBuf,
    context: RunContext,
    attempts: u32,
    author: (Option<String>, Option<String>),
    credentials: pit_git::Credentials,
}

impl GitStore {
    /// A store in the repository at `url`, on `branch` (default: a branch named after each
    /// report's project), working in the local directory `cache`.
    pub fn new(url: &str, branch: Option<String>, cache: impl Into<PathBuf>) -> Self {
        Self {
            url: url.to_owned(),
            branch,
            cache: cache.into(),
            context: RunContext::default(),
            attempts: 30,
            author: (None, None),
            credentials: pit_git::Credentials::default(),
        }
    }

    /// The author of the commits it makes, name and email (each defaults to `PIT
    /// <pit@localhost>`).
    #[must_use]
    pub fn with_author(mut self, name: Option<String>, email: Option<String>) -> Self {
        self.author = (name, email);
        self
    }

    /// The same, answering an HTTPS server that asks with `credentials`.
    #[must_use]
    pub fn with_credentials(mut self, credentials: pit_git::Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The same, with an explicit context.
    pub fn with_context(mut self, context: RunContext) -> Self {
        self.context = context;
        self
    }

    fn name(&self) -> String {
        pit_git::redact_url(&self.url)
    }

    fn fail(&self, message: impl std::fmt::Display) -> SinkError {
        SinkError::Remote {
            store: self.name(),
            message: message.to_string(),
            source: None,
        }
    }

    /// git's error, its message without credentials, kept as the source.
    fn git_failed(&self, e: &git2::Error) -> SinkError {
        let safe = git2::Error::new(e.code(), e.class(), pit_git::redact_url(e.message()));
        SinkError::Remote {
            store: self.name(),
            message: safe.to_string(),
            source: Some(Box::new(safe)),
        }
    }

    fn branch_of(&self, project: &str) -> String {
        self.branch.clone().unwrap_or_else(|| path_safe(project))
    }

    /// Every stored report of `project`'s `suite` on the remote, oldest first.
    ///
    /// # Errors
    /// [`SinkError::Remote`] when the repository cannot be fetched.
    pub async fn reports(&self, project: &str, suite: &str) -> Result<Vec<Report>, SinkError> {
        let store = self.clone();
        let (project, suite) = (project.to_owned(), suite.to_owned());
        tokio::task::spawn_blocking(move || {
            let repo = store.open().map_err(|e| store.git_failed(&e))?;
            let branch = store.branch_of(&project);
            let tip = store.fetch(&repo, &branch).map_err(|e| store.git_failed(&e))?;
            Ok(match tip {
                Some(commit) => reports_in_tree(&repo, commit, &path_safe(&suite)),
                None => Vec::new(),
            })
        })
        .await
        .map_err(|e| self.fail(e))?
    }

    fn open(&self) -> Result<Repository, git2::Error> {
        std::fs::create_dir_all(&self.cache).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        Repository::open_bare(&self.cache).or_else(|_| Repository::init_bare(&self.cache))
    }

    /// Fetches `branch`; its tip, if the remote has it.
    fn fetch(&self, repo: &Repository, branch: &str) -> Result<Option<git2::Oid>, git2::Error> {
        let mut remote = repo.remote_anonymous(&self.url)?;
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(pit_git::remote_callbacks(&self.credentials));
        let tracking = format!("refs/pit/remote/{branch}");
        // A branch the remote lacks is fetched as nothing: the tracking ref, removed first, is
        // then absent. (Not `Remote::list`, which git2 0.20 cannot do for an empty remote.)
        if let Ok(mut stale) = repo.find_reference(&tracking) {
            stale.delete()?;
        }
        remote.fetch(&[format!("+refs/heads/{branch}:{tracking}")], Some(&mut opts), None)?;
        match repo.refname_to_id(&tracking) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One attempt: commit the files on the remote's tip and push. `Ok(false)` when the push
    /// was rejected because someone pushed first.
    fn try_push(&self, repo: &Repository, branch: &str, suite: &str, report: &Report) -> Result<bool, git2::Error> {
        let tip = self.fetch(repo, branch)?;
        let parent = tip.map(|id| repo.find_commit(id)).transpose()?;
        let earlier = tip.map(|c| reports_in_tree(repo, c, suite)).unwrap_or_default();
        let mut update = TreeUpdateBuilder::new();
        let files = artifacts(report, &earlier)
            .map_err(|e| git2::Error::from_str(&format!("cannot serialise the report: {e}")))?;
        for (name, bytes) in files {
            let blob = repo.blob(&bytes)?;
            update.upsert(format!("{suite}/{name}"), blob, FileMode::Blob);
        }
        let base = match &parent {
            Some(p) => p.tree()?,
            None => repo.find_tree(repo.treebuilder(None)?.write()?)?,
        };
        let tree = repo.find_tree(update.create_updated(repo, &base)?)?;
        let (name, email) = &self.author;
        let sig = git2::Signature::now(
            name.as_deref().unwrap_or("PIT"),
            email.as_deref().unwrap_or("pit@localhost"),
        )?;
        let message = format!(
            "pit: report of {}/{}, run {}, {}\n\nbranch: {}\ncommit: {}\nspec: {}\n",
            report.project.as_deref().unwrap_or("-"),
            report.suite.as_deref().unwrap_or(&report.name),
            report.run_id.as_deref().unwrap_or("-"),
            report.outcome.as_deref().unwrap_or("-"),
            report.branch.as_deref().unwrap_or("-"),
            report.git_commit.as_deref().unwrap_or("-"),
            report.spec_hash.as_deref().unwrap_or("-"),
        );
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let commit = repo.commit(None, &sig, &sig, &message, &tree, &parents)?;
        let outgoing = "refs/pit/outgoing";
        repo.reference(outgoing, commit, true, "pit report")?;
        let mut remote = repo.remote_anonymous(&self.url)?;
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut callbacks = pit_git::remote_callbacks(&self.credentials);
        callbacks.push_update_reference(|_, status| {
            if let Some(s) = status {
                *rejected.borrow_mut() = Some(s.to_owned());
            }
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(callbacks);
        match remote.push(&[format!("{outgoing}:refs/heads/{branch}")], Some(&mut opts)) {
            Ok(()) => {}
            Err(e) if e.code() == git2::ErrorCode::NotFastForward || e.message().contains("fast-forward") => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
        let rejection = rejected.borrow().clone();
        match rejection {
            None => Ok(true),
            Some(why) => {
                tracing::debug!(reason = %why, "report push rejected; trying again on the new tip");
                Ok(false)
            }
        }
    }
}

/// The reports under `<suite>/*/report.json` in `commit`'s tree, oldest first.
fn reports_in_tree(repo: &Repository, commit: git2::Oid, suite: &str) -> Vec<Report> {
    let Ok(tree) = repo.find_commit(commit).and_then(|c| c.tree()) else {
        return Vec::new();
    };
    let Ok(entry) = tree.get_path(Path::new(suite)) else {
        return Vec::new();
    };
    let Ok(suite_tree) = repo.find_tree(entry.id()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for run in suite_tree.iter() {
        let Some(name) = run.name() else { continue };
        let Ok(file) = suite_tree.get_path(&Path::new(name).join("report.json")) else {
            continue;
        };
        if let Ok(blob) = repo.find_blob(file.id()) {
            let text = String::from_utf8_lossy(blob.content());
            match Report::from_json(&Path::new(suite).join(name).join("report.json"), &text) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(error = %e, "skipping a report that cannot be read"),
            }
        }
    }
    out.sort_by_key(|r| (r.start_ms(), r.run_id.clone()));
    out
}

/// A report pushed by [`GitStore::push`].
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it is.
    pub stored: StoredReport,
    /// How many attempts it took (more than 1 when others pushed first).
    pub attempts: u32,
}

impl GitStore {
    /// Commits and pushes `suite`'s report, retrying while others push first.
    ///
    /// # Errors
    /// [`SinkError::Remote`] when the repository fails, or rejects every attempt.
    pub async fn push(&self, suite: &SuiteReport) -> Result<Pushed, SinkError> {
        let store = self.clone();
        let suite = suite.clone();
        tokio::task::spawn_blocking(move || {
            let mut report = Report::from_suite(&suite);
            store.context.apply(&mut report);
            // Writers sharing a local repository take turns (other processes use their own).
            let lock = local_lock(&store.cache);
            let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let repo = store.open().map_err(|e| store.git_failed(&e))?;
            let branch = store.branch_of(&suite.project);
            let folder = path_safe(&suite.suite_id);
            for attempt in 1..=store.attempts {
                match store.try_push(&repo, &branch, &folder, &report) {
                    Ok(true) => {
                        tracing::info!(branch, attempt, "report pushed");
                        return Ok(Pushed {
                            stored: StoredReport {
                                location: format!(
                                    "{}#{branch}:{folder}/{}/report.json",
                                    store.name(),
                                    path_safe(&suite.run_id)
                                ),
                            },
                            attempts: attempt,
                        });
                    }
                    Ok(false) => {
                        // Someone pushed first: wait a little (jittered), then rebuild on theirs.
                        let ms = 20 * u64::from(attempt.min(10)) + fastrand::u64(..100);
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    Err(e) => return Err(store.git_failed(&e)),
                }
            }
            Err(store.fail(format!("the push was rejected {} times in a row", store.attempts)))
        })
        .await
        .map_err(|e| self.fail(e))?
    }
}

#[async_trait]
impl ReportSink for GitStore {
    async fn store(&self, suite: &SuiteReport) -> Result<StoredReport, SinkError> {
        Ok(self.push(suite).await?.stored)
    }

    async fn list(&self, project: &str, suite: &str) -> Result<Vec<SuiteReport>, SinkError> {
        Ok(self
            .reports(project, suite)
            .await?
            .iter()
            .map(Report::to_suite)
            .collect())
    }
}

/// A lock per local repository directory, within this process.
fn local_lock(dir: &Path) -> std::sync::Arc<std::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<std::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(dir.to_owned())
        .or_default()
        .clone()
}
