//! `pit report …` and `pit run --report-store`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;

use crate::{pit, repo, run};

fn scratch(name: &str) -> crate::Scratch {
    crate::scratch(&format!("report-{name}"))
}

/// Writes a report of run `run` (minute `minute` of the day) with a p99 latency and returns
/// its path.
fn write_report(dir: &Path, run: &str, minute: u32, p99: f64) -> PathBuf {
    let file = dir.join(format!("{run}.json"));
    let report = json!({
        "schemaVersion": "1.0", "name": "Checkout",
        "startTime": format!("2026-11-25T10:{minute:02}:00Z"), "endTime": format!("2026-11-25T10:{minute:02}:30Z"),
        "runId": run, "project": "shop", "suite": "checkout", "outcome": "passed",
        "scenarios": [{"name": "Load", "streams": [{
            "name": "GET /items",
            "requirements": [{"name": "latency", "type": "DISTRIBUTION", "value": {"p99": 250}}],
            "observations": [{"name": "latency", "type": "DISTRIBUTION", "value": {"p50": p99 / 2.0, "p99": p99}}],
            "outcome": "PASS"
        }]}]
    });
    std::fs::write(&file, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    file
}

#[test]
fn junit_and_render_convert_a_report() {
    let existing = repo().join("pit-report/tests/testdata/existing-toolkit-report.json");
    let (code, xml, err) = run(pit().args(["report", "junit"]).arg(&existing));
    assert_eq!(code, 0, "{err}");
    assert!(
        xml.contains(r#"failures="1""#) && xml.contains("throughput: required 50, observed 31.5"),
        "{xml}"
    );
    let dir = scratch("render");
    let out = dir.join("report.html");
    let (code, _, err) = run(pit().args(["report", "render"]).arg(&existing).arg("--out").arg(&out));
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains(r#"class="verdict failed""#), "{html}");
}

#[test]
fn compare_gives_verdicts_and_fails_on_regression_when_asked() {
    let dir = scratch("compare");
    let base = write_report(&dir, "base", 1, 200.0);
    let slow = write_report(&dir, "slow", 2, 240.0);
    let (code, out, err) = run(pit()
        .args(["report", "compare"])
        .arg(&slow)
        .arg("--baseline")
        .arg(&base));
    assert_eq!(
        code, 0,
        "a regression alone does not fail without --fail-on-regression: {err}"
    );
    assert!(
        out.contains("Load/GET /items/latency.p99") && out.contains("REGRESSION") && out.contains("+20.0%"),
        "{out}"
    );
    let (code, _, err) = run(pit()
        .args(["report", "compare", "--fail-on-regression"])
        .arg(&slow)
        .arg("--baseline")
        .arg(&base));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 metric(s) regressed"), "{err}");
    // A wider threshold for latency lets it pass.
    let (code, out, _) = run(pit()
        .args([
            "report",
            "compare",
            "--fail-on-regression",
            "--threshold",
            "latency=25%",
            "-o",
            "json",
        ])
        .arg(&slow)
        .arg("--baseline")
        .arg(&base));
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metrics"][1]["change"], "unchanged");
    assert_eq!(v["metrics"][1]["thresholdPct"], 25.0);
    // Bad input says where.
    std::fs::write(dir.join("bad.json"), "{\"schemaVersion\": \"1.0\",\n \"name\": [}").unwrap();
    let (code, _, err) = run(pit()
        .args(["report", "compare"])
        .arg(dir.join("bad.json"))
        .arg("--baseline")
        .arg(&base));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.json:2:"), "{err}");
    let (code, _, err) = run(pit()
        .args(["report", "compare", "--threshold", "latency"])
        .arg(&slow)
        .arg("--baseline")
        .arg(&base));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("METRIC=PERCENT"), "{err}");
}

/// A directory store with `p99s.len()` runs of shop/checkout.
/// `pit report history` of the shop's checkout suite in the store `spec`.
fn history(spec: &str) -> (i32, String, String) {
    run(pit().args([
        "report",
        "history",
        "--store",
        spec,
        "--project",
        "shop",
        "--suite",
        "checkout",
    ]))
}

fn store_with(dir: &Path, p99s: &[f64]) -> PathBuf {
    let root = dir.join("store");
    for (i, p99) in p99s.iter().enumerate() {
        let run = format!("01jq00000000000000000000{i:02}");
        let run_dir = root.join("shop/checkout").join(&run);
        std::fs::create_dir_all(&run_dir).unwrap();
        let file = write_report(dir, &run, i as u32, *p99);
        std::fs::rename(file, run_dir.join("report.json")).unwrap();
    }
    root
}

#[test]
fn history_shows_change_points_and_compare_takes_its_baseline_from_a_store() {
    let dir = scratch("history");
    let root = store_with(&dir, &[100.0, 101.0, 99.0, 100.0, 150.0, 151.0, 149.0, 150.0]);
    let spec = format!("dir:{}", root.display());
    let (code, out, err) = history(&spec);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "change point: Load/GET /items/latency.p99 from 100 to 150 (+50.0%) at run 01jq0000000000000000000004"
        ),
        "{out}"
    );
    let current = write_report(&dir, "01jq0000000000000000000099", 59, 150.0);
    let (code, out, _) = run(pit()
        .args(["report", "compare", "-o", "json", "--last", "3", "--store", &spec])
        .arg(&current));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["baselineRuns"],
        json!([
            "01jq0000000000000000000005",
            "01jq0000000000000000000006",
            "01jq0000000000000000000007"
        ])
    );
}

/// `pit report serve` of a directory store on loopback; stopped when dropped.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Served {
    fn start(root: &Path) -> Self {
        let mut child = pit()
            .args(["report", "serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(format!("dir:{}", root.display()))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("it says where")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self { child, addr }
    }

    /// The whole answer to `GET /path` (HTTP/1.0: the server closes), head and body.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = &self.addr;
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(conn, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_shows_a_store_over_http() {
    let dir = scratch("serve");
    let root = store_with(&dir, &[100.0, 101.0, 130.0]);
    let served = Served::start(&root);
    // The body, then the status code on a line of its own.
    let get = |path: &str| {
        let text = served.get(path);
        let status = text.split_whitespace().nth(1).unwrap_or("").to_owned();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        format!("{body}\n{status}")
    };
    let index = get("");
    assert!(index.contains("3 runs") && index.ends_with("200"), "{index}");
    let suite = get("shop/checkout/");
    assert!(suite.contains("Trends"), "{suite}");
    let page = get("shop/checkout/01jq0000000000000000000002/");
    assert!(page.contains("regression") && page.ends_with("200"), "{page}");
    assert!(get("shop/checkout/01jq0000000000000000000002/junit.xml").contains("<testsuites"));
    assert!(get("shop/nothing/").ends_with("404"));
    assert!(get("shop/checkout/..%2f..%2fetc/").ends_with("404"));
}

#[test]
fn serve_sends_a_strict_policy_and_does_not_follow_links_out_of_the_store() {
    // Issue 13: no Content-Security-Policy, and a symbolic link led out of the store.
    let dir = scratch("serve-hostile");
    let root = store_with(&dir, &[100.0]);
    let outside = dir.join("outside/secret-run");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(
        root.join("shop/checkout/01jq0000000000000000000000/report.json"),
        outside.join("report.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), root.join("shop/linked")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("shop/checkout/01jq0000000000000000000099")).unwrap();
    let served = Served::start(&root);
    let index = served.get("");
    let head = index.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(index.contains("1 runs"), "only the real run is listed: {index}");
    assert!(!index.contains("linked"), "{index}");
    let linked = served.get("shop/linked/");
    assert!(
        linked.starts_with("HTTP/1.1 404") || linked.starts_with("HTTP/1.0 404"),
        "{linked}"
    );
    assert!(served
        .get("shop/checkout/01jq0000000000000000000099/")
        .contains(" 404 "));
}

#[test]
fn pit_run_stores_json_html_and_junit_in_the_report_store() {
    let state = scratch("run-state");
    let store = scratch("run-store");
    let (_, _, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg("--report-store")
        .arg(format!("dir:{}", store.display()))
        .arg(repo().join("pit-cli/tests/fixtures/run/failing-check.yml")));
    let suite_dir = std::fs::read_dir(store.join("cli-tests"))
        .unwrap_or_else(|e| panic!("reports were stored: {e}\n{err}"))
        .flatten()
        .next()
        .unwrap()
        .path();
    let run_dir = std::fs::read_dir(&suite_dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    for f in ["report.json", "report.html", "junit.xml"] {
        assert!(run_dir.join(f).is_file(), "{f} in {}", run_dir.display());
    }
    assert!(suite_dir.join("index.html").is_file());
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<error message=\"status check of `db` did not pass"),
        "{junit}"
    );
}

#[test]
fn pit_run_pushes_its_reports_to_a_git_store() {
    let root = scratch("run-git");
    pit_git::testing::git(&root, &["init", "-q", "--bare", "reports.git"]);
    let daemon = pit_git::testing::GitDaemon::start(&root);
    let state = root.join("state");
    let (_, _, err) = run(pit()
        .args(["run", "--state-dir"])
        .arg(&state)
        .arg("--report-store")
        .arg(format!("{}#nightly", format_args!("git:{}", daemon.url("reports.git"))))
        .arg(repo().join("pit-cli/tests/fixtures/run/failing-check.yml")));
    pit_git::testing::git(
        &root,
        &["clone", "-q", "-b", "nightly", &daemon.url("reports.git"), "clone"],
    );
    let suite = root.join("clone/failing-check");
    assert!(suite.join("index.html").is_file(), "{err}");
    let run_dir = std::fs::read_dir(&suite)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    for f in ["report.json", "report.html", "junit.xml"] {
        assert!(run_dir.join(f).is_file(), "{f}");
    }
}

/// Issue 15: a commit that is not ASCII (12 bytes would cut a character) no longer panics
/// `pit report history`.
#[test]
fn history_shows_a_non_ascii_commit_without_panicking() {
    let dir = scratch("history-utf8");
    let root = store_with(&dir, &[100.0]);
    let file = root.join("shop/checkout/01jq0000000000000000000000/report.json");
    let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Byte 12 falls inside the sixth `é`.
    report["gitCommit"] = json!("aéééééééééééé-commit");
    std::fs::write(&file, serde_json::to_vec(&report).unwrap()).unwrap();
    let spec = format!("dir:{}", root.display());
    let (code, out, err) = history(&spec);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aééééééééééé\n"), "the first 12 characters: {out}");
}
