"""Shared fixtures: the repository, the example binaries, a real Lock Manager on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Where cargo put `pit` and the examples' binaries (scripts/test builds them)."""
    path = Path(os.environ.get("PIT_EXAMPLE_BIN_DIR", REPO / "target" / "debug"))
    for name in ("pit", "node-1", "instant-test-app", "node-1-test-app"):
        if not (path / name).exists():
            pytest.fail(f"{path / name} is missing: build the workspace first (cargo build --workspace)")
    return path


@pytest.fixture
def example_env(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The environment the examples' deploy scripts need; returns a state directory."""
    monkeypatch.setenv("PIT_EXAMPLE_BIN_DIR", str(bin_dir))
    # The Python test app's deploy script runs `python3`: this interpreter, which has `pit`.
    venv_bin = tmp_path / "bin"
    venv_bin.mkdir()
    # A wrapper, not a symlink: a virtual environment's python only finds its packages when
    # called by its own path.
    wrapper = venv_bin / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "state"


def read_url(fifo: Path, proc: subprocess.Popen, timeout: float = 60) -> str:
    """The URL a process writes to `fifo` once it listens (or a failure with its output)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text().strip()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not got:
        proc.kill()
        out = proc.communicate()[1]
        # Unblock the reader.
        with open(fifo, "w"):
            pass
        pytest.fail(f"no URL within {timeout}s; exit code {proc.returncode}; stderr:\n{out}")
    return got[0]


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: start PostgreSQL with `scripts/postgres start DIR` (scripts/test does)")
    return url


class LockManager:
    def __init__(self, url: str, token: str, admin_token: str) -> None:
        self.url = url
        self.token = token
        self.admin_token = admin_token


@pytest.fixture
def lock_manager(bin_dir: Path, database_url: str, tmp_path: Path) -> Iterator[LockManager]:
    """`pit lock-manager serve` on a free loopback port, with a user and an admin token."""
    token, admin = f"user-{uuid.uuid4()}", f"admin-{uuid.uuid4()}"
    fifo = tmp_path / "url"
    os.mkfifo(fifo)
    env = dict(os.environ, DATABASE_URL=database_url, PIT_LOCK_TOKENS=token, PIT_LOCK_ADMIN_TOKENS=admin)
    proc = subprocess.Popen(
        [str(bin_dir / "pit"), "lock-manager", "serve", "--listen", "127.0.0.1:0", "--url-file", str(fifo), "--log-text"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield LockManager(read_url(fifo, proc), token, admin)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for lock ids, so tests sharing the database do not meet."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
