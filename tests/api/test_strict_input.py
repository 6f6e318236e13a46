"""The API is strict about input: the schema's types and formats, or 400 with the field's message
and nothing written. (DRF and django-filter alone would quietly read many of these.)"""

import pytest

from followups.models import Change
from surveys.models import Partner, Program
from tests.api.conftest import error
from tests.factories import ChangeFactory, PartnerFactory, ResponseFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["abc", "0", "501", "2.5", "-1", "", " 5"])
def test_a_bad_page_size_is_400(api, cs_agent, value):
    answer = api(cs_agent).get("/api/v1/partners/", {"page_size": value})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"page_size": ["Give a whole number from 1 to 500."]}


def test_a_bad_page_size_on_a_cursor_list_is_400_too(api, cs_agent):
    answer = api(cs_agent).get("/api/v1/responses/", {"page_size": "ten"})
    assert error(answer)["fields"] == {"page_size": ["Give a whole number from 1 to 1000."]}


@pytest.mark.parametrize("value", ["last", "x", "0"])
def test_a_page_that_is_not_a_number_is_400(api, cs_agent, value):
    answer = api(cs_agent).get("/api/v1/partners/", {"page": value})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"page": ["Give a whole number from 1 to 1000000000."]}


def test_a_page_past_the_end_is_404(api, cs_agent):
    answer = api(cs_agent).get("/api/v1/partners/", {"page": "2"})
    assert answer.status_code == 404


@pytest.mark.parametrize("value", ["yes", "1", "True", "abc"])
def test_booleans_are_true_or_false_only(api, cs_agent, value):
    answer = api(cs_agent).get("/api/v1/followups/", {"unassigned": value})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"unassigned": ["Use true or false."]}


def test_boolean_filters_work_with_true_and_false(api, cs_agent):
    PartnerFactory(name="Active")
    PartnerFactory(name="Gone", is_active=False)
    client = api(cs_agent)
    names = [p["name"] for p in client.get("/api/v1/partners/?is_active=false").json()["results"]]
    assert names == ["Gone"]
    names = [p["name"] for p in client.get("/api/v1/partners/?is_active=true").json()["results"]]
    assert names == ["Active"]


@pytest.mark.parametrize(
    "query",
    ["/api/v1/webhooks/deliveries/?event_id=", "/api/v1/webhooks/subscriptions/?format="],
)
def test_a_filter_given_without_a_value_is_400(api, admin_user, query):
    answer = api(admin_user).get(query)
    assert answer.status_code == 400
    name = query.rsplit("?", 1)[1].rstrip("=")
    assert error(answer)["fields"] == {name: ["Give a value, or leave the parameter out."]}


@pytest.mark.parametrize("value", ["20250101", "2025-1-5", "01/05/2025", ""])
def test_response_dates_are_yyyy_mm_dd(api, cs_agent, value):
    answer = api(cs_agent).get("/api/v1/responses/", {"submitted_before": value})
    assert answer.status_code == 400


def test_event_times_need_an_offset(api, cs_agent):
    answer = api(cs_agent).get("/api/v1/followup-events/", {"created_after": "2025-03-01 12:00"})
    assert error(answer)["fields"] == {
        "created_after": ["Give a date and time with its offset, e.g. 2025-03-01T12:00:00Z."]
    }
    answer = api(cs_agent).get(
        "/api/v1/followup-events/", {"created_after": "2025-03-01T12:00:00+01:00"}
    )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        (
            {"submitted_after": "20250101"},
            {"submitted_after": ["Date has wrong format. Use one of these formats instead: "
                                 "YYYY-MM-DD."]},
        ),
        ({"program": "1.0"}, {"program": ["A valid integer is required."]}),
        ({"group_by": ""}, {"group_by": ["\"\" is not a valid choice."]}),
    ],
)  # fmt: skip
def test_nps_query_is_strict(api, cs_agent, query, fields):
    ResponseFactory()
    answer = api(cs_agent).get("/api/v1/nps/", query)
    assert answer.status_code == 400
    assert error(answer)["fields"] == fields


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"description": 0}, {"description": ["Not a valid string."]}),
        ({"title": ["a list"]}, {"title": ["Not a valid string."]}),
        ({"owner": "1"}, {"owner": ["Incorrect type. Expected pk value, received str."]}),
        ({"owner": True}, {"owner": ["Incorrect type. Expected pk value, received bool."]}),
        ({"status": 1}, {"status": ['"1" is not a valid choice.']}),
    ],
)
def test_a_json_value_of_the_wrong_type_is_400_and_changes_nothing(api, cs_agent, body, fields):
    change = ChangeFactory(title="Faster support")
    answer = api(cs_agent).patch(f"/api/v1/changes/{change.pk}/", body)
    assert answer.status_code == 400
    assert error(answer)["fields"] == fields
    change.refresh_from_db()
    assert (change.title, change.status) == ("Faster support", Change.Status.PLANNED)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"is_active": "true"}, {"is_active": ["Must be a valid boolean."]}),
        ({"is_active": 1}, {"is_active": ["Must be a valid boolean."]}),
        ({"region": 5}, {"region": ["Not a valid string."]}),
    ],
)
def test_partner_fields_take_their_json_type_only(api, admin_user, body, fields):
    partner = PartnerFactory(region="EMEA")
    answer = api(admin_user).patch(f"/api/v1/partners/{partner.pk}/", body)
    assert error(answer)["fields"] == fields
    partner.refresh_from_db()
    assert (partner.is_active, partner.region) == (True, "EMEA")


PROGRAM = {"name": "Partner pulse", "time_zone": "Europe/Berlin", "frequency": 3}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"time_zone": ""}, {"time_zone": ["This field may not be blank."]}),
        (
            {"time_zone": "localtime"},
            {"time_zone": ["Unknown time zone “localtime”; use a name like Europe/Berlin."]},
        ),
        ({"frequency": "3"}, {"frequency": ["\"3\" is not a valid choice."]}),
        ({"anchor_month": "3"}, {"anchor_month": ["A valid integer is required."]}),
        ({"anchor_month": 3.0}, {"anchor_month": ["A valid integer is required."]}),
        ({"starts_on": "20250101"}, {"starts_on": [
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}),
        ({"reminder_days": [20]}, {"reminder_days": [
            "Give a list of whole days, each after the wave opens and before it closes."]}),
        ({"brand_colour": "red"}, {"brand_colour": [
            "Give a hex colour with a # and six digits, e.g. #0b5cad."]}),
    ],
)  # fmt: skip
def test_bad_program_input_is_400_and_writes_nothing(api, admin_user, change, fields):
    answer = api(admin_user).post("/api/v1/programs/", {**PROGRAM, **change})
    assert answer.status_code == 400
    assert error(answer)["fields"] == fields
    assert not Program.objects.exists()


def test_admin_creates_a_program_with_branding_and_an_audience(api, admin_user):
    answer = api(admin_user).post(
        "/api/v1/programs/",
        {**PROGRAM, "tiers": ["gold"], "brand_colour": "#112233", "reminder_days": [4, 9]},
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["tiers"], body["brand_colour"], body["reminder_days"]) == (
        ["Gold"],
        "#112233",
        [4, 9],
    )


def test_a_program_name_taken_in_another_case_is_400(api, admin_user):
    api(admin_user).post("/api/v1/programs/", PROGRAM)
    answer = api(admin_user).post("/api/v1/programs/", {**PROGRAM, "name": "PARTNER PULSE"})
    assert error(answer)["fields"] == {"name": ["A program named “PARTNER PULSE” already exists."]}


def test_a_partner_owner_off_the_team_is_refused_by_email(api, admin_user, outsider):
    partner = PartnerFactory()
    answer = api(admin_user).patch(
        f"/api/v1/partners/{partner.pk}/", {"account_owner_email": outsider.email}
    )
    assert error(answer)["fields"] == {
        "account_owner_email": [
            f"No active customer-success user has the email “{outsider.email}”."
        ]
    }
    assert Partner.objects.get().account_owner is None
