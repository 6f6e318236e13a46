"""The staff dashboard: NPS per wave for one program, with its distribution and trend.

The figures come from ``scoring.selectors`` (SQL aggregates) and ``scoring.nps`` (arithmetic);
this module only picks the program and lays the figures out as server-rendered SVG charts.
"""

from __future__ import annotations

import dataclasses
import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.services import Action, audit_record, query_detail
from nps_project import roles
from surveys.models import Partner, Wave

from . import exports, selectors
from .forms import CommentFilterForm, ReportFilterForm
from .nps import NpsChange

COMMENTS_PER_PAGE = 50


def cs_required(view):
    """Log in first; then customer-success staff, managers and admins only (else 403)."""

    @login_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not roles.is_cs(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _chosen_program(raw: str | None, programs: list):
    """The program asked for by ``?program=<id>``, else the first active one (else the first).

    Returns ``(program, error)``; an id that is not a number or names no program is an error.
    """
    if raw is None or raw == "":
        default = next((p for p in programs if p.is_active), programs[0] if programs else None)
        return default, ""
    try:
        wanted = int(raw)
    except ValueError:
        wanted = None
    program = next((p for p in programs if p.pk == wanted), None)
    if program is None:
        return None, f"There is no program {raw!r}. Choose one from the list."
    return program, ""


def _fmt(value: float) -> str:
    return f"{value:.1f}"


# --- Charts: plain geometry for the template's inline SVG ----------------------------------

DIST_WIDTH, DIST_HEIGHT = 460, 220
DIST_TOP, DIST_BOTTOM, DIST_LEFT = 24, 36, 10
DIST_SLOT = (DIST_WIDTH - 2 * DIST_LEFT) / 11


def distribution_chart(distribution: selectors.ScoreDistribution) -> dict:
    """Bars for scores 0-10, heights relative to the most frequent score."""
    plot_height = DIST_HEIGHT - DIST_TOP - DIST_BOTTOM
    tallest = distribution.max_count or 1
    bar_width = DIST_SLOT * 0.7
    bars = []
    for bar in distribution.bars:
        height = plot_height * bar.count / tallest
        x = DIST_LEFT + bar.score * DIST_SLOT + (DIST_SLOT - bar_width) / 2
        y = DIST_TOP + plot_height - height
        bars.append(
            {
                "score": bar.score,
                "count": bar.count,
                "category": bar.category,
                "x": _fmt(x),
                "y": _fmt(y),
                "width": _fmt(bar_width),
                "height": _fmt(height),
                "label_x": _fmt(x + bar_width / 2),
                "count_y": _fmt(y - 6),
                "score_y": _fmt(DIST_TOP + plot_height + 18),
            }
        )
    return {
        "width": DIST_WIDTH,
        "height": DIST_HEIGHT,
        "baseline_y": _fmt(DIST_TOP + plot_height),
        "baseline_x2": _fmt(DIST_WIDTH - DIST_LEFT),
        "axis_label_y": DIST_HEIGHT - 2,
        "axis_label_x": DIST_WIDTH // 2,
        "bars": bars,
    }


TREND_WIDTH, TREND_HEIGHT = 640, 240
TREND_LEFT, TREND_RIGHT, TREND_TOP, TREND_BOTTOM = 44, 24, 14, 40
TREND_MAX_LABELS = 8  # more wave labels than this overlap; every k-th one is shown instead


def _trend_y(value: float) -> float:
    plot_height = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM
    value = max(-100.0, min(100.0, value))
    return TREND_TOP + (100 - value) / 200 * plot_height


def trend_chart(summaries: list[selectors.WaveSummary]) -> dict:
    """NPS per wave, oldest on the left, on a fixed -100..100 scale, with the 95% margin as a
    band. Waves without responses leave a gap: the line and band are drawn per run of waves
    that have an NPS."""
    waves = list(reversed(summaries))
    plot_width = TREND_WIDTH - TREND_LEFT - TREND_RIGHT
    step = plot_width / (len(waves) - 1) if len(waves) > 1 else 0

    def x_of(index: int) -> float:
        return TREND_LEFT + (index * step if len(waves) > 1 else plot_width / 2)

    ticks = [
        {"value": v, "y": _fmt(_trend_y(v)), "label_y": _fmt(_trend_y(v) + 4)}
        for v in (100, 50, 0, -50, -100)
    ]
    label_every = -(-len(waves) // TREND_MAX_LABELS)  # ceiling division
    labels, points, segments, run = [], [], [], []
    for index, summary in enumerate(waves):
        x = x_of(index)
        if (len(waves) - 1 - index) % label_every == 0:  # the newest wave is always labelled
            labels.append({"x": _fmt(x), "text": summary.wave.label})
        if not summary.has_responses:
            if run:
                segments.append(run)
            run = []
            continue
        point = {
            "x": x,
            "y": _trend_y(summary.nps),
            "upper": _trend_y(summary.nps + summary.margin_of_error),
            "lower": _trend_y(summary.nps - summary.margin_of_error),
            "summary": summary,
        }
        run.append(point)
        points.append(point)
    if run:
        segments.append(run)

    lines, bands, whiskers = [], [], []
    for segment in segments:
        if len(segment) == 1:
            (only,) = segment
            whiskers.append(
                {"x": _fmt(only["x"]), "y1": _fmt(only["upper"]), "y2": _fmt(only["lower"])}
            )
            continue
        lines.append(" ".join(f"{_fmt(p['x'])},{_fmt(p['y'])}" for p in segment))
        outline = [(p["x"], p["upper"]) for p in segment] + [
            (p["x"], p["lower"]) for p in reversed(segment)
        ]
        bands.append(" ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in outline))
    return {
        "width": TREND_WIDTH,
        "height": TREND_HEIGHT,
        "left": TREND_LEFT,
        "right": TREND_WIDTH - TREND_RIGHT,
        "tick_label_x": TREND_LEFT - 6,
        "wave_label_y": TREND_HEIGHT - TREND_BOTTOM + 20,
        "ticks": ticks,
        "labels": labels,
        "lines": lines,
        "bands": bands,
        "whiskers": whiskers,
        "points": [{"x": _fmt(p["x"]), "y": _fmt(p["y"]), "summary": p["summary"]} for p in points],
    }


# --- The pages ------------------------------------------------------------------------------


def _segment_by(raw: str | None) -> str:
    return raw if raw in selectors.SEGMENTS else "tier"


def _query_without(request, *names: str) -> str:
    """The current query string without ``names`` (for links that change one parameter)."""
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@cs_required
def dashboard(request):
    """NPS per wave of one program, narrowed by date range and segment, with the latest wave's
    headline, the trend, the distribution, a segment table and the recovery of detractors."""
    programs = list(selectors.programs_for_reports())
    program, error = _chosen_program(request.GET.get("program"), programs)
    choices = selectors.segment_choices()
    form = ReportFilterForm(request.GET or None, choices=choices)
    by = _segment_by(request.GET.get("by"))
    context = {
        "programs": programs,
        "program": program,
        "error": error,
        "form": form,
        "by": by,
        "by_label": selectors.SEGMENT_LABELS[by],
        "segments": [(key, selectors.SEGMENT_LABELS[key]) for key in selectors.SEGMENTS],
        "query_without_by": _query_without(request, "by"),
        "small_sample": selectors.SMALL_SAMPLE,
    }
    if program is None:
        return render(request, "scoring/dashboard.html", context, status=404 if error else 200)
    if form.is_bound and not form.is_valid():
        context["form_invalid"] = True
        return render(request, "scoring/dashboard.html", context, status=400)
    filters = form.report_filters(program=program) if form.is_bound else None
    filters = filters or selectors.ReportFilters(program=program.pk)

    export_query = request.GET.copy()
    export_query["program"] = program.pk
    export_query.pop("page", None)
    export_query["by"] = by
    context["segments_csv_query"] = export_query.urlencode()
    export_query.pop("by")
    context["responses_csv_query"] = export_query.urlencode()

    summaries = selectors.wave_summaries(filters=filters)
    answered = [s for s in summaries if s.has_responses]
    latest = answered[0] if answered else None
    previous = answered[1] if len(answered) > 1 else None
    change = NpsChange(before=previous.counts, after=latest.counts) if previous else None
    distribution = (
        selectors.score_distribution(wave=latest.wave, filters=filters) if latest else None
    )
    segment_rows = selectors.segment_table(filters=filters, by=by)
    context.update(
        filters=filters,
        summaries=summaries,
        latest=latest,
        previous=previous,
        change=change,
        distribution=distribution,
        distribution_chart=distribution_chart(distribution) if distribution else None,
        trend_chart=trend_chart(summaries) if answered else None,
        segment_rows=segment_rows,
        segment_overall=selectors.overall_counts(segment_rows),
        recovery=selectors.recovery(filters=filters),
    )
    return render(request, "scoring/dashboard.html", context)


@cs_required
def partner_detail(request, pk: int):
    """One partner: NPS per wave answered, every response with its comment, follow-up and the
    changes linked to that follow-up."""
    try:
        partner = selectors.partner_detail(pk=pk)
    except Partner.DoesNotExist:
        raise Http404("No such partner.") from None
    summaries = selectors.partner_wave_summaries(partner)
    audit_record(
        actor=request.user, action=Action.VIEW, target="partner", target_id=pk, request=request
    )
    return render(
        request,
        "scoring/partner_detail.html",
        {
            "partner": partner,
            "summaries": summaries,
            "trend_chart": trend_chart(summaries) if summaries else None,
            "responses": selectors.partner_responses(partner),
        },
    )


def _theme_or_none(themes, theme_id):
    return next((t for t in themes if t.pk == theme_id), None)


@cs_required
def comment_list(request):
    """Comments, searchable and filterable by category, wave, segment, date and theme, with
    each comment's themes and the theme counts per category."""
    themes = selectors.active_themes()
    waves = list(Wave.objects.select_related("program").order_by("-opens_at", "-pk")[:200])
    form = CommentFilterForm(
        request.GET or None, choices=selectors.segment_choices(), waves=waves, themes=themes
    )
    context = {"form": form, "themes": themes}
    if form.is_bound and not form.is_valid():
        context["form_invalid"] = True
        return render(request, "scoring/comment_list.html", context, status=400)
    data = form.cleaned_data if form.is_bound else {}
    filters = form.report_filters() if form.is_bound else selectors.ReportFilters()
    if data.get("wave"):
        filters = dataclasses.replace(filters, wave=data["wave"])
    theme = _theme_or_none(themes, data.get("theme"))
    queryset = selectors.comments(
        filters=filters,
        search=(data.get("q") or "").strip(),
        category=data.get("category") or "",
        theme=theme,
    )
    page = Paginator(queryset, COMMENTS_PER_PAGE).get_page(request.GET.get("page"))
    # Tags for this page only: at most COMMENTS_PER_PAGE comments, tested in Python with the
    # same rule as the SQL counts (Theme.matches).
    rows = [(r, [t for t in themes if t.matches(r.comment)]) for r in page.object_list]
    counts, totals = selectors.theme_counts(filters=filters, themes=themes)
    audit_record(
        actor=request.user,
        action=Action.VIEW,
        target="comments",
        detail=query_detail(request),
        request=request,
    )
    context.update(
        page=page,
        rows=rows,
        theme_counts=counts,
        comment_totals=totals,
        query_without_page=_query_without(request, "page"),
    )
    return render(request, "scoring/comment_list.html", context)


def _export_filters(request):
    """The report filters of an export's query string, or a 400 page."""
    form = ReportFilterForm(request.GET or None, choices=selectors.segment_choices())
    if form.is_bound and not form.is_valid():
        return None, render(request, "scoring/export_error.html", {"form": form}, status=400)
    program = None
    raw = request.GET.get("program")
    if raw:
        if not raw.isdigit():
            return None, render(
                request, "scoring/export_error.html", {"program_error": raw}, status=400
            )
        program = int(raw)
    filters = form.report_filters(program=program) if form.is_bound else selectors.ReportFilters()
    return filters, None


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@cs_required
def export_responses(request):
    """Every matching response with its segments and category, as CSV (streamed)."""
    filters, error = _export_filters(request)
    if error:
        return error
    header = [name for name, _lookup in selectors.RESPONSE_EXPORT_COLUMNS]
    rows = selectors.response_export_rows(filters=filters)
    audit_record(
        actor=request.user,
        action=Action.EXPORT,
        target="responses.csv",
        detail=query_detail(request),
        request=request,
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return _csv_response(exports.csv_lines(header, rows), f"nps-responses-{stamp}.csv")


@cs_required
def export_segments(request):
    """The segment table (``?by=tier|region|partner_type|account_owner``) as CSV, full
    precision."""
    filters, error = _export_filters(request)
    if error:
        return error
    by = _segment_by(request.GET.get("by"))
    groups = selectors.segment_table(filters=filters, by=by)
    audit_record(
        actor=request.user,
        action=Action.EXPORT,
        target="segments.csv",
        detail=query_detail(request),
        request=request,
    )
    header = [
        by,
        "n",
        "promoters",
        "passives",
        "detractors",
        "nps",
        "standard_error",
        "margin_of_error",
        "small_sample",
    ]
    rows = [
        [
            g.label,
            g.n,
            g.counts.promoters,
            g.counts.passives,
            g.counts.detractors,
            g.counts.nps,
            g.counts.standard_error,
            g.counts.margin_of_error,
            g.small_sample,
        ]
        for g in groups
    ]
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return _csv_response(exports.csv_lines(header, rows), f"nps-by-{by}-{stamp}.csv")
