"""Post-test actions: tell people and systems what a run found.

The same actions as ``pit actions run`` and a pitfile's ``postTestActions`` (see
docs/actions.md): ``teams``, ``slack``, ``webhook``, ``github`` and ``git-tag``::

    import pit
    from pit import actions

    report = pit.Report.load("reports/shop/checkout/01jq.../report.json")
    for done in actions.run(
        report,
        {
            "onFail": ["teams:env:TEAMS_WEBHOOK", {"action": "git-tag", "repository": "."}],
            "onPass": [{"action": "github", "repository": "acme/shop"}],
        },
        report_url="https://reports.example.com/shop/checkout/01jq.../",
    ):
        print(done["action"], done["outcome"], done["detail"])

Each action is a string as on the command line (``teams:env:VAR``, ``webhook:env:URL:file:KEY``,
``github``, ``git-tag:env:TOKEN``) or a dict as in a pitfile. Secrets are named, never written:
an environment variable (``env:``) or a file (``file:``). Inside a run, pass the same mapping
as ``pit.run(..., actions=...)``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, TypedDict, Union

from ._pit import ActionFailed, Report, run_actions

__all__ = ["ActionFailed", "ActionSpec", "Actions", "run"]

ActionSpec = Union[str, Mapping[str, Any]]
"""One action: ``"teams:env:TEAMS_WEBHOOK"``, or ``{"action": "teams", "webhook": {"env": "TEAMS_WEBHOOK"}}``."""

Actions = Mapping[str, Sequence[ActionSpec]]
"""Actions per trigger: ``onPass``, ``onFail``, ``onRegression``."""


class Result(TypedDict, total=False):
    """How one action went."""

    action: str
    """``teams``, ``slack``, ``webhook``, ``github`` or ``git-tag``."""
    trigger: str
    """``onPass``, ``onFail`` or ``onRegression``."""
    outcome: str
    """``ok``, ``dry-run`` or ``failed``."""
    detail: str
    """What happened, in words (never a secret)."""
    body: Any
    """A dry run: what would have been sent (for ``git-tag``, what would be tagged)."""
    status: int
    """The receiver's HTTP status."""
    annotations: list[str]
    """``github`` under GitHub Actions: the ``::error`` lines printed."""
    tag: dict[str, Any]
    """``git-tag``: the commit, the tag set, the tag removed."""


def run(
    report: Union[Report, str, "os.PathLike[str]"],
    actions: Actions,
    *,
    dry_run: bool = False,
    baseline: Union[Report, Sequence[Report], None] = None,
    report_url: Optional[str] = None,
    job_url: Optional[str] = None,
    fail_on_error: bool = False,
) -> list[Result]:
    """Runs the actions ``report``'s verdict calls for, in order; one :class:`Result` each.

    ``onPass`` runs when every stream passed, ``onFail`` when one failed or the run failed
    around the tests, ``onRegression`` when a metric regressed against ``baseline``. With
    ``dry_run`` each message is rendered, not sent, and nothing is tagged. A failed action is
    in the results with ``outcome == "failed"``; with ``fail_on_error`` it raises
    :class:`ActionFailed` (after every action ran). Raises ``ValueError`` for an action that
    is not well formed (an inline URL included, without repeating it).
    """
    loaded = report if isinstance(report, Report) else Report.load(report)
    results = run_actions(
        loaded,
        dict(actions),
        dry_run=dry_run,
        baseline=baseline,
        report_url=report_url,
        job_url=job_url,
        fail_on_error=fail_on_error,
    )
    return [Result(**r) for r in results]  # type: ignore[typeddict-item]
