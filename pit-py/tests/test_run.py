"""pit.run: the local example end to end, failures, events, and Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pit

FIXTURES = Path(__file__).resolve().parents[2] / "examples" / "node-1" / "tests" / "fixtures"


def started_pids(state: Path) -> list[int]:
    """The pids the example's processes reported in their deploy logs ("… as pid N")."""
    pids = []
    for log in state.rglob("*.deploy.log"):
        pids += [int(p) for p in re.findall(r"as pid (\d+)", log.read_text())]
    return pids


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split()[2] != "Z"


def test_the_local_example_passes_and_its_report_is_stored(repo: Path, example_env: Path) -> None:
    events: list[dict] = []
    result = pit.run(repo / "examples" / "node-1" / "pitfile.yml", state_dir=example_env, on_event=events.append)
    assert result.passed and result.status == "passed" and result.exit_code == 0, result.suites
    [suite] = result.suites
    assert (suite.id, suite.outcome, suite.message) == ("node-1-items", "passed", None)
    assert suite.environment == f"pit-node-1-items-{result.run_id}"
    [report] = result.report_paths
    assert Path(report).is_file() and pit.Report.load(report).verdict == "passed"
    kinds = [e["kind"]["event"] for e in events]
    assert kinds[0] == "suite-started" and kinds[-1] == "suite-finished"
    assert kinds.index("tests-started") < kinds.index("tests-finished") < kinds.index("tearing-down")
    assert {e["suite"] for e in events} == {"node-1-items"}
    # Everything it started is gone.
    assert started_pids(example_env) and not any(alive(p) for p in started_pids(example_env))
    assert result.to_dict()["runId"] == result.run_id
    junit = result.to_junit()
    assert f'<testsuites name="pit run {result.run_id}" tests=' in junit, junit
    assert junit.count("<testsuite ") == 1 and 'failures="0" errors="0"' in junit, junit


def test_a_suite_of_the_existing_toolkit_runs_with_its_workspace(repo: Path, tmp_path: Path) -> None:
    workspace = repo / "examples" / "toolkit-compat"
    pitfile = workspace / "node-1" / "pitfile.yml"
    # Its paths are relative to the workspace, not to the pitfile's folder.
    with pytest.raises(pit.PitfileError) as raised:
        pit.run(pitfile, state_dir=tmp_path / "without")
    assert [d.code for d in raised.value.diagnostics] == ["pit::location-not-found"]
    assert "--workspace" in (raised.value.diagnostics[0].help or "")
    result = pit.run(pitfile, workspace=workspace, state_dir=tmp_path / "with", commit="0123abc", toolkit_args=True)
    assert result.passed, result.suites
    report = pit.Report.load(result.report_paths[0]).to_dict()
    assert report["gitCommit"] == "0123abc"
    assert pit.Pitfile.load(pitfile, workspace=workspace).validate() == []


def test_the_python_test_app_example_runs_under_pit(repo: Path, example_env: Path) -> None:
    result = pit.run(repo / "examples" / "python-testapp" / "pitfile.yml", state_dir=example_env)
    assert result.passed, result.suites
    report = pit.Report.load(result.report_paths[0]).to_dict()
    streams = [s["name"] for s in report["scenarios"][0]["streams"]]
    assert streams == ["put-item", "get-item"]


def test_a_failing_requirement_is_status_failed_exit_1(repo: Path, example_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_P95_MS", "0")
    result = pit.run(repo / "examples" / "python-testapp" / "pitfile.yml", state_dir=example_env)
    assert (result.status, result.exit_code, bool(result)) == ("failed", 1, False)
    assert result.suites[0].outcome == "failed"
    assert result.suites[0].kind is None
    with pytest.raises(pit.TestsFailed) as raised:
        result.raise_for_status()
    assert (raised.value.exit_code, raised.value.suite) == (1, result.suites[0].id)


def test_an_infrastructure_failure_is_status_error_naming_the_component(example_env: Path) -> None:
    result = pit.run(FIXTURES / "failing-check.yml", state_dir=example_env, max_parallel=2)
    assert (result.status, result.exit_code) == ("error", 3)
    [suite] = result.suites
    assert suite.outcome == "error"
    assert "status check of" in suite.message
    assert (suite.phase, suite.kind, suite.component) == ("deploy", "not-healthy", "broken-svc")
    # Typed: a SuiteError subclass per kind, carrying where it happened.
    error = suite.error()
    assert isinstance(error, pit.NotHealthy) and isinstance(error, pit.SuiteError)
    assert (error.phase, error.kind, error.component, error.exit_code) == ("deploy", "not-healthy", "broken-svc", 3)
    assert "status check of `broken-svc`" in str(error)
    with pytest.raises(pit.NotHealthy):
        result.raise_for_status()
    assert not any(alive(p) for p in started_pids(example_env))


def test_an_invalid_pitfile_raises_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "pitfile.yml"
    bad.write_text('version: "1.0"\nprojectName: x\ntestSuites: []\n')
    with pytest.raises(pit.PitfileError) as raised:
        pit.run(bad, state_dir=tmp_path / "state")
    assert raised.value.exit_code == 2
    assert not (tmp_path / "state").exists()


def test_an_unset_env_placeholder_is_an_error_for_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_P95_MS", raising=False)
    with pytest.raises(pit.PitfileError) as raised:
        pit.run(FIXTURES / "busy.yml", state_dir=tmp_path / "state")
    assert [(d.code, d.severity) for d in raised.value.diagnostics] == [("pit::unset-env", "error")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "cloud"}, "backend"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"report_store": "git:"}, "report_store"),
        ({"test_app_access": "tunnel"}, "test_app_access"),
        ({"test_app_access": "ingress"}, "cluster_url"),
    ],
)
def test_bad_arguments_are_value_errors(repo: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pit.run(repo / "examples" / "node-1" / "pitfile.yml", **kwargs)


def test_k8s_without_a_cluster_is_a_run_error(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(pit.RunError) as raised:
        pit.run(
            repo / "examples" / "node-1" / "pitfile.yml",
            backend="k8s",
            kubeconfig=tmp_path / "no-kubeconfig",
            state_dir=tmp_path / "state",
        )
    assert raised.value.exit_code == 3
    assert "kubeconfig" in str(raised.value)


def test_an_exception_in_on_event_stops_the_run_and_tears_down(repo: Path, example_env: Path) -> None:
    class Stop(Exception):
        pass

    def on_event(event: dict) -> None:
        if event["kind"]["event"] == "ready":
            raise Stop

    with pytest.raises(Stop):
        pit.run(repo / "examples" / "node-1" / "pitfile.yml", state_dir=example_env, on_event=on_event)
    pids = started_pids(example_env)
    assert pids and not any(alive(p) for p in pids)


def test_ctrl_c_cancels_the_run_tears_down_and_raises_keyboard_interrupt(example_env: Path, tmp_path: Path) -> None:
    # In a child process, so that SIGINT reaches a Python main thread blocked in pit.run.
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, signal, sys, pit
            # Python raises KeyboardInterrupt only with its own SIGINT handler, which it does not
            # install when it starts with SIGINT ignored (as jobs started in the background are).
            signal.signal(signal.SIGINT, signal.default_int_handler)
            def on_event(e):
                print(json.dumps(e["kind"]), flush=True)
            try:
                pit.run({str(FIXTURES / "interrupted.yml")!r}, state_dir={str(example_env)!r}, on_event=on_event)
            except KeyboardInterrupt:
                print("KeyboardInterrupt", flush=True)
                sys.exit(42)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        # The store is up and the slow component is deploying (it never finishes): interrupt.
        kind = json.loads(line) if line.startswith("{") else {}
        if kind.get("event") == "ready" and kind.get("component") == "store":
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    lines += out.split()
    assert proc.returncode == 42, f"{lines}\n{err}"
    assert "KeyboardInterrupt" in lines
    assert any('"tearing-down"' in l for l in lines), lines
    pids = started_pids(example_env)
    assert pids and not any(alive(p) for p in pids), pids


def test_other_python_threads_run_while_pit_run_waits(repo: Path, example_env: Path) -> None:
    import threading
    import time

    ticks: list[float] = []
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            # Pure Python work: it needs the GIL, which pit.run must have released.
            sum(range(1000))

    counter = threading.Thread(target=count)
    counter.start()
    try:
        started = time.monotonic()
        result = pit.run(repo / "examples" / "node-1" / "pitfile.yml", state_dir=example_env)
        ended = time.monotonic()
    finally:
        stop.set()
        counter.join()
    assert result.passed
    during = [t for t in ticks if started < t < ended]
    assert len(during) > 100, f"{len(during)} ticks in {ended - started:.2f}s"
