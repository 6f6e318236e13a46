"""Loop KPI arithmetic by hand: pure functions, no database."""

import datetime as dt

import pytest

from followups.kpis import Row, kpis, kpis_by, percentile, share

T0 = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=30)


def row(
    hours_to_contact=None,
    *,
    due_hours=16,
    status="open",
    loop=False,
    cause=False,
    detractor=True,
    next_score=None,
    owner="sam",
    program="Partners",
):
    contacted = T0 + dt.timedelta(hours=hours_to_contact) if hours_to_contact is not None else None
    return Row(
        owner=owner,
        program=program,
        created_at=T0,
        due_at=T0 + dt.timedelta(hours=due_hours),
        first_contacted_at=contacted,
        status=status,
        loop_closed=loop,
        has_root_cause=cause,
        detractor=detractor,
        next_score=next_score,
    )


def test_percentiles_interpolate_between_ranks():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert percentile(values, 50) == 5.5
    assert percentile(values, 90) == pytest.approx(9.1)
    assert percentile([4], 90) == 4
    assert percentile([], 50) is None


def test_a_share_of_nothing_is_none_not_zero():
    assert share(1, 4) == 25
    assert share(0, 0) is None


def test_kpis_of_a_handful_of_followups():
    rows = [
        row(2, status="closed", loop=True, cause=True, next_score=8),  # recovered
        row(10, status="closed", loop=True, cause=True, next_score=3),  # stayed
        row(30, status="no_action"),  # contacted late, closed without a cause
        row(None, due_hours=16),  # never contacted, due passed: an SLA miss
        row(4, status="resolved", cause=True),
    ]
    k = kpis(rows, now=NOW)
    assert k.followups == 5
    assert k.median_hours_to_contact == 7  # of 2, 4, 10, 30
    assert k.p90_hours_to_contact == pytest.approx(24)  # 10 + 0.7 * 20
    assert k.contacted_within_sla == 60  # 2, 10 and 4 hours of 5 decided
    assert k.sla_decided == 5
    assert k.loops_closed == 40
    assert k.closed == 4 and k.closed_with_root_cause == 75
    assert (k.recovered, k.stayed, k.no_answer_yet) == (1, 1, 0)
    assert k.recovery_rate == 50


def test_a_followup_not_yet_due_and_not_contacted_does_not_count_against_the_sla():
    k = kpis([row(None, due_hours=24 * 60)], now=NOW)
    assert k.sla_decided == 0
    assert k.contacted_within_sla is None


def test_recovery_counts_only_detractors_whose_loop_closed():
    rows = [
        row(1, loop=True, next_score=None),  # no answer yet
        row(1, loop=False, next_score=9),  # loop not closed: not counted
        row(1, loop=True, detractor=False, next_score=9),  # a passive's follow-up
    ]
    k = kpis(rows, now=NOW)
    assert (k.recovered, k.stayed, k.no_answer_yet, k.recovery_rate) == (0, 0, 1, None)


def test_kpis_by_owner_are_sorted_by_name():
    rows = [row(1, owner="sam"), row(3, owner="olga"), row(5, owner="sam")]
    groups = kpis_by(rows, "owner", now=NOW)
    assert [(name, k.followups, k.median_hours_to_contact) for name, k in groups] == [
        ("olga", 1, 3),
        ("sam", 2, 3),
    ]


def test_no_followups_give_no_figures():
    k = kpis([], now=NOW)
    assert (k.followups, k.median_hours_to_contact, k.loops_closed, k.recovery_rate) == (
        0,
        None,
        None,
        None,
    )
