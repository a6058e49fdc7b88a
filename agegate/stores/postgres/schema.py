"""The PostgreSQL store's schema: ``agegate_meta``, the tables, and their migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import StoreError
from .._jobs import job_table
from .._reports import STATE_CHECK

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["APPLICATION", "MIGRATIONS", "SCHEMA_VERSION", "check_identity", "migrate"]

#: The schema version this code writes; older schemas are migrated forward on open.
SCHEMA_VERSION = 4
#: The ``application`` value in ``agegate_meta``.
APPLICATION = "agegate"
#: First key of the advisory lock taken while migrating ("AgGt"); the second is the schema's hash.
_LOCK_CLASS = 0x41674774
_TABLES = (
    "agegate_meta",
    "agegate_attestations",
    "agegate_identifier_blocks",
    "agegate_purge_jobs",
    "agegate_purge_steps",
    "agegate_key_checks",
    "agegate_reports",
    "agegate_signal_flags",
)

_JOB_TYPES = {"text": "text", "bytes": "bytea", "names": "text[]", "hashes": "bytea[]", "time": "timestamptz"}

# Each entry moves the schema from version N to N + 1; append, never edit, once released.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE agegate_attestations (
            subject_hash bytea PRIMARY KEY,
            kid text NOT NULL,
            mac bytea NOT NULL,
            policy text NOT NULL,
            checked_at timestamptz NOT NULL
        )""",
        """CREATE TABLE agegate_identifier_blocks (
            identifier_hash bytea PRIMARY KEY,
            blocked_until timestamptz NOT NULL
        )""",
        "CREATE INDEX agegate_identifier_blocks_until ON agegate_identifier_blocks (blocked_until)",
        job_table("agegate_purge_jobs", _JOB_TYPES),
        "CREATE INDEX agegate_purge_jobs_created ON agegate_purge_jobs (created_at, job_id)",
        """CREATE TABLE agegate_purge_steps (
            job_id text NOT NULL REFERENCES agegate_purge_jobs (job_id) ON DELETE CASCADE,
            position integer NOT NULL,
            step text NOT NULL,
            count bigint NOT NULL,
            PRIMARY KEY (job_id, step)
        )""",
    ),
    (
        # 2: the store knows the key ids its records need (agegate.keycheck). Blocks written
        # before have no kids ('') until the first keys registered adopt them.
        "ALTER TABLE agegate_identifier_blocks ADD COLUMN kids text NOT NULL DEFAULT ''",
        "CREATE INDEX agegate_attestations_kid ON agegate_attestations (kid)",
        """CREATE TABLE agegate_key_checks (
            kid text PRIMARY KEY,
            check_value bytea NOT NULL,
            registered_at timestamptz NOT NULL
        )""",
    ),
    (
        # 3: reports from parents (agegate.reports); everything the reporter typed is sealed.
        f"""CREATE TABLE agegate_reports (
            reference text PRIMARY KEY,
            received_at timestamptz NOT NULL,
            due_at timestamptz NOT NULL,
            state text NOT NULL CHECK ({STATE_CHECK}),
            sealed bytea,
            updated_at timestamptz NOT NULL,
            outcome text,
            job_id text,
            closed_at timestamptz,
            delivered_at timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            error text
        )""",
        "CREATE INDEX agegate_reports_received ON agegate_reports (received_at, reference)",
    ),
    (
        # 4: accounts an under-age age signal flagged for support (agegate.knowledge): a keyed
        # hash and the account id sealed with the journal key, nothing else.
        """CREATE TABLE agegate_signal_flags (
            flag_hash bytea PRIMARY KEY,
            sealed bytea NOT NULL
        )""",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


async def migrate(conn: Conn, wanted: str | None, url: str) -> str:
    """Create or migrate agegate's tables, in schema ``wanted`` (created when missing) or else
    the first of the ``search_path``, under an advisory lock; returns the schema's name. ``url``
    is the store's printable URL, for messages."""
    async with conn.transaction():
        if wanted is not None:
            # Two instances creating the schema at once: serialise on its name first.
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, wanted))
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{wanted}"')
        schema: str | None = (await (await conn.execute("SELECT current_schema()")).fetchone() or (None,))[0]
        if schema is None:
            raise StoreError(
                f"PostgreSQL store {url}: no schema of the search_path exists to hold agegate's "
                "tables; create one or add ?schema=name to the URL"
            )
        await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, schema))
        version = await check_identity(conn, schema, url)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                await conn.execute(statement)
        if version == 0:
            await conn.execute(
                """CREATE TABLE agegate_meta (
                        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                        application text NOT NULL,
                        schema_version integer NOT NULL
                    )"""
            )
            await conn.execute(
                "INSERT INTO agegate_meta (application, schema_version) VALUES (%s, %s)",
                (APPLICATION, SCHEMA_VERSION),
            )
        elif version < SCHEMA_VERSION:
            await conn.execute("UPDATE agegate_meta SET schema_version = %s", (SCHEMA_VERSION,))
    return schema


async def check_identity(conn: Conn, schema: str, url: str) -> int:
    """The schema version of agegate's tables in ``schema`` (0: none yet), refusing
    ``agegate_…`` tables that agegate did not make."""
    rows = await (
        await conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND c.relname LIKE 'agegate\\_%%'",
            (schema,),
        )
    ).fetchall()
    present = {name for (name,) in rows}
    where = f"schema {schema!r} of PostgreSQL store {url}"
    foreign = StoreError(f"the agegate_… tables in {where} were not made by agegate; refusing to use them")
    if "agegate_meta" not in present:
        if present:
            raise foreign
        return 0
    columns = await (
        await conn.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = 'agegate_meta' AND a.attnum > 0 AND NOT a.attisdropped",
            (schema,),
        )
    ).fetchall()
    if not {"application", "schema_version"} <= {name for (name,) in columns}:
        raise foreign
    meta = await (await conn.execute("SELECT application, schema_version FROM agegate_meta")).fetchall()
    if len(meta) != 1 or meta[0][0] != APPLICATION or not isinstance(meta[0][1], int):
        raise foreign
    version = int(meta[0][1])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the agegate tables in {where} have schema version {version}, newer than this agegate "
            f"understands ({SCHEMA_VERSION}): upgrade agegate"
        )
    if version == SCHEMA_VERSION and not set(_TABLES) <= present:
        raise StoreError(f"agegate tables are missing in {where}: the store is damaged")
    return version
