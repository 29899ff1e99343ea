//! Self-contained HTML pages: a report (with its baseline deltas), and an index over runs.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::{context, Environment, Value};
use pit_core::protocol::{Metric, Outcome};
use serde::Serialize;

use crate::compare::{Change, Comparison, History};
use crate::schema::{parse_time, samples, stats, Report, Verdict};
use crate::svg;

/// Why a page could not be rendered (a bug in a template: they are built in).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the {page} page: {source}")]
pub struct RenderError {
    page: &'static str,
    #[source]
    source: minijinja::Error,
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Built into the binary: a page needs no files and makes no requests.
        for (name, text) in [
            ("base.html", include_str!("../templates/base.html")),
            ("report.html", include_str!("../templates/report.html")),
            ("index.html", include_str!("../templates/index.html")),
        ] {
            env.add_template(name, text).expect("the built-in templates parse");
        }
        env
    })
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn metric_text(m: &Metric) -> String {
    match &m.value {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), num),
        serde_json::Value::Array(a) => {
            let s = stats(m);
            let p = |name: &str| s.iter().find(|(k, _)| k.as_deref() == Some(name)).map(|(_, v)| num(*v));
            format!(
                "{} samples, p50 {}, p99 {}",
                a.len(),
                p("p50").unwrap_or_default(),
                p("p99").unwrap_or_default()
            )
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_f64().map_or_else(|| v.to_string(), num)))
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    }
}

fn delta_text(d: Option<f64>) -> String {
    match d {
        Some(d) if d.is_finite() => format!("{d:+.1}%"),
        Some(_) => "new from zero".into(),
        None => "—".into(),
    }
}

#[derive(Serialize)]
struct Row {
    name: String,
    required: String,
    observed: String,
    baseline: String,
    delta: String,
    change: &'static str,
}

#[derive(Serialize)]
struct StreamView {
    name: String,
    passed: bool,
    rows: Vec<Row>,
    charts: Vec<Value>,
}

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Regression => "regression",
        Change::Improvement => "improvement",
        Change::Changed => "changed",
        Change::Unchanged => "unchanged",
        Change::New => "new",
        Change::Missing => "missing",
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Error => "error",
    }
}

/// The report as one self-contained HTML page: the verdict first, then each scenario's
/// requirements against observations (with the change from `comparison` where given),
/// distribution charts, the run's timeline as a Gantt chart, and the comparison table.
///
/// ```
/// # let suite: pit_core::sink::SuiteReport = serde_json::from_str(r#"{"schema":"pit.suite-report/v1","runId":"01jq","project":"shop","suiteId":"checkout","suiteName":"Checkout","outcome":"passed","startedMs":0,"finishedMs":1000,"timeline":[]}"#).unwrap();
/// let html = pit_report::html::render_report(&pit_report::Report::from_suite(&suite), None).unwrap();
/// assert!(html.contains(r#"id="verdict""#));
/// ```
///
/// # Errors
/// [`RenderError`] only for a bug in a built-in template.
pub fn render_report(report: &Report, comparison: Option<&Comparison>) -> Result<String, RenderError> {
    let verdict = verdict_name(report.verdict());
    let scenarios: Vec<_> = report
        .scenarios
        .iter()
        .map(|sc| {
            let streams: Vec<StreamView> = sc
                .streams
                .iter()
                .map(|st| {
                    let mut names: Vec<&str> = st.requirements.iter().map(|m| m.name.as_str()).collect();
                    for o in &st.observations {
                        if !names.contains(&o.name.as_str()) {
                            names.push(&o.name);
                        }
                    }
                    let mut rows = Vec::new();
                    for name in names {
                        let req = st.requirements.iter().find(|m| m.name == name);
                        let obs = st.observations.iter().find(|m| m.name == name);
                        let figures: Vec<(Option<String>, f64)> = obs.map(stats).unwrap_or_default();
                        // The row's change: the worst of its figures'.
                        let cmp = comparison.map(|c| {
                            figures
                                .iter()
                                .filter_map(|(stat, _)| {
                                    c.get(&crate::schema::figure_key(&sc.name, &st.name, name, stat.as_deref()))
                                })
                                .collect::<Vec<_>>()
                        });
                        let worst = cmp.as_ref().and_then(|ms| {
                            ms.iter()
                                .find(|m| m.change == Change::Regression)
                                .or_else(|| {
                                    ms.iter().max_by(|a, b| {
                                        a.delta_pct
                                            .unwrap_or(0.0)
                                            .abs()
                                            .total_cmp(&b.delta_pct.unwrap_or(0.0).abs())
                                    })
                                })
                                .copied()
                        });
                        rows.push(Row {
                            name: name.to_owned(),
                            required: req.map(metric_text).unwrap_or_else(|| "—".into()),
                            observed: obs.map(metric_text).unwrap_or_else(|| "not observed".into()),
                            baseline: worst.and_then(|m| m.baseline).map_or_else(|| "—".into(), num),
                            delta: worst.map_or_else(
                                || "—".into(),
                                |m| {
                                    let stat = m
                                        .key
                                        .rsplit_once('.')
                                        .filter(|_| figures.len() > 1)
                                        .map(|(_, s)| format!(" ({s})"))
                                        .unwrap_or_default();
                                    format!("{}{stat}", delta_text(m.delta_pct))
                                },
                            ),
                            change: worst.map_or("unchanged", |m| change_name(m.change)),
                        });
                    }
                    let charts = st
                        .observations
                        .iter()
                        .filter_map(|m| {
                            let title = format!("{} / {}: {}", sc.name, st.name, m.name);
                            let chart = if let Some(xs) = samples(m) {
                                svg::histogram(&title, &xs)
                            } else {
                                let items: Vec<(String, f64)> =
                                    stats(m).into_iter().filter_map(|(k, v)| k.map(|k| (k, v))).collect();
                                if items.len() < 2 {
                                    return None;
                                }
                                svg::bars(&title, &items)
                            };
                            Some(Value::from_safe_string(chart))
                        })
                        .collect();
                    StreamView {
                        name: st.name.clone(),
                        passed: st.outcome == Outcome::Pass,
                        rows,
                        charts,
                    }
                })
                .collect();
            context! { name => sc.name.clone(), components => sc.components.clone(), streams => streams }
        })
        .collect();
    let duration = match (report.start_ms(), parse_time(&report.end_time)) {
        (Some(a), Some(b)) if b >= a => Some(format!("{:.1} s", (b - a) as f64 / 1000.0)),
        _ => None,
    };
    let comparison_rows: Vec<_> = comparison
        .map(|c| {
            c.metrics
                .iter()
                .map(|m| {
                    context! {
                        key => m.key.clone(),
                        baseline => m.baseline.map_or_else(|| "—".into(), num),
                        current => m.current.map_or_else(|| "—".into(), num),
                        delta => delta_text(m.delta_pct),
                        threshold => num(m.threshold_pct),
                        test => match (m.test, m.p_value) { (Some(t), Some(p)) if p < 0.001 => format!("{t}, p<0.001"),
                            (Some(t), Some(p)) => format!("{t}, p={p:.3}"), _ => "—".into() },
                        change => change_name(m.change),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    env()
        .get_template("report.html")
        .and_then(|t| {
            t.render(context! {
                pit_version => env!("CARGO_PKG_VERSION"),
                r => report,
                verdict => verdict,
                duration => duration,
                scenarios => scenarios,
                gantt => Value::from_safe_string(svg::gantt(&report.timeline)),
                comparison => comparison,
                comparison_rows => comparison_rows,
                regressions => comparison.map_or(0, Comparison::regressions),
            })
        })
        .map_err(|source| RenderError { page: "report", source })
}

/// A run listed on an index page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexRun {
    /// The run.
    pub run_id: String,
    /// Its start.
    pub start_time: String,
    /// Its suite.
    pub suite: String,
    /// Its commit, shortened.
    pub commit: String,
    /// `passed`, `failed` or `error`.
    pub verdict: &'static str,
    /// `pass`, `fail` or `err` (the CSS class).
    pub verdict_class: &'static str,
    /// A link to its page, relative to the index.
    pub href: Option<String>,
}

/// The Content Security Policy of every page: no script, no request, styles inline only
/// (the pages also carry it in a `<meta>` tag, for files opened from disk).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A relative link to the folder `segments` (`a/b/c/`), each segment percent-encoded, so that
/// no value from a report (a run id such as `javascript:alert(1)//`) can become a scheme, a
/// host or a step up: build every link to a report with it.
///
/// ```
/// use pit_report::html::relative_link;
/// assert_eq!(relative_link(&["shop", "checkout", "01jq"]), "shop/checkout/01jq/");
/// assert_eq!(relative_link(&["javascript:alert(1)//"]), "javascript%3Aalert%281%29%2F%2F/");
/// assert_eq!(relative_link(&[".."]), "%2E%2E/");
/// ```
pub fn relative_link(segments: &[&str]) -> String {
    let mut out = String::new();
    for seg in segments {
        let all_dots = seg.chars().all(|c| c == '.');
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) || (b == b'.' && !all_dots) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.push('/');
    }
    out
}

/// Whether `href` is a relative path (no scheme, no host): what index pages may link to.
fn is_relative_path(href: &str) -> bool {
    let before_slash = href.split('/').next().unwrap_or_default();
    !href.starts_with('/') && !href.starts_with('\\') && !before_slash.contains(':')
}

impl IndexRun {
    /// The index entry of `report`, linking to `href` (built with [`relative_link`]). An
    /// `href` that is not a relative path (it has a scheme or a host) is dropped: the entry is
    /// then shown without a link.
    pub fn of(report: &Report, href: Option<String>) -> Self {
        let href = href.filter(|h| is_relative_path(h));
        let v = report.verdict();
        Self {
            run_id: report.run_id.clone().unwrap_or_default(),
            start_time: report.start_time.clone(),
            suite: report.suite.clone().unwrap_or_else(|| report.name.clone()),
            commit: report
                .git_commit
                .as_deref()
                .map(|c| c.chars().take(12).collect())
                .unwrap_or_default(),
            verdict: verdict_name(v),
            verdict_class: match v {
                Verdict::Passed => "pass",
                Verdict::Failed => "fail",
                Verdict::Error => "err",
            },
            href,
        }
    }
}

/// An index page over stored runs (newest first) with a trend chart per figure of `history`
/// (change points marked), at most `max_trends` of them.
///
/// # Errors
/// [`RenderError`] only for a bug in a built-in template.
pub fn render_index(
    title: &str,
    runs: &[IndexRun],
    history: &History,
    max_trends: usize,
) -> Result<String, RenderError> {
    let mut runs: Vec<&IndexRun> = runs.iter().collect();
    runs.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(b.run_id.cmp(&a.run_id)));
    let passed = runs.iter().filter(|r| r.verdict == "passed").count();
    let trends: Vec<_> = history
        .series
        .iter()
        .take(max_trends)
        .map(|(key, values)| {
            let cps: Vec<usize> = history.change_points.get(key).map(|c| c.iter().map(|c| c.index).collect()).unwrap_or_default();
            let at: Vec<String> = cps.iter().filter_map(|i| history.runs.get(*i)).map(|r| r.run_id.clone()).collect();
            context! { key => key.clone(), chart => Value::from_safe_string(svg::trend(key, values, &cps)), change_points => at }
        })
        .collect();
    env()
        .get_template("index.html")
        .and_then(|t| {
            t.render(context! {
                pit_version => env!("CARGO_PKG_VERSION"),
                title => title,
                runs => runs,
                passed => passed,
                trends => trends,
            })
        })
        .map_err(|source| RenderError { page: "index", source })
}

/// Groups reports by `(project, suite)`.
pub fn by_suite(reports: &[Report]) -> BTreeMap<(String, String), Vec<Report>> {
    let mut out: BTreeMap<(String, String), Vec<Report>> = BTreeMap::new();
    for r in reports {
        out.entry((
            r.project.clone().unwrap_or_default(),
            r.suite.clone().unwrap_or_else(|| r.name.clone()),
        ))
        .or_default()
        .push(r.clone());
    }
    out
}
