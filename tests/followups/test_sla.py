"""Due times in business days: pure functions, no database."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from followups.sla import add_business_days


def at(day: int, hour: int = 10, tz=dt.UTC) -> dt.datetime:
    """A day of March 2027: Monday 1, Friday 5, Saturday 6, Sunday 7, Monday 8 and so on."""
    return dt.datetime(2027, 3, day, hour, 0, tzinfo=tz)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (at(1), 2, at(3)),  # Monday -> Wednesday
        (at(3), 2, at(5)),  # Wednesday -> Friday
        (at(4), 2, at(8)),  # Thursday -> Monday
        (at(5), 2, at(9)),  # Friday -> Tuesday
        (at(5, 23), 2, at(9, 23)),
        (at(5), 1, at(8)),  # Friday -> Monday
        (at(5), 5, at(12)),  # a working week later
        (at(5), 10, at(19)),
        (at(1), 0, at(1)),
    ],
)
def test_business_days_skip_the_weekend(start, days, due):
    assert add_business_days(start, days) == due


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (at(6), at(10)),  # Saturday counts from Monday: due Wednesday
        (at(7, 22), at(10, 22)),  # Sunday too
    ],
)
def test_a_weekend_start_counts_from_monday_at_the_same_time(start, due):
    assert add_business_days(start, 2) == due


def test_zero_days_from_a_weekend_is_monday():
    assert add_business_days(at(6), 0) == at(8)


def test_the_time_zone_of_the_start_is_kept():
    berlin = ZoneInfo("Europe/Berlin")
    due = add_business_days(at(26, 9, tz=berlin), 2)  # Friday before the spring-forward
    assert due == dt.datetime(2027, 3, 30, 9, 0, tzinfo=berlin)
    assert due.tzinfo is berlin
