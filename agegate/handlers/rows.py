"""The built-in handler deleting the rows of one table whose column holds the account id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..connections import run_transaction
from ..errors import ConfigurationError
from .base import Database, PooledSQL, TableRef, check_identifier

__all__ = ["SQLRows"]


class SQLRows:
    """A purge handler deleting the rows of one table whose column holds the account id.

    Build one with :meth:`SQLiteDatabase.rows` or :meth:`PostgresDatabase.rows`. Its name
    defaults to the table's.
    """

    def __init__(self, database: Database, table: str, column: str, *, name: str | None = None) -> None:
        self.database = database
        self.table = table
        self._table = check_identifier("table", table, dotted=True)
        self._column = check_identifier("column", column)[0]
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
        if not isinstance(database, PooledSQL):
            rows = await self(subject)
            await planned(rows)
            return rows
        statement = database.delete_statement(self._table, self._column)

        def delete(conn: Any) -> int:
            return max(int(conn.execute(statement, (subject,)).rowcount), 0)

        return await run_transaction(database, delete, before_commit=planned)

    async def check_id(self, subject: str) -> None:
        """Refuse an account id that a typed key column (integer, uuid) would read as another
        text, such as ``+351`` for the integer 351 (:class:`~agegate.errors.InvalidInput`)."""
        database = self.database
        if not isinstance(database, PooledSQL):
            return
        from ..purge.plan import resolve_table
        from ..purge.request import check_key_form

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
