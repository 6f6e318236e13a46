"""The grouped report selectors (segment table, API figures), recovery, themes and exports,
with values worked out by hand."""

import datetime as dt
import math

import pytest
from django.utils import timezone

from scoring import selectors
from scoring.models import Theme, split_keywords
from scoring.selectors import ReportFilters
from surveys.models import Wave
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    ResponseFactory,
    UserFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db


def wave_at(program, days_ago: int, **kwargs) -> Wave:
    opens_at = timezone.now() - dt.timedelta(days=days_ago)
    return WaveFactory(
        program=program, opens_at=opens_at, closes_at=opens_at + dt.timedelta(days=14), **kwargs
    )


def answer(wave, *scores, **fields):
    return [ResponseFactory(invitation__wave=wave, score=s, **fields) for s in scores]


# --- Grouped NPS ----------------------------------------------------------------------------


def test_the_segment_table_groups_by_the_tier_recorded_on_each_response():
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 10, 9, 9, 8, 7, 6, 0, tier="Gold")
    answer(wave, 0, 3, tier="Silver")

    rows = selectors.segment_table(filters=ReportFilters(program=wave.program_id), by="tier")

    assert [
        (r.key, r.n, r.counts.promoters, r.counts.passives, r.counts.detractors) for r in rows
    ] == [
        ("Gold", 7, 3, 2, 2),
        ("Silver", 2, 0, 0, 2),
    ]
    gold, silver = rows
    assert round(gold.nps, 2) == 14.29
    assert gold.counts.standard_error == pytest.approx(100 * math.sqrt(34 / 343))
    assert gold.margin_of_error == pytest.approx(61.709, abs=1e-3)
    assert silver.nps == -100 and silver.margin_of_error == 0
    assert gold.small_sample and silver.small_sample  # fewer than 30 each
    overall = selectors.overall_counts(rows)
    # 3 promoters, 4 detractors of 9: 100 * (3 - 4) / 9 = -11.11
    assert overall.nps == pytest.approx(-100 / 9)


def test_thirty_responses_are_no_longer_a_small_sample():
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, *[9] * 30, region="APAC")
    answer(wave, *[9] * 29, region="EMEA")
    rows = selectors.segment_table(filters=ReportFilters(), by="region")
    assert [(r.label, r.small_sample) for r in rows] == [("APAC", False), ("EMEA", True)]


def test_the_segment_table_by_account_owner_puts_unowned_responses_last(cs_agent, cs_manager):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 9, account_owner=cs_manager)
    answer(wave, 0, 0)
    answer(wave, 7, account_owner=cs_agent)
    rows = selectors.segment_table(filters=ReportFilters(), by="account_owner")
    assert [(r.key, r.label, r.nps) for r in rows] == [
        (str(cs_manager.pk), "maria", 100),
        (str(cs_agent.pk), "sam", 0),
        (None, "No account owner", -100),
    ]


def test_a_segment_table_is_one_query_however_many_groups(django_assert_num_queries):
    wave = wave_at(ProgramFactory(), days_ago=1)
    for region in ["APAC", "EMEA", "LATAM", "NA"]:
        answer(wave, 9, 0, region=region)
    for by in selectors.SEGMENTS:
        with django_assert_num_queries(1):  # one GROUP BY with three FILTERed counts
            selectors.segment_table(filters=ReportFilters(), by=by)


def test_filters_narrow_by_date_range_both_days_included_tier_region_and_owner(cs_agent):
    program = ProgramFactory()
    wave = wave_at(program, days_ago=30)
    day = dt.datetime(2025, 3, 31, 23, 59, tzinfo=dt.UTC)
    answer(wave, 10, submitted_at=day, tier="Gold", region="EMEA", account_owner=cs_agent)
    elsewhere = {"region": "APAC"}
    answer(wave, 0, submitted_at=day + dt.timedelta(minutes=2), tier="Gold", **elsewhere)  # 1 Apr
    answer(wave, 0, submitted_at=day - dt.timedelta(days=90), tier="Gold", **elsewhere)  # 31 Dec
    answer(wave, 0, submitted_at=day, tier="Silver", **elsewhere)

    def n(**kwargs):
        return selectors.nps_overall(filters=ReportFilters(program=program.pk, **kwargs)).n

    first_quarter = {
        "submitted_after": dt.date(2025, 1, 1),
        "submitted_before": dt.date(2025, 3, 31),
    }
    assert n(**first_quarter) == 2
    assert n(**first_quarter, tier="Gold") == 1
    assert n(tier="Gold") == 3
    assert n(region="emea") == 1  # regions are free text: any case
    assert n(account_owner=cs_agent.pk) == 1
    assert n(submitted_after=dt.date(2025, 4, 1)) == 1


def test_an_empty_selection_has_no_nps_and_no_groups():
    assert selectors.nps_overall(filters=ReportFilters()).nps is None
    assert selectors.segment_table(filters=ReportFilters(), by="tier") == []


def test_a_tier_typed_in_any_case_becomes_the_stored_spelling():
    assert selectors.canonical_segment("tier", "gOLD") == "Gold"
    assert selectors.canonical_segment("partner_type", "msp") == "MSP"
    assert selectors.canonical_segment("tier", "Bronze") == "Bronze"  # unknown: kept as typed


def test_grouping_by_something_else_is_refused():
    with pytest.raises(ValueError):
        selectors.nps_groups(filters=ReportFilters(), group_by="colour")


def test_with_segment_filters_the_wave_table_does_not_count_invitations():
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 9, 6, tier="Gold")
    InvitationFactory.create_batch(2, wave=wave)
    (plain,) = selectors.wave_summaries(program=wave.program)
    assert (plain.invited, plain.response_rate) == (4, 0.5)
    (narrowed,) = selectors.wave_summaries(
        filters=ReportFilters(program=wave.program_id, tier="Gold")
    )
    assert narrowed.responded == 2
    assert (narrowed.invited, narrowed.response_rate) == (None, None)


# --- Recovery -------------------------------------------------------------------------------


def test_recovery_follows_each_detractor_to_the_same_contacts_next_wave():
    program = ProgramFactory()
    q1, q2, q3 = (wave_at(program, days_ago=d) for d in (200, 110, 20))
    other_program_wave = wave_at(ProgramFactory(), days_ago=100)
    a, b, c, d, e = ContactFactory.create_batch(5)

    def say(wave, contact, score):
        ResponseFactory(invitation=InvitationFactory(wave=wave, contact=contact), score=score)

    say(q1, a, 3)  # detractor -> next (q2) passive: recovered
    say(q2, a, 7)
    say(q1, b, 5)  # detractor -> skips q2, next is q3 promoter: recovered
    say(q3, b, 10)
    say(q1, c, 0)  # detractor -> next (q2) detractor again: not recovered ...
    say(q2, c, 2)  # ... and that detractor -> q3 promoter: recovered
    say(q3, c, 9)
    say(q3, d, 1)  # detractor with no later answer yet: not followed
    say(q1, e, 4)  # detractor whose next answer is in another program: not followed
    say(other_program_wave, e, 10)

    result = selectors.recovery(filters=ReportFilters(program=program.pk))

    # Followed detractors: a@q1, b@q1, c@q1, c@q2 = 4; recovered: a, b, c@q2 = 3.
    assert (result.recovered, result.followed) == (3, 4)
    assert result.rate == 0.75
    assert result.percent == 75


def test_recovery_with_no_detractors_is_none():
    assert selectors.recovery().rate is None


def test_recovery_is_one_query(django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.recovery(filters=ReportFilters(program=1))


# --- Themes ---------------------------------------------------------------------------------


def test_keywords_are_split_on_lines_and_commas_trimmed_and_lower_cased():
    assert split_keywords(" Price,\nPRICING \n\n, price list  ,") == [
        "price",
        "pricing",
        "price list",
    ]


def test_theme_counts_per_category_match_the_tags_on_each_comment():
    Theme.objects.all().delete()  # the seeded defaults; this test sets its own
    support = Theme.objects.create(name="Support", keywords="support\nticket")
    pricing = Theme.objects.create(name="Pricing", keywords="price")
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 2, comment="SUPPORT never answers my tickets")  # support
    answer(wave, 4, comment="Prices went up and support is slow")  # support + pricing
    answer(wave, 8, comment="Good price")  # pricing
    answer(wave, 10, comment="Great partner manager")  # none
    answer(wave, 0, comment="")  # no comment

    themes = selectors.active_themes()
    counts, totals = selectors.theme_counts(filters=ReportFilters(), themes=themes)

    by_name = {c.theme.name: (c.detractors, c.passives, c.promoters) for c in counts}
    assert by_name == {"Pricing": (1, 1, 0), "Support": (2, 0, 0)}
    assert totals == {"promoter": 1, "passive": 1, "detractor": 2}
    tagged = {
        r.comment: [t.name for t in themes if t.matches(r.comment)]
        for r in selectors.comments(filters=ReportFilters())
    }
    assert tagged["Prices went up and support is slow"] == ["Pricing", "Support"]
    assert tagged["Great partner manager"] == []
    with_support = selectors.comments(filters=ReportFilters(), theme=support)
    assert sorted(r.score for r in with_support) == [2, 4]
    assert [r.score for r in selectors.comments(filters=ReportFilters(), theme=pricing)] == [8, 4]


def test_comments_are_searched_in_text_and_partner_name_and_filtered_by_category_and_wave():
    program = ProgramFactory()
    old, new = wave_at(program, days_ago=100), wave_at(program, days_ago=1)
    acme = PartnerFactory(name="Acme Systems")
    ResponseFactory(
        invitation=InvitationFactory(wave=old, contact=ContactFactory(partner=acme)),
        score=3,
        comment="Portal is slow",
    )
    answer(new, 9, comment="Portal is great")
    answer(new, 1, comment="Billing mistakes")

    def scores(**kwargs):
        return sorted(r.score for r in selectors.comments(**kwargs))

    assert scores(filters=ReportFilters(), search="portal") == [3, 9]
    assert scores(filters=ReportFilters(), search="acme") == [3]
    assert scores(filters=ReportFilters(), category="detractor") == [1, 3]
    assert scores(filters=ReportFilters(wave=new.pk)) == [1, 9]


# --- Exports --------------------------------------------------------------------------------


def test_response_export_rows_carry_segments_and_category(cs_agent):
    wave = wave_at(ProgramFactory(name="Partner Pulse"), days_ago=1, label="Q1 2025")
    partner = PartnerFactory(name="Acme", region="EMEA", account_owner=cs_agent)
    ResponseFactory(
        invitation=InvitationFactory(
            wave=wave, contact=ContactFactory(partner=partner, email="kim@acme.example")
        ),
        score=6,
        comment="Slow",
        account_owner=cs_agent,
    )
    (row,) = list(selectors.response_export_rows(filters=ReportFilters()))
    columns = [name for name, _ in selectors.RESPONSE_EXPORT_COLUMNS]
    values = dict(zip(columns, row, strict=True))
    assert {k: v for k, v in values.items() if k != "submitted_at"} == {
        "program": "Partner Pulse",
        "wave": "Q1 2025",
        "partner": "Acme",
        "contact_email": "kim@acme.example",
        "score": 6,
        "category": "detractor",
        "comment": "Slow",
        "tier": "Gold",
        "region": "EMEA",
        "partner_type": "Reseller",
        "account_owner": "sam",
        "language": "en",
        "wants_contact": False,
    }


def test_owner_choices_list_only_users_who_own_a_partner():
    owner = UserFactory(username="zoe")
    PartnerFactory(account_owner=owner, region="APAC")
    PartnerFactory(region="EMEA")
    PartnerFactory(region="EMEA")
    choices = selectors.segment_choices()
    assert choices["account_owner"] == [(owner.pk, "zoe")]
    assert choices["region"] == ["APAC", "EMEA"]
    assert "Gold" in choices["tier"]


def test_recovery_with_a_date_range_picks_detractors_but_follows_them_past_the_range():
    program = ProgramFactory()
    q1, q2 = wave_at(program, days_ago=200), wave_at(program, days_ago=20)
    contact = ContactFactory()
    first = ResponseFactory(invitation=InvitationFactory(wave=q1, contact=contact), score=2)
    ResponseFactory(invitation=InvitationFactory(wave=q2, contact=contact), score=9)
    day = first.submitted_at.date()
    result = selectors.recovery(
        filters=ReportFilters(program=program.pk, submitted_after=day, submitted_before=day)
    )
    assert (result.recovered, result.followed) == (1, 1)


# --- The API and the dashboard agree --------------------------------------------------------


def test_the_api_gives_the_dashboard_segment_table_figures(client, cs_agent):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 10, 9, 9, 8, 7, 6, 0, tier="Gold")
    answer(wave, 0, 3, 9, tier="Silver")
    client.force_login(cs_agent)

    table = selectors.segment_table(filters=ReportFilters(program=wave.program_id), by="tier")
    body = client.get(f"/api/v1/nps/?group_by=tier&program={wave.program_id}").json()

    assert body["groups"] == [g.as_dict() for g in table]
    gold = body["groups"][0]
    assert gold["nps"] == 100 / 7  # full precision, not 14.3
    assert gold["margin_of_error"] == pytest.approx(1.96 * 100 * math.sqrt(34 / 343), abs=1e-12)


def test_the_api_matches_a_tier_typed_in_any_case(client, cs_agent):
    wave = wave_at(ProgramFactory(), days_ago=1)
    answer(wave, 9, 9, tier="Gold")
    client.force_login(cs_agent)
    assert client.get("/api/v1/nps/?tier=gOLd").json()["overall"]["n"] == 2
