"""Write a Test Runner App in Python.

A test app is the part of a suite that runs the tests when PIT asks and hands back a report
(see docs/test-runner.md). Decorate the function that runs a suite's tests with
:func:`tests`; it gets the suite id and returns a :class:`Report`. ``serve()`` answers PIT's
requests over HTTP with the same protocol code as PIT's Rust test apps::

    import time, urllib.request
    from pit import testapp

    @testapp.tests
    def run(suite_id: str) -> testapp.Report:
        started = testapp.now()
        latencies = []
        for _ in range(50):
            t = time.perf_counter()
            urllib.request.urlopen(STORE_URL + "/healthz").read()
            latencies.append((time.perf_counter() - t) * 1000)
        p95 = testapp.percentile(latencies, 95)
        return testapp.Report([
            testapp.Scenario(
                "health", started, testapp.now(),
                streams=[testapp.Stream(
                    "healthz",
                    requirements={"latency_ms": {"p95": 50}},
                    observations={"latency_ms": testapp.distribution(latencies)},
                    passed=p95 <= 50,
                )],
            )
        ])

    if __name__ == "__main__":
        run.main()          # --url-file FILE (how deploy scripts learn the URL), --host, --port

The function runs in a worker thread, once per ``POST /start``. An exception becomes the
session's ERROR status (with its type and message), and its traceback goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from ._pit import serve_testapp

__all__ = [
    "Report",
    "Scenario",
    "Stream",
    "TestApp",
    "distribution",
    "now",
    "percentile",
    "serve",
    "tests",
]

Number = Union[int, float]
MetricValue = Union[Number, Mapping[str, Number]]


def now() -> str:
    """The current time in ISO 8601 (UTC), as scenarios' start and end times are written."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percentile(values: Sequence[Number], q: float) -> float:
    """The ``q``-th percentile (0 to 100) of ``values``, by linear interpolation."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, not {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def distribution(values: Sequence[Number], percentiles: Iterable[int] = (50, 90, 95, 99)) -> dict[str, float]:
    """Percentiles of ``values`` by name (``{"p50": …, "p95": …}``): a DISTRIBUTION metric."""
    return {f"p{p}": percentile(values, p) for p in percentiles}


def _metrics(values: Mapping[str, MetricValue]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, bool):
            raise TypeError(f"metric {name!r}: a number or a mapping of percentiles, not a bool")
        if isinstance(value, (int, float)):
            out.append({"name": name, "type": "SCALAR", "value": value})
        elif isinstance(value, Mapping):
            out.append({"name": name, "type": "DISTRIBUTION", "value": dict(value)})
        else:
            raise TypeError(f"metric {name!r}: a number or a mapping of percentiles, not {type(value).__name__}")
    return out


@dataclass
class Stream:
    """Requirements against observations for one stream of work, and whether it passed.

    Metric values are numbers (SCALAR) or mappings of percentiles by name (DISTRIBUTION)."""

    name: str
    requirements: Mapping[str, MetricValue] = field(default_factory=dict)
    observations: Mapping[str, MetricValue] = field(default_factory=dict)
    passed: bool = True

    def to_protocol(self) -> dict[str, Any]:
        """The stream as the protocol sends it."""
        return {
            "name": self.name,
            "requirements": _metrics(self.requirements),
            "observations": _metrics(self.observations),
            "outcome": "PASS" if self.passed else "FAIL",
        }


@dataclass
class Scenario:
    """One scenario: its time span, streams and the components it exercised."""

    name: str
    start_time: str
    end_time: str
    streams: list[Stream] = field(default_factory=list)
    component_ids: list[str] = field(default_factory=list)
    metadata: Optional[Mapping[str, Any]] = None

    def to_protocol(self) -> dict[str, Any]:
        """The scenario as the protocol sends it."""
        out: dict[str, Any] = {
            "name": self.name,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "streams": [s.to_protocol() for s in self.streams],
            "componentIds": list(self.component_ids),
        }
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass
class Report:
    """What a test function returns: the scenarios it ran. The suite passes when every stream
    of every scenario passed."""

    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(st.passed for sc in self.scenarios for st in sc.streams) and bool(self.scenarios)

    def to_protocol(self) -> dict[str, Any]:
        """The report as the protocol sends it (``{"executedScenarios": [...]}``)."""
        return {"executedScenarios": [s.to_protocol() for s in self.scenarios]}


TestFunction = Callable[[str], Union[Report, Mapping[str, Any]]]


def serve(
    function: TestFunction,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    url_file: Optional[str] = None,
    on_listening: Optional[Callable[[str], None]] = None,
) -> None:
    """Serves ``function`` over the Test Runner protocol on ``host:port`` (port 0: a free one)
    until Ctrl-C. Once listening, writes the base URL to ``url_file`` (a file or FIFO) and calls
    ``on_listening(url)``. ``function`` gets the suite id and returns a :class:`Report` (or the
    protocol's dict)."""
    serve_testapp(function, host=host, port=port, url_file=url_file, on_listening=on_listening)


class TestApp:
    """A test function made servable by :func:`tests`; calling it runs the tests directly."""

    __test__ = False  # not a pytest test class

    def __init__(self, function: TestFunction) -> None:
        self.function = function
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "tests")

    def __call__(self, suite_id: str) -> Union[Report, Mapping[str, Any]]:
        return self.function(suite_id)

    def serve(self, **kwargs: Any) -> None:
        """:func:`serve` this function."""
        serve(self.function, **kwargs)

    def main(self, argv: Optional[Sequence[str]] = None) -> None:
        """Serves from the command line: ``--host``, ``--port`` and ``--url-file FILE`` (where
        a deploy script reads the URL to publish it as ``PIT_TEST_APP_URL``)."""
        parser = argparse.ArgumentParser(description=self.__doc__ or "A PIT Test Runner App")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--url-file", help="write the base URL here once listening")
        args = parser.parse_args(argv)
        try:
            self.serve(
                host=args.host,
                port=args.port,
                url_file=args.url_file,
                on_listening=lambda url: print(f"serving the tests at {url}", flush=True),
            )
        except KeyboardInterrupt:
            pass


def tests(function: TestFunction) -> TestApp:
    """Decorator: makes ``function(suite_id) -> Report`` a Test Runner App (see the module)."""
    return TestApp(function)
