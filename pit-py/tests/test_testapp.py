"""pit.testapp: a Python test function served over the Test Runner protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import read_url
from pit import testapp

APP = textwrap.dedent(
    """
    import os
    from pit import testapp

    @testapp.tests
    def run(suite_id):
        "A test app for the tests."
        if suite_id == "boom":
            raise RuntimeError("the database is down")
        if suite_id == "dict":
            return {"executedScenarios": []}
        ok = suite_id != "failing"
        return testapp.Report([testapp.Scenario(
            "scenario of " + suite_id, testapp.now(), testapp.now(),
            streams=[testapp.Stream(
                "requests",
                requirements={"latency_ms": {"p95": 10}, "rps": 100},
                observations={"latency_ms": testapp.distribution([1, 2, 3, 4, 50]), "rps": 120},
                passed=ok,
            )],
            component_ids=["store"],
        )])

    if __name__ == "__main__":
        run.main()
    """
)


def call(url: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    fifo = tmp_path / "url"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, str(script), "--url-file", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield read_url(fifo, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def finished(url: str, suite: str) -> dict:
    """Starts `suite` and long-polls its status until the session ends; returns the report."""
    session = call(url, "/start", {"testSuiteId": suite})["sessionId"]
    while call(url, f"/status?sessionId={session}&wait=10")["status"] in ("PENDING", "RUNNING"):
        pass
    return call(url, f"/reports/{session}")


def test_the_function_is_served_over_the_protocol(app_url: str) -> None:
    report = finished(app_url, "smoke")
    assert report["status"] == "COMPLETED" and report["testSuiteId"] == "smoke"
    [scenario] = report["data"]["executedScenarios"]
    assert scenario["name"] == "scenario of smoke" and scenario["componentIds"] == ["store"]
    [stream] = scenario["streams"]
    assert stream["outcome"] == "PASS"
    observed = {m["name"]: m for m in stream["observations"]}
    assert observed["rps"] == {"name": "rps", "type": "SCALAR", "value": 120}
    assert observed["latency_ms"]["type"] == "DISTRIBUTION"
    assert observed["latency_ms"]["value"]["p50"] == 3
    # What status checks ask.
    with urllib.request.urlopen(app_url + "/healthz", timeout=10) as answer:
        assert answer.status == 200


def test_a_failed_stream_and_a_plain_dict(app_url: str) -> None:
    assert finished(app_url, "failing")["data"]["executedScenarios"][0]["streams"][0]["outcome"] == "FAIL"
    assert finished(app_url, "dict")["data"] == {"executedScenarios": []}


def test_an_exception_becomes_the_session_error(app_url: str) -> None:
    report = finished(app_url, "boom")
    assert report["status"] == "ERROR"
    assert report["error"] == "RuntimeError: the database is down"


def test_helpers() -> None:
    assert testapp.percentile([1, 2, 3, 4], 50) == 2.5
    assert testapp.distribution([5.0], percentiles=[99]) == {"p99": 5.0}
    with pytest.raises(ValueError):
        testapp.percentile([], 50)
    with pytest.raises(TypeError, match="bool"):
        testapp.Stream("s", observations={"ok": True}).to_protocol()
    assert not testapp.Report([]).passed
    assert testapp.now().endswith("Z")


def test_the_decorated_function_can_be_called_directly() -> None:
    @testapp.tests
    def run(suite_id: str) -> testapp.Report:
        """Doc."""
        return testapp.Report([testapp.Scenario(suite_id, "a", "b", streams=[testapp.Stream("s", passed=False)])])

    assert run.__doc__ == "Doc."
    report = run("x")
    assert isinstance(report, testapp.Report) and not report.passed
