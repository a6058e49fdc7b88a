"""``sqlite:///path``: the embedded default store.

One SQLite file in WAL mode, shared safely by several worker processes on one host. Every call
runs on one dedicated thread that owns the store's connection, so the event loop never waits on
disk or on a lock. Writes take the write lock up front (``BEGIN IMMEDIATE``) and a busy database
is waited for (SQLite's busy timeout, then a bounded retry), so "database is locked" never
reaches the caller. The schema carries an application id and a version and migrates forward on
open; a file that is not an agegate database is refused with a :class:`~agegate.StoreError`.

``sqlite:///relative/path`` is relative to the working directory; ``sqlite:////abs/path`` is
absolute. A new file (and its ``-wal`` and ``-shm`` companions, which SQLite creates with the
same mode) is readable and writable by its owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from ..errors import StoreError, StoreUnavailable
from ._reports import REPORT_COLUMNS, STATE_CHECK, UPDATED_COLUMNS, report_from, report_row
from .base import AttestationRecord, JobState, KeyUse, PurgeJob, ReportRecord, ReportState, key_uses_from
from .revision import RevisionFile

T = TypeVar("T")

#: ``PRAGMA application_id`` of an agegate database ("AgGt").
APPLICATION_ID = 0x41674774
#: The schema version this code writes; older files are migrated forward on open.
SCHEMA_VERSION = 4
#: How long SQLite itself waits for a lock while opening the store, in milliseconds.
BUSY_TIMEOUT_MS = 5_000
#: How long one call waits for a lock on the store's thread before handing the thread back, in
#: milliseconds: the retry then sleeps on the event loop, so reads queued behind a write that
#: waits for another process's lock are not held up (WAL readers never need that lock).
CALL_BUSY_TIMEOUT_MS = 25
#: How long a call keeps retrying a busy database before giving up, in seconds.
RETRY_FOR = 30.0

_FINAL = ("done", "dry_run")
_INHERITED: list[sqlite3.Connection] = []  # connections inherited across fork, never used again
_OPEN_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _before_fork() -> None:
    """Close every open store's connection before this process forks: SQLite forbids a child
    to use, or even close, a connection it inherited (closing one can checkpoint from stale
    state and destroy the file). Each store reconnects on its next call, in parent and child."""
    for store in list(_OPEN_STORES):
        store._release_for_fork()


os.register_at_fork(before=_before_fork)


class _Busy(Exception):
    """The database was locked by another connection: retry after a pause on the event loop."""

    def __init__(self, error: sqlite3.Error) -> None:
        super().__init__()
        self.error = error


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL: the file system, not the database, is at fault.
_UNAVAILABLE_CODES = frozenset({8, 10, 13})
# A full disk or quota, an I/O error, a read-only mount: the store cannot write now.
_UNAVAILABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})

# Each entry moves the schema from version N to N + 1; append, never edit, once released.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE attestations (
            subject_hash BLOB PRIMARY KEY,
            kid TEXT NOT NULL,
            mac BLOB NOT NULL,
            policy TEXT NOT NULL,
            checked_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE identifier_blocks (
            identifier_hash BLOB PRIMARY KEY,
            blocked_until INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE purge_jobs (
            job_id TEXT PRIMARY KEY,
            subject_hash BLOB NOT NULL UNIQUE,
            ticket TEXT NOT NULL,
            operator TEXT NOT NULL,
            handlers TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'dry_run')),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            sealed_subject BLOB,
            identifier_hashes TEXT NOT NULL,
            finished_at INTEGER,
            error TEXT,
            lease_owner TEXT,
            lease_until INTEGER
        )""",
        "CREATE INDEX purge_jobs_created ON purge_jobs (created_at, job_id)",
        """CREATE TABLE purge_steps (
            job_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            step TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (job_id, step)
        ) WITHOUT ROWID""",
    ),
    (
        # 2: the store knows the key ids its records need (agegate.keycheck). Blocks written
        # before have no kids ('') until the first keys registered adopt them.
        "ALTER TABLE identifier_blocks ADD COLUMN kids TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX attestations_kid ON attestations (kid)",
        """CREATE TABLE key_checks (
            kid TEXT PRIMARY KEY,
            check_value BLOB NOT NULL,
            registered_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # 3: reports from parents (agegate.reports); everything the reporter typed is sealed.
        f"""CREATE TABLE reports (
            reference TEXT PRIMARY KEY,
            received_at INTEGER NOT NULL,
            due_at INTEGER NOT NULL,
            state TEXT NOT NULL CHECK ({STATE_CHECK}),
            sealed BLOB,
            updated_at INTEGER NOT NULL,
            outcome TEXT,
            job_id TEXT,
            closed_at INTEGER,
            delivered_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )""",
        "CREATE INDEX reports_received ON reports (received_at, reference)",
    ),
    (
        # 4: accounts an under-age age signal flagged for support (agegate.knowledge): a keyed
        # hash and the account id sealed with the journal key, nothing else.
        """CREATE TABLE signal_flags (
            flag_hash BLOB PRIMARY KEY,
            sealed BLOB NOT NULL
        ) WITHOUT ROWID""",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_JOB_COLUMNS = (
    "job_id, subject_hash, ticket, operator, handlers, state, created_at, updated_at, "
    "sealed_subject, identifier_hashes, finished_at, error, lease_owner, lease_until"
)
_INSERT_JOB = f"INSERT INTO purge_jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 14)})"  # noqa: S608


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


def _micros(moment: datetime) -> int:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreError("store times must be timezone-aware datetimes")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _BUSY_CODES:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


class SQLiteStore:
    """The store behind ``sqlite:///path``; see the module docstring for its guarantees."""

    #: :meth:`swap_attestation` takes ``blocks`` and ``now`` (see :func:`.add_attestation`).
    swaps_unless_blocked = True

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

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # -- running calls on the store's thread --------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it owner-only), switch to WAL, create or migrate the schema."""
        with self._guard:
            self._after_fork()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agegate-sqlite")
            executor = self._executor
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except BaseException:
            await self._shutdown(executor)
            raise
        _OPEN_STORES.add(self)

    async def close(self) -> None:
        """Close the connection and stop the store's thread. Idempotent."""
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
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.002
        loop = asyncio.get_running_loop()
        while True:
            executor = self._executor
            if executor is None:
                raise StoreError("the SQLite store is not open: call `await store.open()` first")
            try:
                return await loop.run_in_executor(executor, self._run, fn, write, scrub)
            except RuntimeError as exc:  # the executor was shut down under us
                raise StoreError("the SQLite store is closed") from exc
            except _Busy as busy:
                if time.monotonic() >= deadline:
                    raise self._error(busy.error) from None
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not secrets
            delay = min(delay * 2, 0.1)

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool, scrub: bool) -> T:
        """One try at running ``fn`` in one transaction; raises :class:`_Busy` to be retried."""
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
                raise _Busy(exc) from None
            raise self._error(exc) from None
        if scrub:
            # Best effort: readers of older snapshots can keep some frames until they finish.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return result

    def _error(self, exc: sqlite3.Error) -> StoreError:
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
                self._check_identity(conn)
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
                self._migrate(conn)
                return
            except sqlite3.Error as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not secrets
                    continue
                raise self._error(exc) from None

    def _check_identity(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """``(application id, schema version)``, refusing files that are not ours."""
        # One read transaction, so the three reads see one snapshot: another process creating
        # the schema meanwhile must not look like tables without our application id.
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        if app_id == 0 and version == 0:
            if tables:
                raise StoreError(
                    f"{self.path!r} is another application's SQLite database, not an agegate store"
                )
        elif app_id != APPLICATION_ID:
            raise StoreError(f"{self.path!r} is another application's SQLite database, not an agegate store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the SQLite database {self.path!r} has schema version {version}, newer than this "
                f"agegate understands ({SCHEMA_VERSION}): upgrade agegate"
            )
        return app_id, version

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            _, version = self._check_identity(conn)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._revision.close()

    # -- change signal -----------------------------------------------------------------------

    def revision(self) -> int:
        """The shared change counter (a memory read; see :mod:`agegate.stores.revision`)."""
        return self._revision.value()

    async def bump_revision(self) -> None:
        """Bump the shared change counter: every process's status cache is dropped at once."""
        self._revision.bump()

    # -- attestations ------------------------------------------------------------------------

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        """Insert or replace ``record``; delete the records under ``replaces``; atomically."""
        row = (bytes(record.subject_hash), record.kid, bytes(record.mac), record.policy)
        checked_at = _micros(record.checked_at)
        olds = [(bytes(h),) for h in replaces if bytes(h) != row[0]]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM attestations WHERE subject_hash = ?", olds)
            conn.execute(
                "INSERT OR REPLACE INTO attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*row, checked_at),
            )

        await self._call(run, write=True)

    async def swap_attestation(
        self,
        record: AttestationRecord,
        *,
        replaces: Sequence[bytes] = (),
        expected: AttestationRecord | None,
        blocks: Sequence[bytes] = (),
        now: datetime | None = None,
    ) -> bool:
        """:meth:`put_attestation` only if the account's record is still ``expected`` and none of
        ``blocks`` is blocked at ``now``. A new account's (``expected=None``) is one
        ``INSERT … SELECT … WHERE NOT EXISTS`` statement."""
        row = (bytes(record.subject_hash), record.kid, bytes(record.mac), record.policy)
        checked_at = _micros(record.checked_at)
        olds = [bytes(h) for h in replaces if bytes(h) != row[0]]
        want = None if expected is None else (bytes(expected.subject_hash), bytes(expected.mac))
        blocked = [bytes(h) for h in blocks]
        at = _micros(now) if now is not None else None
        if blocked and at is None:
            return False
        marks = ", ".join("?" * len(blocked))  # placeholders only: the values are parameters
        unblocked = (
            "NOT EXISTS (SELECT 1 FROM identifier_blocks "  # noqa: S608
            f"WHERE identifier_hash IN ({marks}) AND blocked_until > ?)"
        )
        insert_new = (
            "INSERT INTO attestations (subject_hash, kid, mac, policy, checked_at) SELECT ?, ?, ?, ?, ? "  # noqa: S608
            "WHERE NOT EXISTS (SELECT 1 FROM attestations "
            f"WHERE subject_hash IN ({', '.join('?' * (1 + len(olds)))})) AND {unblocked}"
        )

        def run(conn: sqlite3.Connection) -> bool:
            if want is None:
                params = (*row, checked_at, row[0], *olds, *blocked, at)
                return conn.execute(insert_new, params).rowcount == 1
            # BEGIN IMMEDIATE holds the write lock: nothing changes between these checks and the write.
            if blocked and conn.execute("SELECT " + unblocked, (*blocked, at)).fetchone()[0] == 0:
                return False
            taken = conn.execute("SELECT 1 FROM attestations WHERE subject_hash = ?", (row[0],)).fetchone()
            if want[0] != row[0] and taken:  # moving to this key: the account has no record under it
                return False
            found = conn.execute("SELECT mac FROM attestations WHERE subject_hash = ?", (want[0],)).fetchone()
            if found is None or bytes(found[0]) != want[1]:
                return False
            conn.executemany("DELETE FROM attestations WHERE subject_hash = ?", [(h,) for h in olds])
            conn.execute(
                "INSERT OR REPLACE INTO attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*row, checked_at),
            )
            return True

        return await self._call(run, write=True)

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        """The record under the first of ``subject_hashes`` that has one, or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        def run(conn: sqlite3.Connection) -> AttestationRecord | None:
            return _first_attestation(conn, wanted)

        if not wanted:
            return None
        return await self._call(run, write=False)

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        """Delete the records under these hashes; returns how many were deleted."""
        wanted = list({bytes(h) for h in subject_hashes})

        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM attestations WHERE subject_hash = ?", (h,)).rowcount for h in wanted
            )

        return await self._call(run, write=True, scrub=True) if wanted else 0

    # -- identifiers of purged child accounts --------------------------------------------------

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        """Block these hashes until ``until``; an existing block is extended, never shortened."""
        end = _micros(until)
        listed = ",".join(kids)
        rows = [(bytes(h), end, listed) for h in identifier_hashes]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO identifier_blocks (identifier_hash, blocked_until, kids) VALUES (?, ?, ?) "
                "ON CONFLICT (identifier_hash) DO UPDATE SET "
                "kids = CASE WHEN excluded.blocked_until > blocked_until THEN excluded.kids ELSE kids END, "
                "blocked_until = max(blocked_until, excluded.blocked_until)",
                rows,
            )

        if rows:
            await self._call(run, write=True)

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        """Whether any of these hashes is blocked at ``now``."""
        at = _micros(now)
        wanted = [bytes(h) for h in identifier_hashes]

        def run(conn: sqlite3.Connection) -> bool:
            return any(
                conn.execute(
                    "SELECT 1 FROM identifier_blocks WHERE identifier_hash = ? AND blocked_until > ?",
                    (h, at),
                ).fetchone()
                is not None
                for h in wanted
            )

        return await self._call(run, write=False) if wanted else False

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        """Drop blocks that ended at or before ``now``; returns how many."""
        at = _micros(now)

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM identifier_blocks WHERE blocked_until <= ?", (at,)).rowcount

        return await self._call(run, write=True)

    # -- accounts flagged by an under-age age signal ---------------------------------------------

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        """Keep ``sealed`` under ``flag_hash`` unless the account is flagged already."""
        hashes = [(bytes(h),) for h in (flag_hash, *known)]
        row = (bytes(flag_hash), bytes(sealed))

        def run(conn: sqlite3.Connection) -> bool:
            for h in hashes:
                if conn.execute("SELECT 1 FROM signal_flags WHERE flag_hash = ?", h).fetchone():
                    return False
            conn.execute("INSERT INTO signal_flags (flag_hash, sealed) VALUES (?, ?)", row)
            return True

        return await self._call(run, write=True)

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        """Every flag as ``(flag_hash, sealed)``."""

        def run(conn: sqlite3.Connection) -> list[tuple[bytes, bytes]]:
            rows = conn.execute("SELECT flag_hash, sealed FROM signal_flags ORDER BY flag_hash").fetchall()
            return [(bytes(h), bytes(sealed)) for h, sealed in rows]

        return await self._call(run, write=False)

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        """Delete these flags (the sealed ids scrubbed from the file); returns how many."""
        wanted = [(h,) for h in {bytes(h) for h in flag_hashes}]

        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM signal_flags WHERE flag_hash = ?", h).rowcount for h in wanted
            )

        return await self._call(run, write=True, scrub=True) if wanted else 0

    # -- the keys the records were written under -----------------------------------------------

    async def key_checks(self) -> dict[str, bytes]:
        """Every key id the store was opened with, and its check value."""

        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            return {
                kid: bytes(check) for kid, check in conn.execute("SELECT kid, check_value FROM key_checks")
            }

        return await self._call(run, write=False)

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        """Record new key ids and check values (never changing one); returns them all."""
        rows = [(kid, bytes(check), _micros(datetime.now(UTC))) for kid, check in checks.items()]
        first = ",".join(checks)

        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            if rows and conn.execute("SELECT 1 FROM key_checks LIMIT 1").fetchone() is None:
                conn.execute("UPDATE identifier_blocks SET kids = ? WHERE kids = ''", (first,))
            conn.executemany(
                "INSERT INTO key_checks (kid, check_value, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (kid) DO NOTHING",
                rows,
            )
            return {
                kid: bytes(check) for kid, check in conn.execute("SELECT kid, check_value FROM key_checks")
            }

        return await self._call(run, write=True)

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        """Per key id, its attestations and the blocks in force at ``now`` that need it."""
        at = _micros(now)

        def run(conn: sqlite3.Connection) -> list[KeyUse]:
            attestations = dict(
                conn.execute("SELECT kid, count(*) FROM attestations GROUP BY kid").fetchall()
            )
            blocks = [
                (kids.split(",") if kids else [], count, _aware(latest))
                for kids, count, latest in conn.execute(
                    "SELECT kids, count(*), max(blocked_until) FROM identifier_blocks "
                    "WHERE blocked_until > ? GROUP BY kids",
                    (at,),
                )
            ]
            return key_uses_from(attestations, blocks)

        return await self._call(run, write=False)

    # -- purge job journal -------------------------------------------------------------------

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        """Insert ``job`` unless a job for its ``subject_hash`` exists; atomically."""
        row = _job_row(job)
        steps = [(job.job_id, i, step, count) for i, (step, count) in enumerate(job.steps.items())]

        def run(conn: sqlite3.Connection) -> tuple[PurgeJob, bool]:
            existing = _select_jobs(conn, "WHERE subject_hash = ?", (row[1],))
            if existing:
                return existing[0], False
            if conn.execute("SELECT 1 FROM purge_jobs WHERE job_id = ?", (job.job_id,)).fetchone():
                raise StoreError("a purge job with this id already exists")
            conn.execute(_INSERT_JOB, row)
            conn.executemany(
                "INSERT INTO purge_steps (job_id, position, step, count) VALUES (?, ?, ?, ?)", steps
            )
            return _select_jobs(conn, "WHERE job_id = ?", (job.job_id,))[0], True

        return await self._call(run, write=True)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        """The job with this id, or ``None``."""

        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            found = _select_jobs(conn, "WHERE job_id = ?", (job_id,))
            return found[0] if found else None

        return await self._call(run, write=False)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        """The job for any of these subject hashes, or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            for subject_hash in wanted:
                found = _select_jobs(conn, "WHERE subject_hash = ?", (subject_hash,))
                if found:
                    return found[0]
            return None

        return await self._call(run, write=False) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        """Every job (or every job not yet done/dry_run), oldest first."""
        where = "WHERE state NOT IN ('done', 'dry_run')" if unfinished_only else ""

        def run(conn: sqlite3.Connection) -> list[PurgeJob]:
            return _select_jobs(conn, where + " ORDER BY created_at, job_id", ())

        return await self._call(run, write=False)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        """Take the job's lease for ``owner`` until ``until`` (compare and set); see the protocol."""
        end, at = _micros(until), _micros(now)

        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE purge_jobs SET lease_owner = ?, lease_until = ?, updated_at = ?, "
                "error = CASE WHEN state = 'failed' THEN NULL ELSE error END, "
                "state = CASE WHEN state = 'failed' THEN 'running' ELSE state END "
                "WHERE job_id = ? AND state NOT IN ('done', 'dry_run') AND ("
                "lease_owner IS NULL OR lease_owner = ? OR (? IS NOT NULL AND lease_owner = ?) "
                "OR (lease_until IS NOT NULL AND lease_until <= ?))",
                (owner, end, at, job_id, owner, takeover, takeover, at),
            )
            return cursor.rowcount == 1

        return await self._call(run, write=True)

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """Journal a finished step if ``owner`` holds the lease; a repeated step keeps its first count."""
        at = _micros(now)

        def run(conn: sqlite3.Connection) -> bool:
            held = conn.execute(
                "UPDATE purge_jobs SET updated_at = ? WHERE job_id = ? AND lease_owner = ?",
                (at, job_id, owner),
            ).rowcount
            if held != 1:
                return False
            conn.execute(
                "INSERT INTO purge_steps (job_id, position, step, count) "
                "SELECT ?, coalesce(max(position), -1) + 1, ?, ? FROM purge_steps WHERE job_id = ? "
                "ON CONFLICT (job_id, step) DO NOTHING",
                (job_id, step, int(count), job_id),
            )
            return True

        return await self._call(run, write=True)

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        """Set the job's final (or failed) state and release the lease, if ``owner`` holds it."""
        if state not in ("running", "done", "failed", "dry_run"):
            raise StoreError(f"unknown purge job state {state!r}")
        at = _micros(now)
        final = state in _FINAL

        def run(conn: sqlite3.Connection) -> bool:
            if final:
                sql = (
                    "UPDATE purge_jobs SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, "
                    "lease_until = NULL, finished_at = ?, sealed_subject = NULL, identifier_hashes = '[]' "
                    "WHERE job_id = ? AND lease_owner = ?"
                )
                params: tuple[Any, ...] = (state, error, at, at, job_id, owner)
            else:
                sql = (
                    "UPDATE purge_jobs SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, "
                    "lease_until = NULL WHERE job_id = ? AND lease_owner = ?"
                )
                params = (state, error, at, job_id, owner)
            return conn.execute(sql, params).rowcount == 1

        # A finished job's sealed account id is wiped: see that no copy stays in the WAL.
        return await self._call(run, write=True, scrub=final)

    async def reopen_job(
        self,
        job_id: str,
        *,
        handlers: tuple[str, ...],
        sealed_subject: bytes,
        identifier_hashes: tuple[bytes, ...] = (),
        now: datetime,
    ) -> bool:
        """Set a ``done`` job running again with these handlers, keeping its steps."""
        params = (
            json.dumps(list(handlers)),
            bytes(sealed_subject),
            json.dumps([bytes(h).hex() for h in identifier_hashes]),
            _micros(now),
            job_id,
        )

        def run(conn: sqlite3.Connection) -> bool:
            sql = (
                "UPDATE purge_jobs SET state = 'running', handlers = ?, sealed_subject = ?, "
                "identifier_hashes = ?, updated_at = ?, finished_at = NULL, error = NULL, "
                "lease_owner = NULL, lease_until = NULL WHERE job_id = ? AND state = 'done'"
            )
            return conn.execute(sql, params).rowcount == 1

        return await self._call(run, write=True)

    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and its steps. Returns whether it existed."""

        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM purge_steps WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM purge_jobs WHERE job_id = ?", (job_id,)).rowcount == 1

        return await self._call(run, write=True)

    # -- reports from parents ----------------------------------------------------------------

    async def create_report(self, report: ReportRecord) -> None:
        """Insert ``report``; :class:`StoreError` when its reference exists."""
        row = report_row(report, _micros)

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_REPORT, row)
            except sqlite3.IntegrityError:
                raise StoreError(f"report {report.reference} exists already") from None

        await self._call(run, write=True)

    async def get_report(self, reference: str) -> ReportRecord | None:
        """The report with this reference, or ``None``."""

        def run(conn: sqlite3.Connection) -> ReportRecord | None:
            row = conn.execute(f"{_SELECT_REPORTS} WHERE reference = ?", (reference,)).fetchone()
            return report_from(row, _moment) if row is not None else None

        return await self._call(run, write=False)

    async def list_reports(self) -> list[ReportRecord]:
        """Every report, oldest first."""

        def run(conn: sqlite3.Connection) -> list[ReportRecord]:
            rows = conn.execute(f"{_SELECT_REPORTS} ORDER BY received_at, reference").fetchall()
            return [report_from(row, _moment) for row in rows]

        return await self._call(run, write=False)

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        """Write ``report`` over the stored one if it is still in state ``expected``."""
        values = report_row(report, _micros)[3:]

        def run(conn: sqlite3.Connection) -> bool:
            sql = f"UPDATE reports SET {_REPORT_SETS} WHERE reference = ? AND state = ?"  # noqa: S608
            return conn.execute(sql, (*values, report.reference, expected)).rowcount == 1

        # An erased sealed part (the reporter's contact and text): no copy stays in the WAL.
        return await self._call(run, write=True, scrub=report.sealed is None)


_SELECT_REPORTS = f"SELECT {', '.join(REPORT_COLUMNS)} FROM reports"  # noqa: S608
_INSERT_REPORT = (
    f"INSERT INTO reports ({', '.join(REPORT_COLUMNS)}) VALUES ({', '.join('?' * len(REPORT_COLUMNS))})"  # noqa: S608
)
_REPORT_SETS = ", ".join(f"{column} = ?" for column in UPDATED_COLUMNS)


def _os_error(exc: OSError, doing: str) -> StoreError:
    """A :class:`StoreUnavailable` for a full, failing or read-only file system (the store may
    work again once an operator frees space), a plain :class:`StoreError` otherwise."""
    kind = StoreUnavailable if exc.errno in _UNAVAILABLE_ERRNOS else StoreError
    return kind(f"{doing}: {exc.strerror or type(exc).__name__}")


def _first_attestation(conn: sqlite3.Connection, subject_hashes: list[bytes]) -> AttestationRecord | None:
    for subject_hash in subject_hashes:
        row = conn.execute(
            "SELECT kid, mac, policy, checked_at FROM attestations WHERE subject_hash = ?", (subject_hash,)
        ).fetchone()
        if row is not None:
            kid, mac, policy, checked_at = row
            return AttestationRecord(subject_hash, kid, bytes(mac), policy, _aware(checked_at))
    return None


def _aware(micros: int) -> datetime:
    moment = _moment(micros)
    assert moment is not None
    return moment


def _job_row(job: PurgeJob) -> tuple[Any, ...]:
    return (
        job.job_id,
        bytes(job.subject_hash),
        job.ticket,
        job.operator,
        json.dumps(list(job.handlers)),
        job.state,
        _micros(job.created_at),
        _micros(job.updated_at),
        bytes(job.sealed_subject) if job.sealed_subject is not None else None,
        json.dumps([bytes(h).hex() for h in job.identifier_hashes]),
        _micros(job.finished_at) if job.finished_at is not None else None,
        job.error,
        job.lease_owner,
        _micros(job.lease_until) if job.lease_until is not None else None,
    )


def _select_jobs(conn: sqlite3.Connection, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    rows = conn.execute(f"SELECT {_JOB_COLUMNS} FROM purge_jobs {tail}", params).fetchall()  # noqa: S608
    jobs = []
    for row in rows:
        (job_id, subject_hash, ticket, operator, handlers, state, created, updated, sealed, idents) = row[:10]
        finished_at, error, lease_owner, lease_until = row[10:]
        steps = conn.execute(
            "SELECT step, count FROM purge_steps WHERE job_id = ? ORDER BY position", (job_id,)
        ).fetchall()
        jobs.append(
            PurgeJob(
                job_id=job_id,
                subject_hash=bytes(subject_hash),
                ticket=ticket,
                operator=operator,
                handlers=tuple(json.loads(handlers)),
                state=cast(JobState, state),
                created_at=_aware(created),
                updated_at=_aware(updated),
                sealed_subject=bytes(sealed) if sealed is not None else None,
                identifier_hashes=tuple(bytes.fromhex(h) for h in json.loads(idents)),
                steps={step: count for step, count in steps},
                finished_at=_moment(finished_at),
                error=error,
                lease_owner=lease_owner,
                lease_until=_moment(lease_until),
            )
        )
    return jobs
