"""Built-in purge handlers: rows of a SQL table (SQLite, PostgreSQL) and per-account files.

::

    db = SQLiteDatabase("app.sqlite3")
    gate.purger.add(db.rows("orders", "account_id"))          # handler "orders"
    gate.purger.add(db.rows("users", "id", name="accounts"))
    gate.purger.add(AccountFiles("/srv/uploads", names=("{subject}", "{subject}.json")))

Every handler is idempotent (a second run deletes nothing and returns 0) and offers a ``count``
side for dry runs. Table and column names are validated and quoted; the account id only ever
travels as a bound query parameter. The databases the handlers know are what
``agegate purge --coverage`` inspects for personal-looking columns nobody purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .errors import ConfigurationError

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


class SQLiteDatabase:
    """A SQLite database file of the app. Each call opens its own short-lived connection."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        if isinstance(path, str) and path.startswith("sqlite:"):
            path = urlsplit(path).path
        self.path = Path(path)
        self.timeout = timeout

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
        return sqlite3.connect(self.path, timeout=self.timeout)

    def _delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with contextlib.closing(self._connect()) as conn, conn:
            cursor = conn.execute(f"DELETE FROM {_quote(table)} WHERE {_quote([column])} = ?", (subject,))  # noqa: S608
            return max(cursor.rowcount, 0)

    def _count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        with contextlib.closing(self._connect()) as conn:
            query = f"SELECT count(*) FROM {_quote(table)} WHERE {_quote([column])} = ?"  # noqa: S608
            row = conn.execute(query, (subject,)).fetchone()
            return int(row[0])

    def _columns(self) -> list[tuple[str, str]]:
        with contextlib.closing(self._connect()) as conn:
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

    async def delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        return await asyncio.to_thread(self._delete, table, column, subject)

    async def count(self, table: tuple[str, ...], column: str, subject: str) -> int:
        return await asyncio.to_thread(self._count, table, column, subject)

    async def columns(self) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self._columns)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "PostgreSQL handlers need psycopg: pip install 'agegate[postgres]'"
        ) from None
    return psycopg


class PostgresDatabase:
    """A PostgreSQL database of the app, by psycopg conninfo (``postgresql://…`` or
    ``host=… dbname=…``). Each call opens its own connection; psycopg is imported lazily."""

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

    async def _execute(self, query: Any, params: Sequence[Any]) -> Any:
        psycopg = _psycopg()
        async with await psycopg.AsyncConnection.connect(self.conninfo) as conn:
            cursor = await conn.execute(query, params)
            return cursor.rowcount, (await cursor.fetchall() if cursor.description else [])

    def _where(self, verb: Any, table: tuple[str, ...], column: str) -> Any:
        sql = _psycopg().sql
        # psycopg sends a str parameter untyped, so PostgreSQL reads it as the column's type
        # (an integer or uuid account id given as a string matches) and an index stays usable.
        return sql.SQL("{verb} {table} WHERE {column} = %s").format(
            verb=verb, table=sql.Identifier(*table), column=sql.Identifier(column)
        )

    async def delete(self, table: tuple[str, ...], column: str, subject: str) -> int:
        sql = _psycopg().sql
        rowcount, _ = await self._execute(self._where(sql.SQL("DELETE FROM"), table, column), (subject,))
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

    @property
    def covers(self) -> tuple[TableRef, ...]:
        """The table and column this handler purges by (for the coverage check)."""
        return (TableRef(self.database, self.table, self.column),)

    async def __call__(self, subject: str) -> int:
        return await self.database.delete(self._table, self._column, subject)

    async def count(self, subject: str) -> int:
        """How many rows a purge would delete."""
        return await self.database.count(self._table, self._column, subject)

    def __repr__(self) -> str:
        return f"SQLRows({self.database!r}, {self.table!r}, {self.column!r}, name={self.name!r})"


class AccountFiles:
    """A purge handler deleting an account's files (or directories) under ``root``.

    ``names`` are templates of paths relative to ``root`` with ``{subject}`` standing for the
    account id, e.g. ``("{subject}", "avatars/{subject}.png")``. The account id must be usable
    as a single path component (no separators, not ``.`` or ``..``), every path must stay inside
    ``root``, and symbolic links are removed, never followed. Returns the number of files removed.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, names: Iterable[str] = ("{subject}",), name: str = "files"
    ) -> None:
        self.root = Path(root)
        self.names = tuple(names)
        if not self.names:
            raise ConfigurationError("AccountFiles needs at least one name template")
        for template in self.names:
            if "{subject}" not in template or Path(template).is_absolute() or ".." in Path(template).parts:
                raise ConfigurationError(
                    f"file name template {template!r} must be relative, stay inside the root and "
                    "contain {subject}"
                )
        self.name = name

    def _paths(self, subject: str) -> list[Path]:
        if (
            subject in (".", "..")
            or "/" in subject
            or "\\" in subject
            or "\x00" in subject
            or os.sep in subject
            or (os.altsep is not None and os.altsep in subject)
        ):
            raise ConfigurationError("this account id cannot name a file: it contains a path separator")
        root = self.root.resolve()
        out = []
        for template in self.names:
            path = root / template.replace("{subject}", subject)
            # resolve() the parent only: the last component may be a link we must remove, not follow.
            parent = path.parent.resolve()
            if not parent.is_relative_to(root):
                raise ConfigurationError("an account file path would leave the files root")
            out.append(parent / path.name)
        return out

    @staticmethod
    def _files_in(path: Path) -> int:
        if path.is_symlink() or path.is_file():
            return 1
        if path.is_dir():
            return sum(
                len(files) + sum(1 for d in dirs if (Path(top) / d).is_symlink())
                for top, dirs, files in os.walk(path)
            )
        return 0

    def _delete(self, subject: str) -> int:
        removed = 0
        for path in self._paths(subject):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
            elif path.is_dir():
                removed += self._files_in(path)
                shutil.rmtree(path)
        return removed

    def _count(self, subject: str) -> int:
        return sum(self._files_in(path) for path in self._paths(subject))

    async def __call__(self, subject: str) -> int:
        return await asyncio.to_thread(self._delete, subject)

    async def count(self, subject: str) -> int:
        """How many files a purge would delete."""
        return await asyncio.to_thread(self._count, subject)

    def __repr__(self) -> str:
        return f"AccountFiles({str(self.root)!r}, names={self.names!r}, name={self.name!r})"
