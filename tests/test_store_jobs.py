"""What the stores share about the purge job journal (``agegate.stores._jobs``).

The lease rule is written once, in two forms: a Python predicate for the memory store and a SQL
condition for the SQL stores. Both give the same answer for every job state, holder, takeover
and lease end, on SQLite and on PostgreSQL. The job table's DDL is built from the shared column
list, and the released migrations stay as they were released."""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from agegate.stores._jobs import JOB_STATES, LEASE_IS_FREE, lease_is_free
from agegate.stores.base import PurgeJob

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = "me"
HOLDERS = (None, OWNER, "dead", "other")
TAKEOVERS = (None, "dead", OWNER)
ENDS = (None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1))
CASES = list(itertools.product(JOB_STATES, HOLDERS, ENDS))


def _job(state: str, holder: str | None, end: datetime | None) -> PurgeJob:
    return PurgeJob(
        job_id="j",
        subject_hash=b"s",
        ticket="t",
        operator="o",
        handlers=(),
        state=state,  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
        lease_owner=holder,
        lease_until=end,
    )


def _expected(takeover: str | None) -> set[int]:
    return {
        i
        for i, (state, holder, end) in enumerate(CASES)
        if lease_is_free(_job(state, holder, end), owner=OWNER, takeover=takeover, now=NOW)
    }


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else int((moment - NOW).total_seconds() * 1_000_000)


def test_the_python_rule_says_what_the_protocol_says() -> None:
    # Not finished, and: free, own, the named dead holder's, or expired at now.
    assert _expected(None) == {
        i
        for i, (state, holder, end) in enumerate(CASES)
        if state not in ("done", "dry_run") and (holder in (None, OWNER) or (end is not None and end <= NOW))
    }
    assert _expected("dead") - _expected(None) == {
        i
        for i, (state, holder, end) in enumerate(CASES)
        if state not in ("done", "dry_run") and holder == "dead" and (end is None or end > NOW)
    }


@pytest.mark.parametrize("takeover", TAKEOVERS)
def test_the_sql_rule_agrees_on_sqlite(takeover: str | None) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE jobs (id INTEGER, state TEXT, lease_owner TEXT, lease_until INTEGER)")
    conn.executemany(
        "INSERT INTO jobs VALUES (?, ?, ?, ?)",
        [(i, state, holder, _micros(end)) for i, (state, holder, end) in enumerate(CASES)],
    )
    rule = LEASE_IS_FREE.format(mark="?")
    found = {i for (i,) in conn.execute(f"SELECT id FROM jobs WHERE {rule}", (OWNER, takeover, 0))}
    assert found == _expected(takeover)


@pytest.mark.postgres
@pytest.mark.parametrize("takeover", TAKEOVERS)
def test_the_sql_rule_agrees_on_postgres(takeover: str | None) -> None:
    url = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("AGEGATE_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(
            "CREATE TEMPORARY TABLE jobs (id integer, state text, lease_owner text, lease_until timestamptz)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO jobs VALUES (%s, %s, %s, %s)",
                [(i, state, holder, end) for i, (state, holder, end) in enumerate(CASES)],
            )
        rule = LEASE_IS_FREE.format(mark="%s")
        rows = conn.execute(f"SELECT id FROM jobs WHERE {rule}", (OWNER, takeover, NOW)).fetchall()
    assert {i for (i,) in rows} == _expected(takeover)


# The migrations that made version 1 to 4 were released: they are never edited, now that part
# of them (the job table) is built from the shared column list in agegate.stores._jobs. A new
# column there needs a new migration, not a changed old one.
RELEASED = {
    "sqlite": "93a7287b56c7d9d0e79e86cc9429fa889a83e46488ccca6ea27a7033d3072d5d",
    "postgres": "ff9b29b813cf4268899569746a01afb09e4b532c2a6d471c296c0f8e459f80b3",
}


@pytest.mark.parametrize("store", sorted(RELEASED))
def test_released_migrations_are_never_edited(store: str) -> None:
    import importlib

    schema = importlib.import_module(f"agegate.stores.{store}.schema")
    assert hashlib.sha256(repr(schema.MIGRATIONS[:4]).encode()).hexdigest() == RELEASED[store]
