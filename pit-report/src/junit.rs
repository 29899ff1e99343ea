//! JUnit XML: one test case per scenario stream, a failure naming the unmet requirements.

use pit_core::protocol::{Metric, Outcome};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::schema::{parse_time, Report, Verdict};

fn metric_text(m: &Metric) -> String {
    match &m.value {
        serde_json::Value::Array(a) => format!("{} samples", a.len()),
        v => v.to_string(),
    }
}

fn seconds(start: &serde_json::Value, end: &serde_json::Value) -> f64 {
    match (start.as_str().and_then(parse_time), end.as_str().and_then(parse_time)) {
        (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1000.0,
        _ => 0.0,
    }
}

/// The report as JUnit XML (the common Jenkins/Surefire dialect): a `<testsuite>` per report,
/// a `<testcase>` per scenario stream (classname: the scenario), and for a stream that failed,
/// a `<failure>` listing each requirement beside what was observed. A run that ended in an
/// error before its tests is one test case with an `<error>`.
///
/// ```
/// # let suite: pit_core::sink::SuiteReport = serde_json::from_str(r#"{"schema":"pit.suite-report/v1","runId":"01jq","project":"shop","suiteId":"checkout","suiteName":"Checkout","outcome":"error","error":"db did not become ready","startedMs":0,"finishedMs":1000,"timeline":[]}"#).unwrap();
/// let xml = pit_report::to_junit(&pit_report::Report::from_suite(&suite));
/// assert!(xml.contains(r#"<error message="db did not become ready""#));
/// ```
pub fn to_junit(report: &Report) -> String {
    to_junit_all(
        report.project.as_deref().unwrap_or(&report.name),
        std::slice::from_ref(report),
    )
}

/// A whole run's reports as one JUnit XML file, called `name`: one `<testsuite>` per report,
/// each as [`to_junit`] writes it, under one `<testsuites>` with the totals. What GitLab's
/// `artifacts:reports:junit` and Jenkins' `junit` step read for a run of several suites.
///
/// ```
/// # let suite = |id: &str, outcome: &str| -> pit_core::sink::SuiteReport { serde_json::from_str(&format!(r#"{{"schema":"pit.suite-report/v1","runId":"01jq","project":"shop","suiteId":"{id}","suiteName":"{id}","outcome":"{outcome}","error":"db did not become ready","startedMs":0,"finishedMs":1000,"timeline":[]}}"#)).unwrap() };
/// let reports = [pit_report::Report::from_suite(&suite("checkout", "error")), pit_report::Report::from_suite(&suite("search", "error"))];
/// let xml = pit_report::to_junit_all("pit run 01jq", &reports);
/// assert!(xml.contains(r#"<testsuites name="pit run 01jq" tests="2" failures="0" errors="2""#), "{xml}");
/// assert_eq!(xml.matches("<testsuite ").count(), 2);
/// ```
pub fn to_junit_all(name: &str, reports: &[Report]) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let counts: Vec<Counts> = reports.iter().map(Counts::of).collect();
    let sum = |f: fn(&Counts) -> usize| counts.iter().map(f).sum::<usize>();
    let total: f64 = counts.iter().map(|c| c.time).sum();
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut suites = BytesStart::new("testsuites");
    suites.push_attribute(("name", name));
    suites.push_attribute(("tests", sum(|c| c.tests).to_string().as_str()));
    suites.push_attribute(("failures", sum(|c| c.failures).to_string().as_str()));
    suites.push_attribute(("errors", sum(|c| usize::from(c.errored)).to_string().as_str()));
    suites.push_attribute(("time", format!("{total:.3}").as_str()));
    let _ = w.write_event(Event::Start(suites));
    for (report, counts) in reports.iter().zip(&counts) {
        write_suite(&mut w, report, counts);
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
    let mut out = xml_chars(&String::from_utf8(w.into_inner()).unwrap_or_default());
    out.push('\n');
    out
}

/// A report's test counts, as its `<testsuite>` states them.
struct Counts {
    tests: usize,
    failures: usize,
    /// It ended in an error before its tests: one test case with an `<error>`.
    errored: bool,
    /// Seconds.
    time: f64,
}

impl Counts {
    fn of(report: &Report) -> Self {
        let streams = report.scenarios.iter().map(|sc| sc.streams.len()).sum::<usize>();
        let errored = report.verdict() == Verdict::Error && streams == 0;
        let failures = report
            .scenarios
            .iter()
            .flat_map(|sc| &sc.streams)
            .filter(|st| st.outcome == Outcome::Fail)
            .count();
        let time = match (report.start_ms(), crate::schema::parse_time(&report.end_time)) {
            (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1000.0,
            _ => 0.0,
        };
        Self {
            tests: if errored { 1 } else { streams },
            failures,
            errored,
            time,
        }
    }
}

/// One report's `<testsuite>`.
fn write_suite(w: &mut Writer<Vec<u8>>, report: &Report, counts: &Counts) {
    let streams: Vec<_> = report
        .scenarios
        .iter()
        .flat_map(|sc| sc.streams.iter().map(move |st| (sc, st)))
        .collect();
    let (errored, total) = (counts.errored, counts.time);
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", report.name.as_str()));
    suite.push_attribute(("tests", counts.tests.to_string().as_str()));
    suite.push_attribute(("failures", counts.failures.to_string().as_str()));
    suite.push_attribute(("errors", usize::from(errored).to_string().as_str()));
    suite.push_attribute(("skipped", "0"));
    suite.push_attribute(("time", format!("{total:.3}").as_str()));
    suite.push_attribute(("timestamp", report.start_time.trim_end_matches('Z')));
    let _ = w.write_event(Event::Start(suite));
    let props: Vec<(&str, &str)> = [
        ("runId", report.run_id.as_deref()),
        ("project", report.project.as_deref()),
        ("suite", report.suite.as_deref()),
        ("branch", report.branch.as_deref()),
        ("gitCommit", report.git_commit.as_deref()),
        ("specHash", report.spec_hash.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if !props.is_empty() {
        let _ = w.write_event(Event::Start(BytesStart::new("properties")));
        for (k, v) in props {
            let mut p = BytesStart::new("property");
            p.push_attribute(("name", k));
            p.push_attribute(("value", v));
            let _ = w.write_event(Event::Empty(p));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("properties")));
    }
    if errored {
        let message = report.error.as_deref().unwrap_or("the run ended before its tests");
        let mut case = BytesStart::new("testcase");
        case.push_attribute(("classname", report.name.as_str()));
        case.push_attribute(("name", "pit run"));
        case.push_attribute(("time", format!("{total:.3}").as_str()));
        let _ = w.write_event(Event::Start(case));
        let mut e = BytesStart::new("error");
        e.push_attribute(("message", message));
        e.push_attribute(("type", report.outcome.as_deref().unwrap_or("error")));
        let _ = w.write_event(Event::Start(e));
        let _ = w.write_event(Event::Text(BytesText::new(message)));
        let _ = w.write_event(Event::End(BytesEnd::new("error")));
        let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
    }
    for (sc, st) in streams {
        let mut case = BytesStart::new("testcase");
        case.push_attribute(("classname", sc.name.as_str()));
        case.push_attribute(("name", st.name.as_str()));
        case.push_attribute(("time", format!("{:.3}", seconds(&sc.start_time, &sc.end_time)).as_str()));
        let _ = w.write_event(Event::Start(case));
        if st.outcome == Outcome::Fail {
            let lines: Vec<String> = st
                .requirements
                .iter()
                .map(|r| {
                    let observed = st
                        .observations
                        .iter()
                        .find(|o| o.name == r.name)
                        .map_or_else(|| "not observed".to_owned(), metric_text);
                    format!("{}: required {}, observed {}", r.name, metric_text(r), observed)
                })
                .collect();
            let message = if lines.is_empty() {
                "the stream failed (it states no requirements)".to_owned()
            } else {
                format!("requirements not met: {}", lines.join("; "))
            };
            let mut f = BytesStart::new("failure");
            f.push_attribute(("message", message.as_str()));
            f.push_attribute(("type", "requirement"));
            let _ = w.write_event(Event::Start(f));
            let _ = w.write_event(Event::Text(BytesText::new(&lines.join("\n"))));
            let _ = w.write_event(Event::End(BytesEnd::new("failure")));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
}

/// `text` with the characters XML 1.0 forbids (C0 controls but tab, newline and carriage
/// return; U+FFFE and U+FFFF), even as character references, written out as `\u{1b}`: names
/// and messages from a report reach JUnit consumers readable, and the file stays valid.
fn xml_chars(text: &str) -> String {
    let forbidden = |c: char| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}');
    if !text.chars().any(forbidden) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if forbidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
