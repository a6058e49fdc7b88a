"""The coverage check: personal-looking SQL columns that no purge handler covers.

A purge that misses one column leaves a child's data behind, and a new column is easy to add
without touching the purge. This check lists, for every SQL database the registered handlers
(or the exemptions) name, each column whose name looks like it holds an account id, an email,
a phone number, a person's name, an IP address or user agent, a birth date or a postal address
(:func:`agegate.purge.column_names.classify`), in a table no handler purges. It reads names only,
never data. No database known at all is not "nothing to check": :class:`NoDatabaseKnown`.

A table purged by a built-in row handler (``db.rows("messages", "sender_id")``) is checked too:
its rows go when their ``sender_id`` is the account's, so the columns describing that row's
owner (``email``, ``display_name``) go with them, but a column naming another party
(``recipient_id``, ``recipient_email``, ``created_by``) may hold the account in rows that stay,
and is listed unless another handler covers it. A handler registered with ``covers=`` a whole
table covers all of it.

PostgreSQL partitions (declarative or by inheritance) are one table with their root: their
columns are reported once, under the root, and a handler on the root covers every partition,
present and future (a ``DELETE`` on the root reaches them all).

Two kinds of declarations silence a finding, and the report prints both: a column that only
looks personal (``gate.purger.exempt(db.table("products"), "name")``), and a whole table that
holds personal data but not the account holder's (``gate.purger.exempt(db.table("staff"),
reason="employees, not customers")``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgeGateError, CoverageError, NoDatabaseKnown
from ..handlers import Database, SQLiteDatabase, TableRef
from .catalog import partition_parents
from .column_names import Kind, classify, names_another_party

__all__ = [
    "CoverageError",
    "CoverageReport",
    "Exemption",
    "NoDatabaseKnown",
    "Uncovered",
    "check_coverage",
    "classify",
    "find_uncovered",
    "names_another_party",
]

_OWN_TABLES = re.compile(r"agegate_", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Uncovered:
    """A personal-looking column in a table no handler purges."""

    database: str
    table: str
    column: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Exemption:
    """A declaration the report prints: a whole table (``columns`` empty) that is not the
    account holder's data, or columns that are not personal, with the reason given."""

    database: str
    table: str
    columns: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """What :func:`check_coverage` found. ``uncovered`` is empty when every personal-looking
    column is purged or declared; ``partitions`` maps a root table to its partitions' count."""

    databases: tuple[str, ...]
    tables_checked: int
    uncovered: list[Uncovered]
    exemptions: list[Exemption] = field(default_factory=list)
    partitions: dict[tuple[str, str], int] = field(default_factory=dict)

    def by_table(self) -> dict[tuple[str, str], list[Uncovered]]:
        """The findings grouped per (database, table), in the order found."""
        out: dict[tuple[str, str], list[Uncovered]] = {}
        for found in self.uncovered:
            out.setdefault((found.database, found.table), []).append(found)
        return out


def _normal(database: Database, table: str) -> str:
    """The name of ``table`` as the database lists it: no default schema (``public.orders`` is
    ``orders``), and case-folded for SQLite, whose names ignore case."""
    if isinstance(database, SQLiteDatabase):
        table = table.casefold()
        return table[len("main.") :] if table.startswith("main.") else table
    return table[len("public.") :] if table.startswith("public.") else table


def _column(database: Database, column: str) -> str:
    return column.casefold() if isinstance(database, SQLiteDatabase) else column


async def _catalog(database: Database) -> tuple[list[tuple[str, str]], dict[str, str]]:
    try:
        return await database.columns(), await partition_parents(database)
    except (AgeGateError, asyncio.CancelledError):
        raise
    except Exception as exc:
        # The class only: a driver's message may hold a connection string.
        raise CoverageError(f"cannot read the tables of {database.key} ({type(exc).__name__})") from None


async def check_coverage(
    covered: Iterable[TableRef], exempt: Iterable[tuple[TableRef, str | None, str | None]] = ()
) -> CoverageReport:
    """Check every database named in ``covered`` or ``exempt`` (see the module docs).

    ``covered`` are the handlers' tables: a reference with a ``column`` (a built-in row handler)
    covers that column's rows, one without covers the whole table. ``exempt`` lists (table,
    column or ``None`` for the whole table, reason). Raises :class:`NoDatabaseKnown` when no
    database is named, and :class:`CoverageError` when one cannot be read.
    """
    exempt = list(exempt)
    databases: dict[str, Database] = {}
    whole: set[tuple[str, str]] = set()
    by_column: dict[tuple[str, str], set[str]] = {}
    for ref in covered:
        database = ref.database
        databases.setdefault(database.key, database)
        ref_name = (database.key, _normal(database, ref.table))
        if ref.column is None:
            whole.add(ref_name)
        else:
            by_column.setdefault(ref_name, set()).add(_column(database, ref.column))
    exempted: dict[tuple[str, str, str | None], str | None] = {}
    for ref, column, reason in exempt:
        databases.setdefault(ref.database.key, ref.database)
        name = (ref.database.key, _normal(ref.database, ref.table))
        exempted[(*name, None if column is None else _column(ref.database, column))] = reason
    if not databases:
        raise NoDatabaseKnown(
            "no SQL database is known to the purge, so the coverage check cannot vouch for any: "
            "register the built-in handlers (db.rows, db.account), give your own handlers "
            "covers=[db.table(...)], or declare tables with gate.purger.exempt(db.table(...))"
        )
    out: list[Uncovered] = []
    tables_seen: set[tuple[str, str]] = set()
    partitions: dict[tuple[str, str], int] = {}
    reported: set[tuple[str, str, str]] = set()
    for key, database in databases.items():
        columns, roots = await _catalog(database)
        for root_table in roots.values():
            root = (key, _normal(database, root_table))
            partitions[root] = partitions.get(root, 0) + 1
        for listed, column in columns:
            root_table = roots.get(listed, listed)
            if _OWN_TABLES.match(root_table.rpartition(".")[2]):
                continue
            name = (key, _normal(database, root_table))
            tables_seen.add(name)
            folded = _column(database, column)
            if name in whole or (*name, folded) in reported:
                continue
            if (*name, None) in exempted or (*name, folded) in exempted:
                continue
            kind = classify(root_table, column)
            if kind is None:
                continue
            # A table purged by its rows' owner column: only a column naming another party is left.
            if name in by_column and (
                folded in by_column[name] or not names_another_party(root_table, column, by_column[name])
            ):
                continue
            reported.add((*name, folded))
            out.append(Uncovered(key, root_table, column, kind))
    return CoverageReport(
        databases=tuple(databases),
        tables_checked=len(tables_seen),
        uncovered=out,
        exemptions=_declared(exempted),
        partitions={root: n for root, n in partitions.items() if root in tables_seen},
    )


def _declared(exempted: dict[tuple[str, str, str | None], str | None]) -> list[Exemption]:
    """One :class:`Exemption` per table: the whole table, or the columns declared in it."""
    tables: dict[tuple[str, str], Exemption] = {}
    for (key, table, column), reason in exempted.items():
        before = tables.get((key, table))
        if before is not None and not before.columns:
            continue  # the whole table is declared already
        columns = () if column is None else (*(before.columns if before else ()), column)
        tables[(key, table)] = Exemption(key, table, columns, reason or (before.reason if before else None))
    return list(tables.values())


async def find_uncovered(
    covered: Iterable[TableRef], exempt: Iterable[tuple[TableRef, str | None]] = ()
) -> tuple[list[Uncovered], int]:
    """The uncovered columns and how many tables were checked (none, when no database is
    known); :func:`check_coverage` tells more."""
    try:
        report = await check_coverage(covered, [(ref, column, None) for ref, column in exempt])
    except NoDatabaseKnown:
        return [], 0
    return report.uncovered, report.tables_checked


def report_json(report: CoverageReport) -> dict[str, Any]:
    """The report as the JSON ``agegate purge --coverage --json`` prints."""
    return {
        "ok": not report.uncovered,
        "databases": list(report.databases),
        "tables_checked": report.tables_checked,
        "tables": [
            {
                "database": key,
                "table": table,
                "partitions": report.partitions.get((key, table), 0),
                "uncovered": [{"column": u.column, "looks_like": u.kind} for u in found],
            }
            for (key, table), found in report.by_table().items()
        ],
        "uncovered": [
            {"database": u.database, "table": u.table, "column": u.column, "looks_like": u.kind}
            for u in report.uncovered
        ],
        "exempt": [
            {"database": e.database, "table": e.table, "columns": list(e.columns) or None, "reason": e.reason}
            for e in report.exemptions
        ],
    }
