"""Running a relational purge plan (:mod:`agegate.purge.plan`) in a transaction left open.

The order is the same on both databases: the owned rows are locked (and their keys read), then
each step runs children first, then each locked owned row is deleted unless something still
references it. SQLite runs it statement by statement on one cursor (no round trips to save).
PostgreSQL sends it in pipelines (psycopg's pipeline mode): the statements still run one after
another in the server, in the same order and transaction, but the client waits for the server
once for the locks and steps together and once for the owned deletes, instead of once per
statement.

Before it runs, a transaction checks that the plan is still current (:class:`Current`): on
SQLite the schema's version, on PostgreSQL the triggers on both ends of the foreign keys of the
plan's tables (:func:`~agegate.purge.catalog.postgres_watch`), read through an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import Table, display
from .plan import Plan

__all__ = [
    "SQLITE_CHECK",
    "Current",
    "Labels",
    "PlannedRows",
    "labels",
    "run_postgres",
    "run_sqlite",
    "watched",
]

#: A row of a dry-run plan: table, path, action, rows.
PlannedRows = tuple[str, str, str, int]
#: (table, path, action) of each statement of a plan: its steps, then its owned deletes.
Labels = tuple[tuple[str, str, str], ...]
#: What says a SQLite database's schema changed (any change, foreign keys included).
SQLITE_CHECK = "PRAGMA schema_version"


@dataclass(frozen=True, slots=True)
class Current:
    """A plan, the labels of its statements, and how a transaction checks that it is current:
    ``check`` (a query) still answers ``fingerprint`` (``None``: make the plan again)."""

    plan: Plan
    labels: Labels
    check: str
    fingerprint: object


def watched(plan: Plan) -> list[Table]:
    """The tables whose foreign keys decide ``plan``: every table it changes or deletes from
    (what references them) and every owned table (what else references an owned row)."""
    tables = [plan.root, *(step.table for step in plan.steps), *(owned.table for owned in plan.owned)]
    return list(dict.fromkeys(tables))


def labels(plan: Plan) -> Labels:
    """The (table, path, action) of each statement of ``plan``, in the order they run."""
    out = [(display(step.table), step.path, step.action) for step in plan.steps]
    out += [(display(owned.table), owned.path, "delete if unreferenced") for owned in plan.owned]
    return tuple(out)


def run_sqlite(cursor: Any, plan: Plan, shown: Labels, subject: str) -> list[PlannedRows]:
    """Run ``plan`` for ``subject`` on a ``sqlite3`` cursor; the rows each statement touched."""
    execute = cursor.execute
    candidates = [execute(owned.lock_sql, (subject,) * owned.params).fetchall() for owned in plan.owned]
    counts = [max(execute(step.sql, (subject,) * step.params).rowcount, 0) for step in plan.steps]
    for owned, keys in zip(plan.owned, candidates, strict=True):
        counts.append(sum(max(execute(owned.delete_sql, tuple(key)).rowcount, 0) for key in keys))
    return [(*label, count) for label, count in zip(shown, counts, strict=True)]


def run_postgres(conn: Any, plan: Plan, shown: Labels, subject: str) -> list[PlannedRows]:
    """Run ``plan`` for ``subject`` on a psycopg connection in a transaction it has begun."""
    with conn.pipeline():
        # In the server the locks are taken before the first step runs: the pipeline keeps order.
        locks = [conn.execute(owned.lock_sql, (subject,) * owned.params) for owned in plan.owned]
        steps = [conn.execute(step.sql, (subject,) * step.params) for step in plan.steps]
    counts = [max(cursor.rowcount, 0) for cursor in steps]
    candidates = [cursor.fetchall() for cursor in locks]
    if any(candidates):
        with conn.pipeline():
            deletes = [
                [conn.execute(owned.delete_sql, tuple(key)) for key in keys]
                for owned, keys in zip(plan.owned, candidates, strict=True)
            ]
        counts += [sum(max(cursor.rowcount, 0) for cursor in cursors) for cursors in deletes]
    else:
        counts += [0] * len(plan.owned)
    return [(*label, count) for label, count in zip(shown, counts, strict=True)]
