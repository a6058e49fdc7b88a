"""Clearing deleted rows from the databases' files, after a purge.

A ``DELETE`` removes rows from what queries see, not from the disk: SQLite keeps them in free
pages of the file (unless ``secure_delete`` was on when they were deleted) and PostgreSQL keeps
them as dead tuples until ``VACUUM``. :func:`vacuum` runs, for each database the purge handlers
name: SQLite ``VACUUM`` (the file is rebuilt without its free pages) and a WAL checkpoint that
truncates the ``-wal`` file; PostgreSQL ``VACUUM`` of the tables the handlers purge, their
partitions and inheritance children included. Backups and PostgreSQL's archived WAL still hold
the rows until they expire: see the support runbook (``docs/support-runbook.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import AgeGateError, VacuumError
from ..handlers import Database, PostgresDatabase, SQLiteDatabase, TableRef
from .catalog import partition_parents

__all__ = ["VacuumError", "Vacuumed", "vacuum"]


@dataclass(frozen=True, slots=True)
class Vacuumed:
    """One database cleared: its printable key and the tables vacuumed (``()``: the whole file)."""

    database: str
    tables: tuple[str, ...]


def _sqlite(database: SQLiteDatabase) -> None:
    with contextlib.closing(
        sqlite3.connect(database.path, timeout=database.timeout, isolation_level=None)
    ) as conn:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _postgres(database: PostgresDatabase, tables: list[str]) -> tuple[str, ...]:
    import psycopg
    from psycopg import sql

    roots = await partition_parents(database)
    normal = {t.removeprefix("public.") for t in tables}
    # VACUUM of a partitioned table reaches its partitions, but not an inheritance parent's children.
    every = sorted(normal | {child for child, root in roots.items() if root in normal})
    names = [sql.Identifier(*t.split(".")) for t in every]
    # VACUUM cannot run inside a transaction block: autocommit.
    async with await psycopg.AsyncConnection.connect(database.conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("VACUUM {}").format(sql.SQL(", ").join(names)))
    return tuple(every)


async def vacuum(covered: Iterable[TableRef]) -> list[Vacuumed]:
    """Clear deleted rows from every SQLite or PostgreSQL database named in ``covered``."""
    databases: dict[str, tuple[Database, list[str]]] = {}
    for ref in covered:
        databases.setdefault(ref.database.key, (ref.database, []))[1].append(ref.table)
    done = []
    for key, (database, tables) in databases.items():
        try:
            if isinstance(database, SQLiteDatabase):
                await asyncio.to_thread(_sqlite, database)
                done.append(Vacuumed(key, ()))
            elif isinstance(database, PostgresDatabase):
                done.append(Vacuumed(key, await _postgres(database, sorted(set(tables)))))
        except (AgeGateError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise VacuumError(f"vacuuming {key} failed ({type(exc).__name__})") from None
    return done
