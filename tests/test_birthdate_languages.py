"""Typed dates in the visitor's language (with agegate[i18n]): the same rules as in English,
partial dates read as the latest date they could mean, nothing filled in from today."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import InvalidBirthDate
from agegate.birthdate import read_birth_input
from agegate.i18n import CATALOGS

pytest.importorskip("babel", reason="agegate[i18n] (Babel) is not installed")
from babel.dates import format_date, format_skeleton

NOW = datetime(2026, 6, 2, 12, tzinfo=UTC)
LOCALES = ("en", "en_GB", *CATALOGS)
dates = st.dates(min_value=date(1910, 1, 1), max_value=date(2025, 12, 31))


def latest(text: str) -> date | None:
    return read_birth_input({"birth_date": text}, now=NOW).latest


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("1. Juni 2013", date(2013, 6, 1)),
        ("1 juin 2013", date(2013, 6, 1)),
        ("1er juin 2013", date(2013, 6, 1)),
        ("Samstag, 1. Juni 2013", date(2013, 6, 1)),
        ("1 de junio de 2013", date(2013, 6, 1)),
        ("1 de junho de 2013", date(2013, 6, 1)),
        ("1 giugno 2013", date(2013, 6, 1)),
        ("1 juni 2013", date(2013, 6, 1)),
        ("1 czerwca 2013", date(2013, 6, 1)),
        ("2013年6月1日", date(2013, 6, 1)),
        ("2013년 6월 1일", date(2013, 6, 1)),
        ("1 يونيو 2013", date(2013, 6, 1)),
        ("1 ביוני 2013", date(2013, 6, 1)),
        ("1 März 2013", date(2013, 3, 1)),
        ("4 MÄRZ 2013", date(2013, 3, 4)),
        # Partial dates: the latest day they could mean.
        ("Juni 2013", date(2013, 6, 30)),
        ("czerwiec 2013", date(2013, 6, 30)),
        ("février 2012", date(2012, 2, 29)),
        ("2013年2月", date(2013, 2, 28)),
    ],
)
def test_month_names_in_other_languages(typed: str, meant: date) -> None:
    assert latest(typed) == meant


def test_a_month_name_in_the_month_field() -> None:
    fields = {"birth_year": "2013", "birth_month": "Juni"}
    assert read_birth_input(fields, now=NOW).latest == date(2013, 6, 30)


@pytest.mark.parametrize(
    "typed",
    ["1. Junii 2013", "Juni 13", "1 juin", "2013年13月1日", "32 juin 2013", "1 juin juillet 2013", "6月1日"],
)
def test_what_the_rules_refuse_stays_refused(typed: str) -> None:
    with pytest.raises(InvalidBirthDate):
        latest(typed)


@given(dates, st.sampled_from(LOCALES))
def test_a_long_date_in_any_shipped_language_reads_back(day: date, locale: str) -> None:
    assert latest(format_date(day, "long", locale=locale)) == day


@given(dates, st.sampled_from(LOCALES))
def test_a_month_and_year_read_as_the_months_last_day(day: date, locale: str) -> None:
    typed = format_skeleton("yMMMM", day, locale=locale)
    last = calendar.monthrange(day.year, day.month)[1]
    assert latest(typed) == day.replace(day=last)


@given(st.sampled_from(LOCALES), st.integers(min_value=1, max_value=12))
def test_nothing_is_filled_in_from_today(locale: str, month: int) -> None:
    # A month and a day without a year are refused, never completed with this year.
    typed = format_skeleton("MMMMd", date(2000, month, 1), locale=locale)
    with pytest.raises(InvalidBirthDate):
        latest(typed)
