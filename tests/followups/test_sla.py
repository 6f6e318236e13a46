"""Due times in business days and business hours: pure functions, no database."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from followups.sla import Calendar, add_business_days, add_business_hours, business_hours_between


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


# --- Business hours in a working calendar ----------------------------------------------------

WEEK = Calendar()  # Monday to Friday, 9:00 to 17:00 UTC


def utc(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2027, 3, day, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (utc(1, 10), 2, utc(1, 12)),  # inside one working day
        (utc(1, 16), 2, utc(2, 10)),  # the evening does not count
        (utc(5, 15), 4, utc(8, 11)),  # Friday afternoon -> Monday morning: the weekend skipped
        (utc(5, 15), 16, utc(9, 15)),  # two working days from Friday 15:00 -> Tuesday 15:00
        (utc(6, 12), 1, utc(8, 10)),  # a Saturday start counts from Monday 9:00
        (utc(5, 20), 8, utc(8, 17)),  # Friday night -> all of Monday
        (utc(1, 7), 1, utc(1, 10)),  # before the day starts
        (utc(1, 10), 40, utc(8, 10)),  # a working week
        (utc(6, 12), 0, utc(6, 12)),  # zero hours is the start itself
    ],
)
def test_business_hours_count_only_working_time(start, hours, due):
    assert add_business_hours(start, hours, WEEK) == due


def test_a_holiday_is_skipped_like_a_weekend():
    calendar = Calendar(holidays=frozenset({dt.date(2027, 3, 8)}))  # Monday off
    assert add_business_hours(utc(5, 15), 4, calendar) == utc(9, 11)


def test_working_days_and_hours_are_configurable():
    # Sunday to Thursday, 8:00 to 12:00.
    calendar = Calendar(
        working_days=frozenset({6, 0, 1, 2, 3}), day_starts=dt.time(8), day_ends=dt.time(12)
    )
    assert add_business_hours(utc(4, 11), 3, calendar) == utc(7, 10)  # Thu 11:00 -> Sun 10:00


def test_the_working_day_is_in_the_calendars_time_zone():
    berlin = Calendar(time_zone="Europe/Berlin")  # 9:00-17:00 Berlin = 8:00-16:00 UTC in March
    assert add_business_hours(utc(1, 15), 2, berlin) == utc(2, 9)


def test_the_working_day_follows_the_clock_change():
    # Berlin moves to summer time on Sunday 28 March 2027: 9:00 is 8:00 UTC before, 7:00 after.
    berlin = Calendar(time_zone="Europe/Berlin")
    assert add_business_hours(utc(26, 15), 2, berlin) == utc(29, 8)


def test_a_calendar_without_working_days_is_refused():
    with pytest.raises(ValueError, match="no working hours"):
        add_business_hours(utc(1, 10), 1, Calendar(working_days=frozenset()))


def test_a_naive_start_is_refused():
    with pytest.raises(ValueError, match="aware"):
        add_business_hours(dt.datetime(2027, 3, 1, 10, 0), 1, WEEK)  # noqa: DTZ001


def test_business_hours_between_skips_nights_and_weekends():
    assert business_hours_between(utc(5, 15), utc(8, 11), WEEK) == 4
    assert business_hours_between(utc(8, 11), utc(5, 15), WEEK) == 0
    assert business_hours_between(utc(1, 9), utc(8, 9), WEEK) == 40
