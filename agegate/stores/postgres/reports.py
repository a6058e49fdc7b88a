"""The PostgreSQL store's reports from parents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import StoreError, _WriteConflict
from .._reports import REPORT_COLUMNS, UPDATED_COLUMNS, report_from, report_row
from ..base import ReportRecord, ReportState
from .codec import timestamp, utc
from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresReports"]


class PostgresReports(PostgresConnection):
    """Reports from parents."""

    async def create_report(self, report: ReportRecord) -> None:
        row = report_row(report, timestamp)

        async def run(conn: Conn) -> None:
            cursor = await conn.execute(_INSERT_REPORT + " ON CONFLICT (reference) DO NOTHING", row)
            if cursor.rowcount != 1:
                raise _WriteConflict()

        try:
            await self._run(run)
        except _WriteConflict:
            raise StoreError(f"report {report.reference} exists already") from None

    async def get_report(self, reference: str) -> ReportRecord | None:
        async def run(conn: Conn) -> ReportRecord | None:
            cursor = await conn.execute(f"{_SELECT_REPORTS} WHERE reference = %s", (reference,))
            row = await cursor.fetchone()
            return report_from(row, utc) if row is not None else None

        return await self._run(run)

    async def list_reports(self) -> list[ReportRecord]:
        async def run(conn: Conn) -> list[ReportRecord]:
            cursor = await conn.execute(f"{_SELECT_REPORTS} ORDER BY received_at, reference")
            return [report_from(row, utc) for row in await cursor.fetchall()]

        return await self._run(run)

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        values = report_row(report, timestamp)[3:]

        async def run(conn: Conn) -> bool:
            sql = f"UPDATE agegate_reports SET {_REPORT_SETS} WHERE reference = %s AND state = %s"  # noqa: S608
            cursor = await conn.execute(sql, (*values, report.reference, expected))
            return cursor.rowcount == 1

        return await self._run(run)


_SELECT_REPORTS = f"SELECT {', '.join(REPORT_COLUMNS)} FROM agegate_reports"  # noqa: S608
_INSERT_REPORT = (
    f"INSERT INTO agegate_reports ({', '.join(REPORT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(REPORT_COLUMNS))})"
)
_REPORT_SETS = ", ".join(f"{column} = %s" for column in UPDATED_COLUMNS)
