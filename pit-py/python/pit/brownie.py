"""The janitor's modules: delete the databases, topics and indices crashed runs left behind.

The same as ``pit brownie`` (see docs/brownie.md): a resource is stale when the creation time
in its name (``ts`` and 14 digits, ``yyyyMMddHHmmss`` UTC, after ``pit`` as a word) is older
than the retention; resources that are young, unreadable, protected or carry the name of a
live run are kept::

    from pit import brownie

    servers = [
        brownie.postgres("host=db.internal user=brownie dbname=postgres", password={"env": "PGPASSWORD"}),
        brownie.kafka(["k1:9092"], username="brownie", password={"file": "/run/secrets/kafka"},
                      sasl_mechanism="scram-sha-256"),
        brownie.elasticsearch("https://es.internal:9200"),
    ]
    for server in servers:
        report = brownie.clean(server, retention="3days", dry_run=True)
        for c in report["candidates"]:
            print(server.module, c["action"], c["name"], c["age_secs"])

Passwords are named, never written: ``{"env": NAME}`` or ``{"file": PATH}``. A server that
cannot be reached or listed raises :class:`BrownieError`; a failed delete is in the report
(``action == "failed"`` with its ``error``).
"""

from __future__ import annotations

import os
from typing import Literal, Mapping, Optional, Sequence, TypedDict, Union

from ._pit import BrownieError, BrownieServer, brownie_clean

__all__ = ["BrownieError", "Candidate", "Kept", "Report", "Server", "clean", "elasticsearch", "kafka", "postgres"]

Server = BrownieServer
"""One server to clean (``postgres``, ``kafka`` or ``elasticsearch`` builds it)."""

SecretRef = Mapping[str, str]
"""Where a password is: ``{"env": "NAME"}`` or ``{"file": "/run/secrets/x"}``."""


class Candidate(TypedDict, total=False):
    """A resource older than the retention."""

    name: str
    age_secs: int
    """Its age, from the time in its name."""
    rule: str
    """The rule that selected it: the pattern and the retention."""
    action: Literal["deleted", "would-delete", "failed"]
    error: str
    """Why the delete failed (``action == "failed"`` only)."""


class Kept(TypedDict):
    """A resource kept, and why."""

    name: str
    reason: str


class Report(TypedDict):
    """What one sweep of a server found and did."""

    module: str
    """``postgresql``, ``kafka`` or ``elasticsearch``."""
    found: int
    """Resources whose names match the pattern."""
    kept_young: int
    kept_unreadable: list[Kept]
    """No creation time could be read from the name (an invalid date, say)."""
    kept_protected: list[Kept]
    """Protected (template databases, ``_`` topics, ``.`` indices …) or in use by a live run."""
    candidates: list[Candidate]
    seconds: float
    """Wall time."""


def postgres(
    dsn: str,
    *,
    password: Optional[SecretRef] = None,
    force: bool = False,
    protect: Sequence[str] = (),
) -> BrownieServer:
    """A PostgreSQL server from a connection string without a password.

    The database connected to, ``postgres``, template databases and ``protect`` are never
    dropped; ``force`` drops databases with their open connections (``WITH (FORCE)``).
    Raises ``ValueError`` for a string that cannot be read or that holds a password.
    """
    return BrownieServer.postgres(dsn, password=dict(password) if password else None, force=force, protect=list(protect))


def kafka(
    brokers: Sequence[str],
    *,
    client_id: str = "pit-brownie",
    username: Optional[str] = None,
    password: Optional[SecretRef] = None,
    sasl_mechanism: str = "plain",
) -> BrownieServer:
    """A Kafka cluster through ``brokers`` (``host:port``); SASL (``plain``, ``scram-sha-256``,
    ``scram-sha-512``) when ``username`` is given. Topics starting with ``_`` are never deleted."""
    return BrownieServer.kafka(
        list(brokers),
        client_id=client_id,
        username=username,
        password=dict(password) if password else None,
        sasl_mechanism=sasl_mechanism,
    )


def elasticsearch(
    url: str,
    *,
    username: Optional[str] = None,
    password: Optional[SecretRef] = None,
    ca_file: Union[str, "os.PathLike[str]", None] = None,
) -> BrownieServer:
    """An Elasticsearch or OpenSearch cluster at ``url`` (comma separated nodes: each request
    goes to the first that answers), trusting ``ca_file`` (PEM) besides the system's CAs.
    Indices starting with ``.`` are never deleted."""
    return BrownieServer.elasticsearch(
        url,
        username=username,
        password=dict(password) if password else None,
        ca_file=os.fspath(ca_file) if ca_file is not None else None,
    )


def clean(
    server: BrownieServer,
    *,
    retention: str = "3days",
    pattern: Optional[str] = None,
    live: Sequence[str] = (),
    dry_run: bool = False,
    parallel: int = 32,
) -> Report:
    """One sweep of ``server``: deletes its stale resources, ``parallel`` at a time.

    ``retention`` is the existing toolkit's form (``3days``, ``12hours``, ``30minutes``) or
    any duration humantime reads (``72h``, ``2weeks``, ``1day 12h``); ``pattern`` a regular expression whose first group is the ``ts…`` time (default:
    PIT's); ``live`` the environment names (namespaces) of runs still alive, whose resources
    are kept whatever their age. With ``dry_run`` nothing is deleted and each candidate says
    ``would-delete``. Raises ``ValueError`` for a bad retention or pattern and
    :class:`BrownieError` when the server cannot be reached or listed.
    """
    report: Report = brownie_clean(
        server, retention=retention, pattern=pattern, live=list(live), dry_run=dry_run, parallel=parallel
    )  # type: ignore[assignment]
    return report
