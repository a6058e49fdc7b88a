"""What the SQL stores share about reports from parents: the columns and the row mapping.

Times go through the store's own converters (SQLite keeps microseconds since the epoch,
PostgreSQL ``timestamptz``), so the same mapping serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from ..errors import StoreError
from .base import REPORT_STATES, ReportRecord, ReportState

__all__ = ["REPORT_COLUMNS", "STATE_CHECK", "UPDATED_COLUMNS", "report_from", "report_row"]

#: The columns of the reports table, in the order of :func:`report_row`.
REPORT_COLUMNS = (
    "reference",
    "received_at",
    "due_at",
    "state",
    "sealed",
    "updated_at",
    "outcome",
    "job_id",
    "closed_at",
    "delivered_at",
    "attempts",
    "error",
)
#: The columns ``update_report`` writes (never the reference, nor the received time and deadline).
UPDATED_COLUMNS = REPORT_COLUMNS[3:]
#: The state check both schemas put on the table.
STATE_CHECK = "state IN ({})".format(", ".join(f"'{state}'" for state in REPORT_STATES))


def report_row(report: ReportRecord, at: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """``report`` as a row of :data:`REPORT_COLUMNS`, times converted with ``at``."""

    def maybe(moment: datetime | None) -> Any:
        return at(moment) if moment is not None else None

    return (
        report.reference,
        at(report.received_at),
        at(report.due_at),
        report.state,
        bytes(report.sealed) if report.sealed is not None else None,
        at(report.updated_at),
        report.outcome,
        report.job_id,
        maybe(report.closed_at),
        maybe(report.delivered_at),
        int(report.attempts),
        report.error,
    )


def report_from(row: Sequence[Any], moment: Callable[[Any], datetime | None]) -> ReportRecord:
    """The :class:`ReportRecord` of a row of :data:`REPORT_COLUMNS`, times read with ``moment``."""

    def must(value: Any) -> datetime:
        found = moment(value)
        if found is None:  # NOT NULL columns: never
            raise StoreError("a report's time is missing: the store is damaged")
        return found

    reference, received, due, state, sealed, updated, outcome, job_id, closed, delivered, attempts, error = (
        row
    )
    return ReportRecord(
        reference=reference,
        received_at=must(received),
        due_at=must(due),
        state=cast(ReportState, state),
        sealed=bytes(sealed) if sealed is not None else None,
        updated_at=must(updated),
        outcome=outcome,
        job_id=job_id,
        closed_at=moment(closed),
        delivered_at=moment(delivered),
        attempts=int(attempts),
        error=error,
    )
