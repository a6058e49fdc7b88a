"""AgePolicy: whole years, 29 February, the Anywhere-on-Earth day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import AgePolicy, ConfigurationError, InvalidBirthDate, InvalidInput
from agegate.policy import today_aoe

POLICY = AgePolicy()
DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))


def oracle_age(birth: date, today: date) -> int:
    """Count birthdays one by one; a 29 February birthday is kept on 1 March in common years."""
    age, year = -1, birth.year
    while True:
        try:
            birthday = date(year, birth.month, birth.day)
        except ValueError:
            birthday = date(year, 3, 1)
        if birthday > today:
            return age
        age += 1
        year += 1


@given(DATES, DATES)
def test_age_on_matches_an_independent_oracle(a: date, b: date) -> None:
    birth, today = min(a, b), max(a, b)
    assert POLICY.age_on(birth, today) == oracle_age(birth, today)


@given(DATES, DATES)
def test_is_under_age_is_age_on_the_aoe_day(birth: date, day: date) -> None:
    now = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)  # noon UTC: AoE date == day
    expected = birth > day or oracle_age(birth, day) < 13
    assert POLICY.is_under_age(birth, now) is expected


def test_age_on_refuses_a_birth_after_today() -> None:
    with pytest.raises(ValueError, match="after") as caught:  # still a ValueError, as before
        POLICY.age_on(date(2020, 1, 2), date(2020, 1, 1))
    assert isinstance(caught.value, InvalidBirthDate)
    assert caught.value.code == "future"


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (date(2008, 2, 29), date(2021, 2, 28), 12),  # common year: not yet on 28 February
        (date(2008, 2, 29), date(2021, 3, 1), 13),  # ... but on 1 March
        (date(2008, 2, 29), date(2020, 2, 29), 12),
        (date(2008, 2, 29), date(2024, 2, 29), 16),  # leap year: on the day itself
        (date(2008, 2, 29), date(2024, 2, 28), 15),
        (date(2013, 6, 1), date(2026, 5, 31), 12),
        (date(2013, 6, 1), date(2026, 6, 1), 13),
        (date(2013, 12, 31), date(2026, 12, 31), 13),
        (date(2013, 1, 1), date(2013, 1, 1), 0),
    ],
)
def test_age_on_table(birth: date, today: date, age: int) -> None:
    assert POLICY.age_on(birth, today) == age


@pytest.mark.parametrize(
    ("now", "under"),
    [
        (datetime(2026, 6, 1, 11, 59, 59, tzinfo=UTC), True),  # still 31 May somewhere on Earth
        (datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC), False),  # 1 June everywhere
        (datetime(2026, 6, 1, 23, 0, tzinfo=timezone(timedelta(hours=14))), True),  # 09:00Z
        (datetime(2026, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-12))), False),
    ],
)
def test_thirteenth_birthday_at_the_aoe_boundary(now: datetime, under: bool) -> None:
    assert POLICY.is_under_age(date(2013, 6, 1), now) is under


def test_today_aoe() -> None:
    assert today_aoe(datetime(2026, 1, 1, 11, 59, tzinfo=UTC)) == date(2025, 12, 31)
    assert today_aoe(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == date(2026, 1, 1)


def test_naive_now_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        POLICY.is_under_age(date(2000, 1, 1), datetime(2026, 1, 1))


def test_default_now_is_the_current_time() -> None:
    assert POLICY.is_under_age(date.today() - timedelta(days=365)) is True
    assert POLICY.is_under_age(date(1990, 1, 1)) is False


@pytest.mark.parametrize("min_age", [0, -1, 121, True, 13.0])
def test_bad_min_age_is_refused(min_age: object) -> None:
    with pytest.raises(ConfigurationError):
        AgePolicy(min_age=min_age)  # type: ignore[arg-type]


def test_policy_name() -> None:
    assert AgePolicy().name == "min-age-13"
    assert AgePolicy(min_age=16).name == "min-age-16"
    assert AgePolicy(name="coppa").name == "coppa"
    with pytest.raises(ConfigurationError):
        AgePolicy(name="a|b")
