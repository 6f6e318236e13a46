"""The NPS figures of ``GET /api/v1/nps/``: the same selectors as the staff dashboard
(``scoring.selectors``: one grouped conditional aggregate), math in ``scoring.nps``.

Grouping by wave starts from the waves (open or closed) in scope, so a wave without matching
responses is listed with ``n = 0`` and null figures; the other groupings list the segment values
that occur among the matching responses. Segments are the ones recorded on each response when
it came in, not the partner's current ones. ``tier`` and ``partner_type`` are matched in any
case: the value is turned into the stored spelling first (one small query), so the report can
use the ``surveys_resp_prog_tier_time`` index.
"""

from __future__ import annotations

from scoring import selectors


def report_filters(params: dict) -> selectors.ReportFilters:
    """The validated query ``params`` as the scoring selectors' filters."""
    values = {
        name: params.get(name)
        for name in (
            "program",
            "wave",
            "submitted_after",
            "submitted_before",
            "region",
            "account_owner",
        )
    }
    for name in ("tier", "partner_type"):
        if params.get(name) is not None:
            values[name] = selectors.canonical_segment(name, params[name])
    return selectors.ReportFilters(**values)


def nps_report(params: dict) -> dict:
    """``{"group_by", "overall", "groups"}`` for validated query ``params``. One query; the
    overall figures are the sum of the groups' counts."""
    filters = report_filters(params)
    group_by = params.get("group_by")
    if group_by is None:
        overall = selectors.nps_overall(filters=filters)
        return {"group_by": None, "overall": overall.as_dict(), "groups": []}
    groups = selectors.nps_groups(filters=filters, group_by=group_by)
    return {
        "group_by": group_by,
        "overall": selectors.overall_counts(groups).as_dict(),
        "groups": [group.as_dict() for group in groups],
    }
