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

use crate::compare::{baseline_of, compare, history, Thresholds};
use crate::html::{render_index, render_report, IndexRun};
use crate::{to_junit, Report};

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
    fn apply(&self, report: &mut Report) {
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

/// The files of one stored report, relative to the suite's folder, given the suite's earlier
/// reports: the run's three files and the suite's index.
///
/// # Errors
/// When the report cannot be serialised (then nothing is written: never an empty
/// `report.json`).
pub fn artifacts(report: &Report, earlier: &[Report]) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
    let run = path_safe(report.run_id.as_deref().unwrap_or("run"));
    let baseline: Vec<Report> = baseline_of(report, earlier, BASELINE_RUNS)
        .into_iter()
        .cloned()
        .collect();
    let comparison = (!baseline.is_empty()).then(|| compare(report, &baseline, &Thresholds::default()));
    let mut files = vec![
        (format!("{run}/report.json"), serde_json::to_vec_pretty(report)?),
        (format!("{run}/junit.xml"), to_junit(report).into_bytes()),
    ];
    match render_report(report, comparison.as_ref()) {
        Ok(html) => files.push((format!("{run}/report.html"), html.into_bytes())),
        Err(e) => tracing::error!(error = %e, "cannot render the report page"),
    }
    let mut all: Vec<Report> = earlier.iter().filter(|r| r.run_id != report.run_id).cloned().collect();
    all.push(report.clone());
    let runs: Vec<IndexRun> = all
        .iter()
        .map(|r| {
            IndexRun::of(
                r,
                Some(format!(
                    "{}report.html",
                    crate::html::relative_link(&[&path_safe(r.run_id.as_deref().unwrap_or("run"))])
                )),
            )
        })
        .collect();
    let title = format!(
        "{} / {}",
        report.project.as_deref().unwrap_or("pit"),
        report.suite.as_deref().unwrap_or(&report.name)
    );
    match render_index(&title, &runs, &history(&all, 5.0), 40) {
        Ok(html) => files.push(("index.html".into(), html.into_bytes())),
        Err(e) => tracing::error!(error = %e, "cannot render the index page"),
    }
    Ok(files)
}

/// Reports stored as `<root>/<project>/<suite>/<run>/report.json` (with `report.html` and
/// `junit.xml`), and `<root>/<project>/<suite>/index.html`.
///
/// ```no_run
/// # async fn demo() -> Result<(), pit_core::sink::SinkError> {
/// let store = pit_report::store::DirStore::new("/var/lib/pit/reports");
/// for report in store.reports("shop", "checkout")? {
///     println!("{:?} {:?}", report.run_id, report.verdict());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    context: RunContext,
}

impl DirStore {
    /// A store under `root` (add the branch and commit with [`with_context`](Self::with_context)).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            context: RunContext::default(),
        }
    }

    /// The same, with an explicit context.
    pub fn with_context(mut self, context: RunContext) -> Self {
        self.context = context;
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn suite_dir(&self, project: &str, suite: &str) -> PathBuf {
        self.root.join(path_safe(project)).join(path_safe(suite))
    }

    /// Every stored report of `project`'s `suite`, oldest first. Unreadable ones are skipped
    /// with a warning.
    ///
    /// # Errors
    /// [`SinkError::Io`] when the folder cannot be read.
    pub fn reports(&self, project: &str, suite: &str) -> Result<Vec<Report>, SinkError> {
        read_reports(&self.suite_dir(project, suite))
    }

    /// Every `(project, suite)` with stored reports.
    ///
    /// # Errors
    /// [`SinkError::Io`] when the root cannot be read.
    pub fn suites(&self) -> Result<Vec<(String, String)>, SinkError> {
        let mut out = Vec::new();
        for project in subdirs(&self.root)? {
            for suite in subdirs(&self.root.join(&project))? {
                out.push((project.clone(), suite));
            }
        }
        Ok(out)
    }
}

fn subdirs(dir: &Path) -> Result<Vec<String>, SinkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SinkError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    // Real folders only: a symbolic link could lead out of the store.
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    Ok(out)
}

/// What identifies the state of a suite's stored reports: each run's `report.json` with its
/// size and modification time.
type Fingerprint = Vec<(String, u64, Option<std::time::SystemTime>)>;

fn fingerprint(dir: &Path) -> Result<Fingerprint, SinkError> {
    Ok(subdirs(dir)?
        .into_iter()
        .filter_map(|run| {
            let m = std::fs::symlink_metadata(dir.join(&run).join("report.json")).ok()?;
            m.is_file().then(|| (run, m.len(), m.modified().ok()))
        })
        .collect())
}

/// A suite's reports as parsed, with the fingerprint they were parsed at.
type Cached = (Fingerprint, Arc<Vec<Report>>);

/// A read-only view of a [`DirStore`] for serving many requests (`pit report serve`): each
/// suite's reports are parsed once, shared, and parsed again only when a report was added,
/// removed or changed. A request costs a directory listing and a `stat` per run, not a parse
/// of the whole store.
#[derive(Debug)]
pub struct ReportCache {
    store: DirStore,
    suites: std::sync::Mutex<std::collections::HashMap<(String, String), Cached>>,
}

impl ReportCache {
    /// A cache over `store`.
    pub fn new(store: DirStore) -> Self {
        Self {
            store,
            suites: std::sync::Mutex::default(),
        }
    }

    /// Every `(project, suite)` with stored reports.
    ///
    /// # Errors
    /// [`SinkError::Io`] when the root cannot be read.
    pub fn suites(&self) -> Result<Vec<(String, String)>, SinkError> {
        self.store.suites()
    }

    /// The reports of `project`'s `suite`, oldest first, parsed again only if they changed.
    ///
    /// # Errors
    /// [`SinkError::Io`] when the folder cannot be read.
    pub fn reports(&self, project: &str, suite: &str) -> Result<Arc<Vec<Report>>, SinkError> {
        let dir = self.store.suite_dir(project, suite);
        let now = fingerprint(&dir)?;
        // Held while parsing: concurrent requests for one suite parse it once.
        let mut suites = self.suites.lock().expect("no panics while held");
        let key = (project.to_owned(), suite.to_owned());
        if let Some((seen, reports)) = suites.get(&key) {
            if *seen == now {
                return Ok(reports.clone());
            }
        }
        let reports = Arc::new(read_reports(&dir)?);
        suites.insert(key, (now, reports.clone()));
        Ok(reports)
    }
}

/// Reads `<dir>/*/report.json`, oldest first.
pub fn read_reports(dir: &Path) -> Result<Vec<Report>, SinkError> {
    let mut out = Vec::new();
    for run in subdirs(dir)? {
        let file = dir.join(&run).join("report.json");
        // A regular file only: a symbolic link could lead out of the store.
        if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            continue;
        }
        match Report::load(&file) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(error = %e, "skipping a report that cannot be read"),
        }
    }
    out.sort_by_key(|r| (r.start_ms(), r.run_id.clone()));
    Ok(out)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[async_trait]
impl ReportSink for DirStore {
    async fn store(&self, suite: &SuiteReport) -> Result<StoredReport, SinkError> {
        let store = self.clone();
        let suite = suite.clone();
        tokio::task::spawn_blocking(move || {
            let mut report = Report::from_suite(&suite);
            store.context.apply(&mut report);
            let dir = store.suite_dir(&suite.project, &suite.suite_id);
            let earlier = store.reports(&suite.project, &suite.suite_id)?;
            let files = artifacts(&report, &earlier).map_err(|e| SinkError::Io {
                path: dir.clone(),
                source: std::io::Error::other(e),
            })?;
            for (name, bytes) in &files {
                let path = dir.join(name);
                write_atomically(&path, bytes).map_err(|source| SinkError::Io { path, source })?;
            }
            Ok(StoredReport {
                location: dir
                    .join(path_safe(&suite.run_id))
                    .join("report.json")
                    .display()
                    .to_string(),
            })
        })
        .await
        .map_err(|e| SinkError::Io {
            path: self.root.clone(),
            source: std::io::Error::other(e),
        })?
    }

    async fn list(&self, project: &str, suite: &str) -> Result<Vec<SuiteReport>, SinkError> {
        Ok(self.reports(project, suite)?.iter().map(Report::to_suite).collect())
    }
}

/// Reports committed to a git repository: a branch per project (or the one given), a folder
/// per suite and run, one commit per report ("pit: report of shop/checkout, run 01jq…,
/// passed"). Concurrent runs that push at once retry on a rejected push, with jitter, until
/// their commit is in. Credentials come from the environment (see
/// [`pit_git::remote_callbacks`]) and never reach logs or messages.
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
