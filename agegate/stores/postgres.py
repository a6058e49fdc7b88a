"""``postgresql://…``: the store for several app instances sharing one PostgreSQL database.

Needs ``pip install 'agegate[postgres]'`` (psycopg 3 and psycopg_pool, imported only when a
PostgreSQL store is made). Calls run on a pool of connections
(:class:`psycopg_pool.AsyncConnectionPool`), each call one transaction. Tables are named
``agegate_…`` so that the store can live in an app's own database; ``?schema=name`` puts them
in their own schema instead (created when missing), otherwise they go in the first schema of
the connection's ``search_path``. The schema version is
kept in ``agegate_meta`` and migrated forward on open under a transaction-level advisory lock, so
instances starting together do not race; ``agegate_…`` tables that agegate did not make are
refused with a :class:`~agegate.StoreError`.

Purge leases are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``: a claimer never queues behind
another instance that is working on the same job. The change signal is ``NOTIFY
agegate_revision`` (payload: the schema name); every store keeps one ``LISTEN`` connection
that bumps an in-process counter, so :meth:`PostgresStore.revision` is an attribute read. While
that connection is down the counter changes on every read (every status cache is dropped) until
it is back.

Query options taken by agegate and not passed to libpq: ``schema``, ``pool_min_size`` (default
1), ``pool_max_size`` (default 10) and ``pool_timeout`` (seconds to wait for a free connection,
default 30, and never longer than the call's ``timeout``). Everything else (``sslmode``,
``connect_timeout``, ``options``…) goes to libpq. The password never appears in
:attr:`PostgresStore.url`, in ``repr()`` or in an error message.

Outages. Every call answers within ``timeout`` seconds (default 2; :class:`~agegate.AgeGate`
passes its ``store_timeout``) or raises :class:`~agegate.StoreUnavailable`: the wait for a pooled
connection is bounded, a connection that does not answer in time is cut (its socket shut down,
so that nothing waits on it any longer), and the server is asked to give up statements that run
longer (``statement_timeout``, unless the URL's ``options`` set one). After a failure that means
the server cannot be reached, the next call first makes one fresh connection; once that works
the pool is replaced by a new one, so service returns as soon as the server does, without the
pool's reconnection back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ..errors import StoreError, StoreUnavailable
from ._reports import REPORT_COLUMNS, STATE_CHECK, UPDATED_COLUMNS, report_from, report_row
from .base import AttestationRecord, JobState, KeyUse, PurgeJob, ReportRecord, ReportState, key_uses_from

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    Conn = AsyncConnection[tuple[Any, ...]]

T = TypeVar("T")

#: The schema version this code writes; older schemas are migrated forward on open.
SCHEMA_VERSION = 4
#: The ``application`` value in ``agegate_meta``.
APPLICATION = "agegate"
#: The ``LISTEN``/``NOTIFY`` channel of the change signal.
CHANNEL = "agegate_revision"
#: How often the ``LISTEN`` connection is checked when no notification arrives, in seconds.
LISTEN_CHECK_INTERVAL = 15.0
#: libpq's ``connect_timeout`` when the URL gives none, in seconds.
CONNECT_TIMEOUT = 5
#: Seconds one call may take by default before :class:`~agegate.StoreUnavailable`.
TIMEOUT = 2.0
#: Seconds opening (migrating) may take before :class:`~agegate.StoreUnavailable`.
OPEN_TIMEOUT = 30.0
#: The share of a call's time after which its connection is cut, leaving the rest for the
#: call to unwind and report.
_CUT_AT = 0.9
#: First key of the advisory lock taken while migrating ("AgGt"); the second is the schema's hash.
_LOCK_CLASS = 0x41674774
_RETRIES = 5  # serialization failures and deadlocks are retried this many times
_FINAL = ("done", "dry_run")
_OPTIONS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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

logger = logging.getLogger("agegate.stores.postgres")
# SQLSTATE classes meaning the server cannot serve now: connection exception, insufficient
# resources (disk full, too many connections), operator intervention (shutdown, statement
# timeout), system error (I/O).
_OUTAGE_CLASSES = ("08", "53", "57", "58")
_READ_ONLY_TRANSACTION = "25006"  # a standby, or a server set read-only

# Each entry moves the schema from version N to N + 1; append, never edit, once released.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
        """CREATE TABLE agegate_purge_jobs (
            job_id text PRIMARY KEY,
            subject_hash bytea NOT NULL UNIQUE,
            ticket text NOT NULL,
            operator text NOT NULL,
            handlers text[] NOT NULL,
            state text NOT NULL CHECK (state IN ('running', 'done', 'failed', 'dry_run')),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            sealed_subject bytea,
            identifier_hashes bytea[] NOT NULL,
            finished_at timestamptz,
            error text,
            lease_owner text,
            lease_until timestamptz
        )""",
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
assert len(_MIGRATIONS) == SCHEMA_VERSION

_JOB_COLUMNS = (
    "job_id, subject_hash, ticket, operator, handlers, state, created_at, updated_at, "
    "sealed_subject, identifier_hashes, finished_at, error, lease_owner, lease_until"
)


def _blocked_sql(count: int) -> str:
    """A query for any of ``count`` identifier hashes blocked at a time (the last parameter)."""
    marks = ", ".join(["%s"] * count)  # placeholders only: the values are parameters
    return (
        f"SELECT 1 FROM agegate_identifier_blocks WHERE identifier_hash IN ({marks}) "  # noqa: S608
        "AND blocked_until > %s LIMIT 1"
    )


def _insert_new_sql(hashes: int, blocks: int) -> str:
    """A new account's attestation in one statement (``swap_attestation`` with
    ``expected=None``): inserted only if the account has no record under any of its ``hashes``
    and none of ``blocks`` identifier hashes is blocked. ``ON CONFLICT``: a concurrent insert of
    the same account wins, and this one writes nothing. Plain parameters, not arrays: dumping an
    array costs more than the statement's own work."""
    marks = ", ".join(["%s"] * hashes)
    unblocked = f" AND NOT EXISTS ({_blocked_sql(blocks)})" if blocks else ""
    return (
        "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "  # noqa: S608
        "SELECT %s, %s, %s, %s, %s WHERE NOT EXISTS "
        f"(SELECT 1 FROM agegate_attestations WHERE subject_hash IN ({marks})){unblocked} "
        "ON CONFLICT (subject_hash) DO NOTHING"
    )


_MISSING = "the PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'agegate[postgres]'"


def _psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - checked here so that open() cannot fail on it later
    except ImportError:
        raise StoreError(_MISSING) from None
    return psycopg


class PostgresURL:
    """A ``postgresql://`` store URL taken apart: what goes to libpq, agegate's own options, and
    a form safe to print (no password)."""

    __slots__ = ("conninfo", "password", "pool_max_size", "pool_min_size", "pool_timeout", "safe", "schema")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise StoreError("a PostgreSQL store URL is a string like postgresql://user@host:5432/dbname")
        scheme, sep, _ = url.partition("://")
        if scheme.lower() not in ("postgresql", "postgres") or not sep:
            raise StoreError("a PostgreSQL store URL starts with postgresql:// (or postgres://)")
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise StoreError(
                "the PostgreSQL store URL cannot be parsed: postgresql://user@host:5432/dbname"
            ) from None
        if parts.fragment:
            raise StoreError("a PostgreSQL store URL has no '#' part: postgresql://user@host:5432/dbname")
        userinfo, at, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        options = {k: v for k, v in query if k in _OPTIONS}
        passthrough = [(k, v) for k, v in query if k not in _OPTIONS]
        self.password = password or next((v for k, v in passthrough if k == "password"), "")
        self.schema: str | None = options.get("schema") or None
        if self.schema is not None and not _SCHEMA_NAME.fullmatch(self.schema):
            raise StoreError(
                "the ?schema= of a PostgreSQL store URL is a lower-case name of letters, digits and "
                "underscores (for example ?schema=agegate)"
            )
        self.pool_min_size = _int_option(options, "pool_min_size", 1, minimum=0)
        self.pool_max_size = _int_option(options, "pool_max_size", 10, minimum=1)
        if self.pool_max_size < self.pool_min_size:
            raise StoreError("pool_max_size must not be smaller than pool_min_size in a PostgreSQL store URL")
        self.pool_timeout = float(_int_option(options, "pool_timeout", 30, minimum=1))
        self.conninfo = urlunsplit(parts._replace(query=urlencode(passthrough, quote_via=quote)))
        safe_netloc = (user + "@" if at and user else "") + hostport
        safe_query = urlencode([(k, v) for k, v in query if k != "password"], quote_via=quote)
        self.safe = urlunsplit(parts._replace(netloc=safe_netloc, query=safe_query))

    def scrub(self, text: str) -> str:
        """``text`` with the password taken out (libpq does not put it in messages; be sure)."""
        for secret in (self.password, unquote(self.password)):
            if secret:
                text = text.replace(secret, "***")
        return text


def _int_option(options: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise StoreError(f"{name} in a PostgreSQL store URL is a whole number of at least {minimum}")
    return int(raw)


def _at(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreError("store times must be timezone-aware datetimes")
    return moment


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


class _Conflict(Exception):
    """A conditional write found the row changed: roll the transaction back."""


class PostgresStore:
    """The store behind ``postgresql://…``; see the module docstring for its guarantees.

    ``url`` is the URL without its password.
    """

    #: :meth:`swap_attestation` takes ``blocks`` and ``now`` (see :func:`.add_attestation`).
    swaps_unless_blocked = True

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise StoreError("the PostgreSQL store's timeout is a number of seconds above 0, at most 300")
        self.timeout = float(timeout)
        self._psycopg = _psycopg()
        self._parsed = PostgresURL(url)
        try:
            self._params = self._psycopg.conninfo.conninfo_to_dict(self._parsed.conninfo)
        except self._psycopg.ProgrammingError:
            raise StoreError(
                f"the PostgreSQL store URL {self._parsed.safe!r} cannot be parsed by libpq"
            ) from None
        self.url = self._parsed.safe
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: Conn | None = None
        self._open_lock: asyncio.Lock | None = None
        self._schema = ""  # the schema holding the tables, known once open
        self._revision = 0
        self._listening = False
        self._listener_pid: int | None = None
        self._down = False  # the server could not be reached: make sure it is back before use
        self._revival: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()  # replaced pools, closing

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- connections ---------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        text = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        kind = StoreUnavailable if self._is_outage(exc) else StoreError
        return kind(f"PostgreSQL store {self.url}: {doing} failed: {self._parsed.scrub(text)}")

    def _is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server cannot serve now, rather than a mistake in a call."""
        state = getattr(exc, "sqlstate", None) or ""
        if state == _READ_ONLY_TRANSACTION or state[:2] in _OUTAGE_CLASSES:
            return True
        # No SQLSTATE: raised by the client (a lost connection, a pool timeout).
        return isinstance(exc, self._psycopg.OperationalError) and not state

    def _unavailable(self, why: str) -> StoreUnavailable:
        return StoreUnavailable(f"PostgreSQL store {self.url}: {why}")

    @contextlib.contextmanager
    def _watch(self, conn: Conn, deadline: float) -> Iterator[list[bool]]:
        """Cut ``conn`` at ``deadline`` (event loop time) if the block is still running; the
        yielded list holds ``True`` once it has been cut."""
        cut: list[bool] = []

        def fire() -> None:
            cut.append(True)
            _sever(conn)

        handle = asyncio.get_running_loop().call_at(deadline, fire)
        try:
            yield cut
        finally:
            handle.cancel()

    def _connect_kwargs(self, application_name: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self._params:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in self._params:
            kwargs["application_name"] = application_name
        return kwargs

    async def _configure(self, conn: Conn) -> None:
        if self._parsed.schema is not None:
            await conn.execute("SELECT set_config('search_path', %s, false)", (self._parsed.schema,))

    async def _configure_pooled(self, conn: Conn) -> None:
        await self._configure(conn)
        # The server gives up a statement the client has stopped waiting for (a lock wait
        # behind a stuck transaction), unless the URL's options chose a limit of their own.
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false) "
            "WHERE current_setting('statement_timeout') = '0'",
            (f"{max(1, round(self.timeout * 1000))}ms",),
        )

    def _make_pool(self) -> AsyncConnectionPool[Conn]:
        from psycopg_pool import AsyncConnectionPool

        return AsyncConnectionPool(
            self._parsed.conninfo,
            kwargs=self._connect_kwargs("agegate"),
            min_size=self._parsed.pool_min_size,
            max_size=self._parsed.pool_max_size,
            open=False,
            configure=self._configure_pooled,
            name="agegate",
            timeout=self._parsed.pool_timeout,
        )

    async def _connect(self, application_name: str) -> Conn:
        psycopg = self._psycopg
        try:
            conn = cast(
                "Conn",
                await psycopg.AsyncConnection.connect(
                    self._parsed.conninfo, **self._connect_kwargs(application_name)
                ),
            )
        except psycopg.Error as exc:
            raise self._error(exc, "connecting") from None
        try:
            await self._configure(conn)
        except psycopg.Error as exc:
            await conn.close()
            raise self._error(exc, "connecting") from None
        return conn

    async def open(self) -> None:
        """Connect, create or migrate the schema, start listening for changes. Idempotent."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is None:
                await self._open()

    async def _open(self) -> None:
        psycopg = self._psycopg
        conn = await self._connect("agegate-listen")
        try:
            # Longer than a call: the migration may wait for another instance's.
            with self._watch(conn, asyncio.get_running_loop().time() + OPEN_TIMEOUT) as cut:
                try:
                    await self._migrate(conn)
                    await conn.execute(f"LISTEN {CHANNEL}")
                except psycopg.Error as exc:
                    if cut:
                        raise self._unavailable(f"opening took over {OPEN_TIMEOUT:g} seconds") from None
                    raise self._error(exc, "opening") from None
            pool = self._make_pool()
            try:
                await pool.open(wait=True, timeout=self._parsed.pool_timeout)
            except psycopg.Error as exc:
                await pool.close()
                raise self._error(exc, "opening the connection pool") from None
        except BaseException:
            await conn.close()
            raise
        self._pool = pool
        self._down = False
        self._listening = True
        self._listener_pid = conn.info.backend_pid
        self._listen_conn = conn
        self._listener = asyncio.create_task(self._listen(), name="agegate-postgres-listen")

    async def close(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        listener, self._listener = self._listener, None
        revival, self._revival = self._revival, None
        pool, self._pool = self._pool, None
        self._listening = False
        for task in (listener, revival):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await task
        retiring, self._retiring = self._retiring, set()
        for task in retiring:
            with contextlib.suppress(Exception):
                await task
        # Also when the listener was cancelled before it ever ran.
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            await conn.close()
        if pool is not None:
            await pool.close()

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            wanted = self._parsed.schema
            if wanted is not None:
                # Two instances creating the schema at once: serialise on its name first.
                await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, wanted))
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{wanted}"')
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or (None,))[0]
            if schema is None:
                raise StoreError(
                    f"PostgreSQL store {self.url}: no schema of the search_path exists to hold agegate's "
                    "tables; create one or add ?schema=name to the URL"
                )
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, schema))
            version = await self._check_identity(conn, schema)
            for statements in _MIGRATIONS[version:]:
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
        self._schema = schema

    async def _check_identity(self, conn: Conn, schema: str) -> int:
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
        where = f"schema {schema!r} of PostgreSQL store {self.url}"
        foreign = StoreError(
            f"the agegate_… tables in {where} were not made by agegate; refusing to use them"
        )
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

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], *, single: bool = False) -> T:
        """Run ``fn`` in one transaction on a pooled connection, retrying a serialization failure
        or a deadlock, within the store's ``timeout``. ``single``: ``fn`` runs one statement,
        which is a transaction of its own (no ``BEGIN``/``COMMIT`` round trips), and which may
        run again if its connection turns out to be dead.

        A pooled connection is not checked before use (that would cost a round trip on every
        call): one that died while idle (a server restart, an idle timeout) fails on its first
        statement, which nothing has then committed, and the call goes on with another one."""
        psycopg = self._psycopg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout * _CUT_AT
        pool = await self._usable_pool(deadline)
        attempt = lost = 0
        while True:
            attempt += 1
            cut: list[bool] = []
            conn: Conn | None = None
            started = False  # a statement of the call's own has reached the server
            try:
                wait = min(self._parsed.pool_timeout, deadline - loop.time())
                async with pool.connection(timeout=wait) as conn:
                    with self._watch(conn, deadline) as cut:
                        if single:
                            return await fn(conn)
                        async with conn.transaction():
                            started = True
                            return await fn(conn)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
                if attempt >= _RETRIES or loop.time() >= deadline:
                    raise self._error(exc, "a transaction") from None
                await asyncio.sleep(0.005 * attempt)
            except psycopg.Error as exc:
                dead = conn is not None and conn.broken and not cut and not started
                if dead and lost <= self._parsed.pool_max_size and loop.time() < deadline:
                    lost += 1  # died while idle in the pool: the pool drops it; try another
                    continue
                if cut or self._is_outage(exc):
                    self._mark_down(pool)
                if cut:
                    raise self._unavailable(f"no answer within {self.timeout:g} seconds") from None
                raise self._error(exc, "a query") from None

    def _mark_down(self, pool: AsyncConnectionPool[Conn]) -> None:
        if pool is self._pool and not self._down:
            logger.warning("agegate: the PostgreSQL store cannot be reached; calls fail until it is back")
            self._down = True

    async def _usable_pool(self, deadline: float) -> AsyncConnectionPool[Conn]:
        """The pool, once the server is known to answer: after an outage, one fresh connection
        must work first (made once, however many calls wait for it)."""
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open: call `await store.open()` first")
        if not self._down:
            return pool
        revival = self._revival
        if revival is None or revival.done():
            revival = self._revival = asyncio.ensure_future(self._revive())
            revival.add_done_callback(_retrieved)
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(revival)
        except TimeoutError:
            raise self._unavailable(f"the server did not answer within {self.timeout:g} seconds") from None
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is closed")
        return pool

    async def _revive(self) -> None:
        """Connect once; if that works, put a fresh pool in place of the one whose connections
        (and reconnection back-off) date from the outage, and close the old one aside."""
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connect("agegate")
        except TimeoutError:
            raise self._unavailable(f"the server did not answer within {self.timeout:g} seconds") from None
        await conn.close()
        old = self._pool
        if old is None:  # closed meanwhile
            return
        pool = self._make_pool()
        await pool.open(wait=False)
        self._pool = pool
        self._down = False
        logger.info("agegate: the PostgreSQL store is back")
        retiring = asyncio.ensure_future(old.close(timeout=self.timeout))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retired)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        _retrieved(task)

    # -- change signal -----------------------------------------------------------------------

    def revision(self) -> int:
        """The change counter: bumped by every ``NOTIFY`` from any instance, and on every read
        while the ``LISTEN`` connection is down (caches are then never trusted)."""
        if not self._listening:
            self._revision += 1
        return self._revision

    async def bump_revision(self) -> None:
        """Tell every instance sharing the database to drop its status cache (``NOTIFY``)."""
        self._revision += 1

        async def run(conn: Conn) -> None:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._schema))

        await self._run(run)

    async def _listen(self) -> None:
        """Count notifications on the ``LISTEN`` connection; when it drops, reconnect (with a
        growing pause) and bump the counter, since notifications may have been missed meanwhile."""
        delay = 0.05
        while True:
            try:
                conn = self._listen_conn
                if conn is None:
                    conn = self._listen_conn = await self._connect("agegate-listen")
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listener_pid = conn.info.backend_pid
                    self._revision += 1
                    self._listening = True
                    logger.info("agegate: the PostgreSQL LISTEN connection is back")
                    delay = 0.05
                while True:
                    async for notify in conn.notifies(timeout=LISTEN_CHECK_INTERVAL):
                        if notify.payload == self._schema:
                            self._revision += 1
                    # A silent connection may be a dead one: cut it if it does not answer.
                    with self._watch(conn, asyncio.get_running_loop().time() + self.timeout):
                        await conn.execute("SELECT 1")
            except Exception as exc:  # any failure: drop caches, reconnect
                if self._listening:
                    logger.warning(
                        "agegate: the PostgreSQL LISTEN connection failed (%s); status caches are "
                        "bypassed until it is back",
                        type(exc).__name__,
                    )
                self._listening = False
                self._revision += 1
                conn, self._listen_conn = self._listen_conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- attestations ------------------------------------------------------------------------

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        """Insert or replace ``record``; delete the records under ``replaces``; atomically."""
        subject = bytes(record.subject_hash)
        row = (subject, record.kid, bytes(record.mac), record.policy, _at(record.checked_at))
        olds = list({bytes(h) for h in replaces} - {subject})

        async def run(conn: Conn) -> None:
            if olds:
                await conn.execute("DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (olds,))
            await conn.execute(
                "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_hash) DO UPDATE SET "
                "kid = EXCLUDED.kid, mac = EXCLUDED.mac, policy = EXCLUDED.policy, "
                "checked_at = EXCLUDED.checked_at",
                row,
            )

        await self._run(run)

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
        ``blocks`` is blocked at ``now``: the account's row is changed by a conditional
        ``UPDATE`` or inserted with ``ON CONFLICT DO NOTHING``, so a concurrent writer is never
        overwritten. A new account's (``expected=None``) is one statement, one round trip."""
        subject = bytes(record.subject_hash)
        row = (subject, record.kid, bytes(record.mac), record.policy, _at(record.checked_at))
        olds = list({bytes(h) for h in replaces} - {subject})
        blocked = [bytes(h) for h in blocks]
        if blocked and now is None:
            return False
        at = _at(now) if now is not None else None

        async def insert_new(conn: Conn) -> bool:
            sql = _insert_new_sql(1 + len(olds), len(blocked))
            params = (*row, subject, *olds, *blocked, *((at,) if blocked else ()))
            return (await conn.execute(sql, params)).rowcount == 1

        async def run(conn: Conn) -> bool:
            if blocked:
                found = await (await conn.execute(_blocked_sql(len(blocked)), (*blocked, at))).fetchone()
                if found is not None:
                    return False
            assert expected is not None
            if bytes(expected.subject_hash) == subject:
                cursor = await conn.execute(
                    "UPDATE agegate_attestations SET kid = %s, mac = %s, policy = %s, checked_at = %s "
                    "WHERE subject_hash = %s AND mac = %s",
                    (*row[1:], subject, bytes(expected.mac)),
                )
            else:
                cursor = await conn.execute(
                    "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_hash) DO NOTHING",
                    row,
                )
            if cursor.rowcount != 1:
                return False
            if bytes(expected.subject_hash) != subject:
                # The expected record was under an older key: it must still be there, unchanged.
                gone = await conn.execute(
                    "DELETE FROM agegate_attestations WHERE subject_hash = %s AND mac = %s",
                    (bytes(expected.subject_hash), bytes(expected.mac)),
                )
                if gone.rowcount != 1:
                    raise _Conflict()
            if olds:
                await conn.execute("DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (olds,))
            return True

        if expected is None:
            return await self._run(insert_new, single=True)
        try:
            return await self._run(run)
        except _Conflict:
            return False  # the transaction was rolled back

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        """The record under the first of ``subject_hashes`` that has one, or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        async def run(conn: Conn) -> AttestationRecord | None:
            rows = await (
                await conn.execute(
                    "SELECT subject_hash, kid, mac, policy, checked_at FROM agegate_attestations "
                    "WHERE subject_hash = ANY(%s)",
                    (wanted,),
                )
            ).fetchall()
            found = {bytes(row[0]): row for row in rows}
            for subject_hash in wanted:
                if subject_hash in found:
                    _, kid, mac, policy, checked_at = found[subject_hash]
                    return AttestationRecord(
                        subject_hash, kid, bytes(mac), policy, checked_at.astimezone(UTC)
                    )
            return None

        return await self._run(run) if wanted else None

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        """Delete the records under these hashes; returns how many were deleted."""
        wanted = list({bytes(h) for h in subject_hashes})

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (wanted,)
            )
            return cursor.rowcount

        return await self._run(run) if wanted else 0

    # -- identifiers of purged child accounts --------------------------------------------------

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        """Block these hashes until ``until``; an existing block is extended, never shortened."""
        end = _at(until)
        # Deduplicated: one INSERT … ON CONFLICT may not touch a row twice.
        wanted = list(dict.fromkeys(bytes(h) for h in identifier_hashes))

        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO agegate_identifier_blocks (identifier_hash, blocked_until, kids) "
                "SELECT h, %s, %s FROM unnest(%s::bytea[]) AS h "
                "ON CONFLICT (identifier_hash) DO UPDATE SET kids = CASE WHEN "
                "EXCLUDED.blocked_until > agegate_identifier_blocks.blocked_until THEN EXCLUDED.kids "
                "ELSE agegate_identifier_blocks.kids END, blocked_until = "
                "greatest(agegate_identifier_blocks.blocked_until, EXCLUDED.blocked_until)",
                (end, ",".join(kids), wanted),
            )

        if wanted:
            await self._run(run)

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        """Whether any of these hashes is blocked at ``now``."""
        at = _at(now)
        wanted = [bytes(h) for h in identifier_hashes]

        async def run(conn: Conn) -> bool:
            row = await (
                await conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM agegate_identifier_blocks "
                    "WHERE identifier_hash = ANY(%s) AND blocked_until > %s)",
                    (wanted, at),
                )
            ).fetchone()
            return bool(row and row[0])

        return await self._run(run) if wanted else False

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        """Drop blocks that ended at or before ``now``; returns how many."""
        at = _at(now)

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_identifier_blocks WHERE blocked_until <= %s", (at,)
            )
            return cursor.rowcount

        return await self._run(run)

    # -- accounts flagged by an under-age age signal ---------------------------------------------

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        """Keep ``sealed`` under ``flag_hash`` unless the account is flagged already."""
        hashes = [bytes(h) for h in (flag_hash, *known)]

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute(
                "INSERT INTO agegate_signal_flags (flag_hash, sealed) SELECT %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM agegate_signal_flags WHERE flag_hash = ANY(%s)) ON CONFLICT DO NOTHING",
                (bytes(flag_hash), bytes(sealed), hashes),
            )
            return cursor.rowcount == 1

        return await self._run(run)

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        """Every flag as ``(flag_hash, sealed)``."""

        async def run(conn: Conn) -> list[tuple[bytes, bytes]]:
            cursor = await conn.execute(
                "SELECT flag_hash, sealed FROM agegate_signal_flags ORDER BY flag_hash"
            )
            return [(bytes(h), bytes(sealed)) for h, sealed in await cursor.fetchall()]

        return await self._run(run)

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        """Delete the flags under these hashes; returns how many were deleted."""
        wanted = list({bytes(h) for h in flag_hashes})

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_signal_flags WHERE flag_hash = ANY(%s)", (wanted,)
            )
            return cursor.rowcount

        return await self._run(run) if wanted else 0

    # -- the keys the records were written under -----------------------------------------------

    async def key_checks(self) -> dict[str, bytes]:
        """Every key id the store was opened with, and its check value."""

        async def run(conn: Conn) -> dict[str, bytes]:
            rows = await (await conn.execute("SELECT kid, check_value FROM agegate_key_checks")).fetchall()
            return {kid: bytes(check) for kid, check in rows}

        return await self._run(run)

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        """Record new key ids and check values (never changing one); returns them all."""
        kids, values = list(checks), [bytes(v) for v in checks.values()]

        async def run(conn: Conn) -> dict[str, bytes]:
            if kids:
                known = await (await conn.execute("SELECT 1 FROM agegate_key_checks LIMIT 1")).fetchone()
                if known is None:
                    await conn.execute(
                        "UPDATE agegate_identifier_blocks SET kids = %s WHERE kids = ''", (",".join(kids),)
                    )
                await conn.execute(
                    "INSERT INTO agegate_key_checks (kid, check_value, registered_at) "
                    "SELECT k, v, now() FROM unnest(%s::text[], %s::bytea[]) AS t (k, v) "
                    "ON CONFLICT (kid) DO NOTHING",
                    (kids, values),
                )
            rows = await (await conn.execute("SELECT kid, check_value FROM agegate_key_checks")).fetchall()
            return {kid: bytes(check) for kid, check in rows}

        return await self._run(run)

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        """Per key id, its attestations and the blocks in force at ``now`` that need it."""
        at = _at(now)

        async def run(conn: Conn) -> list[KeyUse]:
            attestations = await (
                await conn.execute("SELECT kid, count(*) FROM agegate_attestations GROUP BY kid")
            ).fetchall()
            blocks = await (
                await conn.execute(
                    "SELECT kids, count(*), max(blocked_until) FROM agegate_identifier_blocks "
                    "WHERE blocked_until > %s GROUP BY kids",
                    (at,),
                )
            ).fetchall()
            return key_uses_from(
                {kid: int(count) for kid, count in attestations},
                [(kids.split(",") if kids else [], int(count), latest) for kids, count, latest in blocks],
            )

        return await self._run(run)

    # -- purge job journal -------------------------------------------------------------------

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        """Insert ``job`` unless a job for its ``subject_hash`` exists; atomically."""
        row = _job_row(job)
        steps = [(job.job_id, i, step, int(count)) for i, (step, count) in enumerate(job.steps.items())]
        psycopg = self._psycopg

        async def run(conn: Conn) -> tuple[PurgeJob, bool]:
            # ON CONFLICT waits for a concurrent insert of the same subject to commit, then
            # does nothing: exactly one creator wins.
            try:
                async with conn.transaction():
                    cursor = await conn.execute(
                        f"INSERT INTO agegate_purge_jobs ({_JOB_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}) "  # noqa: S608
                        "ON CONFLICT (subject_hash) DO NOTHING RETURNING job_id",
                        row,
                    )
                    inserted = await cursor.fetchone() is not None
            except psycopg.errors.UniqueViolation:
                raise StoreError("a purge job with this id already exists") from None
            if inserted:
                if steps:
                    async with conn.cursor() as cur:
                        await cur.executemany(
                            "INSERT INTO agegate_purge_steps (job_id, position, step, count) "
                            "VALUES (%s, %s, %s, %s)",
                            steps,
                        )
                return (await _select_jobs(conn, "WHERE job_id = %s", (job.job_id,)))[0], True
            existing = await _select_jobs(conn, "WHERE subject_hash = %s", (row[1],))
            if not existing:  # deleted between the conflict and this read
                raise psycopg.errors.SerializationFailure("the conflicting job vanished")
            return existing[0], False

        return await self._run(run)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        """The job with this id, or ``None``."""

        async def run(conn: Conn) -> PurgeJob | None:
            found = await _select_jobs(conn, "WHERE job_id = %s", (job_id,))
            return found[0] if found else None

        return await self._run(run)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        """The job for any of these subject hashes (the first that has one), or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        async def run(conn: Conn) -> PurgeJob | None:
            found = {
                j.subject_hash: j for j in await _select_jobs(conn, "WHERE subject_hash = ANY(%s)", (wanted,))
            }
            return next((found[h] for h in wanted if h in found), None)

        return await self._run(run) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        """Every job (or every job not yet done/dry_run), oldest first."""
        where = "WHERE state NOT IN ('done', 'dry_run')" if unfinished_only else ""

        async def run(conn: Conn) -> list[PurgeJob]:
            return await _select_jobs(conn, where + " ORDER BY created_at, job_id", ())

        return await self._run(run)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        """Take the job's lease for ``owner`` until ``until`` (compare and set); see the protocol.

        The row is locked with ``FOR UPDATE SKIP LOCKED``: while another transaction holds it (a
        rival claim, or the holder journalling a step) a rival claimer is refused at once. The
        holder renewing its own lease (or a takeover of the named dead holder) waits instead.
        """
        end, at = _at(until), _at(now)

        async def run(conn: Conn) -> bool:
            select = (
                "SELECT state, lease_owner, lease_until FROM agegate_purge_jobs WHERE job_id = %s FOR UPDATE"
            )
            row = await (await conn.execute(select + " SKIP LOCKED", (job_id,))).fetchone()
            if row is None:
                peek = await (
                    await conn.execute(
                        "SELECT lease_owner FROM agegate_purge_jobs WHERE job_id = %s", (job_id,)
                    )
                ).fetchone()
                if peek is None or peek[0] is None or peek[0] not in (owner, takeover):
                    return False
                row = await (await conn.execute(select, (job_id,))).fetchone()
                if row is None:
                    return False
            state, lease_owner, lease_until = row
            free = (
                lease_owner is None
                or lease_owner == owner
                or (takeover is not None and lease_owner == takeover)
                or (lease_until is not None and lease_until <= at)
            )
            if state in _FINAL or not free:
                return False
            await conn.execute(
                "UPDATE agegate_purge_jobs SET lease_owner = %s, lease_until = %s, updated_at = %s, "
                "error = CASE WHEN state = 'failed' THEN NULL ELSE error END, "
                "state = CASE WHEN state = 'failed' THEN 'running' ELSE state END "
                "WHERE job_id = %s",
                (owner, end, at, job_id),
            )
            return True

        return await self._run(run)

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """Journal a finished step if ``owner`` holds the lease; a repeated step keeps its first count."""
        at = _at(now)

        async def run(conn: Conn) -> bool:
            held = await conn.execute(
                "UPDATE agegate_purge_jobs SET updated_at = %s WHERE job_id = %s AND lease_owner = %s",
                (at, job_id, owner),
            )
            if held.rowcount != 1:
                return False
            # The row lock taken just above orders concurrent steps of this job.
            await conn.execute(
                "INSERT INTO agegate_purge_steps (job_id, position, step, count) "
                "SELECT %s, coalesce(max(position), -1) + 1, %s, %s FROM agegate_purge_steps "
                "WHERE job_id = %s ON CONFLICT (job_id, step) DO NOTHING",
                (job_id, step, int(count), job_id),
            )
            return True

        return await self._run(run)

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        """Set the job's final (or failed) state and release the lease, if ``owner`` holds it."""
        if state not in ("running", "done", "failed", "dry_run"):
            raise StoreError(f"unknown purge job state {state!r}")
        at = _at(now)
        if state in _FINAL:
            sql = (
                "UPDATE agegate_purge_jobs SET state = %s, error = %s, updated_at = %s, lease_owner = NULL, "
                "lease_until = NULL, finished_at = %s, sealed_subject = NULL, identifier_hashes = '{}' "
                "WHERE job_id = %s AND lease_owner = %s"
            )
            params: tuple[Any, ...] = (state, error, at, at, job_id, owner)
        else:
            sql = (
                "UPDATE agegate_purge_jobs SET state = %s, error = %s, updated_at = %s, lease_owner = NULL, "
                "lease_until = NULL WHERE job_id = %s AND lease_owner = %s"
            )
            params = (state, error, at, job_id, owner)

        async def run(conn: Conn) -> bool:
            return (await conn.execute(sql, params)).rowcount == 1

        return await self._run(run)

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
        hashes = [bytes(h) for h in identifier_hashes]
        params = (list(handlers), bytes(sealed_subject), hashes, _at(now), job_id)

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute(
                "UPDATE agegate_purge_jobs SET state = 'running', handlers = %s, sealed_subject = %s, "
                "identifier_hashes = %s, updated_at = %s, finished_at = NULL, error = NULL, "
                "lease_owner = NULL, lease_until = NULL WHERE job_id = %s AND state = 'done'",
                params,
            )
            return cursor.rowcount == 1

        return await self._run(run)

    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and its steps. Returns whether it existed."""

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute("DELETE FROM agegate_purge_jobs WHERE job_id = %s", (job_id,))
            return cursor.rowcount == 1

        return await self._run(run)

    # -- reports from parents ----------------------------------------------------------------

    async def create_report(self, report: ReportRecord) -> None:
        """Insert ``report``; :class:`StoreError` when its reference exists."""
        row = report_row(report, _at)

        async def run(conn: Conn) -> None:
            cursor = await conn.execute(_INSERT_REPORT + " ON CONFLICT (reference) DO NOTHING", row)
            if cursor.rowcount != 1:
                raise _Conflict()

        try:
            await self._run(run)
        except _Conflict:
            raise StoreError(f"report {report.reference} exists already") from None

    async def get_report(self, reference: str) -> ReportRecord | None:
        """The report with this reference, or ``None``."""

        async def run(conn: Conn) -> ReportRecord | None:
            cursor = await conn.execute(f"{_SELECT_REPORTS} WHERE reference = %s", (reference,))
            row = await cursor.fetchone()
            return report_from(row, _utc) if row is not None else None

        return await self._run(run)

    async def list_reports(self) -> list[ReportRecord]:
        """Every report, oldest first."""

        async def run(conn: Conn) -> list[ReportRecord]:
            cursor = await conn.execute(f"{_SELECT_REPORTS} ORDER BY received_at, reference")
            return [report_from(row, _utc) for row in await cursor.fetchall()]

        return await self._run(run)

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        """Write ``report`` over the stored one if it is still in state ``expected``."""
        values = report_row(report, _at)[3:]

        async def run(conn: Conn) -> bool:
            sql = f"UPDATE agegate_reports SET {_REPORT_SETS} WHERE reference = %s AND state = %s"  # noqa: S608
            cursor = await conn.execute(sql, (*values, report.reference, expected))
            return cursor.rowcount == 1

        return await self._run(run)


_SELECT_REPORTS = f"SELECT {', '.join(REPORT_COLUMNS)} FROM agegate_reports"  # noqa: S608
_INSERT_REPORT = (
    f"INSERT INTO agegate_reports ({', '.join(REPORT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(REPORT_COLUMNS))})"
)
_REPORT_SETS = ", ".join(f"{column} = %s" for column in UPDATED_COLUMNS)


def _sever(conn: Conn) -> None:
    """Shut the connection's socket down, so that everything waiting on it fails at once (a
    closed socket reads as end of file) instead of waiting on a server that does not answer."""
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed
        return
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A done-callback: take a background task's exception, so that it is not reported as lost."""
    if not task.cancelled():
        task.exception()


def _job_row(job: PurgeJob) -> tuple[Any, ...]:
    return (
        job.job_id,
        bytes(job.subject_hash),
        job.ticket,
        job.operator,
        list(job.handlers),
        job.state,
        _at(job.created_at),
        _at(job.updated_at),
        bytes(job.sealed_subject) if job.sealed_subject is not None else None,
        [bytes(h) for h in job.identifier_hashes],
        _at(job.finished_at) if job.finished_at is not None else None,
        job.error,
        job.lease_owner,
        _at(job.lease_until) if job.lease_until is not None else None,
    )


async def _select_jobs(conn: Conn, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    rows = await (
        await conn.execute(f"SELECT {_JOB_COLUMNS} FROM agegate_purge_jobs {tail}", params)  # noqa: S608
    ).fetchall()
    if not rows:
        return []
    steps: dict[str, dict[str, int]] = {row[0]: {} for row in rows}
    step_rows = await (
        await conn.execute(
            "SELECT job_id, step, count FROM agegate_purge_steps WHERE job_id = ANY(%s) "
            "ORDER BY job_id, position",
            (list(steps),),
        )
    ).fetchall()
    for job_id, step, count in step_rows:
        steps[job_id][step] = int(count)
    jobs = []
    for row in rows:
        (job_id, subject_hash, ticket, operator, handlers, state, created, updated, sealed, idents) = row[:10]
        finished_at, error, lease_owner, lease_until = row[10:]
        jobs.append(
            PurgeJob(
                job_id=job_id,
                subject_hash=bytes(subject_hash),
                ticket=ticket,
                operator=operator,
                handlers=tuple(handlers),
                state=cast(JobState, state),
                created_at=created.astimezone(UTC),
                updated_at=updated.astimezone(UTC),
                sealed_subject=bytes(sealed) if sealed is not None else None,
                identifier_hashes=tuple(bytes(h) for h in idents),
                steps=steps[job_id],
                finished_at=_utc(finished_at),
                error=error,
                lease_owner=lease_owner,
                lease_until=_utc(lease_until),
            )
        )
    return jobs
