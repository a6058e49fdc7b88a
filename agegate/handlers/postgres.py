"""The app's PostgreSQL database, for the built-in handlers and the coverage check (psycopg
is imported when one is made)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..connections import Pool
from ..errors import ConfigurationError
from .base import PooledSQL, TableRef, check_identifier
from .rows import SQLRows

if TYPE_CHECKING:
    from ..purge.catalog import Catalog

__all__ = ["PostgresDatabase"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "PostgreSQL handlers need psycopg: pip install 'agegate[postgres]'"
        ) from None
    return psycopg


class PostgresDatabase(PooledSQL):
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
        check_identifier("table", table, dotted=True)
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
        from ..purge.catalog import postgres_catalog

        with self.connection() as conn:
            return postgres_catalog(conn)

    def _partition_parents(self) -> dict[str, str]:
        from ..purge.catalog import display, postgres_partition_parents

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
