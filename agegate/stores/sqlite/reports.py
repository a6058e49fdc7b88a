"""The SQLite store's reports from parents."""

from __future__ import annotations

import sqlite3

from ...errors import StoreError
from .._reports import REPORT_COLUMNS, UPDATED_COLUMNS, report_from, report_row
from ..base import ReportRecord, ReportState
from .codec import micros, moment
from .connection import SQLiteConnection

__all__ = ["SQLiteReports"]


class SQLiteReports(SQLiteConnection):
    """Reports from parents."""

    async def create_report(self, report: ReportRecord) -> None:
        row = report_row(report, micros)

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_REPORT, row)
            except sqlite3.IntegrityError:
                raise StoreError(f"report {report.reference} exists already") from None

        await self._call(run, write=True)

    async def get_report(self, reference: str) -> ReportRecord | None:
        def run(conn: sqlite3.Connection) -> ReportRecord | None:
            row = conn.execute(f"{_SELECT_REPORTS} WHERE reference = ?", (reference,)).fetchone()
            return report_from(row, moment) if row is not None else None

        return await self._call(run, write=False)

    async def list_reports(self) -> list[ReportRecord]:
        def run(conn: sqlite3.Connection) -> list[ReportRecord]:
            rows = conn.execute(f"{_SELECT_REPORTS} ORDER BY received_at, reference").fetchall()
            return [report_from(row, moment) for row in rows]

        return await self._call(run, write=False)

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        values = report_row(report, micros)[3:]

        def run(conn: sqlite3.Connection) -> bool:
            sql = f"UPDATE reports SET {_REPORT_SETS} WHERE reference = ? AND state = ?"  # noqa: S608
            return conn.execute(sql, (*values, report.reference, expected)).rowcount == 1

        # An erased sealed part (the reporter's contact and text): no copy stays in the WAL.
        return await self._call(run, write=True, scrub=report.sealed is None)


_SELECT_REPORTS = f"SELECT {', '.join(REPORT_COLUMNS)} FROM reports"  # noqa: S608
_INSERT_REPORT = (
    f"INSERT INTO reports ({', '.join(REPORT_COLUMNS)}) VALUES ({', '.join('?' * len(REPORT_COLUMNS))})"  # noqa: S608
)
_REPORT_SETS = ", ".join(f"{column} = ?" for column in UPDATED_COLUMNS)
