"""The relational account handler: an account's rows across a SQL schema, in one transaction.

Build it with :meth:`SQLiteDatabase.account <agegate.handlers.SQLiteDatabase.account>` or
:meth:`PostgresDatabase.account <agegate.handlers.PostgresDatabase.account>`::

    db = PostgresDatabase("postgresql://app@db/shop")
    gate.purger.add(db.account("customer", "customer_id", owns=["address"],
                               set_null={"message.recipient_id"}))

It reads the database's own catalog (foreign keys, column types, partitions) and plans the purge
as :mod:`agegate.purge.plan` describes: the account's row, every row that references it,
recursively and children first, the owned rows nothing references any more; ``set_null``
foreign keys are cleared instead. Per account it runs one transaction on a pooled connection:
lock the owned rows, run the plan, journal the count (the deletes' own row counts), commit. A
crash before the commit leaves nothing half-deleted; a crash after it is reported from the
journalled count when ``agegate purge --resume`` runs the handler again.

A table partitioned by month (PostgreSQL) or with inheritance children is one table of the plan:
a DELETE on the parent reaches every partition, present and future. The catalog is read once and
re-read when the schema's foreign keys change (checked inside each transaction). A dry run runs
the same transaction and rolls it back, so its counts are exact and a plan a foreign key would
stop fails there, not half-way through a purge.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from ..connections import BeforeCommit, run_transaction
from ..errors import ConfigurationError
from ..handlers import PostgresDatabase, SQLiteDatabase, TableRef
from .catalog import Catalog, display, postgres_catalog, postgres_watch, sqlite_catalog
from .execute import SQLITE_CHECK, Current, PlannedRows, labels, run_postgres, run_sqlite, watched
from .plan import Plan, build_plan
from .request import check_key_form

__all__ = ["AccountRows", "PlannedRows"]

_ATTEMPTS = 3  # a deadlock between two purges of related accounts is retried this many times


class AccountRows:
    """A purge handler deleting an account across the schema by its foreign keys.

    ``table`` and ``column`` say where the account's row is (``"customer"``, ``"customer_id"``;
    ``schema.table`` on PostgreSQL). ``owns`` names tables the account's rows reference whose
    rows are deleted with them unless something else still references them (a household's
    shared address stays until its last member is purged). ``set_null`` names foreign keys
    (``"message.recipient_id"``) cleared instead of followed: rows of another party that only
    mention the account. The handler's name defaults to the table's.

    A typed key column (an integer, a uuid) makes the purge refuse, before anything is frozen,
    an account id not written in the one form the database shows (``+351``, ``0351``,
    ``351.0``, an upper-case uuid).
    """

    def __init__(
        self,
        database: SQLiteDatabase | PostgresDatabase,
        table: str,
        column: str,
        *,
        owns: Iterable[str] = (),
        set_null: Collection[str] = (),
        name: str | None = None,
    ) -> None:
        for what, value in (("owns", owns), ("set_null", set_null)):
            if isinstance(value, str):
                raise ConfigurationError(f"{what}= takes a list of names, not one string")
        if not isinstance(table, str) or not table or not isinstance(column, str) or not column:
            raise ConfigurationError("account(table, column) takes the account table and its key column")
        self.database = database
        self.table, self.column = table, column
        self.owns, self.set_null = tuple(owns), frozenset(set_null)
        self.name = name or table
        self._current: Current | None = None
        self._key_type = ""
        self._lock = threading.Lock()
        self._postgres = database.dialect == "postgresql"

    def __repr__(self) -> str:
        return f"AccountRows({self.database!r}, {self.table!r}, {self.column!r}, name={self.name!r})"

    @property
    def covers(self) -> tuple[TableRef, ...]:
        """The tables this handler purges, for the coverage check: the account table by its key
        column, each table reached by the foreign key column it is reached by, the owned tables
        whole. Complete once the plan is made (:meth:`prepare`; the coverage check does it)."""
        refs = [TableRef(self.database, self.table, self.column)]
        plan = self._current.plan if self._current is not None else None
        if plan is not None:
            for step in plan.steps:
                if step.table != plan.root or step.action == "set null":
                    refs.append(TableRef(self.database, display(step.table), step.path.rpartition(".")[2]))
            refs += [TableRef(self.database, display(step.table)) for step in plan.owned]
        return tuple(dict.fromkeys(refs))

    # -- the plan --------------------------------------------------------------------------------

    def _make_plan(self, conn: Any) -> tuple[Plan, Catalog]:
        catalog = postgres_catalog(conn) if self._postgres else sqlite_catalog(conn)
        return build_plan(catalog, self.table, self.column, owns=self.owns, set_null=self.set_null), catalog

    def _replan(self, conn: Any) -> Current:
        """Read the catalog, make the plan, and what tells a later transaction it is still
        current (the check is read before the catalog, or the catalog read again after it)."""
        if not self._postgres:
            fingerprint = conn.execute(SQLITE_CHECK).fetchone()[0]
            plan, catalog = self._make_plan(conn)
            check = SQLITE_CHECK
        else:
            plan, catalog = self._make_plan(conn)
            for _ in range(_ATTEMPTS):
                check = postgres_watch(conn, watched(plan))
                fingerprint = tuple(conn.execute(check).fetchone())
                again, catalog = self._make_plan(conn)
                if again == plan:
                    break
                plan = again  # the foreign keys changed meanwhile
            else:
                fingerprint = None  # still changing: the next transaction reads them again
        current = Current(plan, labels(plan), check, fingerprint)
        with self._lock:
            self._current = current
            self._key_type = catalog.types[(plan.root, self.column)]
        return current

    def _prepare(self) -> Plan:
        with self.database.connection() as conn:
            plan = self._replan(conn).plan
            if self._postgres:
                conn.rollback()
            return plan

    async def prepare(self) -> Plan:
        """Read the catalog and make the plan (once; later calls return it)."""
        current = self._current
        return current.plan if current is not None else await asyncio.to_thread(self._prepare)

    async def check_id(self, subject: str) -> None:
        """Refuse (:class:`ConfigurationError`) an account id that the key column would read
        as another text, such as ``+351`` for the integer 351."""
        plan = await self.prepare()
        where = f"{display(plan.root)}.{self.column}"
        check_key_form(subject, self._key_type, "postgresql" if self._postgres else "sqlite", where)

    # -- running ---------------------------------------------------------------------------------

    def _statements(self, conn: Any, subject: str) -> list[PlannedRows]:
        """Run the plan in a transaction left open; the rows each statement touched."""
        for attempt in range(_ATTEMPTS):
            try:
                return self._attempt(conn, subject)
            except Exception as exc:
                if not self._postgres or attempt == _ATTEMPTS - 1 or not _retryable(exc):
                    raise
                conn.rollback()  # and run_transaction's BEGIN is PostgreSQL's first statement
        raise AssertionError("unreachable")

    def _attempt(self, conn: Any, subject: str) -> list[PlannedRows]:
        with self._lock:
            current = self._current
        assert current is not None  # prepare() ran
        # The plan is checked against the schema inside the transaction that runs it.
        if self._postgres:
            with conn.pipeline():  # BEGIN and the check: one round trip
                checked = conn.execute(current.check)
            fingerprint: object = tuple(checked.fetchone())
        else:
            cursor = conn.cursor()
            fingerprint = cursor.execute(current.check).fetchone()[0]
        if fingerprint != current.fingerprint:  # the schema's foreign keys changed since
            current = self._replan(conn)
        # Owned rows are locked before anything is deleted, in key order (no deadlock between two
        # purges of one household); only then is "does anything else use it" a safe question.
        if self._postgres:
            return run_postgres(conn, current.plan, current.labels, subject)
        return run_sqlite(cursor, current.plan, current.labels, subject)

    async def _transaction(
        self, subject: str, *, dry: bool, planned: Callable[[int], Awaitable[None]] | None = None
    ) -> list[PlannedRows]:
        await self.prepare()
        return await run_transaction(
            self.database,
            lambda conn: self._statements(conn, subject),
            commit=not dry,
            before_commit=None if planned is None else BeforeCommit.of(planned).taking(_deleted),
        )

    async def __call__(self, subject: str) -> int:
        """Delete the account's rows in one transaction; returns the rows deleted."""
        return _deleted(await self._transaction(subject, dry=False))

    async def run_journalled(self, subject: str, planned: Callable[[int], Awaitable[None]]) -> int:
        """As a call, but ``await planned(rows)`` runs between the deletes and the commit, so
        the purge journal knows the count even if this process dies right after committing."""
        return _deleted(await self._transaction(subject, dry=False, planned=planned))

    async def count(self, subject: str) -> int:
        """How many rows a purge would delete (the plan run in a transaction rolled back)."""
        return _deleted(await self._transaction(subject, dry=True))

    async def plan(self, subject: str) -> list[PlannedRows]:
        """What a purge would do: (table, path, action, rows) for each statement, in order."""
        return await self._transaction(subject, dry=True)


def _deleted(rows: list[PlannedRows]) -> int:
    return sum(count for _, _, action, count in rows if action != "set null")


def _retryable(exc: Exception) -> bool:
    # PostgreSQL's deadlock_detected and serialization_failure: the transaction did nothing.
    return getattr(exc, "sqlstate", None) in ("40P01", "40001")
