"""Form input -> the latest birth date it could mean, or a stated age.

Nothing missing is ever filled in from today's date: a year alone reads as 31 December, a year
and month as the month's last day. Two-digit years are refused rather than guessed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from .errors import InvalidBirthDate
from .i18n import N_, date_words
from .policy import AgePolicy, today_aoe, today_latest

__all__ = [
    "BIRTH_FIELDS",
    "DATE_ORDERS",
    "EXAMPLES",
    "MAX_AGE",
    "MAX_INPUT_LENGTH",
    "MESSAGES",
    "MIN_YEAR",
    "BirthInput",
    "DateOrder",
    "has_birth_input",
    "read_birth_input",
]

DateOrder = Literal["MDY", "DMY", "YMD"]
DATE_ORDERS: tuple[DateOrder, ...] = ("MDY", "DMY", "YMD")


class _Names:
    """English month and weekday names, read as ``dateutil.parser.parserinfo`` reads them
    (case-insensitive, the same spellings), without importing dateutil's parser: it is the
    slowest import an app with the gate would pay for."""

    def __init__(self, *names: tuple[str, ...]) -> None:
        self._index = {spelling.lower(): i for i, spellings in enumerate(names) for spelling in spellings}

    def month(self, name: str) -> int | None:
        """The month number (1-12) of an English month name or abbreviation, or ``None``."""
        found = self._index.get(name.lower())
        return None if found is None else found + 1

    def weekday(self, name: str) -> int | None:
        """The weekday (0 is Monday) of an English weekday name or abbreviation, or ``None``."""
        return self._index.get(name.lower())


#: Longest accepted value of any one field; longer input is refused before any parsing.
MAX_INPUT_LENGTH = 64
MIN_YEAR = 1900
MAX_AGE = 120

BIRTH_FIELDS = ("birth_date", "birth_year", "birth_month", "birth_day", "age")

_MONTHS = _Names(
    ("Jan", "January"), ("Feb", "February"), ("Mar", "March"), ("Apr", "April"), ("May",),
    ("Jun", "June"), ("Jul", "July"), ("Aug", "August"), ("Sep", "Sept", "September"),
    ("Oct", "October"), ("Nov", "November"), ("Dec", "December"),
)  # fmt: skip
_WEEKDAYS = _Names(
    ("Mon", "Monday"), ("Tue", "Tuesday"), ("Wed", "Wednesday"), ("Thu", "Thursday"),
    ("Fri", "Friday"), ("Sat", "Saturday"), ("Sun", "Sunday"),
)  # fmt: skip
_ISO = re.compile(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?", re.ASCII)
_NUMERIC = re.compile(r"(\d{1,4})[/.\- ]+(\d{1,4})(?:[/.\- ]+(\d{1,4}))?", re.ASCII)
#: Year, month and day marked with CJK characters: 2013年6月1日 (Japanese, Chinese), 2013년 6월 1일.
_CJK = re.compile(r"(\d{4}) ?[年년] ?(\d{1,2}) ?[月월](?: ?(\d{1,2}) ?[日일])?", re.ASCII)
# Letters of any script (month names in the visitor's language); digits ASCII only.
_TOKEN = re.compile(r"[0-9]+(?:st|nd|rd|th|er)?|[^\W\d_]+\.?|[,/.\-]", re.IGNORECASE)
_FILLER = frozenset({"of", "the"})
_DAY = re.compile(r"(\d{1,2})(?:st|nd|rd|th|er)?", re.IGNORECASE | re.ASCII)
#: Invisible direction marks that right-to-left text carries around numbers.
_BIDI_MARKS = dict.fromkeys(
    map(ord, "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)

#: Every message :class:`InvalidBirthDate` carries, by its ``reason`` (English; the pages show
#: them in the visitor's language). ``{example}`` is filled from :data:`EXAMPLES`.
MESSAGES = {
    "full_date": N_("Please enter your date of birth as a full date, for example {example}."),
    "year_digits": N_("Please enter the year of birth with four digits, for example 1990."),
    "no_month": N_("That month does not exist. Please check the date of birth."),
    "no_day": N_("That day does not exist in that month. Please check the date of birth."),
    "check_year": N_("Please check the year of birth."),
    "not_text": N_("The date of birth must be given as text."),
    "too_long": N_("That entry is too long to be a date of birth."),
    "empty": N_("Please enter your date of birth."),
    "age_number": N_("Please enter your age as a whole number of years."),
    "check_age": N_("Please check the age you entered."),
    "need_year": N_("Please enter the year of birth."),
    "future": N_("That date of birth is in the future. Please check it."),
}
#: The example date of the "full date" message, in each ``date_order``.
EXAMPLES = {"MDY": "04/23/1990", "DMY": "23/04/1990", "YMD": "1990-04-23"}
_PUNCTUATION = frozenset({",", "/", ".", "-"})


@dataclass(frozen=True, slots=True)
class BirthInput:
    """What the screen read: the latest birth date the input could mean, or a stated age."""

    latest: date | None = None
    age: int | None = None

    def is_under_age(self, policy: AgePolicy, now: datetime) -> bool:
        """Apply ``policy`` to this input at ``now``."""
        if self.age is not None:
            return policy.is_under_age_years(self.age)
        assert self.latest is not None  # one of the two is always set
        return policy.is_under_age(self.latest, now)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts superscripts and other scripts."""
    return text.isascii() and text.isdigit()


def _err(
    code: Literal["empty", "malformed", "impossible", "future", "implausible", "too_long"], reason: str
) -> InvalidBirthDate:
    return InvalidBirthDate(code, MESSAGES[reason], reason)


def _malformed(order: DateOrder) -> InvalidBirthDate:
    return InvalidBirthDate("malformed", MESSAGES["full_date"].format(example=EXAMPLES[order]), "full_date")


def _year(text: str, order: DateOrder) -> int:
    if len(text) != 4 or not _digits(text):
        raise _err("malformed", "year_digits")
    return int(text)


def _month(text: str, order: DateOrder) -> int:
    if _digits(text):
        if len(text) > 2:
            raise _malformed(order)
        month = int(text)
    else:
        found = _month_name(text)
        if found is None:
            raise _malformed(order)
        month = found
    if not 1 <= month <= 12:
        raise _err("impossible", "no_month")
    return month


def _month_name(word: str) -> int | None:
    """The month (1-12) a month name means in English or, with Babel, any shipped language."""
    bare = word.rstrip(".")
    found: int | None = _MONTHS.month(bare)
    if found is not None:
        return found
    return date_words().months.get(bare.casefold())


def _is_filler(word: str) -> bool:
    low = word.casefold()
    return low in _FILLER or low in date_words().fillers


def _is_weekday(word: str) -> bool:
    bare = word.rstrip(".")
    return _WEEKDAYS.weekday(bare) is not None or bare.casefold() in date_words().weekdays


def _span(year: int, month: int | None, day: int | None) -> tuple[date, date]:
    """The earliest and latest dates a (possibly partial) date can mean."""
    if month is None:
        return date(year, 1, 1), date(year, 12, 31)
    last = calendar.monthrange(year, month)[1]
    if day is None:
        return date(year, month, 1), date(year, month, last)
    if not 1 <= day <= last:
        raise _err("impossible", "no_day")
    exact = date(year, month, day)
    return exact, exact


def _parts(
    year_text: str, month_text: str | None, day_text: str | None, order: DateOrder
) -> tuple[date, date]:
    if day_text is not None and month_text is None:
        raise _malformed(order)
    year = _year(year_text, order)
    if year < MIN_YEAR or year > 9999:
        raise _err("implausible", "check_year")
    month = _month(month_text, order) if month_text is not None else None
    day = None
    if day_text is not None:
        if not _digits(day_text) or len(day_text) > 2:
            raise _malformed(order)
        day = int(day_text)
    return _span(year, month, day)


def _numeric(match: re.Match[str], order: DateOrder) -> tuple[date, date]:
    a, b, c = match.group(1), match.group(2), match.group(3)
    if c is None:
        # Two parts: a month and a year, in either order; the year is the four-digit one.
        if len(a) == 4:
            return _parts(a, b, None, order)
        if len(b) == 4:
            return _parts(b, a, None, order)
        raise _malformed(order)
    if len(a) == 4:  # a leading four-digit year is unambiguous: Y M D
        return _parts(a, b, c, order)
    if order == "MDY":
        return _parts(c, a, b, order)
    if order == "DMY":
        return _parts(c, b, a, order)
    raise _malformed(order)


def _worded(text: str, order: DateOrder) -> tuple[date, date]:
    """Dates with a month name: "June 1, 2013", "1 June 2013", "13th of June 2013", "Jun 2013";
    with Babel, in any shipped language too: "1. Juni 2013", "1 de junio de 2013"."""
    text = text.translate(_BIDI_MARKS)
    words = _TOKEN.findall(text)
    if "".join(words) != re.sub(r"\s+", "", text):
        raise _malformed(order)  # characters the date grammar does not know
    month_text: str | None = None
    years: list[str] = []
    days: list[str] = []
    for word in words:
        if word in _PUNCTUATION or _is_filler(word):
            continue
        if word[0].isdigit():
            if len(word) == 4 and _digits(word):
                years.append(word)
            elif (m := _DAY.fullmatch(word)) is not None:  # an ordinal suffix only on a day
                days.append(m.group(1))
            else:
                raise _malformed(order)
        elif month_text is None and _month_name(word) is not None:
            month_text = word
        elif not _is_weekday(word):  # "Saturday, June 1, 2013"
            raise _malformed(order)
    if month_text is None or len(years) != 1 or len(days) > 1:
        raise _malformed(order)
    return _parts(years[0], month_text, days[0] if days else None, order)


def _one_string(text: str, order: DateOrder) -> tuple[date, date]:
    if (m := _ISO.fullmatch(text)) is not None:
        return _parts(m.group(1), m.group(2), m.group(3), order)
    if _digits(text):
        return _parts(text, None, None, order)
    if (m := _NUMERIC.fullmatch(text)) is not None:
        return _numeric(m, order)
    if (m := _CJK.fullmatch(text)) is not None:
        return _parts(m.group(1), m.group(2), m.group(3), order)
    if any(ch.isalpha() for ch in text):
        return _worded(text, order)
    raise _malformed(order)


def has_birth_input(fields: Mapping[str, object]) -> bool:
    """Whether ``fields`` answer the screen at all: any birth-date field that is not blank (a
    value that is not text counts, and is refused when read)."""
    for name in BIRTH_FIELDS:
        value = fields.get(name)
        if value is not None and (not isinstance(value, str) or value.split()):
            return True
    return False


def read_birth_input(
    fields: Mapping[str, str], *, date_order: DateOrder = "MDY", now: datetime | None = None
) -> BirthInput:
    """Read the screen's fields into a :class:`BirthInput`.

    Accepted: ``birth_date`` (one string), or ``birth_year`` with optional ``birth_month`` and
    ``birth_day``, or ``age`` in whole years. Raises :class:`InvalidBirthDate`.
    """
    values: dict[str, str] = {}
    for name in BIRTH_FIELDS:
        raw = fields.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise _err("malformed", "not_text")
        if len(raw) > MAX_INPUT_LENGTH:
            raise _err("too_long", "too_long")
        value = " ".join(raw.split())
        if value:
            values[name] = value
    if not values:
        raise _err("empty", "empty")

    if "birth_date" in values:
        earliest, latest = _one_string(values["birth_date"], date_order)
    elif "birth_year" in values:
        earliest, latest = _parts(
            values["birth_year"], values.get("birth_month"), values.get("birth_day"), date_order
        )
    elif "age" in values:
        text = values["age"]
        if not _digits(text):
            raise _err("malformed", "age_number")
        age = int(text)
        if age > MAX_AGE:
            raise _err("implausible", "check_age")
        return BirthInput(age=age)
    else:
        # Only a month and/or a day: the year is what the conservative reading cannot do without.
        raise _err("malformed", "need_year")

    if earliest > today_latest(now):
        raise _err("future", "future")
    today = today_aoe(now)
    if latest <= today and AgePolicy(min_age=1).age_on(latest, today) > MAX_AGE:
        raise _err("implausible", "check_year")
    return BirthInput(latest=latest)
