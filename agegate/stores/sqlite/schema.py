"""The SQLite store's schema: its identity (application id, version) and its migrations."""

from __future__ import annotations

import sqlite3

from ...errors import StoreError
from .._jobs import job_table
from .._reports import STATE_CHECK

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "check_identity", "migrate"]

#: ``PRAGMA application_id`` of an agegate database ("AgGt").
APPLICATION_ID = 0x41674774
#: The schema version this code writes; older files are migrated forward on open.
SCHEMA_VERSION = 4

_JOB_TYPES = {"text": "TEXT", "bytes": "BLOB", "names": "TEXT", "hashes": "TEXT", "time": "INTEGER"}

# Each entry moves the schema from version N to N + 1; append, never edit, once released.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
        job_table("purge_jobs", _JOB_TYPES),
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
assert len(MIGRATIONS) == SCHEMA_VERSION


def check_identity(conn: sqlite3.Connection, path: str) -> tuple[int, int]:
    """``(application id, schema version)`` of the file at ``path``, refusing files that are not ours."""
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
            raise StoreError(f"{path!r} is another application's SQLite database, not an agegate store")
    elif app_id != APPLICATION_ID:
        raise StoreError(f"{path!r} is another application's SQLite database, not an agegate store")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the SQLite database {path!r} has schema version {version}, newer than this "
            f"agegate understands ({SCHEMA_VERSION}): upgrade agegate"
        )
    return app_id, version


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file at ``path`` to :data:`SCHEMA_VERSION`, under the write lock."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the write lock.
        _, version = check_identity(conn, path)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
