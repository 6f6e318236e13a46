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

    The two waves are independent samples, so the standard error of the difference is
    ``sqrt(se_before**2 + se_after**2)``; the change is significant at 95% when its absolute size
    exceeds 1.96 of those.
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

    @property
    def is_significant(self) -> bool | None:
        if self.delta is None:
            return None
        se = self.standard_error
        if se == 0:
            return self.delta != 0
        return abs(self.delta) > Z_95 * se


def response_rate(responses: int, invited: int) -> float | None:
    """Responses per invitation as a share from 0 to 1; ``None`` when nobody was invited."""
    return None if invited == 0 else responses / invited
