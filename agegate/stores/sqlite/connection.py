"""The SQLite store's connection: one thread that owns it, transactions, retries, forks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...errors import StoreError, StoreUnavailable, _SQLiteBusy
from ..revision import RevisionFile
from .schema import check_identity, migrate

__all__ = ["BUSY_TIMEOUT_MS", "CALL_BUSY_TIMEOUT_MS", "RETRY_FOR", "SQLiteConnection", "sqlite_path"]

T = TypeVar("T")

#: How long SQLite itself waits for a lock while opening the store, in milliseconds.
BUSY_TIMEOUT_MS = 5_000
#: How long one call waits for a lock on the store's thread before handing the thread back, in
#: milliseconds: the retry then sleeps on the event loop, so reads queued behind a write that
#: waits for another process's lock are not held up (WAL readers never need that lock).
CALL_BUSY_TIMEOUT_MS = 25
#: How long a call keeps retrying a busy database before giving up, in seconds.
RETRY_FOR = 30.0

_INHERITED: list[sqlite3.Connection] = []  # connections inherited across fork, never used again
_OPEN_STORES: weakref.WeakSet[SQLiteConnection] = weakref.WeakSet()


def _before_fork() -> None:
    """Close every open store's connection before this process forks: SQLite forbids a child
    to use, or even close, a connection it inherited (closing one can checkpoint from stale
    state and destroy the file). Each store reconnects on its next call, in parent and child."""
    for store in list(_OPEN_STORES):
        store._release_for_fork()


os.register_at_fork(before=_before_fork)

_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL: the file system, not the database, is at fault.
_UNAVAILABLE_CODES = frozenset({8, 10, 13})
# A full disk or quota, an I/O error, a read-only mount: the store cannot write now.
_UNAVAILABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:///relative`` or ``sqlite:////absolute`` URL.

    Raises :class:`~agegate.StoreError` for anything else (a host part, a query string, no
    path, or SQLite's ``:memory:``, for which ``memory://`` is the store to use).
    """
    if not isinstance(url, str):
        raise StoreError("a SQLite store URL is a string like sqlite:///agegate.sqlite3")
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep:
        raise StoreError("a SQLite store URL starts with sqlite:/// (for example sqlite:///agegate.sqlite3)")
    if not rest.startswith("/"):
        raise StoreError(
            "a SQLite store URL has three slashes before a relative path (sqlite:///agegate.sqlite3) "
            "and four before an absolute one (sqlite:////var/lib/app/agegate.sqlite3)"
        )
    path = rest[1:]
    if not path or path == "/":
        raise StoreError("the SQLite store URL names no file: use sqlite:///path/to/agegate.sqlite3")
    if "?" in path or "#" in path or "\x00" in path:
        raise StoreError(
            "a SQLite store URL takes a plain file path, without '?', '#' or NUL characters "
            "(for example sqlite:///agegate.sqlite3)"
        )
    if path == ":memory:" or path.startswith("file:"):
        raise StoreError("for a store that lives in memory, use memory://")
    return path


def _is_busy(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _BUSY_CODES:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def _os_error(exc: OSError, doing: str) -> StoreError:
    """A :class:`StoreUnavailable` for a full, failing or read-only file system (the store may
    work again once an operator frees space), a plain :class:`StoreError` otherwise."""
    kind = StoreUnavailable if exc.errno in _UNAVAILABLE_ERRNOS else StoreError
    return kind(f"{doing}: {exc.strerror or type(exc).__name__}")


class _Retry:
    """How a call retries a busy database: pauses growing from 2 ms to 100 ms (jittered), and a
    :class:`StoreUnavailable` once it has been busy for :data:`RETRY_FOR` seconds."""

    __slots__ = ("deadline", "delay")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + RETRY_FOR
        self.delay = 0.002

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def pause(self, busy: _SQLiteBusy, error: Callable[[Exception], StoreError]) -> float:
        """The pause before the next try, or ``error(...)`` raised when time is up."""
        if time.monotonic() >= self.deadline:
            raise error(busy.error) from None
        pause = self.delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not secrets
        self.delay = min(self.delay * 2, 0.1)
        return pause


class SQLiteConnection:
    """The store's connection and the thread it lives on; the parts of :class:`.SQLiteStore`
    reach the database only through :meth:`_call`."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Absolute now: a later chdir (a daemon's) or a reconnect must reach the same file.
        self.path = os.path.abspath(sqlite_path(url))
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the executor's thread
        self._released = False  # the connection was closed for a fork: reconnect on next call
        self._guard = threading.Lock()
        self._pid = os.getpid()
        # One counter per file, however the path to it is spelled (symlinks).
        self._revision = RevisionFile(os.path.realpath(self.path) + "-revision")

    # -- running calls on the store's thread --------------------------------------------------

    async def open(self) -> None:
        executor = self._start()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except BaseException:
            await self._shutdown(executor)
            raise
        _OPEN_STORES.add(self)

    def _start(self) -> ThreadPoolExecutor:
        """The store's thread, started if needed (in a forked child, a new one)."""
        with self._guard:
            self._after_fork()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agegate-sqlite")
            return self._executor

    async def close(self) -> None:
        with self._guard:
            self._after_fork()  # in a forked child the parent's thread is not there to wait for
            executor, self._executor = self._executor, None
        _OPEN_STORES.discard(self)
        if executor is not None:
            await self._shutdown(executor)
        else:
            self._revision.close()

    def _release_for_fork(self) -> None:
        """Called before ``fork()``: close the connection on the store's thread and wait."""
        with self._guard:
            executor = self._executor if self._pid == os.getpid() else None
        if executor is None:
            return
        with contextlib.suppress(Exception):  # shut down, or stuck: _after_fork parks it instead
            executor.submit(self._release).result(timeout=RETRY_FOR + 5)

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._released = True

    async def _shutdown(self, executor: ThreadPoolExecutor) -> None:
        with self._guard:
            if self._executor is executor:
                self._executor = None
        with contextlib.suppress(RuntimeError):  # already shut down by a concurrent close
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=False)

    def _after_fork(self) -> None:
        """In a child forked from the process that opened the store (a pre-forking server),
        the store's thread is gone and its connection must not be used (SQLite forbids it):
        start over, leaving the inherited connection untouched rather than closing it here."""
        if self._pid != os.getpid():
            if self._conn is not None:
                _INHERITED.append(self._conn)
            self._pid, self._conn, self._executor = os.getpid(), None, None

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool, scrub: bool = False) -> T:
        """Run ``fn`` in one transaction on the store's thread, retrying while the database is
        busy; the pauses between tries are spent on the event loop, not on the store's thread.
        ``scrub`` truncates the WAL afterwards, so deleted bytes do not linger in it."""
        if self._pid != os.getpid() and self._executor is not None:
            await self.open()
        retry = _Retry()
        loop = asyncio.get_running_loop()
        while True:
            executor = self._open_executor()
            try:
                return await loop.run_in_executor(executor, self._run, fn, write, scrub)
            except RuntimeError as exc:  # the executor was shut down under us
                raise StoreError("the SQLite store is closed") from exc
            except _SQLiteBusy as busy:
                pause = retry.pause(busy, self._error)
            await asyncio.sleep(pause)

    def _call_blocking(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """:meth:`_call` for a thread that may block (never the event loop's): ``fn`` runs on the
        store's thread as it would there, with the same retries, the pauses slept in the calling
        thread. A store call that has not answered when the retries' time is up is
        :class:`StoreUnavailable` (it is cancelled if it has not started)."""
        if self._pid != os.getpid() and self._executor is not None:
            # A forked child: a thread of its own; the connection, released for the fork (see
            # _before_fork), is opened again by the first call on it.
            self._start()
        retry = _Retry()
        while True:
            executor = self._open_executor()
            try:
                future = executor.submit(self._run, fn, write, False)
            except RuntimeError as exc:  # the executor was shut down under us
                raise StoreError("the SQLite store is closed") from exc
            try:
                return future.result(timeout=retry.left())
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise StoreUnavailable(
                    f"the SQLite database {self.path!r} did not answer within {RETRY_FOR:.0f} seconds"
                ) from None
            except _SQLiteBusy as busy:
                pause = retry.pause(busy, self._error)
            time.sleep(pause)

    def _open_executor(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            raise StoreError("the SQLite store is not open: call `await store.open()` first")
        return executor

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool, scrub: bool) -> T:
        """One try at running ``fn`` in one transaction; raises :class:`_SQLiteBusy` to be retried."""
        if self._conn is None and self._released:
            self._connect()  # closed for a fork
        conn = self._conn
        if conn is None:
            raise StoreError("the SQLite store is closed")
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise _SQLiteBusy(exc) from None
            raise self._error(exc) from None
        if scrub:
            # Best effort: readers of older snapshots can keep some frames until they finish.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return result

    def _error(self, exc: Exception) -> StoreError:
        if _is_busy(exc):
            return StoreUnavailable(
                f"the SQLite database {self.path!r} stayed busy for {RETRY_FOR:.0f} seconds"
            )
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _UNAVAILABLE_CODES:
            return StoreUnavailable(f"the SQLite database {self.path!r} cannot be written now ({exc})")
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return StoreError(
                f"the SQLite database {self.path!r} is damaged or not an agegate database ({exc})"
            )
        return StoreError(f"the SQLite database {self.path!r} cannot be used ({exc})")

    # -- opening -------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._conn is not None:
            return
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise StoreError(f"the directory for the SQLite database {self.path!r} does not exist")
        try:
            # Create the file ourselves so that it is owner-only from its first byte; SQLite
            # gives the -wal and -shm files it creates the database file's mode.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise _os_error(exc, f"cannot open the SQLite database {self.path!r}") from None
        os.close(fd)
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            self._prepare(conn)
            conn.execute(f"PRAGMA busy_timeout = {CALL_BUSY_TIMEOUT_MS}")
            # Only next to a file now known to be an agegate store.
            self._revision.open()
        except OSError as exc:
            conn.close()
            raise _os_error(exc, f"cannot open {self._revision.path!r}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._released = False

    def _prepare(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                check_identity(conn, self.path)
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(
                        f"the SQLite database {self.path!r} cannot use WAL mode (journal mode {mode!r}); "
                        "put it on a local file system"
                    )
                # FULL: a commit (a purge step, an identifier block) survives a power cut too,
                # not only a crash of the process; it costs one fsync of the WAL per write.
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA secure_delete = ON")  # purged rows are overwritten, not left behind
                # Truncate the WAL after checkpoints, so old page images (including deleted rows)
                # do not linger in a large -wal file.
                conn.execute("PRAGMA journal_size_limit = 4194304")
                migrate(conn, self.path)
                return
            except sqlite3.Error as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not secrets
                    continue
                raise self._error(exc) from None

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._revision.close()

    # -- change signal -----------------------------------------------------------------------

    def revision(self) -> int:
        return self._revision.value()

    async def bump_revision(self) -> None:
        self._revision.bump()
