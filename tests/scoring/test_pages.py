"""The report pages beyond the headline: dashboard filters and segment table, the partner page,
the comments list and the CSV exports. Access, content, bad input and query budgets."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from followups.models import FollowUp
from surveys.models import Wave
from tests.factories import (
    ChangeFactory,
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)
from tests.scoring.test_dashboard import text_of

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("scoring:dashboard")
COMMENTS = reverse("scoring:comment-list")
RESPONSES_CSV = reverse("scoring:export-responses")
SEGMENTS_CSV = reverse("scoring:export-segments")


def wave_at(program, days_ago: int, **kwargs) -> Wave:
    opens_at = timezone.now() - dt.timedelta(days=days_ago)
    return WaveFactory(
        program=program, opens_at=opens_at, closes_at=opens_at + dt.timedelta(days=14), **kwargs
    )


def answer(wave, *scores, **fields):
    return [ResponseFactory(invitation__wave=wave, score=s, **fields) for s in scores]


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


# --- Access: every report page ---------------------------------------------------------------


def protected_urls():
    partner = PartnerFactory()
    return [
        reverse("scoring:partner-detail", args=[partner.pk]),
        COMMENTS,
        RESPONSES_CSV,
        SEGMENTS_CSV,
    ]


def test_anonymous_visitors_are_sent_to_log_in_from_every_report(client):
    for url in protected_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login"))


def test_an_outsider_gets_403_on_every_report(client, outsider):
    client.force_login(outsider)
    for url in protected_urls():
        assert client.get(url).status_code == 403, url


def test_an_unknown_partner_is_404(client, cs_agent):
    client.force_login(cs_agent)
    assert client.get(reverse("scoring:partner-detail", args=[999999])).status_code == 404


# --- Dashboard filters and segment table ----------------------------------------------------


def test_the_segment_table_shows_nps_n_margin_and_a_small_sample_mark(client, cs_agent):
    program = ProgramFactory()
    wave = wave_at(program, days_ago=1)
    answer(wave, 10, 9, 9, 8, 7, 6, 0, tier="Gold")
    answer(wave, *[9] * 30, tier="Platinum")
    client.force_login(cs_agent)

    response = client.get(DASHBOARD, {"program": program.pk, "by": "tier"})

    rows = {g.label: g for g in response.context["segment_rows"]}
    assert round(rows["Gold"].nps, 2) == 14.29
    assert rows["Gold"].small_sample and not rows["Platinum"].small_sample
    text = text_of(response)
    assert "NPS by tier" in text
    assert "Gold 7 small sample 14.3 ± 61.7 3 2 2" in text
    assert "Platinum 30 100.0 ± 0.0 30 0 0" in text


def test_the_segment_filter_narrows_every_figure(client, cs_agent):
    program = ProgramFactory()
    wave = wave_at(program, days_ago=1)
    answer(wave, 9, 9, tier="Gold")
    answer(wave, 0, tier="Silver")
    client.force_login(cs_agent)

    response = client.get(DASHBOARD, {"program": program.pk, "tier": "Silver"})

    assert response.status_code == 200
    assert response.context["latest"].nps == -100
    assert [g.label for g in response.context["segment_rows"]] == ["Silver"]
    assert response.context["distribution"].total == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"submitted_after": "2025-13-01"}, "Enter a valid date."),
        ({"submitted_after": "2025-03-01", "submitted_before": "2025-01-01"}, "end date is before"),
        ({"tier": "Bronze"}, "Select a valid choice."),
        ({"account_owner": "abc"}, "Select a valid choice."),
    ],
)
def test_bad_filters_get_a_clear_message_and_no_figures(client, cs_agent, params, message):
    program = ProgramFactory()
    client.force_login(cs_agent)
    response = client.get(DASHBOARD, {"program": program.pk, **params})
    assert response.status_code == 400
    assert message in text_of(response)
    assert "summaries" not in response.context


@pytest.mark.parametrize("partners", [2, 8])
def test_the_filtered_dashboard_query_count_does_not_grow_with_data(
    client, cs_agent, django_assert_num_queries, partners
):
    program = ProgramFactory()
    for i in range(3):
        wave = wave_at(program, days_ago=91 * i + 1, status=Wave.Status.CLOSED)
        for p in range(partners):
            answer(wave, 0, 9, region=f"R{p}", tier="Gold")
    client.force_login(cs_agent)
    params = {"program": program.pk, "tier": "Gold", "by": "region"}
    # session, user, groups, programs, four filter choice lists, waves, the response
    # aggregate (no invitation count: a segment filter is set), the distribution, the segment
    # table, the recovery aggregate.
    with django_assert_num_queries(13):
        response = client.get(DASHBOARD, params)
    assert len(response.context["segment_rows"]) == partners


# --- Partner page ---------------------------------------------------------------------------


def partner_with_history(cs_agent, waves: int):
    program = ProgramFactory()
    partner = PartnerFactory(name="Acme Systems", account_owner=cs_agent)
    contact = ContactFactory(partner=partner, name="Kim")
    for i in range(waves):
        wave = wave_at(program, days_ago=91 * (waves - i), label=f"W{i}")
        response = ResponseFactory(
            invitation=InvitationFactory(wave=wave, contact=contact),
            score=2 + i % 9,
            comment=f"Comment in W{i}",
        )
        if response.category == "detractor":
            followup = FollowUpFactory(response=response, assignee=cs_agent)
            change = ChangeFactory(title=f"Fix for W{i}")
            change.followups.add(followup)
    return partner


def test_the_partner_page_shows_history_comments_followups_and_changes(client, cs_agent):
    partner = partner_with_history(cs_agent, waves=3)  # scores 2, 3, 4: all detractors
    client.force_login(cs_agent)

    response = client.get(reverse("scoring:partner-detail", args=[partner.pk]))

    assert response.status_code == 200
    assert [s.wave.label for s in response.context["summaries"]] == ["W2", "W1", "W0"]
    assert [s.nps for s in response.context["summaries"]] == [-100, -100, -100]
    text = text_of(response)
    for i in range(3):
        assert f"Comment in W{i}" in text
        assert f"Fix for W{i}" in text
    followup = FollowUp.objects.get(response__wave__label="W1")
    assert reverse("followups:detail", args=[followup.pk]) in response.content.decode()


@pytest.mark.parametrize("waves", [2, 7])
def test_the_partner_page_query_count_does_not_grow_with_history(
    client, cs_agent, django_assert_num_queries, waves
):
    partner = partner_with_history(cs_agent, waves=waves)
    client.force_login(cs_agent)
    # session, user, groups, the partner (tier, type, owner joined), NPS per wave (one
    # aggregate), responses with contact, wave, program, follow-up, assignee and root cause
    # joined, and the changes of those follow-ups (one prefetch); the audit log's INSERT.
    with django_assert_num_queries(8):
        response = client.get(reverse("scoring:partner-detail", args=[partner.pk]))
    assert len(response.context["summaries"]) == waves


# --- Comments -------------------------------------------------------------------------------


def test_the_comments_list_searches_tags_themes_and_counts_them(client, cs_agent):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 2, comment="Support never answers tickets")
    answer(wave, 9, comment="Great pricing and support")
    answer(wave, 8, comment="Nothing to add")
    client.force_login(cs_agent)

    response = client.get(COMMENTS, {"q": "support"})

    assert response.status_code == 200
    assert response.context["page"].paginator.count == 2
    tags = {r.comment: [t.name for t in themes] for r, themes in response.context["rows"]}
    assert tags == {
        "Support never answers tickets": ["Support"],
        "Great pricing and support": ["Pricing", "Support"],
    }
    counts = {
        c.theme.name: (c.detractors, c.passives, c.promoters)
        for c in response.context["theme_counts"]
    }
    assert counts["Support"] == (1, 0, 1)
    assert counts["Pricing"] == (0, 0, 1)


def test_the_comments_list_is_paginated_with_a_fixed_query_count(
    client, cs_agent, django_assert_num_queries
):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, *[3] * 55, comment="Slow support")
    client.force_login(cs_agent)
    # session, user, groups, themes, waves (for the filter), four filter choice lists, the
    # page count, the page of comments, the theme counts (one aggregate), the audit INSERT.
    with django_assert_num_queries(13):
        first = client.get(COMMENTS, {"category": "detractor"})
    assert len(first.context["rows"]) == 50
    second = client.get(COMMENTS, {"category": "detractor", "page": 2})
    assert len(second.context["rows"]) == 5


def test_a_bad_comment_filter_is_a_clear_400(client, cs_agent):
    client.force_login(cs_agent)
    response = client.get(COMMENTS, {"category": "angry"})
    assert response.status_code == 400
    assert "Select a valid choice" in text_of(response)


# --- Exports --------------------------------------------------------------------------------

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\tindented",
    "\rcarriage",
    "fine = fine",
]


def test_the_response_export_neutralises_spreadsheet_formulas(client, cs_agent):
    wave = wave_at(ProgramFactory(), days_ago=1)
    partner = PartnerFactory(name="=cmd|' /C calc'!A0")
    for i, comment in enumerate(HOSTILE):
        ResponseFactory(
            invitation=InvitationFactory(
                wave=wave, contact=ContactFactory(partner=partner), created_at=timezone.now()
            ),
            score=i,
            comment=comment,
            submitted_at=timezone.now() + dt.timedelta(seconds=i),
        )
    client.force_login(cs_agent)

    response = client.get(RESPONSES_CSV)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="nps-responses-')
    header, *rows = read_csv(response)
    assert header[:8] == [
        "submitted_at",
        "program",
        "wave",
        "partner",
        "contact_email",
        "score",
        "category",
        "comment",
    ]
    comments = [row[header.index("comment")] for row in rows]
    assert comments == [
        '\'=HYPERLINK("http://evil.example","click")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A2)",
        "'\tindented",
        "'\rcarriage",
        "fine = fine",
    ]
    assert {row[header.index("partner")] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert [row[header.index("category")] for row in rows][:3] == ["detractor"] * 3


def test_the_segment_export_keeps_full_precision_and_negative_numbers(client, cs_agent):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 10, 9, 9, 8, 7, 6, 0, region="EMEA")
    answer(wave, 0, 0, 9, region="-APAC")
    client.force_login(cs_agent)

    response = client.get(SEGMENTS_CSV, {"by": "region", "program": wave.program_id})

    header, *rows = read_csv(response)
    assert header == [
        "region",
        "n",
        "promoters",
        "passives",
        "detractors",
        "nps",
        "standard_error",
        "margin_of_error",
        "small_sample",
    ]
    apac, emea = rows
    assert apac[0] == "'-APAC"  # hostile text is neutralised ...
    assert float(apac[5]) == pytest.approx(-100 / 3)  # ... but a negative NPS stays a number
    assert apac[5].startswith("-33.333333")
    assert float(emea[5]) == pytest.approx(100 / 7, abs=1e-12)
    assert float(emea[6]) == pytest.approx(31.4842, abs=1e-4)
    assert emea[8] == "yes"


def test_an_export_with_a_bad_filter_is_a_clear_400(client, cs_agent):
    client.force_login(cs_agent)
    response = client.get(RESPONSES_CSV, {"submitted_before": "yesterday"})
    assert response.status_code == 400
    assert "Enter a valid date" in text_of(response)
    assert client.get(SEGMENTS_CSV, {"program": "x"}).status_code == 400
