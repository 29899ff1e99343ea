"""Benchmark of the Python bindings beside the CLI, in one run (prints figures, asserts nothing).

1. A run of examples/node-1 (local backend): `pit.run` in this process against a `pit run`
   process, alternated, N times each.
2. Plans of a generated pitfile: `Pitfile.load(...).plan()` against `pit plan -o json` plus
   `json.loads` of its output.
3. Locks: acquire + release on `MemoryLockStore` from Python, against the same through a real
   Lock Manager when LOCK_MANAGER_URL is set.

    python pit-py/benches/bindings.py BIN_DIR PITFILE_500 [N]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pit

REPO = Path(__file__).resolve().parents[2]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def figures(name: str, ms: list[float]) -> float:
    med = statistics.median(ms)
    print(f"{name}: median {med:.1f} ms, min {min(ms):.1f} ms over {len(ms)}")
    return med


def main() -> None:
    bin_dir, big = Path(sys.argv[1]), Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    os.environ["PIT_EXAMPLE_BIN_DIR"] = str(bin_dir)
    example = REPO / "examples" / "node-1" / "pitfile.yml"
    state = Path(tempfile.mkdtemp())
    py_runs, cli_runs = [], []
    for _ in range(n):
        py_runs.append(timed(lambda: pit.run(example, state_dir=state)))
        cli_runs.append(
            timed(
                lambda: subprocess.run(
                    [bin_dir / "pit", "run", "--backend", "local", "--state-dir", state, example],
                    check=True,
                    capture_output=True,
                )
            )
        )
    a = figures("pit.run (Python), examples/node-1", py_runs)
    b = figures("pit run (process), examples/node-1", cli_runs)
    print(f"  ratio pit.run / pit run: {a / b:.2f}")

    py_plans, cli_plans = [], []
    for _ in range(n):
        py_plans.append(timed(lambda: pit.Pitfile.load(big).plan()))
        cli_plans.append(
            timed(
                lambda: json.loads(
                    subprocess.run([bin_dir / "pit", "plan", "-o", "json", big], check=True, capture_output=True).stdout
                )
            )
        )
    a = figures(f"Pitfile.load().plan() (Python), {big.name}", py_plans)
    b = figures(f"pit plan -o json + json.loads (process), {big.name}", cli_plans)
    print(f"  ratio Python / process: {a / b:.2f}")

    ops = 2000
    store = pit.MemoryLockStore()
    start = time.perf_counter()
    for _ in range(ops):
        store.release(store.acquire(["db"]))
    print(f"MemoryLockStore acquire+release from Python: {ops / (time.perf_counter() - start):.0f} ops/s")
    url = os.environ.get("LOCK_MANAGER_URL")
    if url:
        client = pit.LockClient(url)
        ops = 300
        start = time.perf_counter()
        for _ in range(ops):
            with client.lock(["bench-db"]):
                pass
        print(f"LockClient (real Lock Manager) with-block from Python: {ops / (time.perf_counter() - start):.0f} ops/s")


if __name__ == "__main__":
    main()
