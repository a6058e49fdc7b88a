"""What the built-in handlers' databases share: SQL names checked and quoted, the
:class:`Database` protocol, :class:`TableRef`, and the pooled connections and relational handler
of the two SQL databases (see :mod:`agegate.handlers`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..connections import Pool
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..purge.catalog import Catalog
    from ..purge.relational import AccountRows
    from .postgres import PostgresDatabase
    from .sqlite import SQLiteDatabase

__all__ = ["Database", "PooledSQL", "TableRef", "check_identifier", "quote"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", re.ASCII)


def check_identifier(kind: str, text: str, *, dotted: bool = False) -> tuple[str, ...]:
    """``text`` split into its plain SQL names (``schema.table`` when ``dotted``), or
    :class:`~agegate.ConfigurationError` naming it as a ``kind``."""
    parts = (text.split(".") if dotted else [text]) if isinstance(text, str) else [""]
    if len(parts) > 2 or any(_IDENTIFIER.fullmatch(p) is None for p in parts):
        raise ConfigurationError(
            f"{kind} {text!r} is not a plain SQL name (letters, digits and '_', not starting with a digit)"
        )
    return tuple(parts)


def quote(parts: Sequence[str]) -> str:
    """The checked names ``parts``, quoted and joined with dots."""
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


class PooledSQL:
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
        from ..purge.relational import AccountRows

        database = cast("SQLiteDatabase | PostgresDatabase", self)  # the only subclasses
        return AccountRows(database, table, column, owns=owns, set_null=set_null, name=name)

    def delete_statement(self, table: tuple[str, ...], column: str) -> Any:
        """The DELETE of ``delete``, taking the account id as its one parameter."""
        raise NotImplementedError

    def _catalog(self) -> Catalog:
        raise NotImplementedError

    async def catalog(self) -> Catalog:
        """Foreign keys, column types and tables, read from the database's own catalog."""
        return await asyncio.to_thread(self._catalog)
