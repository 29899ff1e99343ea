"""The type stubs match the native module, and the package and the example type-check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_the_stubs_match_the_native_module(tmp_path: Path) -> None:
    # stubtest imports the installed package and compares every signature with _pit.pyi.
    done = mypy("mypy.stubtest", "pit._pit", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_and_the_python_example_pass_mypy_strict(repo: Path, tmp_path: Path) -> None:
    done = mypy("mypy", "--strict", "-p", "pit", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    example = repo / "examples" / "python-testapp" / "testapp.py"
    done = mypy("mypy", "--strict", str(example), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_user_code_type_checks_against_the_package(tmp_path: Path) -> None:
    user = tmp_path / "pipeline.py"
    user.write_text(
        "import pit\n"
        "from pit.testing import lock_manager\n"
        "def go() -> int:\n"
        "    with lock_manager(tokens=['t']) as manager:\n"
        "        client = pit.LockClient(manager.url, token='t')\n"
        "    error = pit.run('pitfile.yml').suites[0].error()\n"
        "    kind: str | None = error.kind if isinstance(error, pit.NotHealthy) else None\n"
        "    warnings: list[pit.Diagnostic] = pit.Pitfile.load('pitfile.yml').validate()\n"
        "    result: pit.RunResult = pit.run('pitfile.yml', backend='local', on_event=print)\n"
        "    with pit.MemoryLockStore().lock(['db'], ttl=5) as lease:\n"
        "        token: int = lease.token\n"
        "    verdicts = pit.Report.load('r.json').compare(pit.Report.load('b.json')).verdicts\n"
        "    return result.exit_code + token + len(warnings) + len(verdicts)\n"
    )
    assert mypy("mypy", "--strict", str(user), cwd=tmp_path).returncode == 0
    # And a mistake is caught.
    user.write_text("import pit\nx: str = pit.run('pitfile.yml', backend='cloud')\n")
    done = mypy("mypy", "--strict", str(user), cwd=tmp_path)
    assert done.returncode == 1 and "backend" in done.stdout, done.stdout
