"""Locks: the in-memory store for users' unit tests, and a real Lock Manager on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator, Optional

import pytest

import pit
from pit.testing import lock_manager


@pytest.fixture(params=["memory", "lock-manager", "mock-lock-manager"])
def store(request: pytest.FixtureRequest) -> Iterator[pit.LockStore]:
    """Every store must behave the same."""
    if request.param == "memory":
        yield pit.MemoryLockStore()
    elif request.param == "mock-lock-manager":
        with lock_manager() as manager:
            yield pit.LockClient(manager.url, token=None)
    else:
        lm = request.getfixturevalue("lock_manager")
        yield pit.LockClient(lm.url, token=lm.token)


def post(url: str, body: dict[str, Any], token: Optional[str] = None) -> tuple[int, Any]:
    """POSTs JSON; the status and the decoded answer."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_mock_lock_manager_speaks_the_existing_toolkits_api_and_stops_with_the_block() -> None:
    with lock_manager(tokens=["ci:secret"]) as manager:
        assert manager.running and manager.url.startswith("http://127.0.0.1:")
        acquire = {"lockId": "db", "owner": "deployer", "expiryInSec": 30}
        assert post(manager.url + "/locks/acquire", acquire)[0] == 401
        status, answer = post(manager.url + "/locks/acquire", acquire, "secret")
        assert status == 200 and answer["acquired"] is True, answer
        other = {"lockId": "db", "owner": "someone else", "expiryInSec": 30}
        assert post(manager.url + "/locks/acquire", other, "secret")[1]["acquired"] is False
        client = pit.LockClient(manager.url, token="secret")
        with pytest.raises(pit.LockBusy):
            client.acquire(["db"], wait=0)
        status, freed = post(manager.url + "/locks/release", {"lockIds": ["db"], "owner": "deployer"}, "secret")
        assert (status, freed) == (200, ["db"])
        client.release(client.acquire(["db"], wait=0))
        url = manager.url
    assert not manager.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=5)


def test_a_with_block_holds_the_ids_and_releases_them(store: pit.LockStore, unique: str) -> None:
    ids = [f"db-{unique}", f"queue-{unique}"]
    with store.lock(ids, ttl=30, owner="the first test") as lease:
        assert sorted(lease.ids) == sorted(ids)
        assert set(lease.fencing) == set(ids) and lease.token >= 1
        assert lease.owner == "the first test"
        assert lease.expires_at > time.time()
        with pytest.raises(pit.LockBusy) as busy:
            store.acquire([ids[1]], wait=0.2)
        assert busy.value.holders == [(ids[1], "the first test")]
        assert busy.value.exit_code == 3
        assert "the first test" in str(busy.value)
    # Released: the next holder gets larger fencing tokens.
    again = store.acquire(ids, wait=0)
    assert all(again.fencing[i] > lease.fencing[i] for i in ids)
    store.release(again)


def test_the_lock_is_released_when_the_block_raises(store: pit.LockStore, unique: str) -> None:
    with pytest.raises(ZeroDivisionError):
        with store.lock([f"db-{unique}"]):
            1 / 0
    store.release(store.acquire([f"db-{unique}"]))


def test_a_waiter_gets_the_lock_when_it_is_released(store: pit.LockStore, unique: str) -> None:
    first = store.acquire([f"db-{unique}"], ttl=30)
    got: list[pit.Lease] = []
    waiter = threading.Thread(target=lambda: got.append(store.acquire([f"db-{unique}"], wait=30)))
    waiter.start()
    # The waiter is queued (it runs without the GIL, so this thread goes on).
    assert not got
    store.release(first)
    waiter.join(30)
    assert got and got[0].token > first.token
    store.release(got[0])


def test_the_with_block_renews_the_lease_beyond_its_ttl(store: pit.LockStore, unique: str) -> None:
    with store.lock([f"db-{unique}"], ttl=0.6) as lease:
        deadline = lease.expires_at
        # Past the first expiry: only renewals (every ttl/3) keep it.
        while time.time() < deadline + 0.5:
            time.sleep(0.1)
        with pytest.raises(pit.LockBusy):
            store.acquire([f"db-{unique}"], wait=0)


def test_a_lost_lease_raises_lease_lost(store: pit.LockStore, unique: str) -> None:
    lease = store.acquire([f"db-{unique}"], ttl=0.2)
    deadline = lease.expires_at
    while time.time() < deadline + 0.2:
        time.sleep(0.05)
    other = store.acquire([f"db-{unique}"], wait=1)
    with pytest.raises(pit.LeaseLost):
        store.renew(lease)
    store.release(other)


def test_bad_arguments_are_value_errors() -> None:
    store = pit.MemoryLockStore()
    with pytest.raises(ValueError, match="ttl"):
        store.acquire(["db"], ttl=-1)
    with pytest.raises(pit.LockError) as raised:
        store.acquire([])
    assert raised.value.exit_code == 2


def test_the_lock_manager_refuses_a_wrong_token(lock_manager, unique: str) -> None:
    with pytest.raises(pit.LockError) as raised:
        pit.LockClient(lock_manager.url, token="wrong").acquire([f"db-{unique}"])
    assert "401" in str(raised.value) or "token" in str(raised.value)
    assert not isinstance(raised.value, pit.LockBusy)


def test_lock_client_takes_the_token_from_the_environment(lock_manager, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIT_LOCK_TOKEN", lock_manager.token)
    client = pit.LockClient(lock_manager.url)
    assert client.url == lock_manager.url
    client.release(client.acquire([f"db-{unique}"]))


def test_an_unusable_url_is_a_lock_error() -> None:
    with pytest.raises(pit.LockError):
        pit.LockClient("not a url")
