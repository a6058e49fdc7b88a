"""How the PostgreSQL store checks the times it writes and reads them back (``timestamptz``)."""

from __future__ import annotations

from datetime import UTC, datetime

from ...errors import StoreError

__all__ = ["timestamp", "utc"]


def timestamp(moment: datetime) -> datetime:
    """``moment``, refused unless it is timezone-aware."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreError("store times must be timezone-aware datetimes")
    return moment


def utc(moment: datetime | None) -> datetime | None:
    """A ``timestamptz`` read back, in UTC (``None`` stays ``None``)."""
    return None if moment is None else moment.astimezone(UTC)
