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
