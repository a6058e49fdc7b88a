"""SIGKILL at any point of a relational purge, then ``--resume``: the same end state, rows and
journal, as an uninterrupted purge (the harness of :mod:`test_purge_crash`)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import relational_app
import relational_schema as rs
from test_purge_crash import _env, agegate, start, wait_for_file

pytestmark = [pytest.mark.slow, pytest.mark.time_limit(180)]

PURGE = [
    "purge", "--app", "relational_app:gate", "--subject", relational_app.CHILD, "--ticket", "T-77",
    "--operator", "support-7", "--yes", "--json",
]  # fmt: skip
POINTS = [
    "before:freeze",
    "after:freeze",
    "before:customers",
    "mid:customers",
    "journalled:customers",
    "committed:customers",
    "after:customers",
    "before:block_identifiers",
    "after:block_identifiers",
]


POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL", "")
#: Where the shop lives: "" (SQLite, in the test's directory) or a PostgreSQL URL.
BACKENDS = [
    "",
    pytest.param(POSTGRES_URL, marks=pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL")),
]
SCHEMAS: dict[Path, str] = {}


@pytest.fixture(params=BACKENDS, ids=["sqlite", "postgresql"], scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    if request.param:
        import psycopg

        with psycopg.connect(request.param, autocommit=True) as conn:
            for schema in SCHEMAS.values():
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        SCHEMAS.clear()


def seed(directory: Path, backend: str) -> None:
    if backend:
        SCHEMAS[directory] = "crash_" + secrets.token_hex(4)
    relational_app.seed(directory, postgres=backend, schema=SCHEMAS.get(directory, ""))


def env(directory: Path, backend: str, **extra: str) -> dict[str, str]:
    if backend:
        extra.update(PURGE_APP_POSTGRES=backend, PURGE_APP_SCHEMA=SCHEMAS[directory])
    return _env(directory, **extra)


def shop(directory: Path, backend: str = "") -> dict[str, list[tuple[Any, ...]]]:
    if backend:
        import psycopg

        with psycopg.connect(backend) as conn:
            return rs.snapshot(conn, schema=SCHEMAS[directory])
    with contextlib.closing(sqlite3.connect(directory / "shop.sqlite3")) as conn:
        return rs.snapshot(conn)


def journal(directory: Path, backend: str = "") -> list[dict[str, Any]]:
    done = agegate(["audit", "--app", "relational_app:gate", "--json"], env(directory, backend))
    assert done.returncode == 0, done.stderr
    jobs: list[dict[str, Any]] = json.loads(done.stdout)
    return [{k: job[k] for k in ("ticket", "state", "steps")} for job in jobs]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, backend: str) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("reference")
    seed(directory, backend)
    before = shop(directory, backend)
    done = agegate(PURGE, env(directory, backend))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["deleted"] == {"customers": 9}
    after = shop(directory, backend)
    assert after == rs.expected_after(before, 351)
    return {"shop": after, "journal": journal(directory, backend), "deleted": report["deleted"]}


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_any_point_then_resume_equals_a_clean_purge(
    tmp_path: Path, backend: str, reference: dict[str, Any], point: str
) -> None:
    seed(tmp_path, backend)
    before = shop(tmp_path, backend)
    marker = tmp_path / "paused"
    proc = start(PURGE, env(tmp_path, backend, PURGE_APP_PAUSE=point, PURGE_APP_MARKER=str(marker)))
    wait_for_file(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    if point in ("mid:customers", "journalled:customers"):
        # Killed inside the transaction: nothing of it survives (PostgreSQL rolls back when the
        # connection drops; give it the moment that takes).
        assert _eventually(lambda: shop(tmp_path, backend) == before)
    resumed = agegate(["purge", "--app", "relational_app:gate", "--resume", "--json"], env(tmp_path, backend))
    assert resumed.returncode == 0, resumed.stderr
    (report,) = json.loads(resumed.stdout)
    assert report["state"] == "done" and report["deleted"] == reference["deleted"]
    assert shop(tmp_path, backend) == reference["shop"]
    assert journal(tmp_path, backend) == reference["journal"]


def _eventually(check: Any) -> bool:
    import time

    for _ in range(200):  # bounded: at most ~10 s
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_cli_dry_run_prints_the_plan(tmp_path: Path) -> None:
    seed(tmp_path, "")
    before = shop(tmp_path)
    dry = [arg for arg in PURGE if arg not in ("--yes", "--json")] + ["--dry-run"]
    done = agegate(dry, _env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Plan of the relational handlers" in done.stdout
    assert "customers: rental" in done.stdout and "customer <- rental.customer_id  [delete] 2" in done.stdout
    assert "customers: address" in done.stdout and "[delete if unreferenced] 0" in done.stdout
    as_json = json.loads(agegate([*dry, "--json"], _env(tmp_path)).stdout)
    assert {"handler": "customers", "table": "message", "path": "customer <- message.recipient_id",
            "action": "set null", "count": 3} in as_json["plan"]  # fmt: skip
    assert shop(tmp_path) == before
