"""Due times in business days: pure functions, no ORM."""

from __future__ import annotations

import datetime as dt


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
