"""The staff dashboard: NPS per wave for one program, with its distribution and trend.

The figures come from ``scoring.selectors`` (SQL aggregates) and ``scoring.nps`` (arithmetic);
this module only picks the program and lays the figures out as server-rendered SVG charts.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from nps_project import roles

from . import selectors
from .nps import NpsChange


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


# --- The page -------------------------------------------------------------------------------


@login_required
def dashboard(request):
    """NPS per wave of one program. Staff in a customer-success role only."""
    if not roles.is_cs(request.user):
        raise PermissionDenied
    programs = list(selectors.programs_for_reports())
    program, error = _chosen_program(request.GET.get("program"), programs)
    context = {"programs": programs, "program": program, "error": error}
    if program is None:
        return render(request, "scoring/dashboard.html", context, status=404 if error else 200)

    summaries = selectors.wave_summaries(program=program)
    answered = [s for s in summaries if s.has_responses]
    latest = answered[0] if answered else None
    previous = answered[1] if len(answered) > 1 else None
    change = NpsChange(before=previous.counts, after=latest.counts) if previous else None
    distribution = selectors.score_distribution(wave=latest.wave) if latest else None
    context.update(
        summaries=summaries,
        latest=latest,
        previous=previous,
        change=change,
        distribution=distribution,
        distribution_chart=distribution_chart(distribution) if distribution else None,
        trend_chart=trend_chart(summaries) if answered else None,
    )
    return render(request, "scoring/dashboard.html", context)
