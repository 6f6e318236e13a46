"""Reads for the reports: NPS counts per wave and the 0-10 distribution, as SQL aggregates.

Each function issues a fixed number of queries however many waves or responses there are; the
arithmetic on the counts is in ``scoring/nps.py``.

Response rate is responses / invitations *sent* (status ``sent``). Queued, failed and cancelled
invitations never reached anyone, so counting them would blame the partners for our delivery
problems; delivery health is reported separately. See docs/scoring.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from surveys.models import Invitation, Program, Response, Wave

from . import nps


@dataclass(frozen=True)
class WaveSummary:
    """One wave's figures: its NPS counts, invitations sent and responses."""

    wave: Wave
    counts: nps.NpsCounts
    invited: int

    @property
    def responded(self) -> int:
        return self.counts.n

    @property
    def has_responses(self) -> bool:
        return self.counts.n > 0

    @property
    def nps(self) -> float | None:
        return self.counts.nps

    @property
    def margin_of_error(self) -> float | None:
        return self.counts.margin_of_error

    @property
    def response_rate(self) -> float | None:
        """Responses per invitation sent, from 0 to 1; None when nothing was sent."""
        return nps.response_rate(self.responded, self.invited)

    # Percentages (0-100) for templates, which cannot multiply.
    @staticmethod
    def _percent(share: float | None) -> float | None:
        return None if share is None else 100 * share

    @property
    def promoter_percent(self) -> float | None:
        return self._percent(self.counts.promoter_share)

    @property
    def passive_percent(self) -> float | None:
        return self._percent(self.counts.passive_share)

    @property
    def detractor_percent(self) -> float | None:
        return self._percent(self.counts.detractor_share)

    @property
    def response_rate_percent(self) -> float | None:
        return self._percent(self.response_rate)


@dataclass(frozen=True)
class ScoreBar:
    score: int
    count: int

    @property
    def category(self) -> str:
        return nps.category(self.score)


@dataclass(frozen=True)
class ScoreDistribution:
    """How many responses gave each score from 0 to 10 (all eleven present, zeros included)."""

    bars: list[ScoreBar] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(bar.count for bar in self.bars)

    @property
    def max_count(self) -> int:
        return max((bar.count for bar in self.bars), default=0)


def programs_for_reports() -> QuerySet[Program]:
    """Every program, active ones first, for the dashboard's program selector."""
    return Program.objects.order_by("-is_active", "name")


def wave_summaries(*, program: Program | int | None = None) -> list[WaveSummary]:
    """Per wave, newest first, skipped waves left out: NPS counts, invitations sent, responses.

    Three queries whatever the number of waves: the waves, one conditional aggregate over
    responses grouped by wave, one aggregate over sent invitations grouped by wave. (Joining
    responses and invitations in a single query would multiply the counts.)
    """
    waves = Wave.objects.exclude(status=Wave.Status.SKIPPED).select_related("program")
    responses = Response.objects.all()
    invitations = Invitation.objects.filter(status=Invitation.Status.SENT)
    if program is not None:
        waves = waves.filter(program=program)
        responses = responses.filter(program=program)
        invitations = invitations.filter(wave__program=program)
    waves = list(waves.order_by("-opens_at", "-pk"))
    if not waves:
        return []

    category_counts = {
        row["wave"]: row
        for row in responses.values("wave")
        .order_by()
        .annotate(
            promoters=Count("id", filter=Q(category=Response.Category.PROMOTER)),
            passives=Count("id", filter=Q(category=Response.Category.PASSIVE)),
            detractors=Count("id", filter=Q(category=Response.Category.DETRACTOR)),
        )
    }
    invited_counts = dict(
        invitations.values("wave").order_by().annotate(sent=Count("id")).values_list("wave", "sent")
    )

    summaries = []
    for wave in waves:
        row = category_counts.get(wave.pk, {})
        counts = nps.NpsCounts(
            promoters=row.get("promoters", 0),
            passives=row.get("passives", 0),
            detractors=row.get("detractors", 0),
        )
        summaries.append(
            WaveSummary(wave=wave, counts=counts, invited=invited_counts.get(wave.pk, 0))
        )
    return summaries


def score_distribution(*, wave: Wave | int) -> ScoreDistribution:
    """The 0-10 distribution of a wave's responses, in one query."""
    by_score = dict(
        Response.objects.filter(wave=wave)
        .values("score")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("score", "n")
    )
    return ScoreDistribution(bars=[ScoreBar(score, by_score.get(score, 0)) for score in range(11)])
