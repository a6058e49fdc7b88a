"""Connections to the app's SQL databases: a small pool, and one transaction run on it.

The built-in handlers run their SQL in worker threads (``asyncio.to_thread``), on DB-API
connections kept for reuse rather than opened per call: a purge of thousands of accounts then
costs what its statements cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class PooledDatabase(Protocol):
    """A database whose pooled connections :func:`run_transaction` can use."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        """A pooled DB-API connection, for one worker thread at a time."""
        ...


def _close_all(idle: list[Any]) -> None:
    for conn in idle:
        with contextlib.suppress(Exception):
            conn.close()
    idle.clear()


class Pool:
    """A few idle connections kept for reuse, used from worker threads (``asyncio.to_thread``).

    A connection is handed to one caller at a time; one that raised is closed rather than
    reused (it may be broken), and an open transaction is rolled back before reuse."""

    def __init__(self, connect: Callable[[], Any], reset: Callable[[Any], None], *, size: int = 8) -> None:
        self._connect, self._reset, self._size = connect, reset, size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _close_all, self._idle)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
            self._reset(conn)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)


async def run_transaction(
    database: PooledDatabase,
    work: Callable[[Any], T],
    *,
    commit: bool = True,
    before_commit: Callable[[T], Awaitable[None]] | None = None,
) -> T:
    """Run ``work(conn)`` in one transaction on a pooled connection, in a worker thread; then
    ``await before_commit(result)`` (the purge journals its count there) and commit, or roll
    back when ``commit`` is false (a dry run). On SQLite the transaction is ``BEGIN IMMEDIATE``:
    it holds the write lock from its first statement."""
    context = database.connection()
    dialect = database.dialect

    # One hop to a worker thread to begin and run, one to end (each hop costs): the connection
    # goes back to the pool, or is closed (its transaction rolled back) if anything raised.
    def start() -> tuple[Any, T]:
        conn = context.__enter__()
        try:
            return conn, _begin_and_run(dialect, conn, work)
        except BaseException as exc:
            context.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def finish(conn: Any, exc: BaseException | None) -> None:
        if exc is None:
            try:
                _end(dialect, conn, commit)
            except BaseException as failed:
                exc = failed
        if exc is None:
            context.__exit__(None, None, None)
            return
        context.__exit__(type(exc), exc, exc.__traceback__)
        raise exc

    if not commit or before_commit is None:  # nothing to await in between: one hop
        return await asyncio.to_thread(_all_at_once, start, finish)
    conn, result = await asyncio.to_thread(start)
    try:
        if commit and before_commit is not None:
            await before_commit(result)
    except BaseException as exc:
        await asyncio.to_thread(finish, conn, exc)
        raise
    await asyncio.to_thread(finish, conn, None)
    return result


def _all_at_once(
    start: Callable[[], tuple[Any, T]], finish: Callable[[Any, BaseException | None], None]
) -> T:
    conn, result = start()
    finish(conn, None)
    return result


def _begin_and_run(dialect: str, conn: Any, work: Callable[[Any], T]) -> T:
    if dialect == "sqlite":
        conn.execute("BEGIN IMMEDIATE")
    return work(conn)  # psycopg opens the transaction with the first statement


def _end(dialect: str, conn: Any, commit: bool) -> None:
    if dialect == "sqlite":
        conn.execute("COMMIT" if commit else "ROLLBACK")
    elif commit:
        conn.commit()
    else:
        conn.rollback()
