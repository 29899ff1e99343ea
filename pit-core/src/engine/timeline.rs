//! The timeline of a suite's steps, kept for its report.

#[allow(clippy::wildcard_imports)] // the engine's own types
use super::*;

/// The run's timeline, shared by concurrent steps.
#[derive(Debug, Clone, Default)]
pub(super) struct Timeline(Arc<Mutex<Vec<TimelineEntry>>>);

impl Timeline {
    pub(super) fn start(&self, step: &str, component: Option<&ComponentPlan>) -> usize {
        let mut v = self.0.lock().expect("no panics while held");
        v.push(TimelineEntry {
            step: step.to_owned(),
            component: component.map(|c| c.id.to_string()),
            start_ms: now_ms(),
            end_ms: 0,
            outcome: "running".into(),
            detail: None,
        });
        v.len() - 1
    }

    pub(super) fn end(&self, at: usize, outcome: &str, detail: Option<String>) {
        let mut v = self.0.lock().expect("no panics while held");
        let e = &mut v[at];
        e.end_ms = now_ms();
        e.outcome = outcome.to_owned();
        e.detail = detail;
    }

    pub(super) fn finish(&self, at: usize, result: &Result<Option<String>, &DeployError>) {
        match result {
            Ok(detail) => self.end(at, "ok", detail.clone()),
            Err(e) if e.is_cancelled() => self.end(at, "cancelled", None),
            Err(e) => self.end(at, "failed", Some(error_chain(*e))),
        }
    }

    pub(super) fn record(&self, entry: TimelineEntry) {
        self.0.lock().expect("no panics while held").push(entry);
    }

    pub(super) fn entries(&self) -> Vec<TimelineEntry> {
        self.0.lock().expect("no panics while held").clone()
    }
}
