"""Test helpers for code that takes locks: a Lock Manager without PostgreSQL.

::

    import pit
    from pit.testing import lock_manager

    def test_my_deploy_script_takes_the_database_lock():
        with lock_manager() as manager:
            run_my_script(lock_manager_url=manager.url)
            held = pit.LockClient(manager.url).acquire(["db"], wait=0)  # free again
            ...

The Lock Manager is the real HTTP service (the existing toolkit's ``/locks/*`` API and
``/v2``) over an in-memory store, on a free loopback port; it stops when the block ends, and its
locks are not shared with any other Lock Manager.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from ._pit import MockLockManager

__all__ = ["MockLockManager", "lock_manager"]


@contextmanager
def lock_manager(
    tokens: Optional[Sequence[str]] = None, admin_tokens: Optional[Sequence[str]] = None
) -> Iterator[MockLockManager]:
    """A Lock Manager over memory on loopback for the ``with`` block.

    ``tokens`` and ``admin_tokens``: the bearer tokens it accepts (``name:token`` names the
    principal); without any, it is open to every caller.
    """
    manager = MockLockManager(tokens=tokens, admin_tokens=admin_tokens)
    try:
        yield manager
    finally:
        manager.stop()
