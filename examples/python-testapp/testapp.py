"""The Python test app of examples/python-testapp: PUTs and GETs items on the node-1 store
and requires the p95 latency of each to stay under MAX_P95_MS (default 200 ms).

PIT starts it through the deploy script (`python3 testapp.py --url-file FIFO`); the store's
URL comes from the store's deploy command as STORE_URL.
"""

import os
import time
import urllib.request

from pit import testapp

REQUESTS = int(os.environ.get("REQUESTS", "40"))


def timed(request: urllib.request.Request) -> float:
    """Sends `request`; returns how long the answer took, in milliseconds."""
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
    return (time.perf_counter() - start) * 1000


@testapp.tests
def run(suite_id: str) -> testapp.Report:
    """PUTs then GETs REQUESTS items on the store."""
    store = os.environ["STORE_URL"]
    max_p95 = float(os.environ.get("MAX_P95_MS", "200"))
    started = testapp.now()
    streams = []
    for method in ("PUT", "GET"):
        latencies = [
            timed(urllib.request.Request(f"{store}/items/k{i}", data=b"v" if method == "PUT" else None, method=method))
            for i in range(REQUESTS)
        ]
        p95 = testapp.percentile(latencies, 95)
        streams.append(
            testapp.Stream(
                f"{method.lower()}-item",
                requirements={"latency_ms": {"p95": max_p95}},
                observations={"latency_ms": testapp.distribution(latencies), "requests": len(latencies)},
                passed=p95 <= max_p95,
            )
        )
    return testapp.Report(
        [testapp.Scenario("store items", started, testapp.now(), streams=streams, component_ids=["store"])]
    )


if __name__ == "__main__":
    run.main()
