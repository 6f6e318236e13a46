"""Hostile input: property-based tests (hypothesis) over the survey form, the CSV import (through
the admin upload) and the API's write endpoints. Any input gives a 2xx/3xx or a clear 4xx, never
a 5xx, and a rejected request stores nothing. Oversized bodies and comments are refused cleanly.

Run sizes (``max_examples``) are the constants below; each test stays under ~10 s.
"""

import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from followups.models import Change, FollowUp
from surveys.importing import HEADER
from surveys.models import Contact, Partner, Program, Response
from surveys.services import token_issue
from tests.factories import FollowUpFactory, InvitationFactory, ProgramFactory
from webhooks.models import Subscription

pytestmark = pytest.mark.django_db

FORM_EXAMPLES = 80
RAW_BODY_EXAMPLES = 80
CSV_EXAMPLES = 60
API_EXAMPLES = 50  # per endpoint (six endpoints)
FOLLOWUP_ACTION_EXAMPLES = 60

HYPOTHESIS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}

# Text a browser can send (no lone surrogates), plus values chosen to hit the edges.
SPECIAL = [
    "0",
    "10",
    "-1",
    "11",
    " 7",
    "7 ",
    "07",
    "7.0",
    "１０",
    "1e1",
    "",
    "\x00",
    "<script>x</script>",
    '=HYPERLINK("http://evil")',
    "Good",
    "Poor",
    "on",
    "true",
    "x" * 5001,
    "é" * 1001,
]
text_value = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), st.sampled_from(SPECIAL)
)
field_name = st.one_of(
    st.sampled_from(["score", "comment", "wants_contact", "q_support", "q_note", "q_unknown"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\n'), max_size=12),
)
form_data = st.dictionaries(
    field_name, st.one_of(text_value, st.lists(text_value, max_size=3)), max_size=6
)


@pytest.fixture
def survey(settings):
    settings.NPS_RATE_LIMIT_ENABLE = False  # hundreds of posts from one address in a few seconds
    program = ProgramFactory(
        extra_questions=[
            {"key": "support", "label": "Support?", "type": "choice", "choices": ["Good", "Poor"]},
            {"key": "note", "label": "Anything else?", "type": "text"},
        ]
    )
    invitation = InvitationFactory(wave__program=program)
    return invitation, reverse("surveys:respond", args=[token_issue(invitation=invitation)])


def _stored(invitation):
    return list(
        Response.objects.filter(invitation=invitation).values(
            "score", "category", "comment", "answers", "wants_contact"
        )
    ) + list(FollowUp.objects.filter(invitation=invitation).values("pk", "status"))


@hsettings(max_examples=FORM_EXAMPLES, **HYPOTHESIS)
@given(data=form_data)
def test_any_form_post_is_answered_without_a_5xx_and_a_refusal_stores_nothing(survey, data):
    invitation, url = survey
    before = _stored(invitation)

    answer = Client().post(url, data)

    assert answer.status_code in (302, 400), answer.status_code
    if answer.status_code == 400:
        assert _stored(invitation) == before
        assert b"errorlist" in answer.content or b"error" in answer.content
    else:
        response = Response.objects.get(invitation=invitation)
        assert 0 <= response.score <= 10
        assert len(response.comment) <= 5000
        assert "\x00" not in response.comment


CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/json",
]


@hsettings(max_examples=RAW_BODY_EXAMPLES, **HYPOTHESIS)
@given(
    body=st.one_of(
        st.binary(max_size=400),
        st.sampled_from(
            [b"score=3&comment=%FF%FE", b"score=%00", b"--xyz\r\nContent-Disposition: form-data"]
        ),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_raw_bodies_in_any_encoding_never_give_a_5xx(survey, body, content_type):
    invitation, url = survey
    before = _stored(invitation)

    answer = Client().generic("POST", url, body, content_type=content_type)

    assert answer.status_code in (302, 400), answer.status_code
    if answer.status_code == 400:
        assert _stored(invitation) == before


def test_an_oversized_body_is_a_clean_400_and_stores_nothing(survey):
    invitation, url = survey
    padding = "x" * (300 * 1024)

    answer = Client().post(url, {"score": "3", "comment": "fine", "padding": padding})

    assert answer.status_code == 400
    assert not Response.objects.exists()


def test_a_comment_over_5000_characters_is_refused_with_a_message(survey):
    invitation, url = survey

    answer = Client().post(url, {"score": "3", "comment": "a" * 5001})

    assert answer.status_code == 400
    assert "under 5,000 characters" in answer.content.decode()
    assert not Response.objects.exists()


def test_too_many_fields_is_a_clean_400(survey):
    invitation, url = survey
    data = {f"f{i}": "x" for i in range(300)} | {"score": "3"}
    assert Client().post(url, data).status_code == 400
    assert not Response.objects.exists()


# --- CSV import through the admin upload ------------------------------------------------------

csv_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.lists(
            st.sampled_from(["", "Acme", "gold", "x@y.example", "EN", "MSP", '"', ",", "=1+1"]),
            min_size=1,
            max_size=9,
        ).map(",".join),
        max_size=5,
    ).map(lambda lines: "\n".join([HEADER, *lines])),
)
csv_bytes = st.one_of(
    st.binary(max_size=300),
    st.tuples(csv_text, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])).map(
        lambda pair: pair[0].encode(pair[1], errors="replace")
    ),
)


def _roster():
    return (
        list(Partner.objects.order_by("pk").values()),
        list(Contact.objects.order_by("pk").values()),
    )


@hsettings(max_examples=CSV_EXAMPLES, **HYPOTHESIS)
@given(content=csv_bytes, dry_run=st.booleans())
def test_any_uploaded_csv_gives_a_report_page_and_a_rejected_file_writes_nothing(
    client, admin_user, content, dry_run
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_user)
    before = _roster()
    upload = SimpleUploadedFile("partners.csv", content, content_type="text/csv")
    data = {"file": upload} | ({"dry_run": "on"} if dry_run else {})

    answer = client.post(reverse("admin:surveys_partner_import"), data)

    assert answer.status_code == 200
    report = answer.context["report"]
    if report is None or not report.ok or report.dry_run:
        assert _roster() == before


# --- The API: arbitrary JSON to the create endpoints -------------------------------------------

json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text_value,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _document(fields):
    """Either arbitrary JSON, or an object with the endpoint's own field names and wild values."""
    return st.one_of(
        json_value,
        st.fixed_dictionaries({}, optional={name: json_value for name in fields}),
    )


ENDPOINTS = {
    "partners": (
        Partner,
        ["name", "tier", "partner_type", "region", "account_owner", "is_active"],
    ),
    "contacts": (Contact, ["partner", "name", "email", "language", "is_active", "is_key"]),
    "programs": (Program, ["name", "frequency", "anchor_month", "anchor_day", "regions"]),
    "changes": (Change, ["title", "description", "category", "owner", "status", "followups"]),
    "webhooks/subscriptions": (Subscription, ["url", "events", "format", "is_active"]),
}


def _rows(model):
    return list(model.objects.order_by("pk").values())


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_any_json_to_a_create_endpoint_is_a_2xx_or_a_structured_4xx(admin_user, endpoint):
    model, fields = ENDPOINTS[endpoint]
    api = APIClient()
    api.force_authenticate(admin_user)

    @hsettings(max_examples=API_EXAMPLES, **HYPOTHESIS)
    @given(document=_document(fields))
    def check(document):
        before = _rows(model)
        answer = api.post(
            f"/api/v1/{endpoint}/", json.dumps(document), content_type="application/json"
        )
        assert answer.status_code < 500, (answer.status_code, document)
        if answer.status_code >= 400:
            assert "error" in answer.json()
            assert _rows(model) == before
        else:
            assert answer.status_code == 201
            assert len(_rows(model)) == len(before) + 1

    check()


def test_garbage_bytes_to_the_api_are_a_4xx(admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)

    @hsettings(max_examples=API_EXAMPLES, **HYPOTHESIS)
    @given(body=st.binary(max_size=200), content_type=st.sampled_from(CONTENT_TYPES))
    def check(body, content_type):
        answer = api.generic("POST", "/api/v1/partners/", body, content_type=content_type)
        assert 400 <= answer.status_code < 500
        assert not Partner.objects.exists()

    check()


def test_an_oversized_api_body_is_a_clean_4xx(admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    body = json.dumps({"name": "x" * (300 * 1024)})
    answer = api.post("/api/v1/partners/", body, content_type="application/json")
    assert 400 <= answer.status_code < 500
    assert not Partner.objects.exists()


def test_any_json_to_a_followup_action_changes_nothing_when_refused(cs_manager):
    followup = FollowUpFactory(assignee=cs_manager)
    api = APIClient()
    api.force_authenticate(cs_manager)

    @hsettings(max_examples=FOLLOWUP_ACTION_EXAMPLES, **HYPOTHESIS)
    @given(
        action=st.sampled_from(["transition", "assign", "notes"]),
        document=_document(["to", "status", "version", "assignee", "note", "kind"]),
    )
    def check(action, document):
        before = FollowUp.objects.filter(pk=followup.pk).values().get()
        answer = api.post(
            f"/api/v1/followups/{followup.pk}/{action}/",
            json.dumps(document),
            content_type="application/json",
        )
        assert answer.status_code < 500, (answer.status_code, action, document)
        if answer.status_code >= 400:
            assert FollowUp.objects.filter(pk=followup.pk).values().get() == before

    check()
