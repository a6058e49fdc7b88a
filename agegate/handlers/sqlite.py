"""The app's SQLite database, for the built-in handlers and the coverage check."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..connections import Pool
from ..errors import ConfigurationError
from .base import PooledSQL, TableRef, check_identifier, quote
from .rows import SQLRows

if TYPE_CHECKING:
    from ..purge.catalog import Catalog

__all__ = ["SQLiteDatabase"]


class SQLiteDatabase(PooledSQL):
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
        check_identifier("table", table)
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
        return f"DELETE FROM {quote(table)} WHERE {quote([column])} = ?"  # noqa: S608

    def _delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with self.connection() as conn:
            cursor = conn.execute(self.delete_statement(table, column), (subject,))
            return max(int(cursor.rowcount), 0)

    def _count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with self.connection() as conn:
            query = f"SELECT count(*) FROM {quote(table)} WHERE {quote([column])} = ?"  # noqa: S608
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
        from ..purge.catalog import sqlite_catalog

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
