"""How the SQLite store keeps times: whole microseconds since the epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ...errors import StoreError

__all__ = ["aware", "micros", "moment"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    """``value`` (timezone-aware) as microseconds since the epoch."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise StoreError("store times must be timezone-aware datetimes")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment(value: int | None) -> datetime | None:
    """The UTC time of ``value`` microseconds since the epoch (``None`` stays ``None``)."""
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def aware(value: int) -> datetime:
    """:func:`moment` of a ``NOT NULL`` column."""
    found = moment(value)
    assert found is not None
    return found
