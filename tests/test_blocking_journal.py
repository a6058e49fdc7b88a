"""The journal written from a transaction's worker thread (a store's ``record_step_blocking``,
:class:`~agegate.connections.BeforeCommit` ``in_thread``): it runs before the commit, in the
worker thread, with the async path's outcomes; a failing, timed-out or lease-losing journal write
rolls the transaction back; a cancelled caller commits nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from store_contract import HOUR, T0, job
from test_connections import _delete_all, _rows

from agegate import StoreUnavailable
from agegate.connections import BeforeCommit, run_transaction
from agegate.errors import _LostLease
from agegate.handlers import SQLiteDatabase
from agegate.purge.driver import _planned_journal
from agegate.stores import MemoryStore
from agegate.stores.base import BlockingJournal
from agegate.stores.sqlite import SQLiteStore
from agegate.stores.sqlite import connection as sqlite_connection

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
    await store.open()
    yield store
    await store.close()


async def _on_loop(rows: int) -> None:
    raise AssertionError("the journal has a blocking form: the event loop is not asked")


async def _claimed(store: Any) -> str:
    stored, _ = await store.create_job(job("blocking"))
    assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
    return str(stored.job_id)


async def test_the_worker_thread_journals_before_the_commit(db: SQLiteDatabase, store: SQLiteStore) -> None:
    job_id = await _claimed(store)
    seen: list[tuple[int, int, bool]] = []
    loop_thread = threading.get_ident()

    def in_thread(rows: int) -> None:
        # Deleted but not committed: another connection still sees the rows.
        seen.append((rows, _rows(db), threading.get_ident() != loop_thread))
        assert store.record_step_blocking(job_id, owner="w", step="planned:t", count=rows, now=T0)

    assert await run_transaction(db, _delete_all, before_commit=BeforeCommit(_on_loop, in_thread)) == 3
    assert seen == [(3, 3, True)]
    assert _rows(db) == 0
    got = await store.get_job(job_id)
    assert got is not None and got.steps == {"planned:t": 3}


async def test_a_failing_journal_write_rolls_back(db: SQLiteDatabase) -> None:
    def in_thread(rows: int) -> None:
        raise StoreUnavailable("the store is down")

    with pytest.raises(StoreUnavailable):
        await run_transaction(db, _delete_all, before_commit=BeforeCommit(_on_loop, in_thread))
    assert _rows(db) == 3
    assert await run_transaction(db, _delete_all) == 3  # the database is free again


async def test_a_caller_cancelled_while_the_thread_journals_rolls_back(db: SQLiteDatabase) -> None:
    entered, release = threading.Event(), threading.Event()

    def in_thread(rows: int) -> None:
        entered.set()
        release.wait(30)

    task = asyncio.create_task(
        run_transaction(db, _delete_all, before_commit=BeforeCommit(_on_loop, in_thread))
    )
    assert await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.wait_for(run_transaction(db, _delete_all), 30) == 3


async def test_the_blocking_write_has_the_async_writes_outcomes(store: SQLiteStore) -> None:
    stored, _ = await store.create_job(job("s"))
    record = store.record_step_blocking
    assert not await asyncio.to_thread(record, stored.job_id, owner="w1", step="orders", count=3, now=T0)
    assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
    assert not await asyncio.to_thread(record, stored.job_id, owner="w2", step="orders", count=3, now=T0)
    assert await asyncio.to_thread(record, stored.job_id, owner="w1", step="orders", count=3, now=T0)
    assert await asyncio.to_thread(record, stored.job_id, owner="w1", step="orders", count=9, now=T0)
    got = await store.get_job(stored.job_id)
    assert got is not None and got.steps == {"orders": 3}


async def test_a_store_that_stays_busy_is_unavailable_and_rolls_back(
    db: SQLiteDatabase, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await _claimed(store)
    monkeypatch.setattr(sqlite_connection, "RETRY_FOR", 0.3)
    journal = _planned_journal(store, await store.get_job(job_id), "w", "t")  # type: ignore[arg-type]
    assert journal.in_thread is not None
    with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as locker:
        locker.execute("BEGIN IMMEDIATE")  # another process holds the store's write lock
        with pytest.raises(StoreUnavailable, match="busy"):
            await run_transaction(db, _delete_all, before_commit=journal)
        locker.execute("ROLLBACK")
    assert _rows(db) == 3
    assert await run_transaction(db, _delete_all, before_commit=journal) == 3
    got = await store.get_job(job_id)
    assert got is not None and got.steps == {"planned:t": 3}


async def test_a_store_thread_that_does_not_answer_is_unavailable(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await _claimed(store)
    monkeypatch.setattr(sqlite_connection, "RETRY_FOR", 0.3)
    stuck = threading.Event()
    assert store._executor is not None
    store._executor.submit(stuck.wait, 30)  # the store's thread is busy with something slow
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await asyncio.to_thread(store.record_step_blocking, job_id, owner="w", step="x", count=1, now=T0)
    finally:
        stuck.set()
    got = await store.get_job(job_id)
    assert got is not None and got.steps == {}  # the write that timed out never ran


async def test_a_lost_lease_rolls_back(db: SQLiteDatabase, store: SQLiteStore) -> None:
    job_id = await _claimed(store)
    taken = await store.get_job(job_id)
    assert await store.claim_job(job_id, owner="other", until=T0 + 3 * HOUR, now=T0 + 2 * HOUR)
    journal = _planned_journal(store, taken, "w", "t")  # type: ignore[arg-type]
    with pytest.raises(_LostLease):
        await run_transaction(db, _delete_all, before_commit=journal)
    assert _rows(db) == 3


async def test_only_a_store_offering_it_is_written_from_the_thread(store: SQLiteStore) -> None:
    assert isinstance(store, BlockingJournal)
    assert not isinstance(MemoryStore(), BlockingJournal)
    memory = MemoryStore()
    assert _planned_journal(memory, job("m"), "w", "t").in_thread is None
    assert _planned_journal(store, job("m"), "w", "t").in_thread is not None
