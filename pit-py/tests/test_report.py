"""pit.Report: loading, HTML, JUnit XML and comparison, on the existing toolkit's format."""

from __future__ import annotations

import json
from html import unescape
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import pit

EXISTING = Path(__file__).resolve().parents[2] / "pit-report" / "tests" / "testdata" / "existing-toolkit-report.json"


def with_latency(p99: float, throughput: float = 142.7) -> pit.Report:
    """The existing toolkit's report with other observations on GET /items."""
    data = json.loads(EXISTING.read_text())
    observed = data["scenarios"][0]["streams"][0]["observations"]
    observed[0]["value"] = throughput
    observed[1]["value"]["p99"] = p99
    return pit.Report.from_json(json.dumps(data))


def test_a_report_of_the_existing_toolkit_loads_with_its_verdict() -> None:
    report = pit.Report.load(EXISTING)
    assert report.name == "node-1 performance"
    assert report.verdict == "failed"  # POST /orders failed
    assert report.to_dict()["scenarios"][0]["streams"][1]["outcome"] == "FAIL"


def test_junit_has_one_case_per_stream_and_the_failure_lists_the_requirements() -> None:
    root = ET.fromstring(pit.Report.load(EXISTING).to_junit())
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["GET /items", "POST /orders"]
    failure = cases[1].find("failure")
    assert failure is not None and cases[0].find("failure") is None
    assert "throughput" in (failure.text or "") + (failure.get("message") or "")


def test_html_is_one_self_contained_page_with_the_verdict() -> None:
    html = pit.Report.load(EXISTING).to_html()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    # Names are escaped, as everything from a report is.
    assert "POST /orders" in unescape(html)


def test_compare_finds_the_regression_and_the_improvement() -> None:
    baseline = with_latency(p99=200.0, throughput=140.0)
    current = with_latency(p99=300.0, throughput=180.0)
    comparison = current.compare(baseline)
    assert comparison.change("Steady load/GET /items/latency.p99") == "regression"
    assert comparison.change("Steady load/GET /items/throughput") == "improvement"
    assert comparison.change("Steady load/GET /items/latency.p50") == "unchanged"
    assert comparison.change("no/such/figure") is None
    assert comparison.regressions == 1
    verdicts = {v["key"]: v for v in comparison.verdicts}
    assert verdicts["Steady load/GET /items/latency.p99"]["deltaPct"] == pytest.approx(50.0)
    # A wider threshold for that metric makes it unchanged.
    assert current.compare(baseline, per_metric={"latency.p99": 60}).regressions == 0
    # Several earlier runs: their median is the baseline.
    runs = [with_latency(200.0), with_latency(210.0), with_latency(190.0)]
    assert current.compare(runs).to_dict()["metrics"]
    # The HTML shows the comparison.
    assert "regression" in current.to_html(baseline).lower()


def test_a_broken_report_says_where(tmp_path: Path) -> None:
    broken = tmp_path / "report.json"
    broken.write_text('{\n  "schemaVersion": "1.0",\n  "name": 3\n}\n')
    with pytest.raises(pit.ReportError) as raised:
        pit.Report.load(broken)
    assert f"{broken}:3:" in str(raised.value)
    assert raised.value.exit_code == 2


def test_an_unsupported_version_is_named() -> None:
    with pytest.raises(pit.ReportError, match="2.0"):
        pit.Report.from_json('{"schemaVersion": "2.0", "name": "x", "scenarios": []}')


def test_compare_takes_reports_only() -> None:
    with pytest.raises(TypeError):
        pit.Report.load(EXISTING).compare("baseline.json")  # type: ignore[arg-type]
