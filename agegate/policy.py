"""Age arithmetic: whole years, conservative at every boundary."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, InvalidBirthDate, InvalidInput

if TYPE_CHECKING:
    from .regions import PolicyTable

__all__ = ["AOE", "EARLIEST_ZONE", "AgePolicy", "aware", "birthday_in", "today_aoe", "today_latest"]

#: Anywhere on Earth: the last time zone in which a calendar day is still going on.
AOE = timezone(timedelta(hours=-12), "AoE")
#: The first time zone to reach a new calendar day (Line Islands).
EARLIEST_ZONE = timezone(timedelta(hours=14), "UTC+14")


#: A region table's version: short, and free of the label's separator.
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,32}", re.ASCII)


def aware(now: datetime | None) -> datetime:
    """Return ``now`` (or the current time), refusing a naive datetime."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("now must be a timezone-aware datetime (for example datetime.now(timezone.utc))")
    return now


def _date_in(zone: timezone, now: datetime | None) -> date:
    try:
        return aware(now).astimezone(zone).date()
    except OverflowError:
        raise InvalidInput("now is outside the range of dates agegate can work with") from None


def today_aoe(now: datetime | None = None) -> date:
    """The calendar date Anywhere on Earth (UTC-12) at ``now``: the earliest date still current."""
    return _date_in(AOE, now)


def today_latest(now: datetime | None = None) -> date:
    """The latest calendar date current anywhere on Earth (UTC+14) at ``now``."""
    return _date_in(EARLIEST_ZONE, now)


def birthday_in(birth: date, year: int) -> date:
    """The day in ``year`` on which a person born on ``birth`` becomes a year older.

    A 29 February birthday falls on 1 March in common years: the later, conservative reading.
    """
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return birth.replace(year=year)


@dataclass(frozen=True, slots=True)
class AgePolicy:
    """Who counts as under age: anyone younger than ``min_age`` whole years.

    ``name`` identifies the policy in decisions, attestations and receipts; it defaults to
    ``"min-age-13"`` for ``min_age=13``. ``version`` is the version of the region table the
    policy comes from (see :meth:`for_region`); it is empty for a policy made by hand.
    """

    min_age: int = 13
    name: str = field(default="")
    version: str = field(default="")

    def __post_init__(self) -> None:
        if isinstance(self.min_age, bool) or not isinstance(self.min_age, int):
            raise ConfigurationError("min_age must be a whole number of years")
        if not 1 <= self.min_age <= 120:
            raise ConfigurationError("min_age must be between 1 and 120")
        if not self.name:
            object.__setattr__(self, "name", f"min-age-{self.min_age}")
        if not (1 <= len(self.name) <= 64) or not self.name.isprintable() or "|" in self.name:
            raise ConfigurationError("policy name must be 1-64 printable characters without '|'")
        if not isinstance(self.version, str) or (self.version and not _VERSION.fullmatch(self.version)):
            raise ConfigurationError("policy version must be 1-32 letters, digits, '.', '-' or '_'")

    @classmethod
    def for_region(cls, code: str, *, table: PolicyTable | Mapping[str, Any] | None = None) -> AgePolicy:
        """The policy of region ``code`` (ISO 3166-1 alpha-2 such as ``"DE"``, or ISO 3166-2
        such as ``"CA-QC"``; any case) in the built-in table, or in ``table`` (a
        :class:`~agegate.PolicyTable`, or a mapping in the table file's shape). A region the
        table does not list gets the table's strictest age, never the weakest."""
        from .regions import PolicyTable

        return PolicyTable.coerce(table).for_region(code)

    @property
    def label(self) -> str:
        """What cookies and attestations carry for this policy: the name and, for a policy from
        a region table, its minimum age and the table's version (``gdpr-de-16|16|2026.1``), so
        a result reached under it can be weighed against a stricter policy later."""
        if not self.version:
            return self.name
        return f"{self.name}|{self.min_age}|{self.version}"

    def age_on(self, birth: date, today: date) -> int:
        """Whole years of age on ``today`` of a person born on ``birth``.

        Raises :class:`~agegate.InvalidBirthDate` (a ``ValueError``; code ``future``) when
        ``birth`` is after ``today``.
        """
        if birth > today:
            raise InvalidBirthDate("future", "the birth date is after the given day")
        years = today.year - birth.year
        if today < birthday_in(birth, today.year):
            years -= 1
        return years

    def is_under_age(self, birth: date, now: datetime | None = None) -> bool:
        """Whether a person born on ``birth`` is under ``min_age`` at ``now``.

        "Today" is the date Anywhere on Earth, so nobody passes before their birthday has begun
        everywhere. ``now`` must be timezone-aware; it defaults to the current time.
        """
        today = today_aoe(now)
        if birth > today:
            return True
        return self.age_on(birth, today) < self.min_age

    def is_under_age_years(self, age: int) -> bool:
        """Whether a stated age in whole years is under ``min_age``."""
        return age < self.min_age
