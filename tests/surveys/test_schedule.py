"""Wave dates: pure functions of a cadence and an instant, tested without a database.

The 2027 daylight-saving changes used below: Europe/Berlin springs forward on Sunday 28 March
(02:00 -> 03:00) and falls back on Sunday 31 October; America/New_York springs forward on Sunday
14 March and falls back on Sunday 7 November.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from surveys.schedule import Cadence, period_label, validate_timezone

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def quarterly_berlin() -> Cadence:
    return Cadence(
        frequency=3, anchor_month=1, anchor_day=15, send_hour=9, timezone="Europe/Berlin"
    )


# --- period_on_or_before ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "period"),
    [
        # 15 Jan 09:00 Berlin is 08:00 UTC (winter time).
        (utc(2027, 1, 15, 7, 59, 59), dt.date(2026, 10, 15)),
        (utc(2027, 1, 15, 8, 0), dt.date(2027, 1, 15)),
        (utc(2027, 1, 1, 0, 0), dt.date(2026, 10, 15)),
        (utc(2027, 3, 1, 12, 0), dt.date(2027, 1, 15)),
        # 15 Apr 09:00 Berlin is 07:00 UTC (summer time).
        (utc(2027, 4, 15, 6, 59), dt.date(2027, 1, 15)),
        (utc(2027, 4, 15, 7, 0), dt.date(2027, 4, 15)),
        (utc(2027, 7, 15, 7, 0), dt.date(2027, 7, 15)),
        (utc(2027, 10, 14, 23, 0), dt.date(2027, 7, 15)),
        (utc(2027, 12, 31, 23, 30), dt.date(2027, 10, 15)),
    ],
)
def test_period_on_or_before_is_the_latest_period_that_has_opened(when, period):
    assert quarterly_berlin().period_on_or_before(when) == period


def test_period_on_or_before_reads_the_date_in_the_programs_time_zone():
    # Midnight on 1 Jan in Berlin is 23:00 UTC on 31 Dec: the January period starts then.
    cadence = Cadence(
        frequency=1, anchor_month=1, anchor_day=1, send_hour=0, timezone="Europe/Berlin"
    )
    assert cadence.period_on_or_before(utc(2026, 12, 31, 23, 30)) == dt.date(2027, 1, 1)
    assert cadence.period_on_or_before(utc(2026, 12, 31, 22, 59)) == dt.date(2026, 12, 1)


def test_period_on_or_before_accepts_an_instant_in_any_time_zone():
    cadence = quarterly_berlin()
    same_instant = dt.datetime(2027, 1, 15, 3, 0, tzinfo=NEW_YORK)  # 08:00 UTC
    assert cadence.period_on_or_before(same_instant) == dt.date(2027, 1, 15)


# --- opens_at across daylight-saving changes -------------------------------------------------


@pytest.mark.parametrize(
    ("period", "expected_utc"),
    [
        (dt.date(2027, 2, 28), utc(2027, 2, 28, 8, 0)),  # CET, UTC+1
        (dt.date(2027, 3, 28), utc(2027, 3, 28, 7, 0)),  # the spring-forward day itself: CEST
        (dt.date(2027, 4, 28), utc(2027, 4, 28, 7, 0)),
        (dt.date(2027, 10, 28), utc(2027, 10, 28, 7, 0)),  # still CEST
        (dt.date(2027, 11, 28), utc(2027, 11, 28, 8, 0)),  # CET again
    ],
)
def test_monthly_on_the_28th_keeps_9_oclock_in_berlin_across_dst(period, expected_utc):
    cadence = Cadence(
        frequency=1, anchor_month=1, anchor_day=28, send_hour=9, timezone="Europe/Berlin"
    )
    opens = cadence.opens_at(period)
    assert opens == expected_utc
    assert opens.tzinfo == UTC
    assert opens.astimezone(BERLIN).time() == dt.time(9, 0)


def test_opening_on_the_berlin_fall_back_day_is_9_oclock_winter_time():
    cadence = Cadence(
        frequency=1, anchor_month=1, anchor_day=1, send_hour=9, timezone="Europe/Berlin"
    )
    # No anchor day of 31; check the first of the month on either side of 31 October.
    assert cadence.opens_at(dt.date(2027, 10, 1)) == utc(2027, 10, 1, 7, 0)
    assert cadence.opens_at(dt.date(2027, 11, 1)) == utc(2027, 11, 1, 8, 0)


@pytest.mark.parametrize(
    ("period", "expected_utc"),
    [
        (dt.date(2027, 3, 1), utc(2027, 3, 1, 14, 0)),  # EST, UTC-5
        (dt.date(2027, 3, 14), utc(2027, 3, 14, 13, 0)),  # spring-forward day: EDT, UTC-4
        (dt.date(2027, 4, 1), utc(2027, 4, 1, 13, 0)),
        (dt.date(2027, 11, 1), utc(2027, 11, 1, 13, 0)),  # EDT until 7 November
        (dt.date(2027, 11, 7), utc(2027, 11, 7, 14, 0)),  # fall-back day: EST
        (dt.date(2027, 12, 1), utc(2027, 12, 1, 14, 0)),
    ],
)
def test_9_oclock_in_new_york_is_kept_across_dst(period, expected_utc):
    cadence = Cadence(
        frequency=1, anchor_month=1, anchor_day=period.day, send_hour=9, timezone="America/New_York"
    )
    opens = cadence.opens_at(period)
    assert opens == expected_utc
    assert opens.astimezone(NEW_YORK).time() == dt.time(9, 0)


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc", "local_hour"),
    [
        # 02:00 does not exist on these days; the wave opens at the first real instant after
        # the gap, 03:00 summer time.
        ("Europe/Berlin", dt.date(2027, 3, 28), utc(2027, 3, 28, 1, 0), 3),
        ("America/New_York", dt.date(2027, 3, 14), utc(2027, 3, 14, 7, 0), 3),
    ],
)
def test_an_hour_inside_the_spring_forward_gap_maps_to_a_real_instant(
    zone, day, expected_utc, local_hour
):
    cadence = Cadence(frequency=1, anchor_month=1, anchor_day=day.day, send_hour=2, timezone=zone)
    opens = cadence.opens_at(day)
    assert opens == expected_utc
    local = opens.astimezone(ZoneInfo(zone))
    assert (local.date(), local.hour) == (day, local_hour)
    # ...and the period is found again from that instant.
    assert cadence.period_on_or_before(opens) == day
    assert cadence.period_on_or_before(opens - dt.timedelta(seconds=1)) < day


def test_an_hour_repeated_by_the_fall_back_is_its_first_occurrence():
    cadence = Cadence(
        frequency=1, anchor_month=1, anchor_day=7, send_hour=1, timezone="America/New_York"
    )
    # 01:00 happens twice on 7 Nov 2027 in New York; the first is 01:00 EDT = 05:00 UTC.
    assert cadence.opens_at(dt.date(2027, 11, 7)) == utc(2027, 11, 7, 5, 0)


# --- upcoming --------------------------------------------------------------------------------


def test_upcoming_gives_the_next_four_openings_in_order():
    assert quarterly_berlin().upcoming(utc(2027, 2, 1, 12, 0)) == [
        utc(2027, 4, 15, 7, 0),
        utc(2027, 7, 15, 7, 0),
        utc(2027, 10, 15, 7, 0),
        utc(2028, 1, 15, 8, 0),
    ]


def test_upcoming_is_strictly_after_the_given_instant():
    cadence = quarterly_berlin()
    assert cadence.upcoming(utc(2027, 4, 15, 7, 0), count=1) == [utc(2027, 7, 15, 7, 0)]
    assert cadence.upcoming(utc(2027, 4, 15, 6, 59), count=1) == [utc(2027, 4, 15, 7, 0)]


def test_upcoming_takes_a_count():
    assert len(quarterly_berlin().upcoming(utc(2027, 2, 1), count=10)) == 10


# --- frequencies and anchors -----------------------------------------------------------------


def test_monthly_cadence_opens_every_month():
    cadence = Cadence(frequency=1, anchor_month=1, anchor_day=1, send_hour=9, timezone="UTC")
    assert cadence.period_on_or_before(utc(2027, 5, 20)) == dt.date(2027, 5, 1)
    assert cadence.upcoming(utc(2027, 11, 20), count=3) == [
        utc(2027, 12, 1, 9),
        utc(2028, 1, 1, 9),
        utc(2028, 2, 1, 9),
    ]


def test_half_yearly_cadence_opens_in_the_anchor_month_and_six_months_later():
    cadence = Cadence(frequency=6, anchor_month=3, anchor_day=10, send_hour=9, timezone="UTC")
    assert cadence.period_on_or_before(utc(2027, 2, 1)) == dt.date(2026, 9, 10)
    assert cadence.period_on_or_before(utc(2027, 3, 10, 9)) == dt.date(2027, 3, 10)
    assert cadence.period_on_or_before(utc(2027, 8, 31)) == dt.date(2027, 3, 10)
    assert cadence.period_on_or_before(utc(2027, 9, 10, 9)) == dt.date(2027, 9, 10)
    assert cadence.next_period(dt.date(2027, 9, 10)) == dt.date(2028, 3, 10)


def test_yearly_cadence_opens_once_a_year_in_the_anchor_month():
    cadence = Cadence(frequency=12, anchor_month=11, anchor_day=20, send_hour=8, timezone="UTC")
    assert cadence.period_on_or_before(utc(2027, 11, 20, 7, 59)) == dt.date(2026, 11, 20)
    assert cadence.period_on_or_before(utc(2027, 11, 20, 8, 0)) == dt.date(2027, 11, 20)
    assert cadence.period_on_or_before(utc(2028, 6, 1)) == dt.date(2027, 11, 20)
    assert cadence.upcoming(utc(2027, 12, 1), count=2) == [
        utc(2028, 11, 20, 8),
        utc(2029, 11, 20, 8),
    ]


@pytest.mark.parametrize(
    ("anchor_month", "when", "period"),
    [
        (2, utc(2027, 1, 31), dt.date(2026, 11, 15)),
        (2, utc(2027, 2, 15, 12), dt.date(2027, 2, 15)),
        (2, utc(2027, 6, 1), dt.date(2027, 5, 15)),
        (12, utc(2027, 1, 10), dt.date(2026, 12, 15)),
        (12, utc(2027, 3, 20), dt.date(2027, 3, 15)),
        (4, utc(2027, 1, 20), dt.date(2027, 1, 15)),  # April-anchored quarters include January
    ],
)
def test_anchor_month_shifts_the_quarters(anchor_month, when, period):
    cadence = Cadence(
        frequency=3, anchor_month=anchor_month, anchor_day=15, send_hour=9, timezone="UTC"
    )
    assert cadence.period_on_or_before(when) == period


def test_next_and_previous_period_step_by_the_frequency_across_years():
    cadence = quarterly_berlin()
    assert cadence.next_period(dt.date(2027, 10, 15)) == dt.date(2028, 1, 15)
    assert cadence.previous_period(dt.date(2027, 1, 15)) == dt.date(2026, 10, 15)


# --- labels and time zones -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "frequency", "label"),
    [
        (dt.date(2027, 1, 15), 3, "2027 Q1"),
        (dt.date(2027, 4, 15), 3, "2027 Q2"),
        (dt.date(2027, 10, 1), 3, "2027 Q4"),
        (dt.date(2027, 2, 15), 3, "Feb 2027"),  # quarters not aligned to the calendar
        (dt.date(2027, 3, 28), 1, "Mar 2027"),
        (dt.date(2027, 7, 1), 6, "Jul 2027"),
        (dt.date(2027, 11, 20), 12, "2027"),
    ],
)
def test_period_label(period, frequency, label):
    assert period_label(period, frequency) == label


def test_an_unknown_time_zone_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus'"):
        validate_timezone("Mars/Olympus")
    assert validate_timezone("Europe/Berlin") == BERLIN
