r"""The app's databases and the built-in purge handlers: an account across a SQL schema, rows of
one table (SQLite, PostgreSQL) and per-account files.

::

    db = SQLiteDatabase("app.sqlite3")
    gate.purger.add(db.account("users", "id", owns=["addresses"]))  # follows the foreign keys
    gate.purger.add(db.rows("events", "account_id"))                 # one table, no keys
    gate.purger.add(AccountFiles("/srv/uploads", names=("{subject}", "{subject}.json")))

Every handler is idempotent (a second run deletes nothing and returns 0) and offers a ``count``
side for dry runs. Table and column names are validated and quoted; the account id only ever
travels as a bound query parameter. A database keeps a few connections open between calls
(closed when it is garbage-collected or :meth:`close`\ d). The databases the handlers know are
what ``agegate purge --coverage`` inspects for personal-looking columns nobody purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from .connections import Pool, run_transaction
from .errors import ConfigurationError
from .files import AccountFiles

__all__ = ["AccountFiles", "Database", "PostgresDatabase", "SQLRows", "SQLiteDatabase", "TableRef"]

if TYPE_CHECKING:
    from .purge.catalog import Catalog
    from .purge.relational import AccountRows

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", re.ASCII)


def _check_identifier(kind: str, text: str, *, dotted: bool = False) -> tuple[str, ...]:
    parts = (text.split(".") if dotted else [text]) if isinstance(text, str) else [""]
    if len(parts) > 2 or any(_IDENTIFIER.fullmatch(p) is None for p in parts):
        raise ConfigurationError(
            f"{kind} {text!r} is not a plain SQL name (letters, digits and '_', not starting with a digit)"
        )
    return tuple(parts)


def _quote(parts: Sequence[str]) -> str:
    # The parts are validated above, so they hold no quote characters; quoting keeps reserved
    # words and mixed case working.
    return ".".join(f'"{p}"' for p in parts)


class Database(Protocol):
    """A SQL database that built-in handlers delete from and the coverage check inspects."""

    @property
    def key(self) -> str:
        """A name for the database that is safe to print (no password)."""
        ...

    async def columns(self) -> list[tuple[str, str]]:
        """Every (table, column) of the database's own tables."""
        ...

    async def delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        """Delete the rows whose ``column`` equals ``subject``; returns how many."""
        ...

    async def count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        """How many rows :meth:`delete` would delete."""
        ...


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table of a database, for ``covers=`` (a custom handler that purges it) and exemptions.

    ``column`` is set by the built-in row handlers: the table is then covered only through the
    rows whose ``column`` holds the account id (see :mod:`agegate.purge.coverage`)."""

    database: Database
    table: str
    column: str | None = None


class _PooledSQL:
    """What the two SQL databases share: pooled connections and the relational handler."""

    dialect = ""
    _pool: Pool

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        """A pooled DB-API connection (SQLite: autocommit mode; psycopg: a transaction opens
        with the first statement), for one worker thread at a time."""
        return self._pool.connection()

    def close(self) -> None:
        """Close the connections kept for reuse (more are opened when needed)."""
        self._pool.close()

    def account(
        self,
        table: str,
        column: str,
        *,
        owns: Iterable[str] = (),
        set_null: Collection[str] = (),
        name: str | None = None,
    ) -> AccountRows:
        """A handler deleting an account across the schema by its foreign keys; see
        :class:`~agegate.purge.relational.AccountRows`."""
        from .purge.relational import AccountRows

        database = cast("SQLiteDatabase | PostgresDatabase", self)  # the only subclasses
        return AccountRows(database, table, column, owns=owns, set_null=set_null, name=name)

    def _catalog(self) -> Catalog:
        raise NotImplementedError

    async def catalog(self) -> Catalog:
        """Foreign keys, column types and tables, read from the database's own catalog."""
        return await asyncio.to_thread(self._catalog)


class SQLiteDatabase(_PooledSQL):
    """A SQLite database file of the app. Connections are kept for reuse (a few at most)."""

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        if isinstance(path, str) and path.startswith("sqlite:"):
            path = urlsplit(path).path
        self.path = Path(path)
        self.timeout = timeout
        self._pool = Pool(self._connect, _sqlite_reset)

    @property
    def key(self) -> str:
        return f"sqlite:{self.path.resolve()}"

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    def rows(self, table: str, column: str, *, name: str | None = None) -> SQLRows:
        """A handler deleting the rows of ``table`` whose ``column`` holds the account id."""
        return SQLRows(self, table, column, name=name)

    def table(self, table: str) -> TableRef:
        """A reference to ``table``, for ``covers=`` and coverage exemptions."""
        _check_identifier("table", table)
        return TableRef(self, table)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise ConfigurationError(f"the SQLite database {str(self.path)!r} does not exist")
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE where several statements
        # must hold together); any worker thread may use a connection, one at a time.
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        # SQLite checks foreign keys only when asked: a purge that would orphan a row fails
        # (and is resumable) instead of leaving the orphan.
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def delete_statement(self, table: tuple[str, ...], column: str) -> str:
        """The DELETE of :meth:`delete`, taking the account id as its one parameter."""
        return f"DELETE FROM {_quote(table)} WHERE {_quote([column])} = ?"  # noqa: S608

    def _delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with self.connection() as conn:
            cursor = conn.execute(self.delete_statement(table, column), (subject,))
            return max(int(cursor.rowcount), 0)

    def _count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with self.connection() as conn:
            query = f"SELECT count(*) FROM {_quote(table)} WHERE {_quote([column])} = ?"  # noqa: S608
            row = conn.execute(query, (subject,)).fetchone()
            return int(row[0])

    def _columns(self) -> list[tuple[str, str]]:
        with self.connection() as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                    "ORDER BY name"
                )
            ]
            out: list[tuple[str, str]] = []
            for table in tables:
                for info in conn.execute("SELECT name FROM pragma_table_info(?)", (table,)):
                    out.append((table, info[0]))
            return out

    def _catalog(self) -> Catalog:
        from .purge.catalog import sqlite_catalog

        with self.connection() as conn:
            return sqlite_catalog(conn)

    async def delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        return await asyncio.to_thread(self._delete, table, column, subject)

    async def count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        return await asyncio.to_thread(self._count, table, column, subject)

    async def columns(self) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self._columns)

    async def partition_parents(self) -> dict[str, str]:
        """Partitions mapped to their parent tables: none in SQLite."""
        return {}


def _sqlite_reset(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.rollback()


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "PostgreSQL handlers need psycopg: pip install 'agegate[postgres]'"
        ) from None
    return psycopg


class PostgresDatabase(_PooledSQL):
    """A PostgreSQL database of the app, by psycopg conninfo (``postgresql://…`` or
    ``host=… dbname=…``). Connections are kept for reuse (a few at most); psycopg is imported
    lazily."""

    dialect = "postgresql"

    def __init__(self, conninfo: str) -> None:
        psycopg = _psycopg()
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            raise ConfigurationError("the PostgreSQL conninfo cannot be parsed") from None
        self.conninfo = conninfo
        self._key = "postgresql://{user}@{host}:{port}/{dbname}".format(
            user=params.get("user", ""),
            host=params.get("host", ""),
            port=params.get("port", "5432"),
            dbname=params.get("dbname", ""),
        )
        self._pool = Pool(self._connect, _postgres_reset)

    @property
    def key(self) -> str:
        return self._key

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._key!r})"

    def rows(self, table: str, column: str, *, name: str | None = None) -> SQLRows:
        """A handler deleting the rows of ``table`` (``schema.table`` allowed) whose ``column``
        holds the account id."""
        return SQLRows(self, table, column, name=name)

    def table(self, table: str) -> TableRef:
        """A reference to ``table``, for ``covers=`` and coverage exemptions."""
        _check_identifier("table", table, dotted=True)
        return TableRef(self, table)

    def _connect(self) -> Any:
        return _psycopg().connect(self.conninfo)

    def _execute_sync(self, query: Any, params: Sequence[Any]) -> Any:
        with self.connection() as conn:
            cursor = conn.execute(query, params)
            rows = cursor.fetchall() if cursor.description else []
            conn.commit()
            return cursor.rowcount, rows

    async def _execute(self, query: Any, params: Sequence[Any]) -> Any:
        return await asyncio.to_thread(self._execute_sync, query, params)

    def _where(self, verb: Any, table: tuple[str, ...], column: str) -> Any:
        sql = _psycopg().sql
        # psycopg sends a str parameter untyped, so PostgreSQL reads it as the column's type
        # (an integer or uuid account id given as a string matches) and an index stays usable.
        return sql.SQL("{verb} {table} WHERE {column} = %s").format(
            verb=verb, table=sql.Identifier(*table), column=sql.Identifier(column)
        )

    def delete_statement(self, table: tuple[str, ...], column: str) -> Any:
        """The DELETE of :meth:`delete`, taking the account id as its one parameter."""
        return self._where(_psycopg().sql.SQL("DELETE FROM"), table, column)

    async def delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        rowcount, _ = await self._execute(self.delete_statement(table, column), (subject,))
        return max(int(rowcount), 0)

    async def count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        sql = _psycopg().sql
        _, rows = await self._execute(self._where(sql.SQL("SELECT count(*) FROM"), table, column), (subject,))
        return int(rows[0][0])

    async def columns(self) -> list[tuple[str, str]]:
        # Tables only: a view holds no data of its own (its base tables are checked).
        _, rows = await self._execute(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE t.table_type = 'BASE TABLE' "
            "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND c.table_schema NOT LIKE 'pg_toast%%' "
            "ORDER BY c.table_schema, c.table_name, c.ordinal_position",
            (),
        )
        return [(t if s == "public" else f"{s}.{t}", c) for s, t, c in rows]

    def _catalog(self) -> Catalog:
        from .purge.catalog import postgres_catalog

        with self.connection() as conn:
            return postgres_catalog(conn)

    def _partition_parents(self) -> dict[str, str]:
        from .purge.catalog import display, postgres_partition_parents

        with self.connection() as conn:
            found = postgres_partition_parents(conn)
        return {display(child): display(parent) for child, parent in found.items()}

    async def partition_parents(self) -> dict[str, str]:
        """Every partition (declarative, or an inheritance child) mapped to its top-most parent,
        both named as :meth:`columns` names tables (``public.`` left out). A handler on the
        parent covers it: a DELETE on a parent reaches its partitions, present and future."""
        return await asyncio.to_thread(self._partition_parents)


def _postgres_reset(conn: Any) -> None:
    if conn.info.transaction_status != _psycopg().pq.TransactionStatus.IDLE:
        conn.rollback()


class SQLRows:
    """A purge handler deleting the rows of one table whose column holds the account id.

    Build one with :meth:`SQLiteDatabase.rows` or :meth:`PostgresDatabase.rows`. Its name
    defaults to the table's.
    """

    def __init__(self, database: Database, table: str, column: str, *, name: str | None = None) -> None:
        self.database = database
        self.table = table
        self._table = _check_identifier("table", table, dotted=True)
        self._column = _check_identifier("column", column)[0]
        self.column = column
        self.name = name or table
        self._type: str | None = None

    @property
    def covers(self) -> tuple[TableRef, ...]:
        """The table and column this handler purges by (for the coverage check)."""
        return (TableRef(self.database, self.table, self.column),)

    async def __call__(self, subject: str) -> int:
        return await self.database.delete(self._table, self._column, subject)

    async def run_journalled(self, subject: str, planned: Callable[[int], Awaitable[None]]) -> int:
        """As a call, but ``await planned(rows)`` runs between the delete and its commit, so the
        purge journal knows the count even if this process dies right after committing."""
        database = self.database
        if not isinstance(database, SQLiteDatabase | PostgresDatabase):
            rows = await self(subject)
            await planned(rows)
            return rows
        statement = database.delete_statement(self._table, self._column)

        def delete(conn: Any) -> int:
            return max(int(conn.execute(statement, (subject,)).rowcount), 0)

        return await run_transaction(database, delete, before_commit=planned)

    async def check_id(self, subject: str) -> None:
        """Refuse an account id that a typed key column (integer, uuid) would read as another
        text, such as ``+351`` for the integer 351 (:class:`ConfigurationError`)."""
        database = self.database
        if not isinstance(database, SQLiteDatabase | PostgresDatabase):
            return
        from .purge.plan import resolve_table
        from .purge.request import check_key_form

        if self._type is None:
            catalog = await database.catalog()
            try:
                table = resolve_table(catalog, self.table)
            except ConfigurationError:  # a partition or a child table, named directly
                table = self._table
            self._type = catalog.types.get((table, self._column), "")
        check_key_form(subject, self._type, database.dialect, f"{self.table}.{self.column}")

    async def count(self, subject: str) -> int:
        """How many rows a purge would delete."""
        return await self.database.count(self._table, self._column, subject)

    def __repr__(self) -> str:
        return f"SQLRows({self.database!r}, {self.table!r}, {self.column!r}, name={self.name!r})"
