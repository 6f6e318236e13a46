"""GET /api/v1/nps/: counts, NPS, standard error and margin of error, overall and per group."""

import math

import pytest

from tests.api.conftest import error
from tests.factories import InvitationFactory, PartnerFactory, ResponseFactory, WaveFactory

pytestmark = pytest.mark.django_db

NPS = "/api/v1/nps/"


def respond(wave, scores, **partner):
    p = PartnerFactory(**partner)
    for score in scores:
        ResponseFactory(
            invitation=InvitationFactory(wave=wave, contact__partner=p),
            score=score,
            account_owner=p.account_owner,
        )


def test_no_responses_gives_null_figures_not_zero(api, cs_agent):
    answer = api(cs_agent).get(NPS)
    assert answer.status_code == 200
    assert answer.json() == {
        "group_by": None,
        "overall": {
            "n": 0,
            "promoters": 0,
            "passives": 0,
            "detractors": 0,
            "nps": None,
            "standard_error": None,
            "margin_of_error": None,
        },
        "groups": [],
    }


def test_hand_computed_set_at_full_precision(api, cs_agent, django_assert_num_queries):
    respond(WaveFactory(), [10, 9, 9, 8, 7, 6, 0])
    # p = 3/7, d = 2/7: NPS = 100/7 = 14.2857...; SE = 100*sqrt((5/7 - 1/49)/7)
    se = 100 * math.sqrt((5 / 7 - (1 / 7) ** 2) / 7)
    client = api(cs_agent)
    with django_assert_num_queries(2):  # groups (the role check), the one aggregate
        overall = client.get(NPS).json()["overall"]
    assert (overall["n"], overall["promoters"], overall["passives"], overall["detractors"]) == (
        7,
        3,
        2,
        2,
    )
    assert overall["nps"] == pytest.approx(100 / 7, abs=1e-12)
    assert overall["standard_error"] == pytest.approx(se, abs=1e-12)
    assert overall["standard_error"] == pytest.approx(31.4842, abs=1e-4)
    assert overall["margin_of_error"] == pytest.approx(1.96 * se, abs=1e-12)


def test_group_by_tier_and_filters(api, cs_agent, django_assert_num_queries):
    wave = WaveFactory()
    respond(wave, [10, 10, 0], region="EMEA")
    from surveys.models import Tier

    respond(wave, [7, 8], tier=Tier.objects.get(name="Silver"), region="APAC")
    client = api(cs_agent)
    with django_assert_num_queries(2):  # groups, the one grouped aggregate
        body = client.get(NPS + "?group_by=tier").json()
    assert [(g["key"], g["n"], g["nps"]) for g in body["groups"]] == [
        ("Gold", 3, pytest.approx(100 / 3)),
        ("Silver", 2, 0.0),
    ]
    assert body["overall"]["n"] == 5
    body = client.get(NPS + "?group_by=region&region=apac").json()
    assert [(g["label"], g["n"]) for g in body["groups"]] == [("APAC", 2)]


def test_group_by_wave_lists_an_empty_wave_with_null_nps(api, cs_agent):
    import datetime as dt

    from django.utils import timezone

    program_wave = WaveFactory(opens_at=timezone.now() - dt.timedelta(days=100))
    empty = WaveFactory(program=program_wave.program)
    respond(program_wave, [0, 0])
    body = api(cs_agent).get(f"{NPS}?group_by=wave&program={program_wave.program_id}").json()
    assert [(g["key"], g["n"], g["nps"], g["margin_of_error"]) for g in body["groups"]] == [
        (str(program_wave.pk), 2, -100.0, 0.0),
        (str(empty.pk), 0, None, None),
    ]


def test_group_by_account_owner(api, cs_agent, cs_manager):
    wave = WaveFactory()
    respond(wave, [9], account_owner=cs_manager)
    respond(wave, [3])
    body = api(cs_agent).get(NPS + "?group_by=account_owner").json()
    assert [(g["key"], g["label"], g["nps"]) for g in body["groups"]] == [
        (str(cs_manager.pk), "maria", 100.0),
        (None, "No account owner", -100.0),
    ]


def test_bad_nps_queries_are_400(api, cs_agent):
    client = api(cs_agent)
    answer = client.get(NPS + "?group_by=colour&program=abc")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "program": ["A valid integer is required."],
        "group_by": ['"colour" is not a valid choice.'],
    }
    answer = client.get(NPS + "?submitted_after=2025-03-01&submitted_before=2025-01-01")
    assert error(answer)["fields"] == {
        "submitted_before": ["The end date is before the start date."]
    }


def test_outsider_gets_403_on_nps(api, outsider):
    assert api(outsider).get(NPS).status_code == 403
