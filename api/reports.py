"""The NPS figures of ``GET /api/v1/nps/``: one grouped conditional aggregate, math in
``scoring.nps``.

Grouping by wave starts from the waves (open or closed) in scope, so a wave without matching
responses is listed with ``n = 0`` and null figures; the other groupings list the segment values
that occur among the matching responses. Segments are the ones recorded on each response when
it came in, not the partner's current ones.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, Q

from scoring.nps import NpsCounts
from surveys.models import Response, Wave

SEGMENT_FIELDS = {"tier": "tier", "region": "region", "partner_type": "partner_type"}


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def response_filter(params: dict, *, prefix: str = "") -> Q:
    """The response conditions of the query ``params`` as a Q, with ``prefix`` before each
    lookup (``"responses__"`` when counting from the wave side)."""
    q = Q()
    lookups = {
        "program": "program_id",
        "wave": "wave_id",
        "account_owner": "account_owner_id",
        "tier": "tier__iexact",
        "region": "region__iexact",
        "partner_type": "partner_type__iexact",
    }
    for param, lookup in lookups.items():
        if params.get(param) is not None:
            q &= Q(**{prefix + lookup: params[param]})
    if params.get("submitted_after"):
        q &= Q(**{prefix + "submitted_at__gte": _day_start(params["submitted_after"])})
    if params.get("submitted_before"):
        end = _day_start(params["submitted_before"] + dt.timedelta(days=1))
        q &= Q(**{prefix + "submitted_at__lt": end})
    return q


def _counts(prefix: str, where: Q) -> dict:
    category = prefix + "category"
    return {
        "promoters": Count(prefix + "id", filter=where & Q(**{category: "promoter"})),
        "passives": Count(prefix + "id", filter=where & Q(**{category: "passive"})),
        "detractors": Count(prefix + "id", filter=where & Q(**{category: "detractor"})),
    }


def _figures(row: dict) -> NpsCounts:
    return NpsCounts(row["promoters"], row["passives"], row["detractors"])


def nps_report(params: dict) -> dict:
    """``{"group_by", "overall", "groups"}`` for validated query ``params``. One query; the
    overall figures are the sum of the groups' counts."""
    group_by = params.get("group_by")
    groups = []
    if group_by == "wave":
        waves = Wave.objects.filter(status__in=[Wave.Status.OPEN, Wave.Status.CLOSED])
        if params.get("program") is not None:
            waves = waves.filter(program_id=params["program"])
        if params.get("wave") is not None:
            waves = waves.filter(pk=params["wave"])
        rows = (
            waves.values("id", "label", "program__name", "opens_at")
            .annotate(**_counts("responses__", response_filter(params, prefix="responses__")))
            .order_by("opens_at", "id")
        )
        for row in rows:
            label = f"{row['program__name']} · {row['label']}"
            groups.append((str(row["id"]), label, _figures(row)))
    elif group_by is not None:
        responses = Response.objects.filter(response_filter(params))
        if group_by == "account_owner":
            rows = (
                responses.values("account_owner_id", "account_owner__username")
                .annotate(**_counts("", Q()))
                .order_by(F("account_owner__username").asc(nulls_last=True), "account_owner_id")
            )
            for row in rows:
                key = row["account_owner_id"]
                label = row["account_owner__username"] or "No account owner"
                groups.append((None if key is None else str(key), label, _figures(row)))
        else:
            field = SEGMENT_FIELDS[group_by]
            rows = (
                responses.values(field)
                .annotate(**_counts("", Q()))
                .order_by(F(field).asc(nulls_last=True))
            )
            for row in rows:
                groups.append((row[field], row[field] or "(none)", _figures(row)))
    else:
        row = Response.objects.filter(response_filter(params)).aggregate(**_counts("", Q()))
        overall = _figures(row)
        return {"group_by": None, "overall": overall.as_dict(), "groups": []}
    overall = NpsCounts(
        sum(c.promoters for _k, _l, c in groups),
        sum(c.passives for _k, _l, c in groups),
        sum(c.detractors for _k, _l, c in groups),
    )
    return {
        "group_by": group_by,
        "overall": overall.as_dict(),
        "groups": [{"key": k, "label": label, **c.as_dict()} for k, label, c in groups],
    }
