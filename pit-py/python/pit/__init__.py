"""PIT from Python: performance and integration tests on Kubernetes.

The same behaviour as the ``pit`` command line, as a library::

    import pit

    pitfile = pit.Pitfile.load("pitfile.yml")
    pitfile.validate()                      # raises pit.PitfileError with .diagnostics
    plan = pitfile.plan()                   # plain dicts and lists, as `pit plan -o json`

    result = pit.run("pitfile.yml", backend="local", on_event=print)
    assert result.passed, result.suites

    with pit.LockClient("http://lock-manager:8080").lock(["db"], ttl=60, wait=30) as lease:
        print("fencing token", lease.token)

    report = pit.Report.load(result.report_paths[0] + "/report.json")
    print(report.compare(pit.Report.load("baseline.json")).verdicts)

See docs/python.md. Writing a Test Runner App in Python: :mod:`pit.testapp`.
"""

# Every name of the native module (typed in _pit.pyi), and nothing else.
from ._pit import *  # noqa: F403
from ._pit import __all__ as __all__
