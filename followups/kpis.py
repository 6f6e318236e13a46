"""Loop KPIs from plain rows: pure Python, no ORM, so the arithmetic is tested by hand.

A row is one follow-up: when it was made, when first contact was due and happened, whether its
loop was closed, whether it was closed with a root cause, and the contact's next score.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

CLOSED_STATUSES = ("resolved", "closed", "no_action")


@dataclass(frozen=True)
class Row:
    owner: str
    program: str
    created_at: dt.datetime
    due_at: dt.datetime
    first_contacted_at: dt.datetime | None
    status: str
    loop_closed: bool
    has_root_cause: bool
    detractor: bool
    next_score: int | None


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share(part: int, whole: int) -> float | None:
    """part / whole as a percentage; None when there is nothing to divide."""
    return 100 * part / whole if whole else None


@dataclass(frozen=True)
class Kpis:
    followups: int
    median_hours_to_contact: float | None
    p90_hours_to_contact: float | None
    contacted_within_sla: float | None
    sla_decided: int
    loops_closed: float | None
    closed_with_root_cause: float | None
    closed: int
    recovered: int
    stayed: int
    no_answer_yet: int
    recovery_rate: float | None


def kpis(rows: Iterable[Row], *, now: dt.datetime) -> Kpis:
    rows = list(rows)
    hours = [
        (r.first_contacted_at - r.created_at).total_seconds() / 3600
        for r in rows
        if r.first_contacted_at is not None
    ]
    # The SLA is decided once first contact happened, or once its due time passed without it.
    decided = [r for r in rows if r.first_contacted_at is not None or r.due_at < now]
    in_time = [r for r in decided if r.first_contacted_at and r.first_contacted_at <= r.due_at]
    closed = [r for r in rows if r.status in CLOSED_STATUSES]
    # Recovery: detractors whose loop was closed, by their next answer.
    loops = [r for r in rows if r.loop_closed and r.detractor]
    recovered = sum(1 for r in loops if r.next_score is not None and r.next_score >= 7)
    stayed = sum(1 for r in loops if r.next_score is not None and r.next_score < 7)
    return Kpis(
        followups=len(rows),
        median_hours_to_contact=percentile(hours, 50),
        p90_hours_to_contact=percentile(hours, 90),
        contacted_within_sla=share(len(in_time), len(decided)),
        sla_decided=len(decided),
        loops_closed=share(sum(1 for r in rows if r.loop_closed), len(rows)),
        closed_with_root_cause=share(sum(1 for r in closed if r.has_root_cause), len(closed)),
        closed=len(closed),
        recovered=recovered,
        stayed=stayed,
        no_answer_yet=len(loops) - recovered - stayed,
        recovery_rate=share(recovered, recovered + stayed),
    )


def kpis_by(rows: Iterable[Row], key: str, *, now: dt.datetime) -> list[tuple[str, Kpis]]:
    """KPIs per owner or per program (``key`` is a Row field), sorted by name."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, key)].append(row)
    return [(name, kpis(group, now=now)) for name, group in sorted(groups.items())]
