//! Checks that need the whole model: unique ids, dependencies, cycles and paths.

use std::collections::HashMap;
use std::path::{Component as PathPart, Path, PathBuf};

use super::decode::suggest;
use super::model::*;
use crate::diagnostic::{Diagnostic, FieldPath};
use crate::graph;
use crate::yaml::{Node, Span};

pub(crate) struct Checker<'a> {
    /// The document, to find where a value was written.
    pub(crate) root: &'a Node,
    pub(crate) diags: Vec<Diagnostic>,
    /// Where LOCAL paths lead, when the file is on disk.
    pub(crate) dirs: Option<Dirs>,
}

/// The folders LOCAL paths are checked against.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    /// What LOCAL paths are relative to: the workspace, or the pitfile's folder.
    pub(crate) base: PathBuf,
    /// The repository they must stay inside.
    pub(crate) root: PathBuf,
    /// The pitfile's folder.
    pub(crate) pitfile_dir: PathBuf,
    /// Whether `base` is a workspace (a component without a path runs in `<base>/<id>`).
    pub(crate) workspace: bool,
}

impl Checker<'_> {
    fn span(&self, path: &FieldPath) -> Span {
        self.root.lookup(path).map_or_else(Span::default, |n| n.span)
    }

    pub(crate) fn check(&mut self, pitfile: &Pitfile) {
        let suites = FieldPath::root().key("testSuites");
        let (_, repeats) = first_uses(pitfile.test_suites.iter().map(|s| s.id.as_str()));
        for (i, first) in repeats {
            let idp = suites.index(i).key("id");
            let id = &pitfile.test_suites[i].id;
            let d = Diagnostic::error(
                "pit::duplicate-suite-id",
                idp.clone(),
                self.span(&idp),
                format!("test suite id `{id}` is used twice"),
            )
            .with_label("second use")
            .with_help(format!(
                "suite ids must be unique; `testSuites[{first}]` already uses `{id}`"
            ));
            self.diags.push(d);
        }
        // Reports are stored under a folder named after the suite id (`sink::path_safe`): two
        // ids that map to one folder would overwrite each other's reports.
        let mut folders: HashMap<String, usize> = HashMap::new();
        for (i, suite) in pitfile.test_suites.iter().enumerate() {
            let folder = crate::sink::path_safe(suite.id.as_str());
            match folders.get(&folder) {
                Some(&first) if pitfile.test_suites[first].id != suite.id => {
                    let idp = suites.index(i).key("id");
                    let d = Diagnostic::error(
                        "pit::colliding-suite-id",
                        idp.clone(),
                        self.span(&idp),
                        format!(
                            "test suite ids `{}` and `{}` store their reports in the same folder `{folder}`",
                            crate::naming::Escaped(pitfile.test_suites[first].id.as_str()),
                            crate::naming::Escaped(suite.id.as_str())
                        ),
                    )
                    .with_label("collides")
                    .with_help(format!(
                        "rename one: `testSuites[{first}]` already stores under `{folder}` (characters other than letters, digits, `-`, `_` and `.` become `_`)"
                    ));
                    self.diags.push(d);
                }
                Some(_) => {}
                None => {
                    folders.insert(folder, i);
                }
            }
        }
        for (i, suite) in pitfile.test_suites.iter().enumerate() {
            let path = suites.index(i);
            self.printable_id(suite.id.as_str(), &path.key("id"));
            self.location(&suite.location, &path, None);
            if let Some(lock) = &suite.lock {
                self.lock(lock, &path.key("lock"));
            }
            if let Some(deployment) = &suite.deployment {
                self.graph(&deployment.graph, &path.key("deployment").key("graph"));
            }
        }
        if let Some(lm) = &pitfile.lock_manager {
            let path = FieldPath::root().key("lockManager");
            if let Some(location) = &lm.location {
                self.location(location, &path, None);
            }
            if lm.deploy.is_some() && lm.undeploy.is_none() {
                let p = path.key("deploy");
                let d = Diagnostic::error(
                    "pit::lock-manager-undeploy",
                    p.clone(),
                    self.span(&p),
                    "the Lock Manager has `deploy` but no `undeploy`",
                )
                .with_label("deployed here")
                .with_help("add `undeploy: { command: … }` so that PIT removes it at teardown");
                self.diags.push(d);
            }
        }
    }

    /// An id must be printable: a control character (ESC, NUL, a newline) or a character that
    /// reorders text makes it unusable in file names and misleading in output.
    fn printable_id(&mut self, id: &str, path: &FieldPath) {
        let Some((at, c)) = id
            .chars()
            .enumerate()
            .find(|(_, c)| crate::naming::is_unsafe_for_terminal(*c) || *c == '\t')
        else {
            return;
        };
        let d = Diagnostic::error(
            "pit::unprintable-id",
            path.clone(),
            self.span(path),
            format!(
                "`{}` has the unprintable character {} at character {}",
                crate::naming::Escaped(id),
                c.escape_unicode(),
                at + 1
            ),
        )
        .with_label("here")
        .with_help("ids may hold printable characters only: letters, digits, `-`, `_`, `.` and the like");
        self.diags.push(d);
    }

    fn lock(&mut self, lock: &Lock, path: &FieldPath) {
        for (i, id) in lock.ids.iter().enumerate() {
            self.printable_id(id.as_str(), &path.key("ids").index(i));
        }
        for (i, _) in first_uses(lock.ids.iter().map(LockId::as_str)).1 {
            let p = path.key("ids").index(i);
            let d = Diagnostic::warning(
                "pit::duplicate-lock-id",
                p.clone(),
                self.span(&p),
                format!("lock `{}` is listed twice", lock.ids[i]),
            )
            .with_help("remove the repeated id");
            self.diags.push(d);
        }
    }

    fn graph(&mut self, graph: &Graph, path: &FieldPath) {
        let comps_path = path.key("components");
        let all: Vec<(&Component, FieldPath)> = graph
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (c, comps_path.index(i)))
            .chain(std::iter::once((&graph.test_app, path.key("testApp"))))
            .collect();
        for (c, p) in &all {
            self.printable_id(c.id.as_str(), &p.key("id"));
            self.location(&c.location, p, Some(c.id.as_str()));
        }

        let (index, repeats) = first_uses(all.iter().map(|(c, _)| c.id.as_str()));
        for (i, first) in repeats {
            let idp = all[i].1.key("id");
            let d = Diagnostic::error(
                "pit::duplicate-component-id",
                idp.clone(),
                self.span(&idp),
                format!("component id `{}` is used twice in this graph", all[i].0.id),
            )
            .with_label("second use")
            .with_help(format!(
                "ids must be unique within a graph, test app included; `{}` already uses it",
                all[first].1
            ));
            self.diags.push(d);
        }

        let test_app_id = graph.test_app.id.as_str();
        let n = graph.components.len();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        // Which dependsOn entry made each edge, to point the cycle diagnostic at it.
        let mut edge_at: HashMap<(usize, usize), FieldPath> = HashMap::new();
        for (i, (c, p)) in all.iter().enumerate() {
            let is_test_app = i == n;
            for (k, dep) in c.depends_on.iter().enumerate() {
                let dp = p.key("dependsOn").index(k);
                let span = self.span(&dp);
                if dep == &c.id {
                    let d = Diagnostic::error(
                        "pit::self-dependency",
                        dp,
                        span,
                        format!("`{}` depends on itself", c.id),
                    )
                    .with_help("remove this entry");
                    self.diags.push(d);
                    continue;
                }
                if !is_test_app && dep.as_str() == test_app_id {
                    let d = Diagnostic::error(
                        "pit::depends-on-test-app",
                        dp,
                        span,
                        format!("`{}` depends on the test app `{dep}`", c.id),
                    )
                    .with_help("the test app is deployed after every component; remove this entry");
                    self.diags.push(d);
                    continue;
                }
                match index.get(dep.as_str()) {
                    Some(&j) if j < n => {
                        if is_test_app {
                            continue; // the test app waits for every component anyway
                        }
                        if deps[i].contains(&j) {
                            let d = Diagnostic::warning(
                                "pit::duplicate-dependency",
                                dp,
                                span,
                                format!("`{dep}` is listed twice"),
                            )
                            .with_help("remove the repeated entry");
                            self.diags.push(d);
                        } else {
                            deps[i].push(j);
                            edge_at.insert((i, j), dp);
                        }
                    }
                    _ => {
                        let known = graph
                            .components
                            .iter()
                            .map(|c| c.id.as_str())
                            .filter(|id| !id.is_empty() && *id != c.id.as_str());
                        let mut d = Diagnostic::error(
                            "pit::unknown-dependency",
                            dp,
                            span,
                            format!("`{}` depends on unknown component `{dep}`", c.id),
                        )
                        .with_label("no component has this id");
                        d = match suggest(dep.as_str(), known) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => {
                                let ids: Vec<&str> = graph.components.iter().map(|c| c.id.as_str()).collect();
                                d.with_help(format!("components in this graph: {}", ids.join(", ")))
                            }
                        };
                        self.diags.push(d);
                    }
                }
            }
        }

        for cycle in graph::find_cycles(&deps) {
            let names: Vec<&str> = cycle.path.iter().map(|&i| graph.components[i].id.as_str()).collect();
            let shown = format!("{} -> {}", names.join(" -> "), names[0]);
            let last = *cycle.path.last().expect("cycles are never empty");
            let at = edge_at[&(last, cycle.path[0])].clone();
            let d = Diagnostic::error(
                "pit::dependency-cycle",
                at.clone(),
                self.span(&at),
                format!("dependency cycle: {shown}"),
            )
            .with_label("this dependency closes the cycle")
            .with_help("components in a cycle can never start; remove one of these `dependsOn` entries");
            self.diags.push(d);
        }
    }

    /// Checks a LOCAL location of the item at `item`: that it stays inside the repository and
    /// that its folder exists. `component` is the id of a component (whose folder, without a
    /// path, is `<workspace>/<id>` in workspace mode); suites and the Lock Manager have none.
    fn location(&mut self, location: &Location, item: &FieldPath, component: Option<&str>) {
        let Some(dirs) = self.dirs.clone() else {
            return;
        };
        // None: REMOTE, or the base itself, which exists.
        let Some(rel) = location.local_dir(component, dirs.workspace) else {
            return;
        };
        let path = item.key("location");
        // Where to point: the path as written, or the component's id that stands for it.
        let at = if location.path.is_some() {
            path.key("path")
        } else {
            item.key("id")
        };
        let joined = normalize(&dirs.base.join(&rel));
        let escapes = !joined.starts_with(&dirs.root)
            || std::fs::canonicalize(&joined)
                .is_ok_and(|real| std::fs::canonicalize(&dirs.root).is_ok_and(|r| !real.starts_with(r)));
        if escapes {
            let d = Diagnostic::error("pit::path-escapes-repository", at.clone(), self.span(&at), format!("path `{rel}` leads outside the repository"))
                .with_label("outside the repository")
                .with_help("LOCAL paths are relative to the pitfile's folder (or `--workspace`) and must stay inside its repository (the nearest folder with `.git`); for another repository use `type: REMOTE`");
            self.diags.push(d);
            return;
        }
        if joined.is_dir() {
            return;
        }
        let what = if location.path.is_some() {
            format!("the folder `{rel}` does not exist in `{}`", dirs.base.display())
        } else {
            format!(
                "the component has no `location.path`, so it runs in `{rel}` of the workspace, and `{}` does not exist",
                joined.display()
            )
        };
        let help = match other_base(&dirs, &rel) {
            Some((base, why)) if normalize(&base) == normalize(&dirs.pitfile_dir) => format!(
                "`{rel}` exists relative to the pitfile's folder ({why}): run without `--workspace`, which makes LOCAL paths relative to the pitfile's folder"
            ),
            Some((base, why)) => format!(
                "`{rel}` exists relative to `{}` ({why}): run with `--workspace {}`",
                base.display(),
                base.display()
            ),
            None if dirs.workspace => {
                "LOCAL paths are relative to the workspace (`--workspace`): fix the path, or give `location.path`".to_owned()
            }
            None => "LOCAL paths are relative to the pitfile's folder, or to `--workspace DIR` when given: fix the path or pass the workspace".to_owned(),
        };
        let d = Diagnostic::error("pit::location-not-found", at.clone(), self.span(&at), what)
            .with_label("no such folder")
            .with_help(help);
        self.diags.push(d);
    }
}

/// Another likely base in which `rel` exists, and what it is: the pitfile's folder, the
/// working directory, or the repository root (or its parent, where the existing toolkit's
/// pitfiles keep their `examples/` layout).
fn other_base(dirs: &Dirs, rel: &str) -> Option<(PathBuf, &'static str)> {
    let mut candidates = vec![(dirs.pitfile_dir.clone(), "the pitfile's folder")];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push((cwd, "the working directory"));
    }
    candidates.push((dirs.root.clone(), "the repository root"));
    // The pitfile's ancestors inside the repository: `examples/node-1/pitfile.yml` names
    // `node-1/pit-test-app`, relative to `examples/`.
    for a in dirs.pitfile_dir.ancestors().skip(1) {
        if !a.starts_with(&dirs.root) {
            break;
        }
        candidates.push((a.to_path_buf(), "a folder above the pitfile"));
    }
    candidates
        .into_iter()
        .filter(|(b, _)| normalize(b) != normalize(&dirs.base))
        .find(|(b, _)| normalize(&b.join(rel)).is_dir())
}

/// Where each non-empty id is first used, and every later use as `(index, first index)`.
fn first_uses<'a>(ids: impl Iterator<Item = &'a str>) -> (HashMap<&'a str, usize>, Vec<(usize, usize)>) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, id) in ids.enumerate().filter(|(_, id)| !id.is_empty()) {
        match first.get(id) {
            Some(&f) => repeats.push((i, f)),
            None => {
                first.insert(id, i);
            }
        }
    }
    (first, repeats)
}

/// Resolves `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            PathPart::ParentDir => {
                out.pop();
            }
            PathPart::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The repository that holds `dir`: the nearest ancestor with a `.git`, else `dir` itself.
pub(crate) fn repository_root(dir: &Path) -> PathBuf {
    let dir = normalize(dir);
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf)
}
