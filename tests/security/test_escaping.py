"""A partner's comment with HTML and script is shown escaped everywhere it appears: the survey
form, the staff pages, the admin, the staff email, and the CSV export (formula neutralised)."""

import csv
import io

import pytest
from django.urls import reverse

from followups.models import FollowUp, StaffEmail
from followups.services import staff_email_message
from surveys.services import response_submit, token_issue
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'
FORMULA = '=HYPERLINK("http://evil.example","click")'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def hostile(cs_agent):
    invitation = InvitationFactory(contact__partner__account_owner=cs_agent)
    token = token_issue(invitation=invitation)
    response = response_submit(invitation_id=invitation.pk, score=2, comment=HOSTILE)
    return token, response, FollowUp.objects.get(response=response)


def _assert_escaped(html: str):
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert (
        ESCAPED in html
        or ESCAPED.replace("&quot;", "&#x27;") in html
        or ("&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html)
    )


def test_the_survey_form_shows_the_previous_comment_escaped(client, hostile):
    token, _response, _followup = hostile
    _assert_escaped(client.get(reverse("surveys:respond", args=[token])).content.decode())


@pytest.mark.parametrize("page", ["followup", "partner", "comments"])
def test_staff_pages_show_the_comment_escaped(client, cs_agent, hostile, page):
    _token, response, followup = hostile
    client.force_login(cs_agent)
    url = {
        "followup": reverse("followups:detail", args=[followup.pk]),
        "partner": reverse("scoring:partner-detail", args=[response.partner_id]),
        "comments": reverse("scoring:comment-list"),
    }[page]
    answer = client.get(url)
    assert answer.status_code == 200
    _assert_escaped(answer.content.decode())


def test_the_admin_shows_the_comment_escaped(client, admin_user, hostile):
    _token, response, _followup = hostile
    client.force_login(admin_user)
    for url in (
        reverse("admin:surveys_response_changelist"),
        reverse("admin:surveys_response_change", args=[response.pk]),
    ):
        answer = client.get(url)
        assert answer.status_code == 200
        assert "<script>alert" not in answer.content.decode()


def test_the_staff_email_escapes_the_comment_in_html_and_keeps_it_plain_in_text(hostile):
    _token, _response, followup = hostile
    email = StaffEmail.objects.get(followup=followup)  # to the account owner, the assignee
    message = staff_email_message(email)
    html = message.alternatives[0][0]
    _assert_escaped(html)
    assert HOSTILE in message.body  # text/plain is not HTML: shown as written


def test_the_csv_export_neutralises_a_formula_and_keeps_html_as_text(client, cs_agent):
    invitation = InvitationFactory()
    response_submit(invitation_id=invitation.pk, score=1, comment=FORMULA)
    other = InvitationFactory(contact__partner=invitation.contact.partner)
    response_submit(invitation_id=other.pk, score=9, comment=HOSTILE)
    client.force_login(cs_agent)

    answer = client.get(reverse("scoring:export-responses"))

    text = b"".join(answer.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    comments = {row["comment"] for row in rows}
    assert "'" + FORMULA in comments
    assert HOSTILE in comments
    assert not any(c.startswith(("=", "+", "-", "@")) for c in comments)
