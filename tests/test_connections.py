"""run_transaction: one hop to a worker thread; before_commit runs on the event loop before the
commit; a caller cancelled before the commit leaves nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
from typing import Any

import pytest

from agegate.connections import run_transaction
from agegate.handlers import SQLiteDatabase

pytestmark = pytest.mark.anyio
_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _delete_all(conn: Any) -> int:
    return int(conn.execute("DELETE FROM t").rowcount)


def _rows(db: SQLiteDatabase) -> int:
    with contextlib.closing(sqlite3.connect(db.path)) as conn:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


async def test_before_commit_sees_the_count_in_the_callers_context_then_commits(db: SQLiteDatabase) -> None:
    seen: list[tuple[int, str, int]] = []

    async def journal(rows: int) -> None:
        # The rows are deleted but not committed: another connection still sees them.
        seen.append((rows, _who.get(), _rows(db)))

    _who.set("purge")
    assert await run_transaction(db, _delete_all, before_commit=journal) == 3
    assert seen == [(3, "purge", 3)]
    assert _rows(db) == 0


async def test_a_failing_before_commit_rolls_back(db: SQLiteDatabase) -> None:
    async def journal(rows: int) -> None:
        raise RuntimeError("the journal is down")

    with pytest.raises(RuntimeError, match="journal is down"):
        await run_transaction(db, _delete_all, before_commit=journal)
    assert _rows(db) == 3
    assert await run_transaction(db, _delete_all) == 3  # the database is free again


async def test_a_caller_cancelled_while_journalling_rolls_back(db: SQLiteDatabase) -> None:
    entered, finished = asyncio.Event(), asyncio.Event()

    async def journal(rows: int) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        finally:
            finished.set()

    task = asyncio.create_task(run_transaction(db, _delete_all, before_commit=journal))
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(finished.wait(), 30)  # the journal's coroutine was cancelled too
    # The next transaction waits for the abandoned one to roll back, then finds every row.
    assert await asyncio.wait_for(run_transaction(db, _delete_all), 30) == 3


async def test_a_dry_run_rolls_back_without_journalling(db: SQLiteDatabase) -> None:
    async def journal(rows: int) -> None:
        raise AssertionError("a dry run journals nothing")

    assert await run_transaction(db, _delete_all, commit=False, before_commit=journal) == 3
    assert _rows(db) == 3
