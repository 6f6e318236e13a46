"""Due times in business days and business hours: pure functions, no ORM."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    """``start`` moved forward by ``days`` working days, Saturdays and Sundays skipped.

    A start on a weekend counts from the following Monday at the same time of day.
    """
    current = start
    while current.weekday() >= 5:
        current += dt.timedelta(days=1)
    remaining = days
    while remaining > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


# --- Business hours in a working calendar ----------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """A working week: which weekdays (Monday = 0), which hours, which holidays, in which zone."""

    time_zone: str = "UTC"
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    day_starts: dt.time = dt.time(9, 0)
    day_ends: dt.time = dt.time(17, 0)
    holidays: frozenset[dt.date] = field(default_factory=frozenset)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays

    def working_window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The day's working hours as UTC datetimes (wall-clock times in the zone, so a DST
        change moves them with the local clock)."""
        tz = ZoneInfo(self.time_zone)
        begin = dt.datetime.combine(day, self.day_starts, tzinfo=tz).astimezone(dt.UTC)
        end = dt.datetime.combine(day, self.day_ends, tzinfo=tz).astimezone(dt.UTC)
        return begin, end


# Ten years without a working hour means the calendar has none: refuse instead of looping.
_MAX_DAYS = 3660


def add_business_hours(start: dt.datetime, hours: float, calendar: Calendar) -> dt.datetime:
    """``start`` moved forward by ``hours`` of working time in ``calendar``.

    Time outside working hours, on non-working weekdays and on holidays does not count: a start
    on a Friday evening counts from Monday morning. Zero hours is ``start`` itself. The result is
    in UTC.
    """
    if start.tzinfo is None:
        raise ValueError("add_business_hours needs an aware datetime.")
    start = start.astimezone(dt.UTC)
    if hours <= 0:
        return start
    remaining = dt.timedelta(hours=hours)
    day = start.astimezone(ZoneInfo(calendar.time_zone)).date()
    for _ in range(_MAX_DAYS):
        if calendar.is_working_day(day):
            day_start, day_end = calendar.working_window(day)
            begin = max(day_start, start)
            if begin < day_end:
                available = day_end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += dt.timedelta(days=1)
    raise ValueError("The working calendar has no working hours.")


def business_hours_between(start: dt.datetime, end: dt.datetime, calendar: Calendar) -> float:
    """Working hours from ``start`` to ``end`` (0 if ``end`` is not later)."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    if end <= start:
        return 0.0
    total = dt.timedelta()
    day = start.astimezone(ZoneInfo(calendar.time_zone)).date()
    last = end.astimezone(ZoneInfo(calendar.time_zone)).date()
    while day <= last:
        if calendar.is_working_day(day):
            day_start, day_end = calendar.working_window(day)
            begin, finish = max(day_start, start), min(day_end, end)
            if finish > begin:
                total += finish - begin
        day += dt.timedelta(days=1)
    return total.total_seconds() / 3600
