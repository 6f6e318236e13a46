"""Net Promoter Score arithmetic: plain Python, no ORM, tested without a database.

Promoters score 9-10, passives 7-8, detractors 0-6.
``NPS = 100 * (promoters - detractors) / n``, from -100 to 100. With p and d the promoter and
detractor shares, its standard error is ``100 * sqrt((p + d - (p - d)**2) / n)`` and the 95%
margin of error is 1.96 standard errors. An empty set has no NPS: every figure is ``None``.

Figures are kept at full precision; templates round them for display (one decimal for NPS,
margins and shares; see ``docs/scoring.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Z_95 = 1.96

PROMOTER = "promoter"
PASSIVE = "passive"
DETRACTOR = "detractor"


def category(score: int) -> str:
    """The category of a 0-10 score. Raises ``ValueError`` outside 0-10."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise ValueError(f"An NPS score is a whole number from 0 to 10, not {score!r}.")
    if score >= 9:
        return PROMOTER
    if score >= 7:
        return PASSIVE
    return DETRACTOR


@dataclass(frozen=True)
class NpsCounts:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @classmethod
    def from_scores(cls, scores: Iterable[int]) -> NpsCounts:
        tally = {PROMOTER: 0, PASSIVE: 0, DETRACTOR: 0}
        for score in scores:
            tally[category(score)] += 1
        return cls(tally[PROMOTER], tally[PASSIVE], tally[DETRACTOR])

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    def share(self, count: int) -> float | None:
        return None if self.n == 0 else count / self.n

    @property
    def promoter_share(self) -> float | None:
        return self.share(self.promoters)

    @property
    def passive_share(self) -> float | None:
        return self.share(self.passives)

    @property
    def detractor_share(self) -> float | None:
        return self.share(self.detractors)

    @property
    def nps(self) -> float | None:
        if self.n == 0:
            return None
        return 100 * (self.promoters - self.detractors) / self.n

    @property
    def standard_error(self) -> float | None:
        if self.n == 0:
            return None
        p = self.promoters / self.n
        d = self.detractors / self.n
        variance = p + d - (p - d) ** 2
        return 100 * math.sqrt(max(variance, 0.0) / self.n)

    @property
    def margin_of_error(self) -> float | None:
        se = self.standard_error
        return None if se is None else Z_95 * se

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "nps": self.nps,
            "standard_error": self.standard_error,
            "margin_of_error": self.margin_of_error,
        }


@dataclass(frozen=True)
class NpsChange:
    """The change in NPS from ``before`` to ``after`` and whether it exceeds the noise.

    ``delta`` and ``standard_error`` are the plain figures shown to people: the difference of the
    two NPS and ``sqrt(se_before**2 + se_after**2)`` (the waves are independent samples).

    The verdict is an *adjusted* two-sample z-test (the Agresti-Caffo idea carried over to the
    three NPS categories): one pseudo-answer is added to each category of each wave, and the
    change is significant at 95% when the adjusted difference exceeds 1.96 adjusted standard
    errors. The plain test breaks down on small or unanimous waves: one detractor then one
    promoter gives two standard errors of 0, and any move would be "significant". With the
    adjustment, all detractors then all promoters is within noise on 1 or 2 answers per wave and
    significant from 3 per wave; on waves of a few dozen answers or more the verdict agrees
    with the plain test except right at the threshold. See docs/scoring.md.
    """

    before: NpsCounts
    after: NpsCounts

    @property
    def delta(self) -> float | None:
        if self.before.nps is None or self.after.nps is None:
            return None
        return self.after.nps - self.before.nps

    @property
    def standard_error(self) -> float | None:
        if self.before.standard_error is None or self.after.standard_error is None:
            return None
        return math.sqrt(self.before.standard_error**2 + self.after.standard_error**2)

    @staticmethod
    def _adjusted(counts: NpsCounts) -> NpsCounts:
        return NpsCounts(counts.promoters + 1, counts.passives + 1, counts.detractors + 1)

    @property
    def adjusted_delta(self) -> float | None:
        """The difference of the two NPS with one pseudo-answer added to each category."""
        if self.delta is None:
            return None
        return self._adjusted(self.after).nps - self._adjusted(self.before).nps

    @property
    def adjusted_standard_error(self) -> float | None:
        if self.delta is None:
            return None
        before, after = self._adjusted(self.before), self._adjusted(self.after)
        return math.sqrt(before.standard_error**2 + after.standard_error**2)

    @property
    def is_significant(self) -> bool | None:
        """True or False at 95%; None when either wave has no responses (no change to judge)."""
        if self.delta is None:
            return None
        # The adjusted standard error is never 0: every adjusted wave has all three categories.
        return abs(self.adjusted_delta) > Z_95 * self.adjusted_standard_error


def response_rate(responses: int, invited: int) -> float | None:
    """Responses per invitation as a share from 0 to 1; ``None`` when nobody was invited."""
    return None if invited == 0 else responses / invited


def recovery_rate(recovered: int, followed: int) -> float | None:
    """Share (0 to 1) of past detractors whose next response was passive or promoter.

    ``followed`` counts detractor answers that have a next answer from the same contact in a
    later wave of the same program; those still waiting for one are left out, since nobody knows
    yet whether they recovered. ``None`` when there are none.
    """
    return None if followed == 0 else recovered / followed
