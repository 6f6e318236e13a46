"""Opening and closing waves: exactly one wave per program and period, whatever beat does."""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.db.models.query import QuerySet

from surveys import services, tasks
from surveys.models import Invitation, Wave
from surveys.services import wave_open, waves_close_due, waves_open_due
from tests.factories import InvitationFactory, ProgramFactory, WaveFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# Quarterly on 15 Jan/Apr/Jul/Oct at 09:00 Berlin; 15 Jan 2027 09:00 CET is 08:00 UTC.
Q1_2027_OPENS = utc(2027, 1, 15, 8, 0)


def berlin_program(**kwargs):
    defaults = {
        "time_zone": "Europe/Berlin",
        "starts_on": dt.date(2027, 1, 1),
        "response_window_days": 14,
    }
    return ProgramFactory(**{**defaults, **kwargs})


@pytest.fixture
def program():
    return berlin_program(name="Partner NPS")


@pytest.fixture
def populate_calls(monkeypatch):
    """Records what the on-commit callbacks would enqueue, without touching the broker."""
    calls = []
    monkeypatch.setattr(tasks, "populate_wave", SimpleNamespace(delay=calls.append))
    return calls


def test_a_tick_at_the_opening_instant_opens_the_periods_wave(program):
    opened = waves_open_due(now=Q1_2027_OPENS)

    assert len(opened) == 1
    wave = Wave.objects.get()
    assert opened == [wave]
    assert wave.program == program
    assert wave.period_start == dt.date(2027, 1, 15)
    assert wave.label == "2027 Q1"
    assert wave.status == Wave.Status.OPEN
    assert wave.opens_at == Q1_2027_OPENS
    assert wave.closes_at == utc(2027, 1, 29, 8, 0)


def test_the_tick_reads_the_clock_when_no_instant_is_given(program):
    with time_machine.travel(utc(2027, 4, 20, 12, 0), tick=False):
        opened = waves_open_due()
    assert [w.period_start for w in opened] == [dt.date(2027, 4, 15)]
    assert opened[0].opens_at == utc(2027, 4, 15, 7, 0)  # 09:00 CEST


def test_a_tick_one_second_before_the_opening_opens_nothing(program):
    assert waves_open_due(now=Q1_2027_OPENS - dt.timedelta(seconds=1)) == []
    assert not Wave.objects.exists()


def test_ticking_twice_opens_one_wave(program):
    first = waves_open_due(now=Q1_2027_OPENS)
    second = waves_open_due(now=Q1_2027_OPENS + dt.timedelta(minutes=1))

    assert len(first) == 1
    assert second == []
    assert Wave.objects.count() == 1


def test_each_active_program_gets_its_own_wave(program):
    other = berlin_program(name="Distributor NPS")

    opened = waves_open_due(now=Q1_2027_OPENS)

    assert sorted(w.program.name for w in opened) == ["Distributor NPS", "Partner NPS"]
    assert Wave.objects.filter(program=program).count() == 1
    assert Wave.objects.filter(program=other).count() == 1


def test_a_paused_program_opens_no_wave():
    berlin_program(is_active=False)
    assert waves_open_due(now=Q1_2027_OPENS) == []
    assert not Wave.objects.exists()


def test_no_wave_opens_for_a_period_before_the_program_starts():
    berlin_program(starts_on=dt.date(2027, 2, 1))
    assert waves_open_due(now=Q1_2027_OPENS + dt.timedelta(days=3)) == []
    # The first period on or after the start date opens normally.
    opened = waves_open_due(now=utc(2027, 4, 15, 7, 0))
    assert [w.period_start for w in opened] == [dt.date(2027, 4, 15)]


def test_a_period_whose_response_window_has_passed_is_not_opened(program):
    # The Q1 window is 15-29 January; beat comes back on 1 February.
    assert waves_open_due(now=utc(2027, 2, 1, 9, 0)) == []
    assert waves_open_due(now=utc(2027, 1, 29, 8, 0)) == []  # closes_at itself is too late
    assert len(waves_open_due(now=utc(2027, 1, 29, 7, 59))) == 1


def test_after_beat_was_down_three_periods_only_the_current_one_opens(program):
    waves_open_due(now=Q1_2027_OPENS)

    # Beat down from February 2027 to January 2028: Q2, Q3 and Q4 were missed.
    opened = waves_open_due(now=utc(2028, 1, 15, 8, 30))

    assert [w.period_start for w in opened] == [dt.date(2028, 1, 15)]
    waves = {w.period_start: w.status for w in Wave.objects.filter(program=program)}
    assert waves == {
        dt.date(2027, 1, 15): Wave.Status.OPEN,
        dt.date(2027, 4, 15): Wave.Status.SKIPPED,
        dt.date(2027, 7, 15): Wave.Status.SKIPPED,
        dt.date(2027, 10, 15): Wave.Status.SKIPPED,
        dt.date(2028, 1, 15): Wave.Status.OPEN,
    }
    skipped = Wave.objects.get(period_start=dt.date(2027, 7, 15))
    assert skipped.label == "2027 Q3"
    assert skipped.opens_at == utc(2027, 7, 15, 7, 0)
    assert not Invitation.objects.filter(wave__status=Wave.Status.SKIPPED).exists()


def test_skipped_waves_are_not_reopened_by_a_later_tick(program):
    waves_open_due(now=Q1_2027_OPENS)
    waves_open_due(now=utc(2028, 1, 15, 8, 30))
    assert waves_open_due(now=utc(2028, 1, 15, 8, 31)) == []
    assert Wave.objects.filter(status=Wave.Status.SKIPPED).count() == 3


def test_the_wave_opens_at_9_local_on_the_berlin_spring_forward_day():
    berlin_program(frequency=1, anchor_day=28)
    # 28 Mar 2027 09:00 CEST is 07:00 UTC, one hour earlier in UTC than in February.
    assert waves_open_due(now=utc(2027, 3, 28, 6, 59)) == []
    opened = waves_open_due(now=utc(2027, 3, 28, 7, 0))
    assert [(w.period_start, w.opens_at) for w in opened] == [
        (dt.date(2027, 3, 28), utc(2027, 3, 28, 7, 0))
    ]


def test_opening_the_same_period_twice_returns_the_first_wave(program):
    wave, created = wave_open(program=program, period_start=dt.date(2027, 1, 15))
    again, created_again = wave_open(program=program, period_start=dt.date(2027, 1, 15))

    assert (created, created_again) == (True, False)
    assert again.pk == wave.pk
    assert Wave.objects.count() == 1


def test_losing_the_race_to_another_tick_returns_the_winners_wave(program, monkeypatch):
    winner, _ = wave_open(program=program, period_start=dt.date(2027, 1, 15))
    # The other tick's look-up ran before the winner committed: it misses, its INSERT hits the
    # unique constraint, and get_or_create falls back to reading the winner's row.
    real_get = QuerySet.get
    misses = []

    def get_that_misses_once(self, *args, **kwargs):
        if self.model is Wave and not misses:
            misses.append(kwargs)
            raise Wave.DoesNotExist
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "get", get_that_misses_once)
    wave, created = wave_open(program=program, period_start=dt.date(2027, 1, 15))

    assert misses, "the simulated race did not happen"
    assert (wave.pk, created) == (winner.pk, False)
    assert Wave.objects.count() == 1
    assert not Wave.objects.filter(status=Wave.Status.SKIPPED).exists()


def test_the_database_rejects_a_second_wave_for_the_same_period(program):
    wave, _ = wave_open(program=program, period_start=dt.date(2027, 1, 15))
    with pytest.raises(IntegrityError), transaction.atomic():
        Wave.objects.create(
            program=program,
            period_start=dt.date(2027, 1, 15),
            label="duplicate",
            opens_at=wave.opens_at,
            closes_at=wave.closes_at,
        )
    assert Wave.objects.count() == 1


def test_the_database_rejects_a_wave_that_closes_before_it_opens(program):
    with pytest.raises(IntegrityError), transaction.atomic():
        Wave.objects.create(
            program=program,
            period_start=dt.date(2027, 1, 15),
            label="backwards",
            opens_at=Q1_2027_OPENS,
            closes_at=Q1_2027_OPENS,
        )


def test_opening_a_wave_enqueues_its_population_once_after_commit(
    program, django_capture_on_commit_callbacks, populate_calls
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        waves_open_due(now=Q1_2027_OPENS)
        waves_open_due(now=Q1_2027_OPENS + dt.timedelta(minutes=1))
        wave_open(program=program, period_start=dt.date(2027, 1, 15))

    assert len(callbacks) == 1
    assert populate_calls == []  # nothing is enqueued before the commit
    callbacks[0]()
    assert populate_calls == [Wave.objects.get().pk]


def test_recording_skipped_periods_enqueues_nothing_for_them(
    program, django_capture_on_commit_callbacks, populate_calls
):
    waves_open_due(now=Q1_2027_OPENS)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        waves_open_due(now=utc(2028, 1, 15, 8, 30))
    for callback in callbacks:
        callback()
    assert populate_calls == [Wave.objects.get(period_start=dt.date(2028, 1, 15)).pk]


# --- Closing ---------------------------------------------------------------------------------


def test_closing_due_waves_closes_them_and_cancels_their_queued_invitations():
    now = utc(2027, 2, 1, 12, 0)
    ended = WaveFactory(opens_at=now - dt.timedelta(days=15), closes_at=now - dt.timedelta(days=1))
    running = WaveFactory(opens_at=now - dt.timedelta(days=2))
    queued = InvitationFactory(wave=ended, status=Invitation.Status.QUEUED, sent_at=None)
    sent = InvitationFactory(wave=ended, status=Invitation.Status.SENT)
    other_queued = InvitationFactory(wave=running, status=Invitation.Status.QUEUED, sent_at=None)

    assert waves_close_due(now=now) == 1

    ended.refresh_from_db()
    assert ended.status == Wave.Status.CLOSED
    assert Wave.objects.get(pk=running.pk).status == Wave.Status.OPEN
    queued.refresh_from_db()
    assert queued.status == Invitation.Status.CANCELLED
    assert queued.last_error == "The wave closed before sending."
    assert Invitation.objects.get(pk=sent.pk).status == Invitation.Status.SENT
    assert Invitation.objects.get(pk=other_queued.pk).status == Invitation.Status.QUEUED


def test_closing_cancels_rows_stuck_sending_but_not_one_being_sent_now():
    now = utc(2027, 2, 1, 12, 0)
    ended = WaveFactory(opens_at=now - dt.timedelta(days=15), closes_at=now - dt.timedelta(days=1))
    stuck, busy = InvitationFactory.create_batch(
        2, wave=ended, status=Invitation.Status.SENDING, sent_at=None
    )
    Invitation.objects.filter(pk=stuck.pk).update(claimed_at=now - dt.timedelta(hours=1))
    Invitation.objects.filter(pk=busy.pk).update(claimed_at=now - dt.timedelta(minutes=1))

    waves_close_due(now=now)

    assert Invitation.objects.get(pk=stuck.pk).status == Invitation.Status.CANCELLED
    assert Invitation.objects.get(pk=busy.pk).status == Invitation.Status.SENDING


def test_a_wave_closes_exactly_at_its_closing_instant():
    closes = utc(2027, 1, 29, 8, 0)
    wave = WaveFactory(opens_at=closes - dt.timedelta(days=14), closes_at=closes)
    assert waves_close_due(now=closes - dt.timedelta(seconds=1)) == 0
    assert waves_close_due(now=closes) == 1
    wave.refresh_from_db()
    assert wave.status == Wave.Status.CLOSED


def test_closing_twice_is_a_noop():
    now = utc(2027, 2, 1)
    WaveFactory(opens_at=now - dt.timedelta(days=15), closes_at=now - dt.timedelta(days=1))
    assert waves_close_due(now=now) == 1
    assert waves_close_due(now=now) == 0


def test_skipped_waves_are_not_closed():
    now = utc(2027, 2, 1)
    WaveFactory(
        opens_at=now - dt.timedelta(days=15),
        closes_at=now - dt.timedelta(days=1),
        status=Wave.Status.SKIPPED,
    )
    assert waves_close_due(now=now) == 0
    assert Wave.objects.get().status == Wave.Status.SKIPPED


def test_the_survey_tick_opens_closes_and_enqueues(program, populate_calls):
    with time_machine.travel(Q1_2027_OPENS + dt.timedelta(minutes=1), tick=False):
        result = tasks.run_survey_tick()
    wave = Wave.objects.get()
    assert result == {"opened": [wave.pk], "closed": 0, "enqueued": 0}
    assert services.waves_open_due(now=Q1_2027_OPENS + dt.timedelta(minutes=2)) == []


# --- A year of ticks under a controlled clock, across both 2027 DST changes -----------------


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc_hours"),
    [
        # 09:00 Berlin: CET (UTC+1) until 28 March, CEST (UTC+2) until 31 October.
        ("Europe/Berlin", 28, [8, 8, 7, 7, 7, 7, 7, 7, 7, 7, 8, 8]),
        # 09:00 New York: EST (UTC-5) until 14 March, EDT (UTC-4) until 7 November.
        ("America/New_York", 14, [14, 14, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14]),
    ],
)
def test_a_year_of_minute_ticks_opens_each_monthly_wave_once_at_9_local(
    zone, day, expected_utc_hours
):
    """Ticks one second before, at, and twice after each opening instant of 2027 (the 28th in
    Berlin and the 14th in New York are the spring-forward days themselves)."""
    program = ProgramFactory(
        frequency=1,
        anchor_month=1,
        anchor_day=day,
        send_hour=9,
        time_zone=zone,
        starts_on=dt.date(2027, 1, 1),
        response_window_days=7,
    )
    opened_hours = []
    for month, hour in enumerate(expected_utc_hours, start=1):
        opening = utc(2027, month, day, hour, 0)
        with time_machine.travel(opening - dt.timedelta(seconds=1), tick=False) as clock:
            assert waves_open_due() == []
            clock.shift(dt.timedelta(seconds=1))
            [wave] = waves_open_due()
            assert waves_open_due() == []  # the tick run twice
            clock.shift(dt.timedelta(minutes=1))
            assert waves_open_due() == []
            waves_close_due(now=opening + dt.timedelta(days=8))
        opened_hours.append(wave.opens_at.hour)
        assert wave.opens_at.astimezone(ZoneInfo(zone)).time() == dt.time(9, 0)
    assert opened_hours == expected_utc_hours
    assert Wave.objects.filter(program=program).count() == 12
    assert not Wave.objects.filter(program=program, status=Wave.Status.SKIPPED).exists()
