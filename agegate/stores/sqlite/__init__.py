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

from .connection import BUSY_TIMEOUT_MS, CALL_BUSY_TIMEOUT_MS, RETRY_FOR, sqlite_path
from .schema import APPLICATION_ID, SCHEMA_VERSION
from .store import SQLiteStore

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "CALL_BUSY_TIMEOUT_MS",
    "RETRY_FOR",
    "SCHEMA_VERSION",
    "SQLiteStore",
    "sqlite_path",
]
