"""pit.brownie against the real servers scripts/test starts: PostgreSQL (DATABASE_URL), Kafka
(KAFKA_BROKERS) and OpenSearch (OPENSEARCH_URL)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import pit
from pit import brownie

OLD = "ts20240101000000"
YOUNG = "ts20991231000000"


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: scripts/test starts the server")
    return value


def http(method: str, url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
        assert r.status == 200


def psql(sql: str) -> None:
    # The pit CLI has no SQL shell; the server's own client does.
    subprocess.run(["psql", need("DATABASE_URL"), "-qc", sql], check=True, capture_output=True)


def test_elasticsearch_indices_stale_young_live_and_system(tmp_path: Path) -> None:
    url = need("OPENSEARCH_URL")
    tag = f"pb{os.getpid()}x"
    names = [f"{tag}_orders_pit_{OLD}", f"{tag}_orders_pit_{YOUNG}", f"{tag}_pit_{tag}_live_{OLD}", f".{tag}_pit_{OLD}"]
    for n in names:
        http("PUT", f"{url}/{n}?wait_for_active_shards=0")
    server = brownie.elasticsearch(url)
    assert server.module == "elasticsearch"
    pattern = rf"^\.?{tag}_.*pit.*(ts[0-9]{{14}})"
    dry = brownie.clean(server, pattern=pattern, live=[f"{tag}-live"], dry_run=True)
    assert [(c["action"], c["name"]) for c in dry["candidates"]] == [("would-delete", names[0])]
    assert dry["kept_young"] == 1
    reasons = sorted(k["reason"] for k in dry["kept_protected"])
    assert "system or hidden index" in reasons[0] and f"`{tag}-live`" in reasons[1], reasons
    done = brownie.clean(server, pattern=pattern, live=[f"{tag}-live"])
    assert [(c["action"], c["name"]) for c in done["candidates"]] == [("deleted", names[0])]
    again = brownie.clean(server, pattern=pattern, live=[f"{tag}-live"], dry_run=True)
    assert again["found"] == 3 and again["candidates"] == []
    for n in names[1:]:
        http("DELETE", f"{url}/{n}")


def test_postgres_databases_with_the_password_from_a_file(tmp_path: Path) -> None:
    dsn = need("DATABASE_URL")
    tag = f"pb{os.getpid()}x"
    stale = f"{tag}_orders_pit_{OLD}"
    psql(f'DROP DATABASE IF EXISTS "{stale}"')
    psql(f'CREATE DATABASE "{stale}"')
    secret = tmp_path / "pgpassword"
    secret.write_text("unused-by-trust-auth\n")
    server = brownie.postgres(dsn, password={"file": str(secret)}, protect=["locks"])
    assert "unused-by-trust-auth" not in repr(server)
    report = brownie.clean(server, pattern=rf"^{tag}_.*pit.*(ts[0-9]{{14}})")
    assert [(c["action"], c["name"]) for c in report["candidates"]] == [("deleted", stale)]
    assert report["module"] == "postgresql" and report["seconds"] >= 0


def test_kafka_topics_are_listed_through_the_real_broker() -> None:
    server = brownie.kafka([need("KAFKA_BROKERS")], client_id="pit-py-test")
    report = brownie.clean(server, pattern=rf"^pb{os.getpid()}none_.*pit.*(ts[0-9]{{14}})", dry_run=True)
    assert report["module"] == "kafka" and report["found"] == 0


def test_bad_settings_raise_value_error_and_an_unreachable_server_brownie_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has a password"):
        brownie.postgres("postgres://u:pw@127.0.0.1:9/postgres")
    with pytest.raises(ValueError, match="PIT_TEST_UNSET_SECRET"):
        brownie.kafka(["127.0.0.1:9"], username="u", password={"env": "PIT_TEST_UNSET_SECRET"})
    with pytest.raises(ValueError, match="needs password"):
        brownie.kafka(["127.0.0.1:9"], username="u")
    with pytest.raises(ValueError, match="scram-sha-256"):
        brownie.kafka(["127.0.0.1:9"], username="u", password={"file": __file__}, sasl_mechanism="gssapi")
    with pytest.raises(ValueError, match="both username and password"):
        brownie.elasticsearch("http://127.0.0.1:9", username="u")
    server = brownie.elasticsearch("http://127.0.0.1:9")
    for retention in ("soon", "3", "-1day"):
        with pytest.raises(ValueError, match="retention"):
            brownie.clean(server, retention=retention)
    with pytest.raises(ValueError, match="group"):
        brownie.clean(server, pattern="^pit_.*")
    started = time.monotonic()
    with pytest.raises(pit.BrownieError, match="127.0.0.1:9") as raised:
        brownie.clean(server)
    assert raised.value.exit_code == 3
    assert time.monotonic() - started < 30
