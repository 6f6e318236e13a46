"""Reads for the reports: NPS counts per wave and the 0-10 distribution, as SQL aggregates.

Each function issues a fixed number of queries however many waves or responses there are; the
arithmetic on the counts is in ``scoring/nps.py``.

Response rate is responses / invitations *sent* (status ``sent``). Queued, failed and cancelled
invitations never reached anyone, so counting them would blame the partners for our delivery
problems; delivery health is reported separately. See docs/scoring.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    QuerySet,
    Window,
)
from django.db.models.functions import Lead

from followups.models import Change
from surveys.models import Invitation, Partner, PartnerType, Program, Response, Tier, Wave

from . import nps
from .models import Theme

SMALL_SAMPLE = 30  # fewer responses than this get a "small sample" mark
GROUPS = ("wave", "tier", "region", "partner_type", "account_owner")
SEGMENTS = ("tier", "region", "partner_type", "account_owner")
SEGMENT_LABELS = {
    "tier": "Tier",
    "region": "Region",
    "partner_type": "Partner type",
    "account_owner": "Account owner",
}


# --- Filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    """What a report counts: responses of a program, wave, partner, date range and segment.

    Dates are whole UTC days, both ends included. Segments are the ones recorded on each
    response when it came in. ``tier`` and ``partner_type`` match exactly (so the filtered
    report can use the ``surveys_resp_prog_tier_time`` index; ``canonical_segment`` turns a
    user's spelling into the stored one), ``region`` case-insensitively (free text).
    """

    program: int | None = None
    wave: int | None = None
    partner: int | None = None
    submitted_after: dt.date | None = None
    submitted_before: dt.date | None = None
    tier: str | None = None
    region: str | None = None
    partner_type: str | None = None
    account_owner: int | None = None

    @property
    def narrows_responses(self) -> bool:
        """True when anything but the program narrows the responses: invitations do not record
        segments or answer dates, so response rates are not computed then."""
        return any(
            getattr(self, name) is not None
            for name in (
                "wave",
                "partner",
                "submitted_after",
                "submitted_before",
                "tier",
                "region",
                "partner_type",
                "account_owner",
            )
        )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def response_filter(filters: ReportFilters, *, prefix: str = "") -> Q:
    """The conditions of ``filters`` on responses as a Q, with ``prefix`` before each lookup
    (``"responses__"`` when counting from the wave side)."""
    lookups = {
        "program": "program_id",
        "wave": "wave_id",
        "partner": "partner_id",
        "account_owner": "account_owner_id",
        "tier": "tier",
        "partner_type": "partner_type",
        "region": "region__iexact",
    }
    q = Q()
    for name, lookup in lookups.items():
        value = getattr(filters, name)
        if value is not None:
            q &= Q(**{prefix + lookup: value})
    if filters.submitted_after:
        q &= Q(**{prefix + "submitted_at__gte": _day_start(filters.submitted_after)})
    if filters.submitted_before:
        end = _day_start(filters.submitted_before + dt.timedelta(days=1))
        q &= Q(**{prefix + "submitted_at__lt": end})
    return q


def canonical_segment(field_name: str, value: str) -> str:
    """The stored spelling of a tier or partner type typed in any case ("gold" -> "Gold"), in
    one query; the value itself when no such tier or type exists (an old, renamed one)."""
    model = {"tier": Tier, "partner_type": PartnerType}[field_name]
    found = model.objects.filter(name__iexact=value).values_list("name", flat=True).first()
    return found or value


def category_counts(prefix: str = "", where: Q | None = None) -> dict:
    """The three conditional counts every report aggregates, for ``.annotate``/``.aggregate``.

    They count ``category`` (never null), not ``id``, so a query whose conditions are all on
    indexed columns reads only the ``surveys_resp_prog_tier_time`` index."""
    where = where if where is not None else Q()
    column = prefix + "category"
    return {
        "promoters": Count(column, filter=where & Q(**{column: Response.Category.PROMOTER})),
        "passives": Count(column, filter=where & Q(**{column: Response.Category.PASSIVE})),
        "detractors": Count(column, filter=where & Q(**{column: Response.Category.DETRACTOR})),
    }


def _counts(row: dict) -> nps.NpsCounts:
    return nps.NpsCounts(
        promoters=row.get("promoters") or 0,
        passives=row.get("passives") or 0,
        detractors=row.get("detractors") or 0,
    )


@dataclass(frozen=True)
class WaveSummary:
    """One wave's figures: its NPS counts, invitations sent and responses."""

    wave: Wave
    counts: nps.NpsCounts
    invited: int | None  # None when filters narrow the responses (see ReportFilters)

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
        """Responses per invitation sent, from 0 to 1; None when nothing was sent or the
        invitations were not counted."""
        if self.invited is None:
            return None
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


def wave_summaries(
    *, program: Program | int | None = None, filters: ReportFilters | None = None
) -> list[WaveSummary]:
    """Per wave, newest first, skipped waves left out: NPS counts, invitations sent, responses.

    Three queries whatever the number of waves: the waves, one conditional aggregate over
    responses grouped by wave, one aggregate over sent invitations grouped by wave. (Joining
    responses and invitations in a single query would multiply the counts.) When ``filters``
    narrow the responses beyond the program, invitations are not counted (``invited`` is None)
    and only waves that overlap the date range are listed: two queries.
    """
    filters = filters or ReportFilters()
    if program is not None:
        filters = dataclasses.replace(filters, program=getattr(program, "pk", program))
    waves = Wave.objects.exclude(status=Wave.Status.SKIPPED).select_related("program")
    if filters.program is not None:
        waves = waves.filter(program_id=filters.program)
    if filters.wave is not None:
        waves = waves.filter(pk=filters.wave)
    if filters.submitted_after:
        waves = waves.filter(closes_at__gte=_day_start(filters.submitted_after))
    if filters.submitted_before:
        waves = waves.filter(
            opens_at__lt=_day_start(filters.submitted_before + dt.timedelta(days=1))
        )
    waves = list(waves.order_by("-opens_at", "-pk"))
    if not waves:
        return []

    responses = Response.objects.filter(response_filter(filters))
    by_wave = {
        row["wave"]: row
        for row in responses.values("wave").order_by().annotate(**category_counts())
    }
    invited_counts = None
    if not filters.narrows_responses:
        invitations = Invitation.objects.filter(status=Invitation.Status.SENT)
        if filters.program is not None:
            invitations = invitations.filter(wave__program_id=filters.program)
        invited_counts = dict(
            invitations.values("wave")
            .order_by()
            .annotate(sent=Count("id"))
            .values_list("wave", "sent")
        )

    return [
        WaveSummary(
            wave=wave,
            counts=_counts(by_wave.get(wave.pk, {})),
            invited=None if invited_counts is None else invited_counts.get(wave.pk, 0),
        )
        for wave in waves
    ]


def score_distribution(
    *, wave: Wave | int, filters: ReportFilters | None = None
) -> ScoreDistribution:
    """The 0-10 distribution of a wave's responses (narrowed by ``filters``), in one query."""
    by_score = dict(
        Response.objects.filter(response_filter(filters or ReportFilters()), wave=wave)
        .values("score")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("score", "n")
    )
    return ScoreDistribution(bars=[ScoreBar(score, by_score.get(score, 0)) for score in range(11)])


# --- Grouped NPS: the segment table and the API ---------------------------------------------


@dataclass(frozen=True)
class NpsGroup:
    """One row of a grouped report: the group's key (wave or owner id, or the segment value),
    a label for people, and its counts."""

    key: str | None
    label: str
    counts: nps.NpsCounts

    @property
    def n(self) -> int:
        return self.counts.n

    @property
    def nps(self) -> float | None:
        return self.counts.nps

    @property
    def margin_of_error(self) -> float | None:
        return self.counts.margin_of_error

    @property
    def small_sample(self) -> bool:
        return self.counts.n < SMALL_SAMPLE

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, **self.counts.as_dict()}


def nps_groups(*, filters: ReportFilters, group_by: str) -> list[NpsGroup]:
    """NPS counts per wave or segment, in ONE grouped conditional aggregate.

    ``group_by="wave"`` starts from the (open or closed) waves in scope, so a wave without
    matching responses is listed with n = 0 and no NPS; the segment groupings list the values
    that occur among the matching responses, in alphabetical order (account owners by user
    name, responses without an owner last).
    """
    if group_by not in GROUPS:
        raise ValueError(f"Cannot group NPS by {group_by!r}.")
    groups = []
    if group_by == "wave":
        waves = Wave.objects.filter(status__in=[Wave.Status.OPEN, Wave.Status.CLOSED])
        if filters.program is not None:
            waves = waves.filter(program_id=filters.program)
        if filters.wave is not None:
            waves = waves.filter(pk=filters.wave)
        where = response_filter(filters, prefix="responses__")
        rows = (
            waves.values("id", "label", "program__name", "opens_at")
            .annotate(**category_counts("responses__", where))
            .order_by("opens_at", "id")
        )
        for row in rows:
            label = f"{row['program__name']} · {row['label']}"
            groups.append(NpsGroup(str(row["id"]), label, _counts(row)))
        return groups

    responses = Response.objects.filter(response_filter(filters))
    if group_by == "account_owner":
        rows = (
            responses.values("account_owner_id", "account_owner__username")
            .annotate(**category_counts())
            .order_by(F("account_owner__username").asc(nulls_last=True), "account_owner_id")
        )
        for row in rows:
            key = row["account_owner_id"]
            label = row["account_owner__username"] or "No account owner"
            groups.append(NpsGroup(None if key is None else str(key), label, _counts(row)))
        return groups
    rows = responses.values(group_by).annotate(**category_counts()).order_by(group_by)
    for row in rows:
        groups.append(NpsGroup(row[group_by], row[group_by] or "(none)", _counts(row)))
    return groups


def overall_counts(groups: list[NpsGroup]) -> nps.NpsCounts:
    """The counts of all the groups together (each response is in exactly one group)."""
    return nps.NpsCounts(
        promoters=sum(g.counts.promoters for g in groups),
        passives=sum(g.counts.passives for g in groups),
        detractors=sum(g.counts.detractors for g in groups),
    )


def nps_overall(*, filters: ReportFilters) -> nps.NpsCounts:
    """The counts of every matching response, in one aggregate."""
    return _counts(Response.objects.filter(response_filter(filters)).aggregate(**category_counts()))


def segment_table(*, filters: ReportFilters, by: str) -> list[NpsGroup]:
    """The dashboard's segment table: NPS, n and margin per tier, region, partner type or
    account owner, in one query (``nps_groups``)."""
    if by not in SEGMENTS:
        raise ValueError(f"Unknown segment {by!r}.")
    return nps_groups(filters=filters, group_by=by)


# --- Recovery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """Past detractors with a next answer (``followed``) and how many of those moved up."""

    recovered: int
    followed: int

    @property
    def rate(self) -> float | None:
        return nps.recovery_rate(self.recovered, self.followed)

    @property
    def percent(self) -> float | None:
        return None if self.rate is None else 100 * self.rate


def recovery(*, filters: ReportFilters | None = None) -> Recovery:
    """Recovery of detractors, in one query.

    A window function (``LEAD``) gives every response of the program the category of the same
    contact's next response in the program, waves in opening order (a contact answers a wave at
    most once); the outer query counts the detractor responses that match ``filters``:
    ``followed`` those with a next response, ``recovered`` those whose next response is
    passive or promoter. The next response is looked for among all the contact's responses in
    the program, whatever the date range or segment filters, which only pick the detractors.
    """
    filters = filters or ReportFilters()
    responses = Response.objects.all()
    if filters.program is not None:
        responses = responses.filter(program_id=filters.program)
    inner = (
        responses.annotate(
            next_category=Window(
                Lead("category"),
                partition_by=[F("contact_id"), F("program_id")],
                order_by=[F("wave__opens_at").asc(), F("wave_id").asc()],
            ),
            counted=ExpressionWrapper(
                response_filter(filters) & Q(category=Response.Category.DETRACTOR),
                output_field=BooleanField(),
            ),
        )
        .order_by()
        .values("next_category", "counted")
    )
    sql, params = inner.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FILTER (WHERE next_category IS NOT NULL),"
            " COUNT(*) FILTER (WHERE next_category IN (%s, %s))"
            f" FROM ({sql}) AS responses WHERE counted",
            [Response.Category.PASSIVE, Response.Category.PROMOTER, *params],
        )
        followed, recovered = cursor.fetchone()
    return Recovery(recovered=recovered or 0, followed=followed or 0)


# --- Filter choices -------------------------------------------------------------------------


def segment_choices() -> dict[str, list]:
    """The choices of the report filters' segment selectors, in four small queries: tiers and
    partner types (admin lists), regions (distinct among partners: a small table, never a scan
    of responses), account owners (users who own a partner)."""
    User = get_user_model()
    return {
        "tier": list(Tier.objects.values_list("name", flat=True)),
        "partner_type": list(PartnerType.objects.values_list("name", flat=True)),
        "region": list(
            Partner.objects.exclude(region="")
            .values_list("region", flat=True)
            .order_by("region")
            .distinct()
        ),
        "account_owner": list(
            User.objects.filter(owned_partners__isnull=False)
            .distinct()
            .order_by("username")
            .values_list("pk", "username")
        ),
    }


# --- Partner page ---------------------------------------------------------------------------


def partner_detail(*, pk: int) -> Partner:
    """The partner with its tier, type and owner. Raises ``Partner.DoesNotExist``."""
    return Partner.objects.select_related("tier", "partner_type", "account_owner").get(pk=pk)


def partner_wave_summaries(partner: Partner | int) -> list[WaveSummary]:
    """The partner's NPS per wave it answered, newest first, in one query (invitations are not
    counted: ``invited`` is None)."""
    waves = (
        Wave.objects.filter(responses__partner=partner)
        .select_related("program")
        .annotate(**category_counts("responses__"))
        .order_by("-opens_at", "-pk")
    )
    return [
        WaveSummary(
            wave=w,
            counts=nps.NpsCounts(
                promoters=w.promoters, passives=w.passives, detractors=w.detractors
            ),
            invited=None,
        )
        for w in waves
    ]


def partner_responses(partner: Partner | int) -> QuerySet[Response]:
    """Every response of the partner, newest wave first, each with its contact, wave, program,
    follow-up (and its assignee and root cause) and the changes linked to the follow-up: two
    queries whatever the number of responses."""
    return (
        Response.objects.filter(partner=partner)
        .select_related(
            "wave",
            "program",
            "contact",
            "followup__assignee",
            "followup__root_cause",
        )
        .prefetch_related(
            Prefetch(
                "followup__changes",
                queryset=Change.objects.select_related("owner").order_by("-created_at", "-id"),
            )
        )
        .order_by("-wave__opens_at", "-submitted_at", "-id")
    )


# --- Comments and themes --------------------------------------------------------------------


def active_themes() -> list[Theme]:
    return list(Theme.objects.filter(is_active=True).order_by("name"))


def theme_condition(theme: Theme, *, prefix: str = "") -> Q:
    """SQL twin of ``Theme.matches``: the comment contains any keyword (case-insensitive)."""
    q = Q()
    for keyword in theme.keyword_list:
        q |= Q(**{prefix + "comment__icontains": keyword})
    return q if theme.keyword_list else Q(pk__in=[])


def comments(
    *,
    filters: ReportFilters,
    search: str = "",
    category: str = "",
    theme: Theme | None = None,
) -> QuerySet[Response]:
    """Responses with a comment, newest first, narrowed by the filters, a search in the comment
    or partner name, a category and a theme; with partner, wave and program joined."""
    queryset = (
        Response.objects.filter(response_filter(filters))
        .exclude(comment="")
        .select_related("partner", "wave", "program", "account_owner")
        .order_by("-submitted_at", "-id")
    )
    if search:
        queryset = queryset.filter(
            Q(comment__icontains=search) | Q(partner__name__icontains=search)
        )
    if category:
        queryset = queryset.filter(category=category)
    if theme is not None:
        queryset = queryset.filter(theme_condition(theme))
    return queryset


@dataclass(frozen=True)
class ThemeCount:
    theme: Theme
    promoters: int
    passives: int
    detractors: int

    @property
    def total(self) -> int:
        return self.promoters + self.passives + self.detractors


def theme_counts(*, filters: ReportFilters, themes: list[Theme]) -> tuple[list, dict]:
    """How many comments of each category mention each theme, and the comments per category,
    in one conditional aggregate. A comment can have several themes."""
    has_comment = ~Q(comment="")
    aggregates = {}
    categories = [c.value for c in Response.Category]
    for c in categories:
        aggregates[f"all_{c}"] = Count("id", filter=has_comment & Q(category=c))
    for theme in themes:
        condition = theme_condition(theme)
        for c in categories:
            aggregates[f"t{theme.pk}_{c}"] = Count("id", filter=condition & Q(category=c))
    row = Response.objects.filter(response_filter(filters)).aggregate(**aggregates)
    totals = {c: row[f"all_{c}"] for c in categories}
    counts = [
        ThemeCount(
            theme=theme,
            promoters=row[f"t{theme.pk}_promoter"],
            passives=row[f"t{theme.pk}_passive"],
            detractors=row[f"t{theme.pk}_detractor"],
        )
        for theme in themes
    ]
    return counts, totals


# --- Exports --------------------------------------------------------------------------------

RESPONSE_EXPORT_COLUMNS = [
    ("submitted_at", "submitted_at"),
    ("program", "program__name"),
    ("wave", "wave__label"),
    ("partner", "partner__name"),
    ("contact_email", "contact__email"),
    ("score", "score"),
    ("category", "category"),
    ("comment", "comment"),
    ("tier", "tier"),
    ("region", "region"),
    ("partner_type", "partner_type"),
    ("account_owner", "account_owner__username"),
    ("language", "language"),
    ("wants_contact", "wants_contact"),
]


def response_export_rows(*, filters: ReportFilters):
    """The export's rows as tuples in ``RESPONSE_EXPORT_COLUMNS`` order, streamed from the
    database in chunks (one query, a server-side cursor on PostgreSQL)."""
    return (
        Response.objects.filter(response_filter(filters))
        .order_by("submitted_at", "id")
        .values_list(*[lookup for _name, lookup in RESPONSE_EXPORT_COLUMNS])
        .iterator(chunk_size=2000)
    )
