"""Connections to the app's SQL databases: a small pool, and one transaction run on it.

The built-in handlers run their SQL in worker threads of their own, on DB-API connections kept
for reuse rather than opened per call: a purge of thousands of accounts then costs what its
statements cost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["BeforeCommit", "Pool", "PooledDatabase", "run_transaction"]

T = TypeVar("T")
U = TypeVar("U")


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


class BeforeCommit(Generic[T]):
    """What :func:`run_transaction` runs between a transaction's work and its commit: a
    coroutine function awaited on the event loop (the object is one too), and optionally the
    same work as a blocking call, ``in_thread``, which the transaction's worker thread then
    makes itself: no switch to the event loop and back before each commit."""

    __slots__ = ("in_thread", "on_loop")

    def __init__(
        self, on_loop: Callable[[T], Awaitable[None]], in_thread: Callable[[T], None] | None = None
    ) -> None:
        self.on_loop, self.in_thread = on_loop, in_thread

    async def __call__(self, result: T) -> None:
        await self.on_loop(result)

    @classmethod
    def of(cls, hook: Callable[[T], Awaitable[None]]) -> BeforeCommit[T]:
        return hook if isinstance(hook, BeforeCommit) else cls(hook)

    def taking(self, convert: Callable[[U], T]) -> BeforeCommit[U]:
        """The same work, done on ``convert(result)``."""
        on_loop, in_thread = self.on_loop, self.in_thread
        return BeforeCommit(
            lambda result: on_loop(convert(result)),
            None if in_thread is None else lambda result: in_thread(convert(result)),
        )


class _Journal:
    """What the worker thread of :func:`run_transaction` asks of the event loop before it
    commits, and whether the caller gave up (was cancelled) meanwhile."""

    __slots__ = ("_before_commit", "_cancelled", "_lock", "_loop", "_pending")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, before_commit: Callable[[Any], Awaitable[None]] | None
    ):
        self._loop, self._before_commit = loop, before_commit
        self._lock = threading.Lock()
        self._cancelled = False
        self._pending: concurrent.futures.Future[None] | None = None

    def before_commit(self, result: Any) -> None:
        """In the worker thread: run ``before_commit(result)`` on the event loop and wait for it
        (or, for a :class:`BeforeCommit` with ``in_thread``, run that here); raise (so that the
        transaction rolls back) if it fails or the caller was cancelled."""
        before_commit = self._before_commit
        in_thread = before_commit.in_thread if isinstance(before_commit, BeforeCommit) else None
        if in_thread is not None:
            with self._lock:
                self._check()
            in_thread(result)  # a cancellation meanwhile is seen below: nothing commits
        elif before_commit is not None:

            async def on_the_loop() -> None:
                await before_commit(result)

            with self._lock:
                self._check()
                # Scheduled from this thread, the coroutine runs in a copy of the caller's context.
                self._pending = asyncio.run_coroutine_threadsafe(on_the_loop(), self._loop)
            while True:
                try:
                    self._pending.result(timeout=1.0)
                    break
                except TimeoutError:
                    if self._loop.is_closed():  # nobody will ever answer: roll back
                        raise
        with self._lock:
            self._check()

    def _check(self) -> None:
        if self._cancelled:
            raise concurrent.futures.CancelledError

    def cancel(self) -> None:
        """On the event loop: the caller was cancelled; nothing commits from now on."""
        with self._lock:
            self._cancelled = True
            if self._pending is not None:
                self._pending.cancel()


async def run_transaction(
    database: PooledDatabase,
    work: Callable[[Any], T],
    *,
    commit: bool = True,
    before_commit: Callable[[T], Awaitable[None]] | None = None,
) -> T:
    """Run ``work(conn)`` in one transaction on a pooled connection, in a worker thread; then
    ``await before_commit(result)`` (the purge journals its count there; a :class:`BeforeCommit`
    with ``in_thread`` is called in the worker thread instead) and commit, or roll
    back when ``commit`` is false (a dry run). On SQLite the transaction is ``BEGIN IMMEDIATE``:
    it holds the write lock from its first statement.

    One hop to a worker thread does it all: the thread runs ``before_commit`` on the event loop
    and waits for it, so the transaction keeps its thread (and its lock) to the end. If the
    caller is cancelled before the commit starts, the transaction is rolled back and its
    connection closed rather than pooled."""
    context = database.connection()
    dialect = database.dialect
    journal = _Journal(asyncio.get_running_loop(), before_commit if commit else None)

    def transaction() -> T:
        # The connection goes back to the pool, or is closed (its transaction rolled back) if
        # anything raised.
        with context as conn:
            if dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
            result = work(conn)  # psycopg opens the transaction with the first statement
            if commit:
                journal.before_commit(result)
            _end(dialect, conn, commit)
            return result

    try:
        return await asyncio.get_running_loop().run_in_executor(
            _executor(), contextvars.copy_context().run, transaction
        )
    except asyncio.CancelledError:
        journal.cancel()
        raise


_EXECUTORS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads transactions run in: threads of their own, so that a transaction
    waiting for its ``before_commit`` never holds a thread the event loop's work needs (one
    pool per process: a forked child starts its own)."""
    pid = os.getpid()
    executor = _EXECUTORS.get(pid)
    if executor is None:
        with _EXECUTORS_LOCK:
            executor = _EXECUTORS.get(pid)
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=32, thread_name_prefix="agegate-sql"
                )
                _EXECUTORS.clear()
                _EXECUTORS[pid] = executor
    return executor


def _end(dialect: str, conn: Any, commit: bool) -> None:
    if dialect == "sqlite":
        conn.execute("COMMIT" if commit else "ROLLBACK")
    elif commit:
        conn.commit()
    else:
        conn.rollback()
