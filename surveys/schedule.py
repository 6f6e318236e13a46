"""Wave dates: pure functions of a program's cadence and a clock, no ORM.

A cadence opens a wave every ``frequency`` months counted from ``anchor_month``, on ``anchor_day``
at ``send_hour`` local time in a named time zone. The local hour is kept across daylight-saving
changes, so 09:00 Europe/Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def validate_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"Unknown time zone {name!r}; use a name like Europe/Berlin.") from exc


@dataclass(frozen=True)
class Cadence:
    frequency: int  # months between waves: 1, 3, 6 or 12
    anchor_month: int  # 1..12
    anchor_day: int  # 1..28
    send_hour: int  # 0..23
    timezone: str

    @classmethod
    def of(cls, program) -> Cadence:
        return cls(
            frequency=program.frequency,
            anchor_month=program.anchor_month,
            anchor_day=program.anchor_day,
            send_hour=program.send_hour,
            timezone=program.time_zone,
        )

    @property
    def zone(self) -> ZoneInfo:
        return validate_timezone(self.timezone)

    def opens_at(self, period_start: dt.date) -> dt.datetime:
        """The aware UTC instant a period's wave opens: its date at send_hour local time."""
        local = dt.datetime.combine(period_start, dt.time(self.send_hour), tzinfo=self.zone)
        # A wall time inside a spring-forward gap does not exist; the round trip through UTC
        # moves it to the first real instant after the gap.
        return local.astimezone(dt.UTC)

    def _month_index(self, year: int, month: int) -> int:
        return year * 12 + (month - 1)

    def _period_from_index(self, index: int) -> dt.date:
        return dt.date(index // 12, index % 12 + 1, self.anchor_day)

    def period_on_or_before(self, when: dt.datetime) -> dt.date:
        """The latest period whose wave opens at or before ``when``."""
        local = when.astimezone(self.zone)
        index = self._month_index(local.year, local.month)
        anchor = self._month_index(local.year, self.anchor_month)
        index -= (index - anchor) % self.frequency
        period = self._period_from_index(index)
        if self.opens_at(period) > when:
            period = self._period_from_index(index - self.frequency)
        return period

    def next_period(self, period_start: dt.date) -> dt.date:
        index = self._month_index(period_start.year, period_start.month) + self.frequency
        return self._period_from_index(index)

    def previous_period(self, period_start: dt.date) -> dt.date:
        index = self._month_index(period_start.year, period_start.month) - self.frequency
        return self._period_from_index(index)

    def upcoming(self, after: dt.datetime, count: int = 4) -> list[dt.datetime]:
        """The next ``count`` opening instants strictly after ``after``."""
        period = self.next_period(self.period_on_or_before(after))
        result = []
        while len(result) < count:
            result.append(self.opens_at(period))
            period = self.next_period(period)
        return result


def period_label(period_start: dt.date, frequency: int) -> str:
    """A short human label: "2026 Q4" for calendar quarters, else "Oct 2026"."""
    if frequency == 3 and period_start.month in (1, 4, 7, 10):
        return f"{period_start.year} Q{(period_start.month - 1) // 3 + 1}"
    if frequency == 12:
        return str(period_start.year)
    return period_start.strftime("%b %Y")
