"""Programs (admins write), waves, invitations and responses (read)."""

import datetime as dt

import pytest

from surveys.models import Program
from surveys.services import token_issue
from tests.api.conftest import error
from tests.factories import InvitationFactory, ProgramFactory, ResponseFactory, WaveFactory

pytestmark = pytest.mark.django_db

PROGRAM = {
    "name": "Partner pulse",
    "frequency": 3,
    "anchor_month": 1,
    "anchor_day": 15,
    "send_hour": 9,
    "time_zone": "Europe/Berlin",
    "starts_on": "2025-01-01",
    "response_window_days": 14,
    "reminder_days": [4, 9],
    "tiers": ["gold", "Platinum"],
    "regions": ["EMEA"],
}


def test_admin_creates_a_program(api, admin_user):
    answer = api(admin_user).post("/api/v1/programs/", PROGRAM)
    assert answer.status_code == 201, answer.json()
    assert answer.json()["tiers"] == ["Gold", "Platinum"]
    assert Program.objects.get().time_zone == "Europe/Berlin"


def test_bad_program_input_names_each_field(api, admin_user):
    answer = api(admin_user).post(
        "/api/v1/programs/", {**PROGRAM, "anchor_day": 31, "send_hour": "nine", "tiers": ["Iron"]}
    )
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "tiers": ["Unknown tier “Iron”. Choose one of: Registered, Silver, Gold, Platinum."],
        "anchor_day": ["Ensure this value is less than or equal to 28."],
        "send_hour": ["A valid integer is required."],
    }


def test_program_rules_of_the_model_are_400(api, admin_user):
    answer = api(admin_user).post(
        "/api/v1/programs/", {**PROGRAM, "time_zone": "Mars/Olympus", "reminder_days": [20]}
    )
    assert answer.status_code == 400
    fields = error(answer)["fields"]
    assert set(fields) == {"time_zone", "reminder_days"}
    assert fields["reminder_days"] == [
        "Give a list of whole days, each after the wave opens and before it closes."
    ]
    assert Program.objects.count() == 0


def test_cs_reads_programs_but_cannot_write(api, cs_manager):
    ProgramFactory(name="Pulse")
    client = api(cs_manager)
    assert [p["name"] for p in client.get("/api/v1/programs/").json()["results"]] == ["Pulse"]
    answer = client.post("/api/v1/programs/", PROGRAM)
    assert answer.status_code == 403
    assert error(answer)["message"] == "Only an admin can change this."


def test_waves_show_invitation_and_response_counts(api, cs_agent, django_assert_num_queries):
    wave = WaveFactory()
    InvitationFactory.create_batch(3, wave=wave)
    ResponseFactory(invitation=InvitationFactory(wave=wave))
    # groups, count, the page with both counts as subqueries.
    with django_assert_num_queries(3):
        answer = api(cs_agent).get("/api/v1/waves/")
    [body] = answer.json()["results"]
    assert (body["invitations"], body["responses"]) == (4, 1)


def test_invitations_never_expose_tokens(api, cs_agent):
    invitation = InvitationFactory()
    token = token_issue(invitation=invitation)
    answer = api(cs_agent).get(f"/api/v1/invitations/{invitation.pk}/")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert token not in text
    assert "token" not in text
    assert invitation.tokens.get().token_hash not in text
    assert answer.json()["has_response"] is False


def test_responses_are_cursor_paginated_newest_first(api, cs_agent, django_assert_num_queries):
    now = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
    for hours in range(5):
        ResponseFactory(submitted_at=now - dt.timedelta(hours=hours), score=hours * 2)
    client = api(cs_agent)
    # groups, the page with partner and owner joined and the follow-up id (no count query),
    # the audit log's INSERT.
    with django_assert_num_queries(3):
        page = client.get("/api/v1/responses/?page_size=2").json()
    assert [r["score"] for r in page["results"]] == [0, 2]
    assert "count" not in page
    page = client.get(page["next"]).json()
    assert [r["score"] for r in page["results"]] == [4, 6]


def test_a_response_shows_the_extra_answers_and_whether_the_partner_asked_to_be_contacted(
    api, cs_agent
):
    ResponseFactory(score=3, wants_contact=True, answers={"support": "slow"})
    body = api(cs_agent).get("/api/v1/responses/").json()["results"][0]
    assert (body["answers"], body["wants_contact"]) == ({"support": "slow"}, True)


def test_response_filters(api, cs_agent):
    wave = WaveFactory()
    ResponseFactory(
        invitation=InvitationFactory(wave=wave),
        score=10,
        submitted_at=dt.datetime(2025, 1, 10, tzinfo=dt.UTC),
    )
    ResponseFactory(score=2, submitted_at=dt.datetime(2025, 2, 10, 23, 59, tzinfo=dt.UTC))
    client = api(cs_agent)
    scores = lambda q: [r["score"] for r in client.get("/api/v1/responses/" + q).json()["results"]]  # noqa: E731
    assert scores("?category=promoter") == [10]
    assert scores(f"?wave={wave.pk}") == [10]
    assert scores("?submitted_after=2025-02-01&submitted_before=2025-02-10") == [2]
    assert scores("?tier=GOLD&region=emea&partner_type=reseller") == [2, 10]
    assert scores("?submitted_before=2025-01-09") == []


def test_bad_response_filters_are_400(api, cs_agent):
    client = api(cs_agent)
    answer = client.get("/api/v1/responses/?category=angry&submitted_after=yesterday")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "category": ["Select a valid choice. angry is not one of the available choices."],
        "submitted_after": ["Give a date as YYYY-MM-DD."],
    }
    assert client.get("/api/v1/responses/?cursor=garbage").status_code == 404
