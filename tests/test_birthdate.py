"""Reading birth dates: every input form, the latest-date rule, every error code."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import AgeGate, Decision, InvalidBirthDate, Keyring
from agegate.birthdate import DateOrder, read_birth_input
from agegate.stores import MemoryStore


def noon(y: int, m: int, d: int) -> datetime:
    """A moment whose Anywhere-on-Earth date is y-m-d."""
    return datetime(y, m, d, 12, tzinfo=UTC)


NOW = noon(2026, 6, 1)


def latest(fields: dict[str, str], order: DateOrder = "MDY", now: datetime = NOW) -> date | None:
    return read_birth_input(fields, date_order=order, now=now).latest


def make_gate(order: DateOrder = "MDY") -> AgeGate:
    return AgeGate(keys=Keyring.generate(), store=MemoryStore(), date_order=order)


GATE = make_gate()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-06-01", date(2013, 6, 1)),
        ("2013-6-1", date(2013, 6, 1)),
        ("2013-06", date(2013, 6, 30)),
        ("2013", date(2013, 12, 31)),  # dateutil would fill in today's month and day: we never do
        ("2012-02", date(2012, 2, 29)),
        ("2013-02", date(2013, 2, 28)),
        ("06/01/2013", date(2013, 6, 1)),
        ("6.1.2013", date(2013, 6, 1)),
        ("06-01-2013", date(2013, 6, 1)),
        ("06 01 2013", date(2013, 6, 1)),
        ("2013/06/01", date(2013, 6, 1)),  # a leading four-digit year reads Y M D
        ("06/2013", date(2013, 6, 30)),
        ("2013/06", date(2013, 6, 30)),
        ("June 1, 2013", date(2013, 6, 1)),
        ("1 June 2013", date(2013, 6, 1)),
        ("Jun 1 2013", date(2013, 6, 1)),
        ("jun. 1, 2013", date(2013, 6, 1)),
        ("13th of June 2013", date(2013, 6, 13)),
        ("2013 June 1", date(2013, 6, 1)),
        ("2013-Jun-01", date(2013, 6, 1)),
        ("Sept 3, 2013", date(2013, 9, 3)),
        ("June 2013", date(2013, 6, 30)),
        ("February 2012", date(2012, 2, 29)),
        ("  June   1,  2013 ", date(2013, 6, 1)),
    ],
)
def test_birth_date_string_forms(text: str, expected: date) -> None:
    assert latest({"birth_date": text}) == expected


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("04/05/2013", "MDY", date(2013, 4, 5)),
        ("04/05/2013", "DMY", date(2013, 5, 4)),
        ("2013/04/05", "YMD", date(2013, 4, 5)),
        ("2013/04/05", "MDY", date(2013, 4, 5)),
        ("2013/04/05", "DMY", date(2013, 4, 5)),
        ("2013-04-05", "DMY", date(2013, 4, 5)),  # ISO is always ISO
        ("13/04/2013", "DMY", date(2013, 4, 13)),
        ("5 April 2013", "MDY", date(2013, 4, 5)),  # month names need no order
        ("April 5 2013", "DMY", date(2013, 4, 5)),
    ],
)
def test_date_order(text: str, order: DateOrder, expected: date) -> None:
    assert latest({"birth_date": text}, order) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"birth_year": "2013", "birth_month": "6", "birth_day": "1"}, date(2013, 6, 1)),
        ({"birth_year": "2013", "birth_month": "06"}, date(2013, 6, 30)),
        ({"birth_year": "2013", "birth_month": "6", "birth_day": ""}, date(2013, 6, 30)),
        ({"birth_year": "2013"}, date(2013, 12, 31)),
        ({"birth_year": "2013", "birth_month": "", "birth_day": ""}, date(2013, 12, 31)),
        ({"birth_year": "2012", "birth_month": "2"}, date(2012, 2, 29)),
        ({"birth_year": "2013", "birth_month": "June", "birth_day": "1"}, date(2013, 6, 1)),
    ],
)
def test_separate_fields(fields: dict[str, str], expected: date) -> None:
    assert latest(fields) == expected


@pytest.mark.parametrize(
    ("fields", "now", "outcome"),
    [
        # year only: the latest date it could mean (31 December) must be 13 years ago
        ({"birth_year": "2012"}, noon(2025, 12, 30), "under_age"),
        ({"birth_year": "2012"}, noon(2025, 12, 31), "allowed"),
        ({"birth_date": "2012"}, noon(2025, 12, 30), "under_age"),
        ({"birth_date": "2012"}, noon(2025, 12, 31), "allowed"),
        # year and month: the month's last day
        ({"birth_year": "2013", "birth_month": "6"}, noon(2026, 6, 29), "under_age"),
        ({"birth_year": "2013", "birth_month": "6"}, noon(2026, 6, 30), "allowed"),
        ({"birth_date": "June 2013"}, noon(2026, 6, 29), "under_age"),
        ({"birth_year": "2012", "birth_month": "2"}, noon(2025, 2, 28), "under_age"),
        ({"birth_year": "2012", "birth_month": "2"}, noon(2025, 3, 1), "allowed"),
        # 29 February in a common year
        ({"birth_date": "2012-02-29"}, noon(2025, 2, 28), "under_age"),
        ({"birth_date": "2012-02-29"}, noon(2025, 3, 1), "allowed"),
        # the Anywhere-on-Earth boundary on the thirteenth birthday
        ({"birth_date": "2013-06-01"}, datetime(2026, 6, 1, 11, 59, tzinfo=UTC), "under_age"),
        ({"birth_date": "2013-06-01"}, datetime(2026, 6, 1, 12, 0, tzinfo=UTC), "allowed"),
        # a stated age
        ({"age": "12"}, NOW, "under_age"),
        ({"age": "13"}, NOW, "allowed"),
        ({"age": " 40 "}, NOW, "allowed"),
        ({"age": "0"}, NOW, "under_age"),
        # a baby born this year whose latest possible date is still ahead is under age, not an error
        ({"birth_year": "2026"}, NOW, "under_age"),
        ({"birth_date": "2026-06"}, NOW, "under_age"),
    ],
)
def test_screen_outcomes(fields: dict[str, str], now: datetime, outcome: str) -> None:
    decision = GATE.screen(fields, now=now)
    assert decision == Decision(allowed=outcome == "allowed", outcome=outcome, policy="min-age-13")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "empty"),
        ({"birth_date": ""}, "empty"),
        ({"birth_date": "   "}, "empty"),
        ({"birth_year": "", "birth_month": "", "birth_day": ""}, "empty"),
        ({"age": ""}, "empty"),
        ({"birth_date": "yesterday"}, "malformed"),
        ({"birth_date": "01/02/03"}, "malformed"),  # two-digit years are never guessed
        ({"birth_date": "June 1, 13"}, "malformed"),
        ({"birth_date": "June 13"}, "malformed"),  # no year
        ({"birth_date": "2013-06-01T10:00"}, "malformed"),
        ({"birth_date": "1/2"}, "malformed"),
        ({"birth_date": "²⁰¹³"}, "malformed"),
        ({"birth_date": "٢٠١٣-٠٦-٠١"}, "malformed"),
        ({"birth_month": "6", "birth_day": "1"}, "malformed"),
        ({"birth_year": "2013", "birth_day": "1"}, "malformed"),
        ({"birth_year": "13"}, "malformed"),
        ({"birth_year": "2013", "birth_month": "Juno"}, "malformed"),  # "Juni" reads as June with Babel
        ({"age": "-1"}, "malformed"),
        ({"age": "12.5"}, "malformed"),
        ({"age": "twelve"}, "malformed"),
        ({"birth_date": "2013-02-30"}, "impossible"),
        ({"birth_date": "02/30/2013"}, "impossible"),
        ({"birth_date": "Feb 30 2013"}, "impossible"),
        ({"birth_date": "2013-02-29"}, "impossible"),
        ({"birth_date": "2013-13-01"}, "impossible"),
        ({"birth_date": "2013-00-10"}, "impossible"),
        ({"birth_date": "30/02/2013"}, "impossible"),  # MDY: month 30
        ({"birth_year": "2013", "birth_month": "4", "birth_day": "31"}, "impossible"),
        ({"birth_date": "2027-01-01"}, "future"),
        ({"birth_year": "2027"}, "future"),
        ({"birth_date": "2026-06-03"}, "future"),
        ({"birth_date": "1899-12-31"}, "implausible"),
        ({"birth_year": "1850"}, "implausible"),
        ({"birth_date": "1905-05-31"}, "implausible"),  # 121 years old
        ({"age": "121"}, "implausible"),
        ({"birth_date": "1" * 65}, "too_long"),
        ({"birth_year": "2013", "birth_month": "x" * 65}, "too_long"),
        ({"age": " " * 70}, "too_long"),
        ({"birth_date": "06/001/2013"}, "malformed"),
        ({"birth_year": "2013", "birth_month": "6", "birth_day": "0001"}, "malformed"),
        ({"birth_date": "2013 2014"}, "malformed"),
        ({"birth_date": "June 2013th"}, "malformed"),
        ({"birth_date": "June 1st 1st 2013"}, "malformed"),
        ({"birth_date": "June 1, 2013 10:00"}, "malformed"),
    ],
)
def test_error_codes(fields: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidBirthDate) as info:
        GATE.screen(fields, now=NOW)
    error = info.value
    assert error.code == code
    assert isinstance(error, ValueError)
    assert str(error) == error.message and error.message.endswith(".")
    assert "2013" not in error.message and "1899" not in error.message  # no input echoed back


def test_today_in_the_earliest_zone_is_not_the_future() -> None:
    # 12:00Z on 1 June is already 2 June in UTC+14: a baby born there today is real, and under age.
    assert GATE.screen({"birth_date": "2026-06-02"}, now=NOW).outcome == "under_age"


def test_weekday_names_are_skipped() -> None:
    assert latest({"birth_date": "Saturday, June 1, 2013"}) == date(2013, 6, 1)


def test_ymd_order_refuses_a_trailing_year() -> None:
    with pytest.raises(InvalidBirthDate) as info:
        GATES["YMD"].screen({"birth_date": "04/05/2013"}, now=NOW)
    assert info.value.code == "malformed"
    assert "1990-04-23" in info.value.message


def test_64_characters_are_read_and_65_are_not() -> None:
    padded = "June 1, 2013".ljust(64, " ")
    assert len(padded) == 64
    assert GATE.screen({"birth_date": padded}, now=NOW).allowed
    with pytest.raises(InvalidBirthDate) as info:
        GATE.screen({"birth_date": padded + " "}, now=NOW)
    assert info.value.code == "too_long"


def test_screen_refuses_a_naive_or_out_of_range_now() -> None:
    from agegate import ConfigurationError, InvalidInput

    # Per-call bad input, not a setup error.
    with pytest.raises(InvalidInput, match="timezone-aware") as caught:
        GATE.screen({"birth_date": "2000-01-01"}, now=datetime(2026, 1, 1))
    assert not isinstance(caught.value, ConfigurationError)
    with pytest.raises(InvalidInput, match="range"):
        GATE.screen({"birth_date": "2000-01-01"}, now=datetime(9999, 12, 31, 11, tzinfo=UTC))


def test_just_120_is_plausible() -> None:
    assert GATE.screen({"birth_date": "1906-06-01"}, now=NOW).allowed


def test_birth_date_takes_precedence_over_parts() -> None:
    fields = {"birth_date": "2013-06-01", "birth_year": "1990", "age": "40"}
    assert GATE.screen(fields, now=NOW).outcome == "allowed"
    assert GATE.screen({**fields, "birth_date": "2014-06-01"}, now=NOW).outcome == "under_age"


def test_the_decision_carries_no_birth_date() -> None:
    decision = GATE.screen({"birth_date": "1990-04-23"}, now=NOW)
    assert "1990" not in repr(decision) and "23" not in repr(decision)


def test_non_string_values_are_malformed() -> None:
    with pytest.raises(InvalidBirthDate) as info:
        GATE.screen({"birth_date": 2013}, now=NOW)  # type: ignore[dict-item]
    assert info.value.code == "malformed"


# -- properties ------------------------------------------------------------------------------

PAST = st.dates(min_value=date(1907, 1, 1), max_value=date(2026, 5, 31))


@given(st.text(max_size=80), st.sampled_from(["MDY", "DMY", "YMD"]))
def test_any_text_gives_a_decision_or_invalid_birth_date(text: str, order: DateOrder) -> None:
    gate = GATES[order]
    for field in ("birth_date", "birth_year", "age"):
        try:
            result = gate.screen({field: text}, now=NOW)
        except InvalidBirthDate:
            continue
        assert isinstance(result, Decision)


FIELD_NAMES = st.sampled_from(["birth_date", "birth_year", "birth_month", "birth_day", "age", "x"])
DATEISH = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\A[0-9]{1,5}([-/. ][0-9]{1,5}){0,3}\Z"),
    st.from_regex(r"\A(\d{1,2} )?(Jan|June|Sept|Feb|Mar|xyz)\.?,? ?\d{1,4}\Z"),
)


@given(st.dictionaries(FIELD_NAMES, DATEISH, max_size=5))
def test_any_fields_give_a_decision_or_invalid_birth_date(fields: dict[str, str]) -> None:
    try:
        result = GATE.screen(fields, now=NOW)
    except InvalidBirthDate as exc:
        assert exc.code in {"empty", "malformed", "impossible", "future", "implausible", "too_long"}
    else:
        assert isinstance(result, Decision)


GATES: dict[DateOrder, AgeGate] = {order: make_gate(order) for order in ("MDY", "DMY", "YMD")}


@given(PAST)
def test_every_format_reads_back_the_same_date(day: date) -> None:
    assert latest({"birth_date": day.isoformat()}) == day
    assert latest({"birth_date": day.strftime("%m/%d/%Y")}, "MDY") == day
    assert latest({"birth_date": day.strftime("%d/%m/%Y")}, "DMY") == day
    assert latest({"birth_date": day.strftime("%Y/%m/%d")}, "YMD") == day
    assert latest({"birth_date": f"{day:%B} {day.day}, {day.year}"}) == day
    assert latest({"birth_date": f"{day.day} {day:%b} {day.year}"}, "DMY") == day
    parts = {"birth_year": str(day.year), "birth_month": str(day.month), "birth_day": str(day.day)}
    assert latest(parts) == day


@given(
    st.dates(min_value=date(1921, 1, 1), max_value=date(2026, 5, 31)),  # plausible until 2040
    st.dates(min_value=date(2026, 6, 1), max_value=date(2040, 1, 1)),
)
def test_partial_dates_never_pass_earlier_than_the_full_date(day: date, today: date) -> None:
    now = noon(today.year, today.month, today.day)
    full = GATE.screen({"birth_date": day.isoformat()}, now=now).allowed
    by_month = GATE.screen({"birth_year": str(day.year), "birth_month": str(day.month)}, now=now).allowed
    by_year = GATE.screen({"birth_year": str(day.year)}, now=now).allowed
    assert by_year <= by_month <= full
