"""Type stubs of the native module ``pit._pit`` (re-exported by ``pit``)."""

from os import PathLike
from types import TracebackType
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union

from typing_extensions import disjoint_base, final

_StrPath = Union[str, "PathLike[str]"]
__version__: str
__all__ = [
    "ActionFailed",
    "BackendFailed",
    "BrownieError",
    "BrownieServer",
    "CommandFailed",
    "Comparison",
    "Diagnostic",
    "Interrupted",
    "InvalidPlan",
    "Lease",
    "LeaseLost",
    "Lock",
    "LockBusy",
    "LockClient",
    "LockError",
    "LockStore",
    "LocksUnavailable",
    "MemoryLockStore",
    "MockLockManager",
    "NotHealthy",
    "PitError",
    "Pitfile",
    "PitfileError",
    "Report",
    "ReportError",
    "RunError",
    "RunResult",
    "SuiteError",
    "SuiteResult",
    "TestAppFailed",
    "TestsFailed",
    "TimedOut",
    "__version__",
    "brownie_clean",
    "run",
    "run_actions",
    "serve_testapp",
]

class PitError(Exception):
    """Every error PIT raises."""

    exit_code: int
    """The exit code ``pit`` would end with (2 invalid input, 3 infrastructure, 130 interrupted)."""

class PitfileError(PitError):
    """The pitfile cannot be read or has errors."""

    diagnostics: list[Diagnostic]
    """Every problem found (empty when the file could not be read)."""

class RunError(PitError):
    """A run could not start: the cluster, a REMOTE fetch, the Lock Manager URL."""

class LockError(PitError):
    """A lock store failed."""

class LockBusy(LockError):
    """The locks were still held when the wait ran out."""

    holders: list[tuple[str, str]]
    """``(id, owner)`` of each held id."""

class LeaseLost(LockError):
    """The lease expired or was force-released."""

class ReportError(PitError):
    """A report could not be read, compared or rendered."""

class ActionFailed(PitError):
    """A post-test action failed (``fail_on_error=True``)."""

    results: list[dict[str, Any]]
    """Every action's result, as :func:`run_actions` returns them."""

class BrownieError(PitError):
    """Brownie could not reach, log in to or list a server."""

@final
class BrownieServer:
    """One server to clean (see :mod:`pit.brownie`); its ``repr`` never shows a password."""

    @staticmethod
    def postgres(
        dsn: str,
        *,
        password: Optional[Mapping[str, str]] = None,
        force: bool = False,
        protect: Sequence[str] = ...,
    ) -> BrownieServer:
        """A PostgreSQL server from a connection string without a password."""
    @staticmethod
    def kafka(
        brokers: Sequence[str],
        *,
        client_id: str = ...,
        username: Optional[str] = None,
        password: Optional[Mapping[str, str]] = None,
        sasl_mechanism: str = ...,
    ) -> BrownieServer:
        """A Kafka cluster through ``brokers`` (``host:port``)."""
    @staticmethod
    def elasticsearch(
        url: str,
        *,
        username: Optional[str] = None,
        password: Optional[Mapping[str, str]] = None,
        ca_file: Optional[_StrPath] = None,
    ) -> BrownieServer:
        """An Elasticsearch or OpenSearch cluster at ``url``."""
    @property
    def module(self) -> str:
        """``postgresql``, ``kafka`` or ``elasticsearch``."""

def brownie_clean(
    server: BrownieServer,
    *,
    retention: str = "3days",
    pattern: Optional[str] = None,
    live: Sequence[str] = ...,
    dry_run: bool = False,
    parallel: int = 32,
) -> dict[str, Any]:
    """One sweep of ``server`` (see :func:`pit.brownie.clean`)."""

class SuiteError(PitError):
    """A suite did not pass (see :meth:`RunResult.raise_for_status`, :meth:`SuiteResult.error`)."""

    suite: str
    """The suite id."""
    phase: Optional[Literal["plan", "environment", "locks", "deploy", "tests"]]
    """For infrastructure errors: where in the suite's life."""
    kind: Optional[str]
    """For infrastructure errors: what kind (``"not-healthy"``, ``"timeout"``, ``"locks-busy"`` …)."""
    component: Optional[str]
    """The component it happened in, if any."""

class TestsFailed(SuiteError):
    """The tests ran and something failed (exit code 1)."""

class Interrupted(SuiteError):
    """The run was interrupted (exit code 130)."""

class InvalidPlan(SuiteError):
    """The plan cannot be run as it is."""

class BackendFailed(SuiteError):
    """The backend (the cluster, the sandbox) failed."""

class LocksUnavailable(SuiteError):
    """The suite's locks stayed busy, its lease was lost, or the lock store failed."""

class CommandFailed(SuiteError):
    """A deploy command failed or did not complete."""

class NotHealthy(SuiteError):
    """A status check did not pass in time."""

class TimedOut(SuiteError):
    """A step or the tests did not finish in time."""

class TestAppFailed(SuiteError):
    """The test app could not be reached, did not publish its URL, or its session failed."""

@final
class Diagnostic:
    """One problem in a pitfile."""

    severity: Literal["error", "warning"]
    code: str
    """Stable identifier, such as ``pit::unknown-key``."""
    message: str
    file: str
    line: int
    """1-based line."""
    column: int
    """1-based column."""
    path: str
    """The field path, such as ``testSuites[0].deployment.graph.components[1].dependsOn[0]``."""
    help: Optional[str]

@final
class Pitfile:
    """A pitfile (format v1.0), read but not yet checked."""

    @staticmethod
    def load(
        path: _StrPath, *, env: Optional[Mapping[str, str]] = None, workspace: Optional[_StrPath] = None
    ) -> Pitfile:
        """Reads the pitfile at ``path``; ``env`` replaces the environment for ``${{ env.NAME }}``;
        ``workspace`` is the folder LOCAL paths are relative to (``pit --workspace``; default: the
        pitfile's folder).

        Raises PitfileError when the file cannot be read."""
    @staticmethod
    def from_str(text: str, *, name: str = ..., env: Optional[Mapping[str, str]] = None) -> Pitfile:
        """A pitfile from text; ``name`` (default ``pitfile.yml``) names it in diagnostics."""
    @property
    def name(self) -> str: ...
    @property
    def text(self) -> str: ...
    def validate(self, *, strict: bool = False) -> list[Diagnostic]:
        """Checks it as ``pit validate`` does; returns the warnings, raises PitfileError on errors."""
    def plan(self, *, run_id: Optional[str] = None, strict: bool = False) -> dict[str, Any]:
        """The plan ``pit plan -o json`` prints, as plain data. Raises PitfileError on errors."""
    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        """The pitfile's model, placeholders expanded. Raises PitfileError on errors."""

@final
class SuiteResult:
    """How one suite ended."""

    id: str
    environment: str
    outcome: Literal["passed", "failed", "error", "cancelled"]
    message: Optional[str]
    phase: Optional[Literal["plan", "environment", "locks", "deploy", "tests"]]
    """For ``"error"``: where in the suite's life."""
    kind: Optional[str]
    """For ``"error"``: what kind of failure (``"not-healthy"``, ``"timeout"``, ``"locks-busy"`` …)."""
    component: Optional[str]
    """For ``"error"``: the component it happened in, if any."""
    report_path: Optional[str]
    teardown_errors: list[str]
    kept: list[str]
    action_errors: list[str]
    """Post-test actions that failed (each ``action (trigger): why``)."""
    def error(self) -> Optional[SuiteError]:
        """The exception for this suite's outcome (a :class:`SuiteError` subclass), or None if it passed."""

@final
class RunResult:
    """The result of :func:`run`."""

    @property
    def run_id(self) -> str: ...
    @property
    def exit_code(self) -> int:
        """What ``pit run`` would exit with: 0 passed, 1 tests failed, 3 infrastructure, 130 interrupted."""
    @property
    def status(self) -> Literal["passed", "failed", "error", "cancelled"]: ...
    @property
    def passed(self) -> bool: ...
    @property
    def suites(self) -> list[SuiteResult]: ...
    @property
    def has_action_errors(self) -> bool:
        """Whether a post-test action failed; it does not change :attr:`status`."""
    @property
    def report_paths(self) -> list[str]:
        """Where the suites' reports were stored."""
    def to_dict(self) -> dict[str, Any]:
        """The summary ``pit run -o json`` prints."""
    def to_junit(self) -> str:
        """The whole run as JUnit XML: one test suite per suite (what ``pit run --junit FILE`` writes)."""
    def raise_for_status(self) -> None:
        """Raises the first suite's :class:`SuiteError` subclass if any suite did not pass."""
    def __bool__(self) -> bool: ...

def run(
    path: _StrPath = ...,
    *,
    backend: Literal["local", "k8s", "auto"] = "local",
    max_parallel: int = 16,
    on_event: Optional[Callable[[dict[str, Any]], None]] = None,
    state_dir: Optional[_StrPath] = None,
    report_dir: Optional[_StrPath] = None,
    report_store: Optional[str] = None,
    lock_manager: Optional[str] = None,
    kubeconfig: Optional[_StrPath] = None,
    parent_namespace: Optional[str] = None,
    keep: bool = False,
    parallel_suites: bool = False,
    run_id: Optional[str] = None,
    strict: bool = False,
    workspace: Optional[_StrPath] = None,
    test_app_access: Literal["api-proxy", "ingress", "none"] = "api-proxy",
    cluster_url: Optional[str] = None,
    test_app_port: int = 80,
    commit: Optional[str] = None,
    toolkit_args: bool = False,
    actions: Optional[Mapping[str, Sequence[Union[str, Mapping[str, Any]]]]] = None,
    actions_dry_run: bool = False,
    report_url: Optional[str] = None,
) -> RunResult:
    """Runs the pitfile as ``pit run`` does, with the GIL released.

    ``on_event`` gets every progress event (a dict with ``atMs``, ``suite``, ``kind`` …) on
    the calling thread. ``workspace`` is the folder LOCAL paths are relative to (``pit run
    --workspace``). On Kubernetes, a test app that publishes no URL is reached as
    ``test_app_access`` says: through the API server's service proxy (port ``test_app_port``),
    the ingress at ``cluster_url``, or not at all. ``commit`` is recorded in reports. ``toolkit_args`` calls
    every command as the existing toolkit's deployer does (the namespace first). ``actions``
    adds post-test actions to the pitfile's (``{"onFail": ["teams:env:TEAMS_WEBHOOK"]}``, see
    :mod:`pit.actions`); ``actions_dry_run`` renders them without sending; ``report_url`` links
    the messages to the report (``{project}``, ``{suite}``, ``{run}`` are filled in). Ctrl-C (KeyboardInterrupt) cancels the run: everything is torn down and
    the locks released before the KeyboardInterrupt reaches the caller; a second Ctrl-C cuts
    the teardown short. Raises PitfileError for an invalid pitfile, RunError when the run
    cannot start; a run that starts returns its result whatever the suites' outcomes."""

@final
class Lease:
    """Held locks."""

    @property
    def id(self) -> str: ...
    @property
    def ids(self) -> list[str]: ...
    @property
    def fencing(self) -> dict[str, int]:
        """Fencing token per id, larger than any earlier holder's."""
    @property
    def token(self) -> int:
        """The largest fencing token."""
    @property
    def expires_at(self) -> float:
        """Unix seconds after which the lease is lost unless renewed."""
    @property
    def owner(self) -> str: ...

@final
class Lock:
    """A context manager holding locks while its block runs (see :meth:`LockStore.lock`)."""

    def __enter__(self) -> Lease: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]] = None,
        _exc_value: Optional[BaseException] = None,
        _traceback: Optional[TracebackType] = None,
    ) -> bool: ...
    @property
    def lease(self) -> Optional[Lease]: ...

@disjoint_base
class LockStore:
    """Where locks live: :class:`LockClient` or :class:`MemoryLockStore`."""

    def lock(self, ids: Sequence[str], *, ttl: float = 60.0, wait: float = 0.0, owner: Optional[str] = None) -> Lock:
        """Holds ``ids`` (all or none) while the ``with`` block runs, renewing every ttl/3."""
    def acquire(self, ids: Sequence[str], *, ttl: float = 60.0, wait: float = 0.0, owner: Optional[str] = None) -> Lease:
        """Takes ``ids``, waiting up to ``wait`` seconds; raises LockBusy after."""
    def renew(self, lease: Lease, *, ttl: float = 60.0) -> Lease:
        """Extends the lease; raises LeaseLost if it was lost."""
    def release(self, lease: Lease) -> None:
        """Releases the lease."""

@final
class LockClient(LockStore):
    """A Lock Manager over HTTP; ``token`` defaults to ``PIT_LOCK_TOKEN``."""

    def __new__(cls, url: str, token: Optional[str] = None) -> LockClient: ...
    @property
    def url(self) -> str: ...

@final
class MemoryLockStore(LockStore):
    """Locks in memory, with the Lock Manager's behaviour: for unit tests."""

    def __new__(cls) -> MemoryLockStore: ...

@final
class MockLockManager:
    """A Lock Manager over memory on a loopback port, for tests (see :func:`pit.testing.lock_manager`).

    The real HTTP service (the existing toolkit's ``/locks/*`` API and ``/v2``); its locks
    live in this process only and vanish when it stops.
    """

    def __new__(cls, tokens: Optional[Sequence[str]] = None, admin_tokens: Optional[Sequence[str]] = None) -> MockLockManager: ...
    @property
    def url(self) -> str:
        """Its base URL, ``http://127.0.0.1:PORT``."""
    @property
    def running(self) -> bool:
        """Whether it still serves."""
    def stop(self) -> None:
        """Stops it; stopping again does nothing."""
    def __enter__(self) -> MockLockManager: ...
    def __exit__(
        self,
        _exc_type: Optional[type[BaseException]] = None,
        _exc_value: Optional[BaseException] = None,
        _traceback: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class Comparison:
    """The result of :meth:`Report.compare`."""

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        """One dict per figure, with ``key``, ``current``, ``baseline``, ``deltaPct`` and ``change``."""
    @property
    def regressions(self) -> int: ...
    def change(self, key: str) -> Optional[str]:
        """``regression``, ``improvement``, ``changed``, ``unchanged``, ``new`` or ``missing``."""
    def to_dict(self) -> dict[str, Any]: ...

@final
class Report:
    """A test report (schema 1.0 of the existing toolkit, or a suite record of ``pit run``)."""

    @staticmethod
    def load(path: _StrPath) -> Report:
        """Reads a report; raises ReportError saying where it is wrong."""
    @staticmethod
    def from_json(text: str, *, name: str = ...) -> Report:
        """A report from JSON text; ``name`` (default ``report.json``) is for messages."""
    @property
    def name(self) -> str: ...
    @property
    def run_id(self) -> Optional[str]: ...
    @property
    def verdict(self) -> Literal["passed", "failed", "error"]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_html(self, baseline: Union[Report, list[Report], None] = None, *, threshold: float = 10.0) -> str:
        """A self-contained HTML page, compared with ``baseline`` when given."""
    def to_junit(self) -> str:
        """JUnit XML, one test case per scenario stream."""
    def compare(
        self,
        baseline: Union[Report, list[Report]],
        *,
        threshold: float = 10.0,
        per_metric: Optional[Mapping[str, float]] = None,
    ) -> Comparison:
        """Compares every figure with the baseline (the median of several runs)."""

def serve_testapp(
    tests: Callable[[str], Any],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    url_file: Optional[_StrPath] = None,
    on_listening: Optional[Callable[[str], None]] = None,
) -> None:
    """Serves ``tests`` over the Test Runner protocol until Ctrl-C (see :mod:`pit.testapp`)."""

def run_actions(
    report: Report,
    actions: Mapping[str, Sequence[Union[str, Mapping[str, Any]]]],
    *,
    dry_run: bool = False,
    baseline: Union[Report, Sequence[Report], None] = None,
    report_url: Optional[str] = None,
    job_url: Optional[str] = None,
    fail_on_error: bool = False,
) -> list[dict[str, Any]]:
    """Runs the post-test actions ``report`` calls for (see :func:`pit.actions.run`)."""
