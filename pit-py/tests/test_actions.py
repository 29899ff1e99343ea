"""pit.actions and pit.run(actions=...): dry runs, a real receiver on loopback, git tags on a
real repository, failures, and secrets that are never repeated."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

import pit
from pit import actions

EXISTING = Path(__file__).resolve().parents[2] / "pit-report" / "tests" / "testdata" / "existing-toolkit-report.json"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP receiver on loopback answering 200; the JSON bodies it got."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", got
    finally:
        server.shutdown()


def test_a_dry_run_renders_the_actions_of_the_verdict_only() -> None:
    results = actions.run(
        EXISTING,
        {"onPass": ["slack:env:UNSET_HOOK"], "onFail": [{"action": "webhook", "url": {"env": "UNSET_HOOK"}}]},
        dry_run=True,
    )
    assert [(r["action"], r["trigger"], r["outcome"]) for r in results] == [("webhook", "onFail", "dry-run")]
    assert results[0]["body"]["data"]["failing"][0]["stream"] == "POST /orders"


def test_teams_is_sent_with_the_report_link(receiver: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, got = receiver
    monkeypatch.setenv("PIT_PY_TEAMS", url + "?sig=s3cret")
    results = actions.run(
        pit.Report.load(EXISTING), {"onFail": ["teams:env:PIT_PY_TEAMS"]}, report_url="https://reports.example.com/1/"
    )
    assert results[0]["outcome"] == "ok" and results[0]["status"] == 200
    assert got[0]["type"] == "message"
    card = got[0]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert "https://reports.example.com/1/" in json.dumps(card)


def test_a_failed_action_is_a_result_or_with_fail_on_error_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIT_PY_GONE", "http://127.0.0.1:9/hook?token=s3cret")
    results = actions.run(EXISTING, {"onFail": ["webhook:env:PIT_PY_GONE"]})
    assert results[0]["outcome"] == "failed"
    assert "could not be reached" in results[0]["detail"] and "s3cret" not in results[0]["detail"]
    with pytest.raises(pit.ActionFailed) as raised:
        actions.run(EXISTING, {"onFail": ["webhook:env:PIT_PY_GONE"]}, fail_on_error=True)
    assert raised.value.exit_code == 3
    assert raised.value.results[0]["action"] == "webhook"
    assert "s3cret" not in str(raised.value)


def test_an_inline_url_or_an_unknown_trigger_is_a_value_error_that_does_not_repeat_it() -> None:
    with pytest.raises(ValueError) as raised:
        actions.run(EXISTING, {"onFail": ["slack:https://hooks.slack.com/services/T/B/s3cret"]})
    assert "env:NAME" in str(raised.value) and "s3cret" not in str(raised.value)
    with pytest.raises(ValueError, match="not a trigger"):
        actions.run(EXISTING, {"onFailure": ["github"]})


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_git_tag_tags_the_reports_commit_and_moves_the_opposite_tag(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "f").write_text("x")
    git(work, "add", "f")
    git(work, "commit", "-q", "-m", "x")
    sha = git(work, "rev-parse", "HEAD").strip()
    tag = {"action": "git-tag", "repository": str(work), "ref": sha}
    failed = actions.run(EXISTING, {"onFail": [tag]})
    assert failed[0]["tag"]["tag"] == f"dpt-fail-{sha[:7]}"
    assert git(work, "tag", "--list").split() == [f"dpt-fail-{sha[:7]}"]
    passed = json.loads(EXISTING.read_text())
    for scenario in passed["scenarios"]:
        for stream in scenario["streams"]:
            stream["outcome"] = "PASS"
    report = pit.Report.from_json(json.dumps(passed))
    dry = actions.run(report, {"onPass": [tag]}, dry_run=True)
    assert dry[0]["body"]["delete"] == f"dpt-fail-{sha[:7]}"
    assert git(work, "tag", "--list").split() == [f"dpt-fail-{sha[:7]}"], "a dry run changes nothing"
    actions.run(report, {"onPass": [tag]})
    assert git(work, "tag", "--list").split() == [f"dpt-pass-{sha[:7]}"]


def test_a_runs_actions_are_in_its_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fail.sh").write_text("#!/bin/sh\necho cannot deploy >&2\nexit 1\n")
    (tmp_path / "fail.sh").chmod(0o755)
    (tmp_path / "pitfile.yml").write_text(
        "version: '1.0'\nprojectName: p\ntestSuites:\n  - name: S\n    id: s\n    deployment:\n"
        "      graph:\n        testApp: { name: T, id: t, deploy: { command: ./fail.sh } }\n"
    )
    monkeypatch.setenv("PIT_PY_GONE", "http://127.0.0.1:9/hook?token=s3cret")
    result = pit.run(
        tmp_path / "pitfile.yml",
        state_dir=tmp_path / "state",
        actions={"onFail": ["webhook:env:PIT_PY_GONE"], "onPass": ["github"]},
    )
    assert result.status == "error"
    assert result.has_action_errors
    (suite,) = result.suites
    assert len(suite.action_errors) == 1 and suite.action_errors[0].startswith("webhook (onFail):")
    steps = [e for e in result.to_dict()["suites"][0]["report"]["timeline"] if e["step"] == "post-test-action"]
    assert [e["outcome"] for e in steps] == ["failed"]
    assert "s3cret" not in json.dumps(result.to_dict())
