"""The staff dashboard at /reports/: who may see it, what it shows, and its query budget."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from scoring.selectors import ScoreBar, ScoreDistribution, wave_summaries
from scoring.views import distribution_chart, trend_chart
from surveys.models import Wave
from tests.factories import InvitationFactory, ProgramFactory, ResponseFactory, WaveFactory

pytestmark = pytest.mark.django_db

URL = reverse("scoring:dashboard")


def wave_at(program, days_ago: int, **kwargs) -> Wave:
    opens_at = timezone.now() - dt.timedelta(days=days_ago)
    return WaveFactory(
        program=program, opens_at=opens_at, closes_at=opens_at + dt.timedelta(days=14), **kwargs
    )


def answer(wave: Wave, *scores: int) -> None:
    for score in scores:
        ResponseFactory(invitation__wave=wave, score=score)


def as_text(html: str) -> str:
    """HTML as text: styles and tags dropped, whitespace collapsed, for wording assertions."""
    html = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def text_of(response) -> str:
    return as_text(response.content.decode())


def wave_row(response, label: str) -> str:
    """The text of the wave table's row for the wave labelled ``label``."""
    row = re.search(
        rf'<tr>\s*<th scope="row">{re.escape(label)}</th>.*?</tr>', response.content.decode(), re.S
    )
    assert row is not None, f"no row for {label}"
    return as_text(row.group(0))


def verdict(response) -> str:
    found = re.search(r'<span class="verdict[^"]*">([^<]+)</span>', response.content.decode())
    return found.group(1) if found else ""


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_user_in_no_customer_success_role_gets_403(client, outsider):
    ProgramFactory()
    client.force_login(outsider)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("persona", ["cs_agent", "cs_manager", "admin_user"])
def test_customer_success_staff_and_admins_see_the_dashboard(client, persona, request):
    ProgramFactory()
    client.force_login(request.getfixturevalue(persona))
    assert client.get(URL).status_code == 200


# --- Content --------------------------------------------------------------------------------


def test_the_headline_shows_the_latest_wave_with_responses(client, cs_agent):
    program = ProgramFactory()
    previous = wave_at(program, days_ago=92, status=Wave.Status.CLOSED, label="Q1 2025")
    latest = wave_at(program, days_ago=1, label="Q2 2025")
    answer(previous, 0, 0, 9, 9)  # NPS 0, n 4
    answer(latest, 10, 9, 9, 8, 7, 6, 0)  # NPS 14.29, margin 61.71, n 7
    InvitationFactory.create_batch(3, wave=latest)  # 7 of 10 sent invitations answered

    client.force_login(cs_agent)
    response = client.get(URL)
    text = text_of(response)

    assert response.context["latest"].wave == latest
    assert "Latest wave with responses: Q2 2025" in text
    assert "14.3 ± 61.7" in text
    assert "n = 7" in text
    assert "Change from Q1 2025" in text
    assert "+14.3" in text
    assert verdict(response) == "within noise"
    assert "70.0%" in text  # response rate 7 / 10


def test_a_large_change_is_called_significant(client, cs_agent):
    program = ProgramFactory()
    answer(wave_at(program, days_ago=92, status=Wave.Status.CLOSED), *[0] * 40)  # NPS -100
    answer(wave_at(program, days_ago=1), *[10] * 40)  # NPS 100

    client.force_login(cs_agent)
    response = client.get(URL)

    assert "+200.0" in text_of(response)
    assert verdict(response) == "significant"


def test_the_wave_table_shows_counts_shares_and_rates(client, cs_agent):
    program = ProgramFactory()
    wave = wave_at(program, days_ago=1, label="Q2 2025")
    answer(wave, 10, 9, 9, 8, 7, 6, 0)
    InvitationFactory.create_batch(7, wave=wave)  # 14 sent in all

    client.force_login(cs_agent)
    response = client.get(URL)

    # n, NPS, margin, promoters 3/7, passives 2/7, detractors 2/7, invited, 7/14 responded.
    assert wave_row(response, "Q2 2025") == (
        f"Q2 2025 {wave.opens_at:%-d %b %Y} – {wave.closes_at:%-d %b %Y} Open "
        "7 small sample 14.3 ± 61.7 3 (42.9%) 2 (28.6%) 2 (28.6%) 14 50.0%"
    )


def test_an_empty_wave_says_no_responses_never_zero(client, cs_agent):
    program = ProgramFactory()
    answer(wave_at(program, days_ago=92, status=Wave.Status.CLOSED, label="Q1 2025"), 9, 10)
    empty = wave_at(program, days_ago=1, label="Q2 2025")
    InvitationFactory.create_batch(4, wave=empty)

    client.force_login(cs_agent)
    response = client.get(URL)
    text = text_of(response)

    # No n, NPS, margin or shares: "no responses"; then 4 invited and a 0% response rate.
    assert wave_row(response, "Q2 2025").endswith("Open no responses 4 0.0%")
    # The headline falls back to the latest wave that has responses.
    assert "Latest wave with responses: Q1 2025" in text
    assert "No earlier wave with responses to compare." in text


def test_a_program_with_no_responses_at_all_says_so(client, cs_agent):
    wave_at(ProgramFactory(), days_ago=1)
    client.force_login(cs_agent)
    response = client.get(URL)
    text = text_of(response)
    assert "No responses yet" in text
    assert "no responses" in text
    assert response.context["distribution_chart"] is None
    assert response.context["trend_chart"] is None


def test_the_charts_are_inline_svg_with_titles_and_a_table_fallback(client, cs_agent):
    program = ProgramFactory()
    answer(wave_at(program, days_ago=92, status=Wave.Status.CLOSED), 3, 9)
    answer(wave_at(program, days_ago=1, label="Q2 2025"), 10, 9, 9, 8, 7, 6, 0)

    client.force_login(cs_agent)
    html = client.get(URL).content.decode()

    assert html.count("<svg") == 2
    assert 'role="img"' in html and "aria-labelledby=" in html
    assert "<title>Score 9: 2 responses (promoter)</title>" in html
    assert 'class="bar-detractor"' in html and 'class="bar-promoter"' in html
    assert '<table class="visually-hidden">' in html
    assert '<polygon class="band"' in html and '<polyline class="line"' in html
    assert "<script" not in html
    assert "http" not in html.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org", ""
    )


def test_the_program_selector_picks_a_program(client, cs_agent):
    first = ProgramFactory(name="Alpha")
    second = ProgramFactory(name="Beta")
    answer(wave_at(second, days_ago=1, label="Q2 2025"), 0)

    client.force_login(cs_agent)
    assert client.get(URL).context["program"] == first  # the first active program by default
    response = client.get(URL, {"program": second.pk})
    assert response.context["program"] == second
    assert f'<option value="{second.pk}" selected>Beta</option>' in response.content.decode()
    assert "-100.0" in text_of(response)


def test_the_default_program_is_the_first_active_one(client, cs_agent):
    ProgramFactory(name="Alpha", is_active=False)
    active = ProgramFactory(name="Beta")
    client.force_login(cs_agent)
    assert client.get(URL).context["program"] == active


@pytest.mark.parametrize("bad", ["999999", "abc", "1.5"])
def test_an_unknown_program_gets_a_clear_message(client, cs_agent, bad):
    ProgramFactory()
    client.force_login(cs_agent)
    response = client.get(URL, {"program": bad})
    assert response.status_code == 404
    assert "There is no program" in text_of(response)
    assert "summaries" not in response.context


def test_no_programs_at_all_shows_a_hint(client, cs_agent):
    client.force_login(cs_agent)
    response = client.get(URL)
    assert response.status_code == 200
    assert "No survey programs yet" in text_of(response)


# --- Query budget ---------------------------------------------------------------------------


@pytest.mark.parametrize("wave_count", [2, 6])
def test_the_dashboard_query_count_does_not_grow_with_waves(
    client, cs_agent, django_assert_num_queries, wave_count
):
    program = ProgramFactory()
    for i in range(wave_count):
        wave = wave_at(program, days_ago=91 * i + 1, status=Wave.Status.CLOSED)
        answer(wave, 10, 9, 6, 7)
        InvitationFactory(wave=wave)
    client.force_login(cs_agent)
    # session, user, the user's groups (role check), programs, the four filter choice lists
    # (tiers, partner types, regions, account owners), waves, the response aggregate, the
    # invitation aggregate, the latest wave's score distribution, the segment table (one
    # grouped aggregate), the recovery of detractors (one aggregate).
    with django_assert_num_queries(14):
        assert client.get(URL).status_code == 200


# --- Chart geometry -------------------------------------------------------------------------


def test_distribution_bars_scale_to_the_most_frequent_score():
    chart = distribution_chart(
        ScoreDistribution(
            bars=[ScoreBar(s, 4 if s == 10 else 2 if s == 0 else 0) for s in range(11)]
        )
    )
    heights = [float(bar["height"]) for bar in chart["bars"]]
    assert heights[10] == pytest.approx(160.0)  # the plot height: 220 - 24 top - 36 bottom
    assert heights[0] == pytest.approx(80.0)
    assert heights[5] == 0
    assert [bar["category"] for bar in chart["bars"]][::5] == ["detractor", "detractor", "promoter"]


def test_trend_breaks_the_line_at_a_wave_without_responses():
    program = ProgramFactory()
    for days_ago, scores in [(400, [9]), (300, [0, 9]), (200, []), (100, [10, 10]), (1, [5])]:
        answer(wave_at(program, days_ago=days_ago), *scores)

    chart = trend_chart(wave_summaries(program=program))

    assert len(chart["labels"]) == 5
    assert len(chart["points"]) == 4
    # Two runs of waves with responses, each with two points: two lines and two bands.
    assert len(chart["lines"]) == 2
    assert len(chart["bands"]) == 2
    assert chart["whiskers"] == []
    # NPS 100 sits on the top gridline, -100 on the bottom: y = 14 and 14 + 186 = 200.
    ys = [float(p["y"]) for p in chart["points"]]
    assert ys == [14.0, 107.0, 14.0, 200.0]


def test_a_lone_wave_in_the_trend_gets_an_error_bar_not_a_band():
    program = ProgramFactory()
    answer(wave_at(program, days_ago=1), 10, 0)  # NPS 0, margin 1.96 * 100 / sqrt(2) = 138.6
    chart = trend_chart(wave_summaries(program=program))
    assert chart["lines"] == [] and chart["bands"] == []
    (whisker,) = chart["whiskers"]
    # The band is clipped to the -100..100 scale.
    assert (float(whisker["y1"]), float(whisker["y2"])) == (14.0, 200.0)


def test_a_long_trend_labels_every_other_wave_so_labels_do_not_overlap():
    program = ProgramFactory()
    for i in range(12):
        answer(wave_at(program, days_ago=31 * i + 1, label=f"M{12 - i}"), 9)
    chart = trend_chart(wave_summaries(program=program))
    assert len(chart["points"]) == 12
    assert [label["text"] for label in chart["labels"]] == ["M2", "M4", "M6", "M8", "M10", "M12"]


def test_a_small_unanimous_wave_shows_no_margin_rather_than_plus_minus_zero(client, cs_agent):
    """Two detractors: the formula's standard error is 0, which would read as certainty."""
    program = ProgramFactory()
    wave = wave_at(program, 10, label="Q4 2026")
    answer(wave, 2, 5)
    client.force_login(cs_agent)
    page = client.get(URL, {"program": program.pk})
    text = text_of(page)
    assert "-100.0 ± –" in text
    assert "± 0.0" not in text
    assert "small sample : fewer than 30 responses, read with care; too few for a margin" in text
    assert "Open 2 small sample -100.0 ± – 0 (0.0%) 0 (0.0%) 2 (100.0%)" in wave_row(
        page, "Q4 2026"
    )
