//! Reports: the schema (against docs/schemas/report.schema.json and the existing toolkit's
//! files), JUnit XML (against a JUnit schema, with xmllint), HTML (in headless Chromium) and
//! comparison.

#[path = "common/junit_schema.rs"]
mod junit_schema;

use std::path::{Path, PathBuf};
use std::process::Command;

use pit_report::compare::{baseline_of, compare, Change, Thresholds};
use pit_report::html::{render_index, render_report, IndexRun};
use pit_report::{to_junit, Report, Verdict};
use serde_json::json;

mod support;
use support::{report, scratch, suite_report};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata").join(name)
}

fn schema_validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/report.schema.json"))
            .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn reports_of_the_existing_toolkit_load_and_ours_match_the_schema() {
    let old = Report::load(&testdata("existing-toolkit-report.json")).unwrap();
    assert_eq!(old.verdict(), Verdict::Failed, "one stream failed");
    assert_eq!(old.scenarios[0].components[0].name, "node-1");
    assert!(old.run_id.is_none(), "additions are optional");
    let v = schema_validator();
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata("existing-toolkit-report.json")).unwrap()).unwrap();
    assert!(v.is_valid(&raw), "the existing toolkit's report fits the schema");
    for r in [
        report("01jq0000000000000000000001", 100.0, 140.0),
        Report::from_suite(&suite_report("error")),
    ] {
        let value = serde_json::to_value(&r).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}

/// Every report shape the existing toolkit writes or ships loads, with its figures.
#[test]
fn every_report_variant_of_the_existing_toolkit_loads() {
    let dir = testdata("toolkit");
    // Shipped with its report UI: `schemaVersion` a number, distributions under `values`.
    let ui = Report::load(&dir.join("ui-sample-number-version.json")).unwrap();
    assert_eq!(ui.schema_version, "1.0");
    assert_eq!(ui.verdict(), Verdict::Failed, "the Refund stream failed");
    assert_eq!(ui.scenarios[0].components[1].commit_version.as_deref(), Some("d4e5f6a"));
    let keys: Vec<(String, f64)> = ui.figures().into_iter().map(|f| (f.key, f.value)).collect();
    assert!(
        keys.contains(&("Peak hour/Place order/latency.99".to_owned(), 72.0)),
        "{keys:?}"
    );
    // Early reports carry no version: read as 1.0.
    let bare = Report::load(&dir.join("no-version.json")).unwrap();
    assert_eq!(bare.schema_version, "1.0");
    assert_eq!(bare.verdict(), Verdict::Passed);
    // As its deployer writes them: empty metadata, components without versions, a null
    // (NaN in JavaScript) observation, a scenario named by `id`.
    let written = Report::load(&dir.join("deployer-written.json")).unwrap();
    assert_eq!(written.scenarios[1].name, "GET /time x 10000");
    assert_eq!(written.scenarios[0].components[0].commit_version, None);
    assert_eq!(written.verdict(), Verdict::Failed);
    assert_eq!(written.figures().len(), 1, "the null observation has no figure");
    // Optional fields missing.
    let minimal = Report::load(&dir.join("minimal.json")).unwrap();
    assert_eq!(minimal.name, "");
    assert_eq!(minimal.verdict(), Verdict::Error, "no streams: nothing passed");
    // Each renders and converts.
    for r in [&ui, &bare, &written, &minimal] {
        let html = pit_report::html::render_report(r, None).unwrap();
        assert!(html.contains("<html"), "renders");
        assert!(pit_report::to_junit(r).contains("<testsuite"), "converts");
    }
}

#[test]
fn bad_report_files_say_where_and_what() {
    let (_guard, dir) = scratch("bad");
    let cases = [
        (
            "broken.json",
            "{\n  \"schemaVersion\": \"1.0\",\n  \"name\": }",
            "broken.json:3:",
        ),
        (
            "version.json",
            r#"{"schemaVersion":"2.0","name":"x"}"#,
            "schema version `2.0` is not supported",
        ),
        (
            "version-type.json",
            "{\n  \"schemaVersion\": true,\n  \"name\": \"x\"}",
            "version-type.json:2:",
        ),
        (
            "scalar-type.json",
            r#"{"schemaVersion":1.0,"scenarios":[{"name":"s","streams":[{"name":"st","outcome":"PASS","observations":[{"name":"tps","type":"SCALAR","value":"fast"}]}]}]}"#,
            "metric `tps`: the value of a SCALAR is a string; expected a number",
        ),
        (
            "distribution-type.json",
            r#"{"schemaVersion":1.0,"scenarios":[{"name":"s","streams":[{"name":"st","outcome":"PASS","observations":[{"name":"latency","type":"DISTRIBUTION","values":{"95":"2ms"}}]}]}]}"#,
            "the value of a DISTRIBUTION is an object holding a string",
        ),
        (
            "name-type.json",
            r#"{"schemaVersion":"1.0","name":7}"#,
            "invalid type: integer `7`, expected a string",
        ),
        (
            "types.json",
            r#"{"schemaVersion":"1.0","name":"x","startTime":"a","endTime":"b","scenarios":[{"name":1}]}"#,
            "invalid type",
        ),
    ];
    for (file, text, says) in cases {
        std::fs::write(dir.join(file), text).unwrap();
        let err = Report::load(&dir.join(file)).unwrap_err().to_string();
        assert!(err.contains(says), "{file}: {err}");
    }
    let err = Report::load(&dir.join("absent.json")).unwrap_err().to_string();
    assert!(err.contains("cannot read the report"), "{err}");
}

fn xmllint_validates(xml: &str, name: &str) -> Result<(), String> {
    let (_guard, dir) = scratch(name);
    let file = dir.join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    junit_schema::validate(&file)
}

#[test]
fn junit_has_a_test_case_per_stream_with_the_unmet_requirement_and_fits_the_schema() {
    let old = Report::load(&testdata("existing-toolkit-report.json")).unwrap();
    let xml = to_junit(&old);
    xmllint_validates(&xml, "junit-ok").unwrap();
    assert!(xml.contains(r#"tests="2" failures="1" errors="0""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase classname="Steady load" name="POST /orders" time="300.000">"#),
        "{xml}"
    );
    assert!(xml.contains("throughput: required 50, observed 31.5"), "{xml}");
    // A run that failed before its tests is one errored case.
    let xml = to_junit(&Report::from_suite(&suite_report("error")));
    xmllint_validates(&xml, "junit-error").unwrap();
    assert!(
        xml.contains(r#"<error message="status check of `db` did not pass &lt;&amp;&gt;""#),
        "{xml}"
    );
    // And the schema check can fail.
    assert!(xmllint_validates("<testsuites><testsuite name=\"x\"/></testsuites>", "junit-bad").is_err());
}

/// Loads `html` in headless Chromium: the DOM it built, and the console messages it logged.
fn chromium(html: &Path, screenshot: Option<&Path>) -> (String, Vec<String>) {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1200,1800",
    ]);
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs (Debian's chromium package; scripts/test installs it)");
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn the_html_report_loads_in_chromium_without_console_errors_or_requests() {
    let (_guard, dir) = scratch("html");
    let baselines: Vec<Report> = (1..=6)
        .map(|i| report(&format!("01jq00000000000000000000b{i}"), 100.0 + f64::from(i), 140.0))
        .collect();
    let mut current = report("01jq0000000000000000000c01", 135.0, 90.0);
    current.timeline = suite_report("passed").timeline;
    let cmp = compare(&current, &baselines, &Thresholds::default());
    let html = render_report(&current, Some(&cmp)).unwrap();
    for forbidden in ["http://", "https://", "<script", "<link"] {
        let outside: Vec<&str> = html.matches(forbidden).collect();
        // The SVG namespace is the only URL allowed, and it is never fetched.
        assert!(
            outside.is_empty()
                || (forbidden == "http://"
                    && html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count()),
            "the page would fetch `{forbidden}`"
        );
    }
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let (dom, console) = chromium(&page, None);
    assert!(console.is_empty(), "console messages: {console:?}");
    for needle in [
        r#"id="verdict" class="verdict failed""#,
        r#"id="regressions""#,
        r#"class="scenario" id="scenario-1""#,
        r#"id="timeline""#,
        r#"class="chart gantt""#,
        r#"id="comparison""#,
        "<td class=\"regression\">regression</td>",
        "Load / GET /items: latency",
    ] {
        assert!(dom.contains(needle), "the page lacks {needle}");
    }
    // The check can fail: a page that logs an error is caught.
    let noisy = dir.join("noisy.html");
    std::fs::write(
        &noisy,
        "<html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    assert!(!chromium(&noisy, None).1.is_empty(), "console errors are seen");
    // A screenshot for docs/ (refreshed by hand from target/ when the page changes).
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-screenshot.png");
    let _ = chromium(&page, Some(&png));
    assert!(
        std::fs::metadata(&png).map(|m| m.len() > 10_000).unwrap_or(false),
        "a screenshot was taken"
    );
}

#[test]
fn the_index_page_lists_runs_and_trends_with_change_points() {
    let (_guard, dir) = scratch("index");
    let reports: Vec<Report> = (0..12)
        .map(|i| {
            report(
                &format!("01jq00000000000000000000{i:02}"),
                if i < 6 { 100.0 } else { 150.0 },
                140.0,
            )
        })
        .collect();
    let history = pit_report::compare::history(&reports, 5.0);
    let runs: Vec<IndexRun> = reports
        .iter()
        .map(|r| IndexRun::of(r, Some(format!("{}/report.html", r.run_id.as_deref().unwrap()))))
        .collect();
    let html = render_index("shop / checkout", &runs, &history, 20).unwrap();
    let page = dir.join("index.html");
    std::fs::write(&page, &html).unwrap();
    let (dom, console) = chromium(&page, None);
    assert!(console.is_empty(), "{console:?}");
    assert!(dom.contains(r#"id="run-count">12 runs"#), "{dom}");
    assert!(
        dom.contains("level changed at 01jq0000000000000000000006"),
        "the step at run 6 is marked"
    );
    assert!(dom.contains(r#"href="01jq0000000000000000000011/report.html""#));
}

#[test]
fn comparison_flags_regressions_by_threshold_and_test_and_picks_fair_baselines() {
    let base: Vec<Report> = (1..=6)
        .map(|i| report(&format!("b{i}"), 100.0 + f64::from(i % 3), 140.0))
        .collect();
    // 5 % slower: within the default 10 %, beyond a 3 % threshold set for latency.
    let slower = report("c1", 106.0, 140.0);
    let c = compare(&slower, &base, &Thresholds::default());
    assert_eq!(c.regressions(), 0, "{c:?}");
    let mut strict = Thresholds::default();
    strict.set("latency.p99=3%").unwrap();
    let c = compare(&slower, &base, &strict);
    let p99 = c.get("Load/GET /items/latency.p99").unwrap();
    assert_eq!(p99.change, Change::Regression, "{p99:?}");
    assert_eq!(
        p99.test,
        Some("mann-whitney"),
        "samples on both sides allow a rank test"
    );
    assert_eq!(c.get("Load/GET /items/latency.p50").unwrap().threshold_pct, 10.0);
    // Throughput: higher is better.
    let faster = report("c2", 100.0, 200.0);
    let c = compare(&faster, &base, &Thresholds::default());
    assert_eq!(c.get("Load/GET /items/throughput").unwrap().change, Change::Improvement);
    // Baselines: same branch and spec, earlier, the last N.
    let mut other_branch = report("b7", 300.0, 10.0);
    other_branch.branch = Some("feature".into());
    let mut history = base.clone();
    history.push(other_branch);
    let mut current = report("c3", 100.0, 140.0);
    current.branch = Some("main".into());
    for r in &mut history {
        r.branch.get_or_insert_with(|| "main".into());
    }
    let picked: Vec<&str> = baseline_of(&current, &history, 3)
        .iter()
        .filter_map(|r| r.run_id.as_deref())
        .collect();
    assert_eq!(picked, ["b4", "b5", "b6"]);
    let json = serde_json::to_value(compare(&current, &base, &Thresholds::default())).unwrap();
    assert_eq!(json["baselineRuns"], json!(["b1", "b2", "b3", "b4", "b5", "b6"]));
}

/// Loads `html` in Chromium with a harness before the page's own content that records any
/// `alert`, `confirm` or `prompt` in the title and clicks every link once the page is built:
/// whether the page opened a dialog.
fn opens_a_dialog(dir: &Path, name: &str, html: &str) -> bool {
    let harness = "<script>for (const f of ['alert','confirm','prompt']) { window[f] = () => { document.title = 'DIALOG-OPENED'; }; }\
        document.addEventListener('DOMContentLoaded', () => { for (const a of document.querySelectorAll('a')) a.click(); });</script>";
    let page = dir.join(name);
    std::fs::write(&page, format!("{harness}{html}")).unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).contains("<title>DIALOG-OPENED")
}

#[test]
fn a_hostile_run_id_opens_no_dialog_from_an_index_page() {
    // Issue 13: `"runId":"javascript:alert(document.domain)//"` became a live link.
    let (_guard, dir) = scratch("xss");
    let hostile = "javascript:alert(document.domain)//";
    let mut r = report(hostile, 100.0, 140.0);
    r.name = "<img src=x onerror=alert(1)>\"'".into();
    let runs = vec![IndexRun::of(&r, Some(pit_report::html::relative_link(&[hostile])))];
    let html = render_index(
        "shop / checkout",
        &runs,
        &pit_report::compare::history(&[r.clone()], 5.0),
        20,
    )
    .unwrap();
    assert!(!html.contains("href=\"javascript:"), "{html}");
    assert!(html.contains("Content-Security-Policy"), "the page carries its policy");
    assert!(!opens_a_dialog(&dir, "index.html", &html), "{html}");
    // A link given with a scheme is not a link at all.
    assert_eq!(IndexRun::of(&r, Some(hostile.into())).href, None);
    // The stored pages of a directory store too.
    let store = pit_report::store::DirStore::new(dir.join("store"));
    let suite = pit_core::sink::SuiteReport {
        run_id: hostile.into(),
        ..serde_json::from_value(serde_json::json!({"schema":"pit.suite-report/v1","runId":"x","project":"shop","suiteId":"checkout","suiteName":"<script>alert(1)</script>","outcome":"passed","startedMs":0,"finishedMs":1000,"timeline":[]})).unwrap()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(pit_core::sink::ReportSink::store(&store, &suite))
        .unwrap();
    for page in walk(&dir.join("store"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
    {
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(!opens_a_dialog(&dir, "stored.html", &html), "{}", page.display());
    }
    // The harness can fail: a page with a live `javascript:` link and no policy opens one.
    assert!(opens_a_dialog(
        &dir,
        "bad.html",
        "<a href=\"javascript:alert(1)\">x</a>"
    ));
}

/// Every file below `dir`, at any depth.
fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

#[test]
fn junit_stays_valid_xml_with_control_characters_in_names() {
    // Issue 13: ESC, NUL or VT in a name gave XML that xmllint rejects.
    let mut r = report("01jq0000000000000000000x01", 300.0, 10.0);
    r.name = "bad\u{1b}[2J\u{0}name\u{b}".into();
    r.scenarios[0].name = "scen\u{0}ario".into();
    let xml = to_junit(&r);
    xmllint_validates(&xml, "junit-control").unwrap();
    assert!(xml.contains(r"bad\u{1b}[2J\u{0}name\u{b}"), "{xml}");
}
