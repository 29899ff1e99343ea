//! How `pit run` shows its progress: a live view on a terminal (indicatif), today's plain lines
//! elsewhere (`--progress plain`), or nothing but the summary (`-q`).
//!
//! The live view shows, per suite, a header with its phase and the time spent in it (the lock
//! queue's place while it waits, the tests' elapsed time while they run), and one line per
//! component: waiting on its dependencies, deploying, checking, ready with its time, failed,
//! undeploying, undeployed. What the plain mode prints as lines (component logs, forensics,
//! interruptions) is printed above the view.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pit_core::deploy::StepKind;
use pit_core::engine::{Event, EventKind};
use pit_core::plan::Plan;

/// Where a component stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// Waiting for these to be ready (none left: waiting for its turn).
    Waiting(Vec<String>),
    /// Its deploy command runs.
    Deploying,
    /// Its status check runs.
    Checking,
    /// Deployed and healthy, in this many ms.
    Ready(u64),
    /// A step failed; the first line of why.
    Failed(String),
    /// Its undeploy command runs.
    Undeploying,
    /// Gone.
    Undeployed,
}

impl Component {
    fn text(&self) -> String {
        match self {
            Self::Waiting(deps) if deps.is_empty() => "waiting".to_owned(),
            Self::Waiting(deps) => format!("waiting for {}", deps.join(", ")),
            Self::Deploying => "deploying".to_owned(),
            Self::Checking => "checking".to_owned(),
            Self::Ready(ms) => format!("✓ ready ({:.1}s)", *ms as f64 / 1000.0),
            Self::Failed(why) => format!("✗ {why}"),
            Self::Undeploying => "undeploying".to_owned(),
            Self::Undeployed => "undeployed".to_owned(),
        }
    }
}

/// One suite's state, as the events tell it: what the live view draws.
#[derive(Debug, Clone)]
pub struct SuiteView {
    /// The suite id.
    pub id: String,
    /// Its phase, as shown in the header.
    pub phase: String,
    /// Whether the phase is still moving (a spinner and its elapsed time).
    pub active: bool,
    /// Each component (the test app last), in deployment order.
    pub components: Vec<(String, Component)>,
    depends_on: BTreeMap<String, Vec<String>>,
}

impl SuiteView {
    /// The suite `id` of `plan`, before it starts.
    pub fn planned(plan: &Plan, id: &str) -> Self {
        let mut components = Vec::new();
        let mut depends_on = BTreeMap::new();
        if let Some(suite) = plan.suites.iter().find(|s| s.id.to_string() == id) {
            let all: Vec<_> = suite.waves.iter().flatten().collect();
            for c in &all {
                let deps: Vec<String> = c.depends_on.iter().map(ToString::to_string).collect();
                depends_on.insert(c.id.to_string(), deps.clone());
                components.push((c.id.to_string(), Component::Waiting(deps)));
            }
            if let Some(app) = &suite.test_app {
                // The test app waits for every component.
                let deps: Vec<String> = all.iter().map(|c| c.id.to_string()).collect();
                depends_on.insert(app.id.to_string(), deps.clone());
                components.push((app.id.to_string(), Component::Waiting(deps)));
            }
        }
        Self {
            id: id.to_owned(),
            phase: "waiting to start".to_owned(),
            active: false,
            components,
            depends_on,
        }
    }

    fn set(&mut self, component: &str, state: Component) {
        match self.components.iter_mut().find(|(id, _)| id == component) {
            Some((_, s)) => *s = state,
            None => self.components.push((component.to_owned(), state)),
        }
    }

    fn failed(&self, component: &str) -> bool {
        self.components
            .iter()
            .any(|(id, s)| id == component && matches!(s, Component::Failed(_)))
    }

    /// What is still not ready of what `component` waits for.
    fn refresh_waiting(&mut self) {
        let ready: Vec<String> = self
            .components
            .iter()
            .filter(|(_, s)| matches!(s, Component::Ready(_)))
            .map(|(id, _)| id.clone())
            .collect();
        for (id, state) in &mut self.components {
            if let Component::Waiting(deps) = state {
                let all = self.depends_on.get(id).cloned().unwrap_or_default();
                *deps = all.into_iter().filter(|d| !ready.contains(d)).collect();
            }
        }
    }

    /// Applies `event`; whether the header's phase changed (its timer restarts).
    pub fn apply(&mut self, kind: &EventKind) -> bool {
        let phase = |p: &str, active: bool| (Some(p.to_owned()), active);
        let (new_phase, active) = match kind {
            EventKind::SuiteStarted { environment } => phase(&format!("starting in {environment}"), true),
            EventKind::WaitingForLocks { ids } => phase(&format!("waiting for locks {}", ids.join(", ")), true),
            EventKind::LockQueue { position, holders } => {
                let held = if holders.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", holders.join(", "))
                };
                phase(&format!("waiting for locks: place {position} in the queue{held}"), true)
            }
            EventKind::LocksTaken => phase("deploying", true),
            EventKind::StepStarted { component, step } => {
                let state = match step {
                    StepKind::Deploy => Component::Deploying,
                    StepKind::StatusCheck => Component::Checking,
                    StepKind::Undeploy => Component::Undeploying,
                };
                // A failure stays on its line through the teardown.
                if !self.failed(component) {
                    self.set(component, state);
                }
                (None, self.active)
            }
            EventKind::Ready { component, elapsed_ms } => {
                self.set(component, Component::Ready(*elapsed_ms));
                self.refresh_waiting();
                (None, self.active)
            }
            EventKind::StepFailed { component, step, error } => {
                let first = error.lines().next().unwrap_or_default();
                self.set(
                    component,
                    Component::Failed(format!("{} failed: {first}", step.as_str())),
                );
                (None, self.active)
            }
            EventKind::TestsStarted { session } => phase(&format!("tests running (session {session})"), true),
            EventKind::TestsFinished { passed } => phase(if *passed { "tests passed" } else { "tests FAILED" }, false),
            EventKind::TearingDown => phase("tearing down", true),
            EventKind::Undeployed { component } => {
                if !self.failed(component) {
                    self.set(component, Component::Undeployed);
                }
                (None, self.active)
            }
            EventKind::SuiteFinished { outcome } => {
                let mark = if outcome == "passed" { "✓" } else { "✗" };
                phase(&format!("{mark} {outcome}"), false)
            }
            _ => (None, self.active),
        };
        self.active = active;
        match new_phase {
            Some(p) if p != self.phase => {
                self.phase = p;
                true
            }
            _ => false,
        }
    }

    /// The header line.
    pub fn header(&self) -> String {
        format!("{}: {}", self.id, self.phase)
    }

    /// A component's line.
    pub fn line(id: &str, state: &Component) -> String {
        format!("  {id:<24} {}", state.text())
    }
}

/// A line of plain output for `event`: `[suite] what`.
pub fn plain_line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::SuiteStarted { environment } => format!("starting in environment {environment}"),
        EventKind::WaitingForLocks { ids } => format!("waiting for locks {}", ids.join(", ")),
        EventKind::LockQueue { position, holders } => {
            format!(
                "waiting for locks: place {position} in the queue; {}",
                holders.join(", ")
            )
        }
        EventKind::StaleLocksTakenOver { holders } => {
            format!("took over locks whose holder's process is gone: {}", holders.join(", "))
        }
        EventKind::LocksTaken => "locks taken".into(),
        EventKind::Forensics { summary } => format!("forensics: {summary}"),
        EventKind::StepStarted { component, step } => format!("{component}: {}", step.as_str()),
        EventKind::Ready { component, elapsed_ms } => {
            format!("{component}: ready ({:.1}s)", *elapsed_ms as f64 / 1000.0)
        }
        EventKind::StepFailed { component, step, error } => format!("{component}: {} failed: {error}", step.as_str()),
        EventKind::Log { component, line } => format!("{component}| {line}"),
        EventKind::TestsStarted { session } => format!("tests started (session {session})"),
        EventKind::TestsFinished { passed } => format!("tests finished: {}", if *passed { "passed" } else { "FAILED" }),
        EventKind::TearingDown => "tearing down".into(),
        EventKind::Undeployed { component } => format!("{component}: undeployed"),
        EventKind::SuiteFinished { outcome } => format!("finished: {outcome}"),
        _ => format!("{:?}", e.kind),
    };
    format!("[{}] {what}", e.suite)
}

/// The live view: per suite a header bar (spinner, phase, time in the phase) and a bar per
/// component, one line each (indicatif measures a bar's height by its lines: a bar must not
/// hold a line break).
pub struct Live {
    multi: MultiProgress,
    plan: Plan,
    suites: BTreeMap<String, (SuiteView, ProgressBar, Vec<ProgressBar>)>,
    /// The terminal's settings before the view turned its echo off, restored at the end.
    echo: Option<nix::sys::termios::Termios>,
    /// Finished: drawn for the last time (drawing again would overwrite what follows it).
    done: bool,
}

/// Turns off the terminal's echo while the view is drawn: a typed Ctrl-C echoes `^C` at the
/// cursor, which moves the view down a line and leaves a stale line behind on every redraw.
/// The settings before, to restore.
fn echo_off() -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).ok()?;
    let mut quiet = before.clone();
    quiet.local_flags.remove(LocalFlags::ECHO | LocalFlags::ECHOCTL);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).ok()?;
    Some(before)
}

/// How often every line is redrawn (the spinners and times).
const TICK: Duration = Duration::from_millis(100);

fn style(active: bool) -> ProgressStyle {
    let template = if active {
        "{spinner:.cyan} {msg} {elapsed}"
    } else {
        "  {msg}"
    };
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

/// The terminal's width, less room for a spinner and a time: lines never wrap.
fn room() -> usize {
    let (_, cols) = console::Term::stderr().size();
    usize::from(cols).saturating_sub(12).max(20)
}

/// `text` cut to `width` characters, with `…` where it was cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Prints `text` above `multi`'s bars, each line cut to the terminal's width (a wrapped line
/// would shift the view).
fn print_above(multi: &MultiProgress, text: &str) {
    let width = room() + 10;
    for line in text.lines() {
        let _ = multi.println(fit(line, width));
    }
}

impl Live {
    /// A view of `plan`'s suites, drawn on stderr.
    pub fn new(plan: &Plan) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            plan: plan.clone(),
            suites: BTreeMap::new(),
            echo: echo_off(),
            done: false,
        }
    }

    /// Prints lines above the view, from anywhere (signal handling, `--follow`), each cut to
    /// the terminal's width.
    pub fn printer(&self) -> Box<dyn Fn(&str) + Send + Sync> {
        let multi = self.multi.clone();
        Box::new(move |text| print_above(&multi, text))
    }

    /// Shows `event`: in place, or (logs, forensics, lock take-overs, failures in full) as
    /// lines above.
    pub fn show(&mut self, event: &Event, redact: &dyn Fn(&str) -> String) {
        match &event.kind {
            EventKind::Log { .. } | EventKind::Forensics { .. } | EventKind::StaleLocksTakenOver { .. } => {
                print_above(&self.multi, &redact(&plain_line(event)));
                return;
            }
            EventKind::StepFailed { .. } => print_above(&self.multi, &redact(&plain_line(event))),
            _ => {}
        }
        let width = room();
        let (multi, plan) = (&self.multi, &self.plan);
        let (view, header, lines) = self.suites.entry(event.suite.clone()).or_insert_with(|| {
            let header = multi.add(ProgressBar::new_spinner());
            header.enable_steady_tick(TICK);
            (SuiteView::planned(plan, &event.suite), header, Vec::new())
        });
        if view.apply(&event.kind) {
            header.reset_elapsed();
        }
        header.set_style(style(view.active));
        header.set_message(fit(&redact(&view.header()), width));
        for (i, (id, state)) in view.components.iter().enumerate() {
            if i >= lines.len() {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style(false));
                bar.enable_steady_tick(TICK);
                lines.push(bar);
            }
            lines[i].set_message(fit(&redact(&SuiteView::line(id, state)), width));
        }
        if matches!(event.kind, EventKind::SuiteFinished { .. }) {
            header.finish();
            for bar in lines.iter() {
                bar.finish();
            }
        }
    }

    /// Leaves the view as it is on screen, stops drawing, and gives the terminal its echo back.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        for (_, header, lines) in self.suites.values() {
            header.finish();
            for bar in lines {
                bar.finish();
            }
        }
        if let Some(before) = self.echo.take() {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &before);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> SuiteView {
        let mut v = SuiteView {
            id: "s".into(),
            phase: String::new(),
            active: false,
            components: Vec::new(),
            depends_on: BTreeMap::new(),
        };
        for (id, deps) in [("db", vec![]), ("api", vec!["db"]), ("app", vec!["db", "api"])] {
            let deps: Vec<String> = deps.into_iter().map(str::to_owned).collect();
            v.depends_on.insert(id.into(), deps.clone());
            v.components.push((id.into(), Component::Waiting(deps)));
        }
        v
    }

    #[test]
    fn components_wait_on_what_is_not_ready_yet_and_show_their_state() {
        let mut v = view();
        assert!(v.apply(&EventKind::LockQueue {
            position: 2,
            holders: vec!["db held by ci-1".into()]
        }));
        assert_eq!(
            v.header(),
            "s: waiting for locks: place 2 in the queue (db held by ci-1)"
        );
        v.apply(&EventKind::LocksTaken);
        v.apply(&EventKind::StepStarted {
            component: "db".into(),
            step: StepKind::StatusCheck,
        });
        assert_eq!(v.components[0].1, Component::Checking);
        assert_eq!(v.components[2].1, Component::Waiting(vec!["db".into(), "api".into()]));
        v.apply(&EventKind::Ready {
            component: "db".into(),
            elapsed_ms: 1234,
        });
        assert_eq!(
            SuiteView::line("db", &v.components[0].1).trim_end(),
            format!("  {:<24} ✓ ready (1.2s)", "db")
        );
        assert_eq!(v.components[1].1, Component::Waiting(vec![]));
        assert_eq!(v.components[2].1, Component::Waiting(vec!["api".into()]));
        v.apply(&EventKind::StepFailed {
            component: "api".into(),
            step: StepKind::Deploy,
            error: "exit 1\nmore".into(),
        });
        assert_eq!(v.components[1].1, Component::Failed("deploy failed: exit 1".into()));
        assert!(v.apply(&EventKind::SuiteFinished {
            outcome: "error".into()
        }));
        assert_eq!((v.header().as_str(), v.active), ("s: ✗ error", false));
    }
}
