//! The directory store.

#[allow(clippy::wildcard_imports)] // the stores' shared imports
use super::*;

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
